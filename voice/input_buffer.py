"""The session's input audio: 16 kHz samples addressed by their position in the stream."""

from __future__ import annotations

from collections import deque

import numpy as np

from voice.audio import Float32Array

RATE = 16000


def ms_to_samples(ms: float) -> int:
    return int(ms * RATE / 1000)


def samples_to_ms(samples: int) -> int:
    return samples * 1000 // RATE


class InputBuffer:
    """Holds stream samples ``[start, end)``; older audio is trimmed, never the newest."""

    def __init__(self) -> None:
        self._chunks: list[Float32Array] = []
        self.start = 0  # stream position of the first buffered sample
        self.end = 0  # stream position after the last sample received

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def end_ms(self) -> int:
        return samples_to_ms(self.end)

    def append(self, samples: Float32Array) -> None:
        self._chunks.append(samples)
        self.end += samples.size

    def _joined(self) -> Float32Array:
        if not self._chunks:
            return np.zeros(0, dtype=np.float32)
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0]

    def trim(self, keep_from: int) -> None:
        """Drop audio before stream position ``keep_from``."""
        if keep_from <= self.start:
            return
        audio = self._joined()
        cut = min(keep_from - self.start, audio.size)
        self._chunks = [audio[cut:]] if cut < audio.size else []
        self.start += cut

    def slice(self, start: int, end: int) -> Float32Array:
        """A copy of stream samples ``[start, end)`` clipped to what is buffered."""
        audio = self._joined()
        lo, hi = max(start, self.start) - self.start, min(end, self.end) - self.start
        return audio[lo:hi].copy() if hi > lo else np.zeros(0, dtype=np.float32)

    def take(self) -> Float32Array:
        """Everything buffered; the buffer is empty afterwards."""
        audio = self._joined().copy()
        self.clear()
        return audio

    def clear(self) -> None:
        self._chunks = []
        self.start = self.end


class ArrivalLog:
    """When each part of the input stream arrived (clock seconds), for latency figures."""

    def __init__(self, keep: int = 4096) -> None:
        self._marks: deque[tuple[int, float]] = deque(maxlen=keep)

    def mark(self, end: int, clock: float) -> None:
        """Stream samples up to ``end`` had arrived at ``clock``."""
        self._marks.append((end, clock))

    def arrival_of(self, position: int) -> float | None:
        """When the sample at stream ``position`` arrived (None if too old or not yet)."""
        for end, clock in self._marks:
            if end > position:
                return clock
        return None
