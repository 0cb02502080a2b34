"""A model that fails mid-turn fails that turn cleanly; the call goes on and the next works.

Real speech and the real Silero VAD make the turns; the STT, LLM and TTS are the scripted
fakes of ``tests.fakes`` (clearly fakes), made to raise on cue. Faults of a real chat
endpoint are tested end to end elsewhere (tests/test_llm_faults*.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import Clip
from tests.fakes import FakeEngines, FakeLLM, FakeSTT, FakeTTS, Recorder, VirtualClock
from tests.test_session_fakes import user_text
from tests.test_session_prepared import CLIP, say, silence
from voice.config import Settings
from voice.session import RealtimeSession
from voice.stt import SttOptions, Transcript


class FlakySTT(FakeSTT):
    """The fake STT, failing while ``failing`` is set (a fake)."""

    failing = True

    async def transcribe(self, audio: np.ndarray, options: SttOptions | None = None) -> Transcript:
        if self.failing:
            raise RuntimeError("CTranslate2 fell over")
        return await super().transcribe(audio, options)


class FlakyTTS(FakeTTS):
    """The fake TTS, failing on its second chunk while ``failing`` is set (a fake)."""

    failing = True

    async def synthesize(self, text: str, prosody: object = None) -> np.ndarray:
        if self.failing and self.calls >= 1:
            self.calls += 1
            raise RuntimeError("onnxruntime fell over")
        return await super().synthesize(text)


def make(engines: FakeEngines) -> tuple[RealtimeSession, Recorder]:
    recorder = Recorder(VirtualClock())
    settings = Settings(instructions="Be brief.", prepare_reply=False)
    return RealtimeSession(engines, settings, recorder.send, recorder.clock), recorder


@pytest.fixture
def clip(speech: dict[str, Clip]) -> np.ndarray:
    return speech[CLIP].samples


async def test_a_failed_transcription_fails_the_turn_and_the_next_turn_is_answered(
    clip: np.ndarray,
) -> None:
    engines = FakeEngines(FakeLLM(["Sure."]))
    stt = engines.stt = FlakySTT("Hello there.")
    session, recorder = make(engines)
    await session.start()
    await say(session, recorder.clock, np.concatenate([silence(300), clip, silence(800)]))
    await recorder.wait_for("conversation.item.input_audio_transcription.failed")
    failed = recorder.of("conversation.item.input_audio_transcription.failed")[0]
    assert failed["error"]["code"] == "transcription_failed"
    assert failed["item_id"] == recorder.of("input_audio_buffer.committed")[0]["item_id"]
    assert not recorder.of("response.created"), "no reply to a turn with no words"

    stt.failing = False
    await say(session, recorder.clock, np.concatenate([clip, silence(800)]))
    await recorder.wait_for("response.done")
    assert recorder.of("response.done")[0]["response"]["status"] == "completed"
    assert len(recorder.of("conversation.item.input_audio_transcription.completed")) == 1
    await session.aclose()
    assert session.busy_tasks == 0


async def test_a_failed_synthesis_fails_the_reply_and_the_next_reply_works() -> None:
    engines = FakeEngines(FakeLLM(["One two three. Four five six. Seven eight."]))
    tts = engines.voices.tts = engines.tts = FlakyTTS()
    session, recorder = make(engines)
    await session.start()
    await session.handle_text(user_text("Count."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done")
    done = recorder.of("response.done")[0]["response"]
    assert done["status"] == "failed"
    assert "onnxruntime fell over" in done["status_details"]["error"]["code"]

    tts.failing = False
    await session.handle_text(user_text("Again."))
    await session.handle_text(json.dumps({"type": "response.create"}))
    await recorder.wait_for("response.done", count=2)
    assert recorder.of("response.done")[1]["response"]["status"] == "completed"
    await session.aclose()


async def test_a_model_stream_that_breaks_fails_the_reply_and_the_call_goes_on() -> None:
    class BrokenLLM(FakeLLM):
        """A fake LLM whose stream breaks after two words, once (a fake)."""

        async def stream(self, messages, **options):  # type: ignore[no-untyped-def]
            count = 0
            async for delta in super().stream(messages, **options):
                count += 1
                if count > 2 and len(self.prompts) == 1:
                    raise ConnectionResetError("connection reset by peer")
                yield delta

    session, recorder = make(FakeEngines(BrokenLLM(["Well, I think that is right. Yes."])))
    await session.start()
    await session.handle_text(user_text("Is it?"))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done")
    assert recorder.of("response.done")[0]["response"]["status"] == "failed"
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done", count=2)
    assert recorder.of("response.done")[1]["response"]["status"] == "completed"
    await session.aclose()
    assert session.busy_tasks == 0
