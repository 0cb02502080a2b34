"""The end-of-turn model, for real: Smart Turn v3.2 from the pipecat-ai wheel, on real
speech, and a real server ending a turn early on its verdict."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import Clip, ServerProcess, start_server
from tests.realtime_helpers import realtime, silence, stream_audio
from voice.turn_model import SmartTurn, TurnModelError, default_turn_model_path

TAIL = np.zeros(3200, dtype=np.float32)  # 200 ms of silence after the speech


@pytest.fixture(scope="module")
def model() -> Iterator[SmartTurn]:
    loaded = SmartTurn(default_turn_model_path())
    yield loaded
    loaded.close()


def speech_of(clip: Clip, seconds: float | None = None) -> np.ndarray:
    """The clip up to ``seconds`` (default: its end), then 200 ms of silence."""
    end = len(clip.samples) if seconds is None else round(seconds * 16000)
    return np.concatenate([clip.samples[:end], TAIL])


def test_a_finished_command_is_complete_and_a_cut_one_is_not(
    model: SmartTurn, speech: dict[str, Clip]
) -> None:
    finished = model.probability(speech_of(speech["ps_goforward"]))  # "go forward ten meters"
    cut = model.probability(speech_of(speech["librivox_sense_sensibility_0880"], 1.46))
    assert 0.0 <= cut < 0.5 < finished <= 1.0, (finished, cut)  # "he was not an|"


def test_only_the_last_eight_seconds_count(model: SmartTurn, speech: dict[str, Clip]) -> None:
    long = speech["long_librivox_sense_sensibility_0870-0930"].samples
    assert len(long) > 10 * 16000
    whole = model.probability(np.concatenate([long, TAIL]))
    tail = model.probability(np.concatenate([long, TAIL])[-8 * 16000 :])
    assert whole == pytest.approx(tail, abs=1e-6)


async def test_the_model_runs_on_its_own_thread(model: SmartTurn, speech: dict[str, Clip]) -> None:
    audio = speech_of(speech["ps_goforward"])
    assert await model.complete(audio) == pytest.approx(model.probability(audio), abs=1e-6)
    assert model.worker.pending == 0


def test_a_missing_model_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TurnModelError, match=r"not found: .*nothing\.onnx"):
        SmartTurn(tmp_path / "nothing.onnx")


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(TurnModelError, match="cannot load end-of-turn model"):
        SmartTurn(bad)


@pytest.fixture(scope="module")
def early_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose semantic_vad turns need 3 s of silence, unless the words and the
    model agree (the default eagerness keeps the server's semantic silence)."""
    running = start_server(
        tmp_path_factory.mktemp("early"), VOICE_VAD_SEMANTIC_SILENCE_MS="3000",
        VOICE_VAD_EARLY_SILENCE_MS="240",
    )  # fmt: skip
    yield running
    running.stop()


@pytest.mark.parametrize(
    ("clip", "seconds", "early"),
    [("ps_goforward", None, True), ("librivox_sense_sensibility_0880", 1.46, False)],
    ids=["finished: ends early", "cut after 'he was not an': waits"],
)
async def test_the_server_ends_a_finished_turn_early(
    early_server: ServerProcess,
    speech: dict[str, Clip],
    clip: str,
    seconds: float | None,
    early: bool,
) -> None:
    async with realtime(early_server.ws_base, early_server.api_key) as log:
        await log.connection.session.update(
            session={
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}},
            }
        )
        await log.wait_for("session.updated")
        said = np.concatenate([silence(0.3), speech_of(speech[clip], seconds)])
        await stream_audio(log.connection, said)
        await stream_audio(log.connection, silence(1.0))  # 1.2 s of silence in all, < 3 s
        await asyncio.sleep(0.5)
        assert bool(log.of_type("input_audio_buffer.committed")) == early
        if early:
            done = await log.wait_for("response.done", timeout=60)
            assert done.response.status == "completed"
