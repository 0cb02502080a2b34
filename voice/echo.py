"""Echo guard: take the bot's own voice out of the microphone signal before the VAD sees it.

Clients without echo cancellation (plain WebSocket clients, phone-style devices) send back
what they play. The server knows exactly what it played and when, so it keeps that
reference on the input stream's time axis, finds the echo's delay by cross-correlation,
fits its gain by least squares, and subtracts it. What is left is the user's voice (and
noise): the VAD runs on that, so the bot does not interrupt itself while a real
interruption still comes through.

The echo path is modelled as a short FIR filter (``taps`` samples, 1 ms at 16 kHz) around
the delay found by cross-correlation: that absorbs fractional delays from resampling and a
little colouring by the speaker and microphone. Long room reverberation would need a long
adaptive filter; the browser's own echo canceller covers WebRTC clients.
No I/O: samples in, samples out.
"""

from __future__ import annotations

import logging

import numpy as np

from voice.audio import Float32Array, StreamResampler

log = logging.getLogger(__name__)

RATE = 16000
#: Mean power below which a stretch is too quiet to estimate the echo from (about -50 dBFS).
MIN_POWER = 1e-5


def _speech_band(samples: Float32Array) -> Float32Array:
    """A crude low-pass (5-sample moving average): correlate on speech, not on hiss.

    Hiss near 8 kHz decorrelates under the fractional delays that resampling introduces.
    """
    return np.convolve(samples, np.full(5, 0.2, dtype=np.float32), mode="same").astype(np.float32)


