"""The echo guard at the start of a call, before it knows the echo path, and when the output
is placed anew mid-call (real speech)."""

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


def two_clauses(
    bot: np.ndarray,
    *,
    shift_ms: int,
    lag: int = 640,
    gain: float = 0.316,
    user: np.ndarray | None = None,
) -> tuple[np.ndarray, int, np.ndarray]:
    """A first clause, a 300 ms gap, and a second clause placed anew whose real echo is
    ``shift_ms`` later than its placement (a client that ran dry, a late write): the guard's
    output, where the second clause's echo begins, and the microphone signal."""
    first, second = bot[:32000], bot[32000:64000]
    placed = len(first) + 4800
    shift = shift_ms * 16
    microphone = np.zeros(placed + len(second) + lag + shift + 3200, dtype=np.float32)
    microphone[lag : lag + len(first)] += gain * first
    if user is None:
        microphone[placed + lag + shift : placed + lag + shift + len(second)] += gain * second
    else:  # the client stopped playing; the user talks where the echo would be
        user = user[: len(microphone) - placed - lag]
        microphone[placed + lag : placed + lag + len(user)] += user
    guard = EchoGuard()
    guard.add_reference(first, 0, anchored=True)
    out, sent = [], False
    for start in range(0, len(microphone) - CHUNK + 1, CHUNK):
        if not sent and start >= placed - 3200:  # sent about 200 ms before it is heard
            guard.add_reference(second, placed, anchored=True)
            sent = True
        out.append(guard.process(microphone[start : start + CHUNK], start))
    return np.concatenate(out), placed + lag + shift, microphone


@pytest.mark.parametrize("shift_ms", [-20, 10, 20, 40])
def test_a_clause_placed_anew_does_not_leak_its_echo(bot: np.ndarray, shift_ms: int) -> None:
    out, echo_start, microphone = two_clauses(bot, shift_ms=shift_ms)
    leaks = []
    for start in range(echo_start - CHUNK, min(echo_start + 16000, len(out) - CHUNK), CHUNK):
        echo = power(microphone[start : start + CHUNK])
        if echo > 1e-5:
            leaks.append(10 * np.log10(power(out[start : start + CHUNK]) / echo + 1e-12))
    # Every 40 ms of the second clause's echo is at least 20 dB down: nothing the VAD hears.
    assert max(leaks) < -20, [round(leak) for leak in leaks]


def test_the_user_goes_through_where_a_new_placement_is_relearned(
    bot: np.ndarray, user: np.ndarray
) -> None:
    onset = int(np.argmax(np.abs(user) > 0.05))
    out, voice_start, microphone = two_clauses(bot, shift_ms=0, user=user[max(0, onset - 320) :])
    # From the second chunk on (64 ms are needed to compare), the user is heard as is.
    heard = slice(voice_start + 2 * CHUNK, voice_start + 6400)
    assert power(out[heard]) == pytest.approx(power(microphone[heard]))
