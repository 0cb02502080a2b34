"""One WebRTC call: a peer connection, the session it carries, and the tasks that feed it.

Inbound audio (decoded Opus frames) is resampled to 16 kHz and pushed into the session;
client events arrive on the ``oai-events`` data channel. Both go through one lock, so
the session sees one thing at a time, as it does over a WebSocket. Outbound audio
leaves through :class:`OutputAudioTrack`; server events through :class:`EventChannel`.

The call ends when the client hangs up or closes the connection, when the connection
fails, when no media arrives for ``webrtc_disconnect_s`` seconds, or after
``max_session_s``. Ending releases everything the call started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from voice.audio import StreamResampler
from voice.config import Settings
from voice.playout import AudioOutput, Emit
from voice.protocol import ProtocolError, ServerEvent, new_id
from voice.session import RealtimeSession
from voice.stt import STT_SAMPLE_RATE
from voice.tasks import cancel_and_wait
from voice.webrtc.events import EVENTS_CHANNEL, EventChannel
from voice.webrtc.frames import frame_to_mono
from voice.webrtc.output import WebRTCAudioOutput
from voice.webrtc.track import OutputAudioTrack

log = logging.getLogger(__name__)

SessionFactory = Callable[[Emit, AudioOutput], RealtimeSession]
#: Client events waiting for the session; beyond this, new ones are refused with an error.
MAX_PENDING_EVENTS = 64
#: A call whose connection is not up this long after the answer is abandoned.
CONNECT_TIMEOUT_S = 30.0
#: Closing the peer connection waits at most this long (it may be closing itself already).
CLOSE_TIMEOUT_S = 5.0


class OfferError(ValueError):
    """The SDP offer cannot be answered (malformed, or no audio to talk over)."""


class WebRTCCall:
    """A Realtime session over one ``RTCPeerConnection``."""

    def __init__(
        self,
        settings: Settings,
        session_factory: SessionFactory,
        ice_servers: list[RTCIceServer],
        on_closed: Callable[[WebRTCCall], None],
    ) -> None:
        self.id = new_id("rtc")
        self._settings = settings
        self._on_closed = on_closed
        self.events = EventChannel()
        self.output = WebRTCAudioOutput(self.events.send)
        self.session = session_factory(self._emit, self.output)
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers))
        self._track = OutputAudioTrack(self.output)
        #: One client event or audio chunk reaches the session at a time.
        self._lock = asyncio.Lock()
        self._inbox: asyncio.Queue[str | bytes] = asyncio.Queue(MAX_PENDING_EVENTS)
        self._tasks: set[asyncio.Task[None]] = set()
        self._connect_timer: asyncio.TimerHandle | None = None
        self._ended = asyncio.Event()
        self.end_reason = ""
        self._supervisor: asyncio.Task[None] | None = None
        self._released = False

    # --- lifecycle ------------------------------------------------------------------------

    async def answer(self, offer_sdp: str) -> str:
        """Accept the client's offer and start the session; returns the SDP answer.

        On :class:`OfferError` (or any other failure) the caller must :meth:`aclose` the call.
        """
        pc = self._pc
        pc.on("datachannel", self._on_datachannel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_connection_state)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:  # aiortc rejects malformed SDP with assorted exceptions
            raise OfferError(f"invalid SDP offer: {type(exc).__name__}: {exc}") from None
        if not any(t.kind == "audio" for t in pc.getTransceivers()):
            raise OfferError("the SDP offer has no audio section")
        pc.addTrack(self._track)
        await pc.setLocalDescription(await pc.createAnswer())
        await self.session.start()
        self._spawn(self._serve_events(), "events")
        self._connect_timer = asyncio.get_running_loop().call_later(
            CONNECT_TIMEOUT_S, self.hang_up, "connection not established"
        )
        self._supervisor = asyncio.create_task(self._supervise(), name=f"call-{self.id}")
        return pc.localDescription.sdp

    def hang_up(self, reason: str) -> None:
        """End the call (idempotent); :meth:`aclose` or the call itself releases it."""
        if not self._ended.is_set():
            self.end_reason = reason
            self._ended.set()

    async def aclose(self) -> None:
        """End the call and wait until everything it started is released. Safe to call twice."""
        self.hang_up("closed by the server")
        if self._supervisor is None and not self._released:
            await self._release()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the call has ended and released everything (cancelling this is safe)."""
        if self._supervisor is not None:
            await asyncio.wait({self._supervisor})

    async def _supervise(self) -> None:
        try:
            async with asyncio.timeout(self._settings.max_session_s):
                await self._ended.wait()
        except TimeoutError:
            self.end_reason = "session expired"
            self.events.send(
                ProtocolError(
                    f"session exceeded its maximum length of {self._settings.max_session_s:.0f} s",
                    code="session_expired",
                ).to_event()
            )
        finally:
            await self._release()

    async def _release(self) -> None:
        self._released = True
        if self._connect_timer is not None:
            self._connect_timer.cancel()
        for task in list(self._tasks):
            await cancel_and_wait(task)
        await self.session.aclose()
        self.events.closed = True
        self._track.stop()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._pc.close()
        except TimeoutError:
            log.warning("call %s: the peer connection did not close in time", self.id)
        log.info("call %s (session %s) closed: %s", self.id, self.session.id, self.end_reason)
        self._on_closed(self)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=f"call-{self.id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A feeding task that fails ends the call (a bug must not leave it half alive)."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: %s failed", self.id, task.get_name(), exc_info=task.exception())
            self.hang_up(f"internal error in {task.get_name()}")

    # --- peer connection events -------------------------------------------------------------

    def _on_connection_state(self) -> None:
        state = self._pc.connectionState
        if state == "connected":
            if self._connect_timer is not None:
                self._connect_timer.cancel()
            log.info("call %s connected", self.id)
        elif state in ("failed", "closed"):
            self.hang_up(f"connection {state}")

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and not self._ended.is_set():
            self._spawn(self._receive_audio(track), "audio-in")

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != EVENTS_CHANNEL:
            log.info("call %s: ignoring data channel %r", self.id, channel.label)
            return
        self.events.attach(channel)
        channel.on("message", self._on_message)

    def _on_message(self, message: str | bytes) -> None:
        try:
            self._inbox.put_nowait(message)
        except asyncio.QueueFull:
            self.events.send(
                ProtocolError(
                    f"more than {MAX_PENDING_EVENTS} client events are waiting; "
                    "this one was dropped",
                    code="too_many_pending_events",
                ).to_event()
            )

    # --- feeding the session ------------------------------------------------------------------

    async def _receive_audio(self, track: MediaStreamTrack) -> None:
        """Decoded frames → 16 kHz mono → the session; a silent connection ends the call."""
        resampler: StreamResampler | None = None
        timeout: float | None = None  # the first frame waits for the connection itself
        while True:
            try:
                async with asyncio.timeout(timeout):
                    frame = await track.recv()
            except MediaStreamError:
                return
            except TimeoutError:
                self.hang_up(f"no media for {timeout:.0f} s")
                return
            timeout = self._settings.webrtc_disconnect_s
            if not isinstance(frame, AudioFrame):
                continue
            if resampler is None or resampler.in_rate != frame.sample_rate:
                resampler = StreamResampler(frame.sample_rate, STT_SAMPLE_RATE)
            samples = resampler.process(frame_to_mono(frame))
            async with self._lock:
                try:
                    await self.session.push_audio(samples)
                except ProtocolError as error:
                    self.events.send(error.to_event())

    async def _serve_events(self) -> None:
        """Client events from the data channel, one at a time."""
        limit = self._settings.max_message_bytes
        while True:
            message = await self._inbox.get()
            size = len(message.encode() if isinstance(message, str) else message)
            if size > limit:
                error = ProtocolError(
                    f"message of {size} bytes exceeds the limit of {limit} bytes",
                    code="message_too_large",
                )
                self.events.send(error.to_event())
                continue
            async with self._lock:
                await self.session.handle_text(message)

    async def _emit(self, event: ServerEvent) -> None:
        """The session's ``emit``: events go to the data channel; some also steer the output."""
        self.events.send(event)
        if event.type == "response.done":
            self.output.finish(event.response.id or "")
        elif event.type == "conversation.item.truncated" and event.item_id == self.output.item_id:
            # The client heard up to here and no further: drop what is still queued. (The
            # session clears the output itself only while the response is generating.)
            await self.output.clear()
