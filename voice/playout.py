"""Where a response's audio goes, and how much of it the user has heard.

A transport gives its session one :class:`AudioOutput`. The WebSocket one sends
``response.output_audio.delta`` events paced to real time plus a small lead, so that a
barge-in stops the sound within the lead and the play position is a good estimate. A
WebRTC one feeds a media track and knows the play position exactly.
"""

from __future__ import annotations

import asyncio
import base64
from collections import deque
from collections.abc import Callable
from typing import Protocol

from voice.audio import AudioCodec, Float32Array
from voice.clock import Clock
from voice.tasks import cancel_and_wait
from voice.wire import ServerEvents

#: Told about audio as it goes out: the samples and the clock time they will be heard.
Monitor = Callable[[Float32Array, float], None]
#: Audio is sent in deltas of this length, so playback position maps finely onto text.
DELTA_MS = 100
#: WebSocket audio is kept this long behind the play position, to be said again after a
#: pause for speech over it (the clause that was cut starts again).
KEEP_MS = 60_000.0


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

    The client holds up to ``lead_ms`` of audio that the server can no longer take back;
    it flushes it when told the user is speaking. So the audio sent is kept (``KEEP_MS``
    behind the play position), and :meth:`rewind` sends it again from a given point, as a
    new response's, once the output is resumed.
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
        #: The current response's audio sent so far, as (start_ms, piece).
        self._kept: deque[tuple[float, Float32Array]] = deque()
        #: Audio to send again, before anything else, once resumed.
        self._replay: deque[Float32Array] = deque()
        self._replaying: asyncio.Task[None] | None = None
        #: One piece goes out at a time (a write, or the replay).
        self._sending = asyncio.Lock()

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    def begin(self, response_id: str, item_id: str) -> None:
        self._response_id, self._item_id = response_id, item_id
        self._restart()
        self._replay.clear()
        self._running.set()

    def _restart(self) -> None:
        self._sent_ms = 0.0
        self._origin = None
        self._kept.clear()

    def set_monitor(self, monitor: Monitor | None) -> None:
        self._monitor = monitor

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()
        if self._replay:
            self._start_replay()

    def _start_replay(self) -> asyncio.Task[None]:
        """The task that sends the audio given back by :meth:`rewind` (one at a time)."""
        if self._replaying is None or self._replaying.done():
            self._replaying = asyncio.create_task(self._drain(), name="replay-audio")
        return self._replaying

    def sent_ms(self) -> float:
        return self._sent_ms

    def played_ms(self) -> float:
        if self._origin is None:
            return 0.0
        return max(0.0, min(self._sent_ms, (self._clock.now() - self._origin) * 1000))

    def can_rewind(self, from_ms: float) -> bool:
        """Whether the audio from ``from_ms`` on is still kept (or none was sent after it)."""
        if from_ms >= self._sent_ms:
            return True
        return bool(self._kept) and self._kept[0][0] <= from_ms + 0.5

    def rewind(self, response_id: str, item_id: str, from_ms: float) -> None:
        """The client flushed what it had: once resumed, the audio sent from ``from_ms`` on
        goes out again first, as response ``response_id``'s, whose position starts at 0.

        ``from_ms`` must lie on a write's start (:meth:`can_rewind` says it is kept).
        """
        again = [piece for start, piece in self._kept if start >= from_ms - 0.5]
        self._response_id, self._item_id = response_id, item_id
        self._restart()
        self._replay = deque(again)

    async def replayed(self) -> None:
        """Wait until the audio given back by :meth:`rewind` has been sent again.

        Cancelling the wait is safe: the replay goes on.
        """
        while self._replay or (self._replaying is not None and not self._replaying.done()):
            await asyncio.wait({self._start_replay()})

    async def write(self, samples: Float32Array) -> None:
        step = self.codec.sample_rate * DELTA_MS // 1000
        for start in range(0, len(samples), step):
            if self._replay:
                await self._drain()  # audio given back by a rewind goes first
            async with self._sending:
                await self._send(samples[start : start + step])

    async def _drain(self) -> None:
        while True:
            async with self._sending:
                if not self._replay:
                    return
                await self._send(self._replay.popleft())

    async def _send(self, piece: Float32Array) -> None:
        await self._running.wait()
        ahead_ms = self._sent_ms - self.played_ms()
        if self._origin is not None and ahead_ms > self.lead_ms:
            await self._clock.sleep((ahead_ms - self.lead_ms) / 1000)
            await self._running.wait()  # paused meanwhile: nothing goes out until resumed
        if self._origin is None or self.played_ms() >= self._sent_ms:
            # First audio, or the client ran dry: playback (re)starts with this delta.
            self._origin = self._clock.now() - self._sent_ms / 1000
        if self._monitor is not None:
            self._monitor(piece, self._origin + self._sent_ms / 1000)
        audio = base64.b64encode(self.codec.encode(piece)).decode("ascii")
        self._events.audio_delta(self._response_id, self._item_id, audio)
        self._kept.append((self._sent_ms, piece))
        self._sent_ms += len(piece) * 1000 / self.codec.sample_rate
        played = self.played_ms()
        while self._kept and self._kept[0][0] + KEEP_MS < played:
            self._kept.popleft()

    async def clear(self) -> None:
        """Nothing is queued server-side (the client clears its own buffer on
        speech_started); audio given back for a replay is dropped."""
        await cancel_and_wait(self._replaying)
        self._replay.clear()
        self._running.set()

    def finish(self, response_id: str) -> None:
        """Nothing to do: every delta was sent as it was written."""
