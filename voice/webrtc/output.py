"""The session's audio sink on a WebRTC call: a short queue the media track drains.

:class:`WebRTCAudioOutput` implements :class:`voice.playout.AudioOutput`. Responses write
48 kHz audio into it; the outgoing track takes one 20 ms frame at a time in real time
(:meth:`WebRTCAudioOutput.next_frame`). Because the track reports every frame it hands
to the encoder, the play position is exact, and a barge-in (:meth:`clear`) silences
the call within one frame. The queue is bounded: :meth:`write` waits while it is full.

While paused (a possible barge-in being checked) it sends silence and keeps its queue.
It also reports the WebRTC-only ``output_audio_buffer.started`` / ``.stopped`` /
``.cleared`` events. No I/O happens here.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import numpy as np

from voice.audio import Float32Array
from voice.clock import Clock
from voice.playout import Monitor
from voice.webrtc.frames import FRAME_SAMPLES, WEBRTC_SAMPLE_RATE
from voice.wire import ServerEvents

#: :meth:`WebRTCAudioOutput.write` waits while more than this much audio is queued.
MAX_QUEUED_MS = 160


@dataclass
class _Piece:
    """Queued samples of one response (at most one frame long)."""

    response_id: str
    samples: Float32Array


class WebRTCAudioOutput:
    """Queued response audio for one call, with an exact play position."""

    def __init__(
        self, events: ServerEvents, *, clock: Clock, max_queued_ms: float = MAX_QUEUED_MS
    ) -> None:
        self._events = events
        self._clock = clock
        self._max_queued = int(max_queued_ms * WEBRTC_SAMPLE_RATE / 1000)
        self._queue: deque[_Piece] = deque()
        self._queued = 0
        self._space = asyncio.Event()
        self._space.set()
        self._response_id = ""
        #: The assistant item whose audio the current response writes.
        self.item_id = ""
        self._written = 0
        self._played = 0
        #: The response whose audio is being heard (``started`` was sent), if any.
        self._playing: str | None = None
        self._finished: str | None = None
        self._paused = False
        self._monitor: Monitor | None = None

    # --- AudioOutput --------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return WEBRTC_SAMPLE_RATE

    def begin(self, response_id: str, item_id: str) -> None:
        self._response_id = response_id
        self.item_id = item_id
        self._written = 0
        self._played = 0
        self._paused = False

    def set_monitor(self, monitor: Monitor | None) -> None:
        """``monitor`` hears each frame with response audio when the track sends it."""
        self._monitor = monitor

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    async def write(self, samples: Float32Array) -> None:
        """Queue ``samples``, one frame at a time, waiting while the queue is full.

        Cancelling a waiting write is safe: the pieces queued so far stay queued.
        """
        for start in range(0, len(samples), FRAME_SAMPLES):
            while self._queued >= self._max_queued:
                self._space.clear()
                await self._space.wait()
            piece = np.ascontiguousarray(samples[start : start + FRAME_SAMPLES], np.float32)
            self._queue.append(_Piece(self._response_id, piece))
            self._queued += piece.size
            self._written += piece.size

    def sent_ms(self) -> float:
        return self._written * 1000 / WEBRTC_SAMPLE_RATE

    def played_ms(self) -> float:
        return self._played * 1000 / WEBRTC_SAMPLE_RATE

    async def clear(self) -> None:
        """Drop everything queued; the next frame the track sends is silence."""
        dropped = self._queue[0].response_id if self._queue else None
        self._queue.clear()
        self._queued = 0
        self._space.set()
        self._paused = False
        cleared = self._playing or dropped
        self._playing = None
        if cleared is not None:
            self._events.output_buffer_cleared(cleared)

    # --- the track's side ---------------------------------------------------------------

    @property
    def queued_ms(self) -> float:
        return self._queued * 1000 / WEBRTC_SAMPLE_RATE

    def next_frame(self) -> Float32Array:
        """The next 20 ms to send: queued audio, padded with silence when short or paused."""
        frame = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        filled = 0
        while filled < FRAME_SAMPLES and self._queue and not self._paused:
            piece = self._queue[0]
            take = min(FRAME_SAMPLES - filled, piece.samples.size)
            frame[filled : filled + take] = piece.samples[:take]
            if take == piece.samples.size:
                self._queue.popleft()
            else:
                piece.samples = piece.samples[take:]
            filled += take
            self._queued -= take
            self._heard(piece.response_id, take)
        if filled and self._monitor is not None:
            self._monitor(frame, self._clock.now())
        if self._queued < self._max_queued:
            self._space.set()
        if self._playing is not None and self._playing == self._finished:
            self._stop_if_drained()
        return frame

    def finish(self, response_id: str) -> None:
        """``response_id`` will write no more audio (it ended)."""
        self._finished = response_id
        if self._playing == response_id:
            self._stop_if_drained()

    def _heard(self, response_id: str, samples: int) -> None:
        if response_id == self._response_id:
            self._played += samples
        if response_id != self._playing:
            if self._playing is not None:
                self._stopped(self._playing)
            self._playing = response_id
            self._events.output_buffer_started(response_id)

    def _stop_if_drained(self) -> None:
        playing = self._playing
        if playing is not None and not any(p.response_id == playing for p in self._queue):
            self._playing = None
            self._stopped(playing)

    def _stopped(self, response_id: str) -> None:
        self._events.output_buffer_stopped(response_id)
