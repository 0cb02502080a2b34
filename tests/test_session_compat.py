"""What Realtime apps send, accepted and honoured (session on the fakes of tests.fakes).

The settings the SDKs send by default, push-to-talk back to back, and the rest of the GA
response and item surface. Real speech and the real Silero VAD make the spoken turns; the
STT, LLM and TTS are scripted fakes (clearly fakes). The third-party clients themselves
are driven against a real server in tests/test_clients_*.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
import pytest

from tests.conftest import Clip
from tests.fakes import FakeEngines, FakeLLM, FakeSTT, Recorder, VirtualClock
from tests.test_session_fakes import user_text
from tests.test_session_prepared import CLIP, say, silence, update
from voice.audio import float_to_pcm16, resample
from voice.config import Settings
from voice.session import RealtimeSession
from voice.session_config import EAGERNESS
from voice.stt import SttOptions, Transcript


def make(
    llm: FakeLLM | None = None, *, engines: FakeEngines | None = None, **settings: Any
) -> tuple[RealtimeSession, Recorder, FakeEngines]:
    engines = engines or FakeEngines(llm or FakeLLM(["Sure."]))
    recorder = Recorder(VirtualClock())
    config = Settings(instructions="Be brief.", prepare_reply=False, **settings)
    return RealtimeSession(engines, config, recorder.send, recorder.clock), recorder, engines


def pcm24(samples16: np.ndarray) -> str:
    return base64.b64encode(float_to_pcm16(resample(samples16, 16000, 24000))).decode()


@pytest.fixture
def clip(speech: dict[str, Clip]) -> np.ndarray:
    return speech[CLIP].samples


# --- session.update as the SDKs send it -------------------------------------------------


async def test_semantic_vad_is_accepted_and_its_eagerness_sets_the_wait() -> None:
    session, recorder, _ = make()
    for eagerness, silence_ms, hold_ms, early, early_threshold in (
        ("low", 1440, 540, None, 0.95),
        ("medium", 800, 300, 240, 0.95),
        ("high", 480, 180, 240, 0.5),
    ):
        detection = {"type": "semantic_vad", "eagerness": eagerness}
        await update(session, audio={"input": {"turn_detection": detection}})
        echoed = recorder.of("session.updated")[-1]["session"]["audio"]["input"]
        assert echoed["turn_detection"]["eagerness"] == eagerness
        turns = session.config.turn_config(Settings(), notice_at_pause=True)
        assert turns is not None and turns.endpointing.silence_ms == silence_ms
        assert turns.hold_ms == hold_ms
        assert turns.complete_threshold == 0.5, "semantic_vad asks the end-of-turn model"
        assert turns.early_silence_ms == early
        assert turns.early_threshold == early_threshold
        # Without the model nothing ends early, so the usual silence, scaled, ends a turn.
        off = session.config.turn_config(Settings(turn_model="off"), notice_at_pause=True)
        assert off is not None and off.complete_threshold is off.early_silence_ms is None
        assert off.endpointing.silence_ms == round(500 * EAGERNESS[eagerness])
        assert off.hold_ms == round(600 * EAGERNESS[eagerness])
    assert not recorder.of("error")


async def test_server_vad_ends_turns_on_its_silence_alone() -> None:
    session, _, _ = make()
    await update(session, audio={"input": {"turn_detection": {"type": "server_vad"}}})
    turns = session.config.turn_config(Settings(vad_early_silence_ms=200), notice_at_pause=True)
    assert turns is not None and turns.endpointing.silence_ms == 500
    assert turns.complete_threshold is None and turns.early_silence_ms is None


async def test_voices_by_alias_and_by_id_name_the_preset_used() -> None:
    session, recorder, _ = make()
    await update(session, audio={"output": {"voice": "marin"}})
    await update(session, audio={"output": {"voice": {"id": "fake-voice"}}})
    voices = [e["session"]["audio"]["output"]["voice"] for e in recorder.of("session.updated")]
    assert voices == ["fake-voice", "fake-voice"]
    await update(session, audio={"output": {"voice": "nobody"}})
    assert "unknown voice 'nobody'" in recorder.of("error")[0]["error"]["message"]


async def test_transcription_settings_reach_the_model_and_null_silences_the_events(
    clip: np.ndarray,
) -> None:
    session, recorder, engines = make()
    transcription = {"model": "gpt-4o-transcribe", "language": "en", "prompt": "Dashwood"}
    await update(session, audio={"input": {"transcription": transcription}})
    echoed = recorder.of("session.updated")[-1]["session"]["audio"]["input"]["transcription"]
    assert (echoed["model"], echoed["language"], echoed["prompt"]) == ("whisper", "en", "Dashwood")
    await say(session, recorder.clock, np.concatenate([silence(300), clip, silence(800)]))
    await recorder.wait_for("response.done")
    assert SttOptions(language="en", prompt="Dashwood") in engines.stt.options
    types = recorder.types()
    assert types.index("conversation.item.input_audio_transcription.delta") < types.index(
        "conversation.item.input_audio_transcription.completed"
    )
    await update(session, audio={"input": {"transcription": None}})
    before = len(recorder.events)
    await say(session, recorder.clock, np.concatenate([clip, silence(800)]))
    await recorder.wait_for("response.done", count=2)
    later = [e["type"] for e in recorder.events[before:]]
    assert "input_audio_buffer.committed" in later
    assert not [t for t in later if "input_audio_transcription" in t]


async def test_idle_timeout_prompts_a_reply_after_the_bot_has_finished(
    clip: np.ndarray,
) -> None:
    session, recorder, engines = make(FakeLLM(["Hi.", "Are you still there?"]))
    detection = {"type": "server_vad", "idle_timeout_ms": 3000}
    await update(session, audio={"input": {"turn_detection": detection}})
    await session.handle_text(user_text("Hello."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done")
    await say(session, recorder.clock, silence(4000))  # the bot's 150 ms of audio, then silence
    await recorder.wait_for("response.done", count=2)
    triggered = recorder.of("input_audio_buffer.timeout_triggered")
    assert len(triggered) == 1
    assert triggered[0]["audio_end_ms"] - triggered[0]["audio_start_ms"] >= 3000
    assert "said nothing" in engines.llm.prompts[-1][-1]["content"]
    await say(session, recorder.clock, silence(1000))  # once per reply: not again yet
    assert len(recorder.of("input_audio_buffer.timeout_triggered")) == 1


async def test_truncation_and_speed_are_reported_as_set() -> None:
    session, recorder, _ = make()
    retention = {"type": "retention_ratio", "retention_ratio": 0.5}
    await update(session, truncation=retention, audio={"output": {"speed": 1.25}})
    echoed = recorder.of("session.updated")[-1]["session"]
    assert echoed["truncation"] == retention
    assert echoed["audio"]["output"]["speed"] == 1.25
    await update(session, audio={"output": {"speed": 3}})
    assert recorder.of("error")[0]["error"]["param"] == "session.audio.output.speed"


# --- push-to-talk -----------------------------------------------------------------------


class SlowSTT(FakeSTT):
    """The fake STT, taking ``delay`` real seconds per transcription (a fake)."""

    delay = 0.3

    async def transcribe(self, audio: np.ndarray, options: SttOptions | None = None) -> Transcript:
        await asyncio.sleep(self.delay)
        return await super().transcribe(audio, options)


async def test_push_to_talk_commit_then_response_create_answers_the_words(
    clip: np.ndarray,
) -> None:
    engines = FakeEngines(FakeLLM(["You said hello there."]))
    engines.stt = SlowSTT("Hello there.")
    session, recorder, _ = make(engines=engines)
    await update(session, audio={"input": {"turn_detection": None}})
    await session.handle_text(
        json.dumps({"type": "input_audio_buffer.append", "audio": pcm24(clip)})
    )
    await session.handle_text('{"type": "input_audio_buffer.commit"}')
    await session.handle_text('{"type": "response.create"}')  # back to back, as PTT apps do
    await recorder.wait_for("response.done")
    types = recorder.types()
    assert types.index("conversation.item.input_audio_transcription.completed") < types.index(
        "response.created"
    )
    assert engines.llm.prompts[0][-1] == {"role": "user", "content": "Hello there."}


# --- responses ------------------------------------------------------------------------


async def test_metadata_is_echoed_and_assistant_items_get_item_done() -> None:
    session, recorder, _ = make()
    await session.handle_text(user_text("Hi."))
    create = {"type": "response.create", "response": {"metadata": {"turn": "7"}}}
    await session.handle_text(json.dumps(create))
    await recorder.wait_for("response.done")
    assert recorder.of("response.created")[0]["response"]["metadata"] == {"turn": "7"}
    done = recorder.of("response.done")[0]["response"]
    assert done["metadata"] == {"turn": "7"}
    item_done = [
        e for e in recorder.of("conversation.item.done") if e["item"]["role"] == "assistant"
    ]
    assert item_done and item_done[0]["item"]["id"] == done["output"][0]["id"]


async def test_an_out_of_band_text_reply_runs_beside_the_live_one_and_stays_out_of_history() -> (
    None
):
    llm = FakeLLM(["word " * 60, "A summary.", "Okay."], token_delay=0.002)
    session, recorder, _ = make(llm)
    await session.handle_text(user_text("Talk."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.output_audio.delta")
    side = {
        "type": "response.create",
        "response": {
            "conversation": "none", "output_modalities": ["text"],
            "metadata": {"purpose": "summary"}, "instructions": "Summarize.",
            "input": [{"type": "message", "role": "user",
                       "content": [{"type": "input_text", "text": "Sum it up."}]}],
        },
    }  # fmt: skip
    await session.handle_text(json.dumps(side))
    assert not recorder.of("error")
    await recorder.wait_for("response.done", count=2)
    side_done = next(
        e
        for e in recorder.of("response.done")
        if e["response"]["metadata"] == {"purpose": "summary"}
    )
    assert side_done["response"]["output"][0]["content"][0]["text"] == "A summary."
    assert llm.prompts[1] == [
        {"role": "system", "content": "Summarize."},
        {"role": "user", "content": "Sum it up."},
    ]
    side_id = side_done["response"]["output"][0]["id"]
    assert session.conversation.get(side_id) is None
    await session.handle_text(user_text("Go on."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done", count=3)
    assert "A summary." not in json.dumps(llm.prompts[2])


async def test_response_cancel_by_id_stops_that_response() -> None:
    llm = FakeLLM(["word " * 200], token_delay=0.002)
    session, recorder, _ = make(llm)
    await session.handle_text(user_text("Talk."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.created")
    response_id = recorder.of("response.created")[0]["response"]["id"]
    await session.handle_text(json.dumps({"type": "response.cancel", "response_id": "resp_nope"}))
    assert recorder.of("error")[0]["error"]["code"] == "response_cancel_not_active"
    await session.handle_text(json.dumps({"type": "response.cancel", "response_id": response_id}))
    done = recorder.of("response.done")[0]["response"]
    assert (done["id"], done["status"]) == (response_id, "cancelled")


# --- conversation items -------------------------------------------------------------


async def test_items_go_first_with_root_and_after_the_one_named() -> None:
    session, recorder, _ = make()
    for text in ("one", "three"):
        await session.handle_text(user_text(text))
    ids = [item.id for item in session.conversation]
    for previous, text in (("root", "zero"), (ids[0], "two")):
        message = json.loads(user_text(text))
        message["previous_item_id"] = previous
        await session.handle_text(json.dumps(message))
    assert [item.text for item in session.conversation] == ["zero", "one", "two", "three"]
    added = recorder.of("conversation.item.added")
    assert added[2]["previous_item_id"] is None and added[3]["previous_item_id"] == ids[0]
    message = json.loads(user_text("lost"))
    message["previous_item_id"] = "item_nope"
    await session.handle_text(json.dumps(message))
    assert recorder.of("error")[0]["error"]["param"] == "previous_item_id"


async def test_an_audio_item_is_transcribed_and_answered_from_its_words(clip: np.ndarray) -> None:
    session, recorder, engines = make(FakeLLM(["I heard you."]))
    item = {
        "type": "message", "role": "user",
        "content": [{"type": "input_audio", "audio": pcm24(clip)}],
    }  # fmt: skip
    await session.handle_text(json.dumps({"type": "conversation.item.create", "item": item}))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done")
    completed = recorder.of("conversation.item.input_audio_transcription.completed")[0]
    assert completed["transcript"] == "Hello there."
    assert engines.llm.prompts[0][-1] == {"role": "user", "content": "Hello there."}


# --- transcription-only sessions --------------------------------------------------------


async def test_a_transcription_session_transcribes_and_never_answers(clip: np.ndarray) -> None:
    session, recorder, engines = make()
    transcription = {
        "type": "transcription",
        "audio": {"input": {"transcription": {"language": "en"}}},
    }
    await session.handle_text(json.dumps({"type": "session.update", "session": transcription}))
    assert recorder.of("session.updated")[0]["session"]["type"] == "transcription"
    await say(session, recorder.clock, np.concatenate([silence(300), clip, silence(800)]))
    await recorder.wait_for("conversation.item.input_audio_transcription.completed")
    await session.handle_text('{"type": "response.create"}')
    assert "transcription session" in recorder.of("error")[0]["error"]["message"]
    await recorder.clock.advance(2.0)
    assert not recorder.of("response.created") and not engines.llm.prompts


async def test_usage_is_reported_and_a_reply_cut_at_the_token_limit_is_incomplete() -> None:
    session, recorder, _ = make(FakeLLM(["one two three four five six seven eight"]))
    await session.handle_text(user_text("Count."))
    create = {"type": "response.create", "response": {"max_output_tokens": 3}}
    await session.handle_text(json.dumps(create))
    await recorder.wait_for("response.done")
    done = recorder.of("response.done")[0]["response"]
    assert done["status"] == "incomplete"
    assert done["status_details"]["reason"] == "max_output_tokens"
    assert done["usage"]["output_tokens"] == 3
    assert done["usage"]["input_tokens"] == done["usage"]["input_token_details"]["text_tokens"] > 0
    assert done["output"][0]["content"][0]["transcript"] == "one two three"
