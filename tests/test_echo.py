"""The echo guard at the start of a call, before it knows the echo path (real speech)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import Clip
from voice.echo import EchoGuard

CHUNK = 640  # 40 ms at 16 kHz


def run_guard(
    reference: np.ndarray, microphone: np.ndarray
) -> tuple[np.ndarray, list[float | None]]:
    """Play ``reference`` from position 0 and feed ``microphone`` in 40 ms chunks."""
    guard = EchoGuard()
    guard.add_reference(reference, 0)
    out, scores = [], []
    for start in range(0, len(microphone), CHUNK):
        out.append(guard.process(microphone[start : start + CHUNK], start))
        scores.append(guard.echo_score)
    return np.concatenate(out), scores


def power(samples: np.ndarray) -> float:
    return float(np.mean(samples.astype(np.float64) ** 2))


@pytest.fixture
def bot(speech: dict[str, Clip]) -> np.ndarray:
    return speech["librivox_sense_sensibility_0880"].samples[4000:]  # starts in speech


@pytest.fixture
def user(speech: dict[str, Clip]) -> np.ndarray:
    return speech["ps_forever_input_2"].samples


def test_own_echo_is_silenced_while_the_echo_path_is_learned(bot: np.ndarray) -> None:
    lag = 1920  # 120 ms
    echo = np.concatenate([np.zeros(lag), 0.3 * bot])[: len(bot)].astype(np.float32)
    out, _ = run_guard(bot, echo)
    first = slice(0, 6400)  # the first 400 ms of the reply: warm-up
    assert power(out[first]) < 0.01 * power(echo[first])


def test_a_voice_that_is_not_the_echo_goes_through_during_warm_up(
    bot: np.ndarray, user: np.ndarray
) -> None:
    onset = int(np.argmax(np.abs(user) > 0.05))  # the user's first loud sample
    user = user[max(0, onset - 320) :][: len(bot)]
    out, scores = run_guard(bot, user)
    measurable = [score for score in scores[:10] if score is not None]
    assert measurable and max(measurable) < 0.5, scores[:10]
    # From the second chunk on (64 ms are needed to compare), the user is heard as is.
    heard = slice(2 * CHUNK, 6400)
    assert power(out[heard]) == pytest.approx(power(user[heard]))
