"""The reply prepared during the end-of-turn silence: used when the guess holds, else unheard.

Real speech and the real Silero VAD drive turn-taking; the STT, LLM and TTS are the fakes
of ``tests.fakes`` (scripted, instant), and time is the session's virtual clock.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from tests.conftest import Clip
from tests.fakes import FakeEngines, FakeLLM, FakeTurnModel, Recorder, VirtualClock
from voice.config import Settings
from voice.session import RealtimeSession
from voice.tools import ToolCallDelta
from voice.vad import SileroVadStream

CHUNK = 640  # 40 ms at 16 kHz, as a client sends it
CLIP = "librivox_sense_sensibility_0880"  # "he was not an ill disposed young man", 3 s


class WitnessLLM(FakeLLM):
    """A fake LLM that also notes which events the client had seen when it was asked."""

    def __init__(self, replies: list[str], recorder: Recorder) -> None:
        super().__init__(replies)
        self.recorder = recorder
        self.seen_at_call: list[list[str]] = []

    async def stream(
        self, messages: list[dict[str, Any]], **options: Any
    ) -> AsyncIterator[str | ToolCallDelta]:
        self.seen_at_call.append(self.recorder.types())
        async for delta in super().stream(messages, **options):
            yield delta


def silence(ms: int) -> np.ndarray:
    return np.zeros(ms * 16, dtype=np.float32)


def make(
    recorder: Recorder,
    *,
    prepare: bool = True,
    turn_model: FakeTurnModel | None = None,
    **settings: Any,
) -> tuple[RealtimeSession, WitnessLLM, VirtualClock]:
    llm = WitnessLLM(["Not ill disposed at all. Just careful."], recorder)
    engines = FakeEngines(llm)
    engines.turn_model = turn_model
    model = "smart-turn" if turn_model is not None else "off"  # as the server loads it
    # Guesses at the usual 160 ms of silence, as with other calls live: at the lone call's
    # 80 ms the clip's own short pauses would be guessed (and prepared for) too.
    settings.setdefault("vad_speculative_alone_ms", 0)
    config = Settings(instructions="Be brief.", prepare_reply=prepare, turn_model=model, **settings)
    session = RealtimeSession(engines, config, recorder.send, clock=recorder.clock)
    return session, llm, recorder.clock


async def update(session: RealtimeSession, **fields: Any) -> None:
    """A client's ``session.update`` with these session fields."""
    await session.handle_text(
        json.dumps({"type": "session.update", "session": {"type": "realtime", **fields}})
    )


async def semantic_vad(session: RealtimeSession, eagerness: str = "auto") -> None:
    """Turn detection that asks the end-of-turn model (server_vad does not)."""
    detection = {"type": "semantic_vad", "eagerness": eagerness}
    await update(session, audio={"input": {"turn_detection": detection}})


async def say(session: RealtimeSession, clock: VirtualClock, audio: np.ndarray) -> None:
    """Stream 16 kHz audio in 40 ms chunks, in real time on the virtual clock."""
    for start in range(0, len(audio), CHUNK):
        await clock.advance(CHUNK / 16000)  # the fakes finish within a few loop turns
        await session.push_audio(audio[start : start + CHUNK])


@pytest.fixture
def clip(speech: dict[str, Clip]) -> np.ndarray:
    """The clip cut to its speech (by Silero, as the session sees it), so pauses are exact."""
    samples = speech[CLIP].samples
    vad = SileroVadStream()
    starts = [start for start, p in vad.process(samples) if p >= 0.5]
    return samples[starts[0] : starts[-1] + vad.window]


async def test_reply_prepared_in_the_silence_is_the_one_sent(clip: np.ndarray) -> None:
    recorder = Recorder(VirtualClock())
    session, llm, clock = make(recorder)
    await session.start()
    await say(session, clock, np.concatenate([silence(300), clip, silence(800)]))
    await recorder.wait_for("response.done")
    types = recorder.types()
    # The model was asked once, before the end of the turn was even decided ...
    assert len(llm.prompts) == 1
    assert "input_audio_buffer.speech_stopped" not in llm.seen_at_call[0]
    assert llm.prompts[0][-1] == {"role": "user", "content": "Hello there."}
    # ... but the client heard of the reply only after its turn was transcribed.
    assert (
        types.index("input_audio_buffer.speech_stopped")
        < types.index("conversation.item.input_audio_transcription.completed")
        < types.index("response.created")
        < types.index("response.output_audio.delta")
    )
    assert types.count("response.created") == 1
    done = recorder.of("response.done")[0]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0]["transcript"] == "Not ill disposed at all. Just careful."
    created = recorder.of("response.output_item.added")[0]
    user_item = recorder.of("conversation.item.input_audio_transcription.completed")[0]["item_id"]
    assert created["item"]["id"] == done["output"][0]["id"]
    added = [e for e in recorder.of("conversation.item.added") if e["item"]["role"] == "assistant"]
    assert added[0]["previous_item_id"] == user_item
    await session.aclose()
    assert session.busy_tasks == 0