class EchoGuard:
    """Subtracts the delayed, attenuated bot reference from 16 kHz input audio."""

    def __init__(
        self,
        *,
        min_lag_ms: int = -100,
        max_lag_ms: int = 500,
        history_s: float = 8.0,
        estimate_ms: int = 480,
        min_correlation: float = 0.8,
        not_echo_below: float = 0.5,
        taps: int = 16,
        warmup_ms: int = 400,
        echo_free_after_ms: int = 3000,
    ) -> None:
        self.min_lag = min_lag_ms * RATE // 1000
        self.max_lag = max_lag_ms * RATE // 1000
        self.estimate_len = estimate_ms * RATE // 1000
        self.min_correlation = min_correlation
        self.not_echo_below = not_echo_below
        self.taps = taps
        self.warmup = warmup_ms * RATE // 1000
        self.echo_free_after = echo_free_after_ms * RATE // 1000
        self._filter: Float32Array | None = None
        #: True once an echo was found; False once the bot played long enough without one.
        self.echo_seen: bool | None = None
        self._unlocked_samples = 0
        size = int(history_s * RATE)
        self._ref = np.zeros(size, dtype=np.float32)  # ring, indexed by stream position
        self._inp = np.zeros(size, dtype=np.float32)
        self._size = size
        self._ref_until = 0  # reference known up to this stream position (exclusive)
        self._input_end = 0
        self.lag: int | None = None  # samples: echo at t comes from reference at t - lag
        self.correlation = 0.0
        #: Best correlation of the latest input with the reference at any lag; None while
        #: it cannot be measured (too little or too quiet input).
        self.echo_score: float | None = None
        self._since_estimate = 0
        self._active_since: int | None = None  # input position where the echo could begin
        #: Reference position where the output was last placed anew (a pause, a late clause):
        #: the echo before and after it need not line up, so estimates start after it.
        self._anchor: int | None = None
        #: Until this input position, after a new placement and before the echo path is
        #: found again, input that the old path does not explain is muted (as in warm-up).
        self._relock_until: int | None = None

    def add_reference(self, samples: Float32Array, start: int, *, anchored: bool = False) -> None:
        """Bot audio that reaches the listener from stream position ``start`` on.

        ``anchored``: the output was placed anew here (not back to back with the reference
        before it), so its echo may be shifted from the last one by the placement's error.
        """
        if not samples.size:
            return
        if anchored:
            self._anchor = start
            if self.lag is not None:
                self._relock_until = start + self.lag + self.warmup
        end = start + samples.size
        if end <= self._input_end - self._size // 2:
            return  # too old to matter
        positions = np.arange(start, end) % self._size
        self._ref[positions] = samples
        self._ref_until = max(self._ref_until, end)

    def _ref_segment(self, start: int, end: int) -> Float32Array:
        out = np.zeros(end - start, dtype=np.float32)
        lo, hi = max(start, self._input_end - self._size, 0), min(end, self._ref_until)
        if hi > lo:
            out[lo - start : hi - start] = self._ref[np.arange(lo, hi) % self._size]
        return out

    def active(self, end: int) -> bool:
        """Whether any reference audio can be echoing at stream position ``end``."""
        return self._ref_until + self.max_lag > end - 2 * self.estimate_len

    def process(self, samples: Float32Array, start: int) -> Float32Array:
        """The input ``samples`` (stream positions from ``start``) with the echo removed."""
        end = start + samples.size
        self._inp[np.arange(start, end) % self._size] = samples
        self._input_end = end
        if not self.active(end):
            # The echo path outlives one reply: lag and filter are kept for the next one.
            self._active_since = None
            return samples
        if self._active_since is None:
            self._active_since = start
        window = min(self.estimate_len, end - self._window_start())
        self._since_estimate += samples.size
        if self.lag is None or self._since_estimate >= self.estimate_len // 2:
            # Until locked, re-estimate on every chunk with all audio since the echo could
            # begin (from 64 ms on), so the first syllables of echo are caught too.
            self._estimate_lag(end, window)
            self._since_estimate = 0
        if self.lag is None or self._filter is None:
            return self._unguarded(samples, end)
        power = float(np.dot(samples, samples))
        residual = samples - self._echo_estimate(start, end)
        if power > MIN_POWER * samples.size and float(np.dot(residual, residual)) > 0.1 * power:
            # Under 10 dB of cancellation: the echo path moved (or the user talks); look
            # again now. With the user talking the correlation stays low and nothing changes.
            self._estimate_lag(end, window)
            self._since_estimate = 0
            residual = samples - self._echo_estimate(start, end)
            if self._relocking(end) and float(np.dot(residual, residual)) > 0.1 * power:
                return np.zeros_like(samples)
        if float(np.dot(residual, residual)) > power:
            return samples  # the estimate does not fit this stretch: never add sound
        return residual.astype(np.float32)

    def _relocking(self, end: int) -> bool:
        """Whether the echo path is being found again after a new placement, and nothing
        says the sound is someone else's (as in warm-up: a voice unlike the reference
        goes through)."""
        if self._relock_until is None or end > self._relock_until:
            return False
        return self.echo_score is None or self.echo_score >= self.not_echo_below

    def _window_start(self) -> int:
        """Where the audio to estimate the echo path from begins: where the echo could
        begin, or where the output was last placed anew if that is later."""
        assert self._active_since is not None
        if self._anchor is None:
            return self._active_since
        return max(self._active_since, self._anchor + (self.lag or 0))

    def _unguarded(self, samples: Float32Array, end: int) -> Float32Array:
        """Input while no echo path is known."""
        assert self._active_since is not None
        if self.echo_seen is not None:
            return samples
        self._unlocked_samples += samples.size
        if self._unlocked_samples >= self.echo_free_after:
            self.echo_seen = False  # a client with its own echo cancellation
            return samples
        if end - self._active_since < self.warmup:
            # The first reply of a call, before the echo path is known: its first syllables
            # must not read as the user talking over it. Sound that matches the reference
            # at no lag is not its echo (the user, with a client that cancels echo): it
            # goes through at once.
            if self.echo_score is not None and self.echo_score < self.not_echo_below:
                return samples
            return np.zeros_like(samples)
        return samples

    def _shifted(self, start: int, end: int) -> Float32Array:
        """Reference matrix: column k is the reference at lag ``lag - taps/2 + k``."""
        assert self.lag is not None
        first = self.lag - self.taps // 2
        wide = self._ref_segment(start - first - self.taps + 1, end - first)
        n = end - start
        return np.stack(
            [wide[self.taps - 1 - k : self.taps - 1 - k + n] for k in range(self.taps)], 1
        )

    def _echo_estimate(self, start: int, end: int) -> Float32Array:
        assert self._filter is not None
        return (self._shifted(start, end) @ self._filter).astype(np.float32)

    def _estimate_lag(self, end: int, n: int) -> None:
        """Find the delay with the highest normalised cross-correlation over recent audio."""
        self.echo_score = None
        if n < RATE * 64 // 1000 or end < n:
            return
        x = _speech_band(self._inp[np.arange(end - n, end) % self._size])
        if float(np.dot(x, x)) / n < MIN_POWER:
            return
        span = n + self.max_lag - self.min_lag
        r = _speech_band(self._ref_segment(end - n - self.max_lag, end - n - self.max_lag + span))
        if float(np.dot(r, r)) / span < MIN_POWER:
            self.echo_score = 0.0  # the bot was silent: nothing there can be its echo
            return
        size = 1 << (span + n).bit_length()
        corr = np.fft.irfft(np.fft.rfft(r, size) * np.conj(np.fft.rfft(x, size)), size)[
            : span - n + 1
        ]
        # Energy of each reference window, for normalisation.
        cumulative = np.concatenate(([0.0], np.cumsum(r.astype(np.float64) ** 2)))
        energy = cumulative[n : span + 1] - cumulative[: span - n + 1]
        norm = np.sqrt(np.maximum(energy, 1e-12) * float(np.dot(x, x)))
        score = corr / norm
        best = int(np.argmax(score))
        correlation = float(score[best])
        self.echo_score = correlation
        if correlation < self.min_correlation:
            # No echo of the reference in this stretch (or the user drowns it): keep the
            # last filter, which stays right as long as the echo path does not change.
            return
        self.correlation = correlation
        # offset `best` in r is stream position end - n - max_lag + best = (end - n) - lag
        if self.lag != self.max_lag - best:
            log.debug(
                "echo delay %d ms (correlation %.2f)",
                (self.max_lag - best) * 1000 // RATE,
                correlation,
            )
        self.lag = self.max_lag - best
        self.echo_seen = True
        self._relock_until = None
        self._fit_filter(end, n, self._inp[np.arange(end - n, end) % self._size])

    def _fit_filter(self, end: int, n: int, x: Float32Array) -> None:
        """Least-squares FIR echo path around the lag over the estimation window."""
        matrix = self._shifted(end - n, end).astype(np.float64)
        gram = matrix.T @ matrix
        gram += np.eye(self.taps) * (1e-6 + 1e-4 * np.trace(gram) / self.taps)
        self._filter = np.linalg.solve(gram, matrix.T @ x.astype(np.float64)).astype(np.float32)


