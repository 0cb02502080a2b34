"""Where a response's audio goes, and how much of it the user has heard.

A transport gives its session one :class:`AudioOutput`. The WebSocket one sends
``response.output_audio.delta`` events paced to real time plus a small lead, so that a
barge-in stops the sound within the lead and the play position is a good estimate. A
WebRTC one feeds a media track and knows the play position exactly.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Protocol

from voice.audio import AudioCodec, Float32Array
from voice.clock import Clock
from voice.wire import ServerEvents

#: Told about audio as it goes out: the samples and the clock time they will be heard.
Monitor = Callable[[Float32Array, float], None]
#: Audio is sent in deltas of this length, so playback position maps finely onto text.
DELTA_MS = 100


class AudioOutput(Protocol):
    """The audio sink of one session; one response plays at a time."""

    @property
    def sample_rate(self) -> int: ...

    def begin(self, response_id: str, item_id: str) -> None:
        """A new response starts: its play position starts at zero."""

    async def write(self, samples: Float32Array) -> None:
        """Queue audio of the current response; waits while the sink is far enough ahead."""

    def sent_ms(self) -> float:
        """Audio of the current response handed to the transport so far."""

    def played_ms(self) -> float:
        """Audio of the current response the user has heard so far (exact or estimated)."""

    async def clear(self) -> None:
        """Barge-in: drop audio that was queued but not played yet."""

    def finish(self, response_id: str) -> None:
        """``response_id`` will write no more audio (it ended)."""

    def set_monitor(self, monitor: Monitor | None) -> None:
        """Report every piece of audio sent, with when it will be heard (for echo guarding)."""

    def pause(self) -> None:
        """Send no more audio until :meth:`resume` (a possible interruption is checked)."""

    def resume(self) -> None:
        """Go on sending audio after :meth:`pause`."""


class WebSocketAudioOutput:
    """Paces ``response.output_audio.delta`` events to real time plus ``lead_ms``.

    The client is assumed to start playing the first delta when it arrives and to play in
    real time; if the server falls behind (a slow clause), the client's buffer runs dry and
    playback resumes with the next delta, which the estimate follows.
    """

    def __init__(
        self, events: ServerEvents, codec: AudioCodec, *, lead_ms: float, clock: Clock
    ) -> None:
        self.codec = codec
        self.lead_ms = lead_ms
        self._events = events
        self._clock = clock
        self._response_id = ""
        self._item_id = ""
        self._sent_ms = 0.0
        #: Clock time at which playback position 0 was (or would have been) heard.
        self._origin: float | None = None
        self._running = asyncio.Event()
        self._running.set()
        self._monitor: Monitor | None = None

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    def begin(self, response_id: str, item_id: str) -> None:
        self._response_id, self._item_id = response_id, item_id
        self._sent_ms = 0.0
        self._origin = None
        self._running.set()

    def set_monitor(self, monitor: Monitor | None) -> None:
        self._monitor = monitor

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def sent_ms(self) -> float:
        return self._sent_ms

    def played_ms(self) -> float:
        if self._origin is None:
            return 0.0
        return max(0.0, min(self._sent_ms, (self._clock.now() - self._origin) * 1000))

    async def write(self, samples: Float32Array) -> None:
        step = self.codec.sample_rate * DELTA_MS // 1000
        for start in range(0, len(samples), step):
            piece = samples[start : start + step]
            await self._running.wait()
            ahead_ms = self._sent_ms - self.played_ms()
            if self._origin is not None and ahead_ms > self.lead_ms:
                await self._clock.sleep((ahead_ms - self.lead_ms) / 1000)
            if self._origin is None or self.played_ms() >= self._sent_ms:
                # First audio, or the client ran dry: playback (re)starts with this delta.
                self._origin = self._clock.now() - self._sent_ms / 1000
            if self._monitor is not None:
                self._monitor(piece, self._origin + self._sent_ms / 1000)
            audio = base64.b64encode(self.codec.encode(piece)).decode("ascii")
            self._events.audio_delta(self._response_id, self._item_id, audio)
            self._sent_ms += len(piece) * 1000 / self.codec.sample_rate

    async def clear(self) -> None:
        """Nothing is queued server-side; the client clears its own buffer on speech_started."""
        self._running.set()

    def finish(self, response_id: str) -> None:
        """Nothing to do: every delta was sent as it was written."""