async def test_user_going_on_drops_the_prepared_reply_unheard(clip: np.ndarray) -> None:
    recorder = Recorder(VirtualClock())
    session, llm, clock = make(recorder)
    await session.start()
    # A 300 ms pause: long enough to guess and prepare, too short to end the turn.
    await say(session, clock, np.concatenate([silence(300), clip, silence(300), clip]))
    assert len(llm.prompts) == 1, "a reply was prepared during the pause"
    assert llm.closed_streams == 1, "and dropped when the user went on"
    assert not [t for t in recorder.types() if t.startswith("response.")]
    await say(session, clock, silence(800))
    await recorder.wait_for("response.done")
    assert recorder.types().count("response.created") == 1
    assert recorder.of("response.done")[0]["response"]["status"] == "completed"
    assert len(llm.prompts) == 2
    await session.aclose()


async def test_prepared_reply_for_an_outdated_prompt_is_replaced(clip: np.ndarray) -> None:
    recorder = Recorder(VirtualClock())
    session, llm, clock = make(recorder)
    await session.start()
    await say(session, clock, np.concatenate([silence(300), clip, silence(300)]))
    assert len(llm.prompts) == 1
    update = {"type": "session.update", "session": {"type": "realtime", "instructions": "Rhyme."}}
    await session.handle_text(json.dumps(update))
    await say(session, clock, silence(800))
    await recorder.wait_for("response.done")
    assert len(llm.prompts) == 2, "the reply was written again for the new instructions"
    assert llm.prompts[1][0] == {"role": "system", "content": "Rhyme."}
    assert llm.closed_streams == 2
    assert recorder.types().count("response.created") == 1
    await session.aclose()


async def test_without_prepare_reply_the_model_is_asked_after_the_turn(clip: np.ndarray) -> None:
    recorder = Recorder(VirtualClock())
    session, llm, clock = make(recorder, prepare=False)
    await session.start()
    await say(session, clock, np.concatenate([silence(300), clip, silence(800)]))
    await recorder.wait_for("response.done")
    assert len(llm.prompts) == 1
    assert "conversation.item.input_audio_transcription.completed" in llm.seen_at_call[0]
    await session.aclose()


async def test_close_while_a_reply_is_prepared_leaves_nothing_running(clip: np.ndarray) -> None:
    recorder = Recorder(VirtualClock())
    session, llm, clock = make(recorder)
    await session.start()
    await say(session, clock, np.concatenate([silence(300), clip, silence(300)]))
    assert len(llm.prompts) == 1
    assert session.busy_tasks == 1, "the held reply counts as work in progress"
    await session.aclose()
    assert session.busy_tasks == 0
    assert not [t for t in recorder.types() if t.startswith("response.")]


async def test_a_pause_both_verdicts_call_finished_ends_the_turn_early(
    clip: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="voice.turn_log")
    recorder = Recorder(VirtualClock())
    model = FakeTurnModel(0.97)
    session, llm, clock = make(recorder, turn_model=model, vad_early_silence_ms=256)
    plan = session._replies.make

    async def slow_plan(*args: Any, **kwargs: Any) -> Any:  # a card and memories to look up
        await clock.sleep(0.15)
        return await plan(*args, **kwargs)

    session._replies.make = slow_plan  # type: ignore[method-assign]
    await session.start()
    await semantic_vad(session)
    # 320 ms of silence: past the early end (256), short of the full silence (500 ms).
    await say(session, clock, np.concatenate([silence(300), clip, silence(320)]))
    await recorder.wait_for("response.done")
    assert model.heard and model.heard[0] > len(clip) // 2, "the model heard the turn"
    assert recorder.types().count("input_audio_buffer.committed") == 1
    # The turn ended once the reply planned in the pause was held, and that one was sent.
    assert len(llm.prompts) == 1
    assert "prepared=True" in caplog.text
    assert recorder.of("response.done")[0]["response"]["status"] == "completed"
    await session.aclose()


@pytest.mark.parametrize("probability", [0.1, None], ids=["model hears more", "no model"])
async def test_no_early_end_without_the_models_word(
    clip: np.ndarray, probability: float | None
) -> None:
    recorder = Recorder(VirtualClock())
    model = None if probability is None else FakeTurnModel(probability)
    session, _, clock = make(recorder, turn_model=model, vad_early_silence_ms=256)
    await session.start()
    await semantic_vad(session)
    await say(session, clock, np.concatenate([silence(300), clip, silence(700)]))
    committed = "input_audio_buffer.committed" in recorder.types()
    # Without a model the usual 500 ms end the turn; an "unfinished" verdict holds it on
    # past the semantic silence (800 ms) and its hold (600 ms).
    assert committed == (probability is None)
    await say(session, clock, silence(800))
    assert "input_audio_buffer.committed" in recorder.types()
    await session.aclose()


async def test_server_vad_does_not_ask_the_end_of_turn_model(clip: np.ndarray) -> None:
    """The default server_vad ends a turn on its silence, as the client asked; the model
    (which would hold this turn) is not even run."""
    recorder = Recorder(VirtualClock())
    model = FakeTurnModel(0.1)
    session, _, clock = make(recorder, turn_model=model, vad_early_silence_ms=256)
    await session.start()
    await say(session, clock, np.concatenate([silence(300), clip, silence(700)]))
    assert "input_audio_buffer.committed" in recorder.types()
    assert model.heard == []
    await session.aclose()