class EchoReference:
    """Places the bot's outgoing audio on the input stream's time axis for an :class:`EchoGuard`.

    Input audio arrives in real time, but late by a varying network and scheduling delay.
    The input position at clock time ``t`` is estimated from the least-delayed arrivals:
    the upper envelope of ``position - t * rate`` over the arrivals, decaying slowly so
    that a drift between the client's and the server's clocks is followed.
    Pieces that play back to back are placed back to back: the placement is re-anchored
    only where the output itself jumps (a pause, a slow clause, a new reply), so the echo
    delay the guard tracks stays put while the output plays continuously.
    """

    #: How fast the envelope may fall (samples per second): 2 ms per second.
    DECAY = RATE * 2 // 1000

    def __init__(self, guard: EchoGuard, *, rate: int) -> None:
        self._guard = guard
        self._resampler = StreamResampler(rate, RATE)
        self._rate = rate
        self._offset: float | None = None  # input position minus clock * RATE
        self._observed_at = 0.0
        self._next: int | None = None
        self._next_heard_at = 0.0

    def on_input(self, end: int, now: float) -> None:
        """Input up to stream position ``end`` had arrived at clock time ``now``."""
        offset = end - now * RATE
        if self._offset is None:
            self._offset = offset
        else:
            decayed = self._offset - self.DECAY * max(0.0, now - self._observed_at)
            self._offset = max(decayed, offset)
        self._observed_at = now

    def on_audio(self, samples: Float32Array, heard_at: float) -> None:
        """An :class:`~voice.playout.AudioOutput` monitor: audio heard at clock ``heard_at``."""
        reference = self._resampler.process(samples)
        if self._offset is None:
            return  # no input yet: nothing can echo into it
        anchored = self._next is None or abs(heard_at - self._next_heard_at) > 0.02
        if anchored:
            self._next = round(self._offset + heard_at * RATE)
        assert self._next is not None
        self._guard.add_reference(reference, self._next, anchored=anchored)
        self._next += reference.size
        self._next_heard_at = heard_at + samples.size / self._rate
