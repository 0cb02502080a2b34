"""One WebRTC call: a peer connection, the session it carries, and the tasks that feed it.

Inbound audio (decoded Opus frames) is pushed into the session; client events arrive on
the ``oai-events`` data channel, and from any sideband WebSocket attached to the call
(``/v1/realtime?call_id=``, a supervisor on the caller's server). All of them go through
one lock, so the session sees one thing at a time, as it does over a WebSocket. Outbound
audio leaves through :class:`OutputAudioTrack`; server events through the call's one
``send``, which hands each to :class:`EventChannel` and to every attached sideband's own
queue (each a :class:`~voice.outbox.Outbox`: a sideband that stops reading is closed, and
never holds up the call). The call's one :class:`~voice.clock.Clock` paces the track and
times the session.

The call ends when the client hangs up or closes the connection, when the connection
fails, when no media arrives for ``webrtc_disconnect_s`` seconds, when the client stops
taking its events (``webrtc_max_buffered_bytes`` unsent), or after ``max_session_s``.
Ending releases everything the call started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
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

from voice.client_messages import handle_client_message
from voice.clock import Clock, LoopClock
from voice.config import Settings
from voice.playout import AudioOutput
from voice.protocol import ProtocolError, ServerEvent, new_id
from voice.session import RealtimeSession
from voice.tasks import cancel_and_wait
from voice.webrtc.events import EVENTS_CHANNEL, EventChannel
from voice.webrtc.frames import frame_to_mono
from voice.webrtc.output import WebRTCAudioOutput
from voice.webrtc.track import OutputAudioTrack
from voice.wire import Send, ServerEvents

log = logging.getLogger(__name__)

#: Makes the session of a call from its ``send``, its audio output and its clock.
SessionFactory = Callable[[Send, AudioOutput, Clock], RealtimeSession]
#: Client events waiting for the session; beyond this, new ones are refused with an error.
MAX_PENDING_EVENTS = 64
#: A call whose connection is not up this long after the answer is abandoned.
CONNECT_TIMEOUT_S = 30.0
#: Closing the peer connection waits at most this long (it may be closing itself already).
CLOSE_TIMEOUT_S = 5.0
#: Ending a call waits at most this long for its last events to leave the data channel.
EVENTS_DRAIN_S = 1.0


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
        self.clock = LoopClock()
        self.events = EventChannel(
            max_buffered_bytes=settings.webrtc_max_buffered_bytes, on_overflow=self.hang_up
        )
        #: The sends of the attached sideband connections.
        self._sidebands: list[Send] = []
        self.output = WebRTCAudioOutput(ServerEvents(self._send), clock=self.clock)
        self.session = session_factory(self._send, self.output, self.clock)
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers))
        self._track = OutputAudioTrack(self.output, clock=self.clock)
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

    async def answer(self, offer_sdp: str, first_events: Sequence[str] = ()) -> str:
        """Accept the client's offer and start the session; returns the SDP answer.

        ``first_events`` (client events, JSON text: a configuration given ahead of the
        call) reach the session right after it started, before any of the client's.
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
        if "\na=fingerprint:" not in offer_sdp:  # aiortc would accept it, then fail to connect
            raise OfferError("the SDP offer has no DTLS fingerprint (a=fingerprint line)")
        pc.addTrack(self._track)
        await pc.setLocalDescription(await pc.createAnswer())
        await self.session.start()
        async with self._lock:
            for event in first_events:
                await handle_client_message(
                    self.session, event, self._send, max_bytes=self._settings.max_message_bytes
                )
        self._spawn(self._serve_events(), "events")
        self._spawn(self._end_with_the_allowance(), "allowance")
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

    @property
    def user(self) -> str:
        """Whose call this is (the user of its session)."""
        return self.session.user_id

    @property
    def ended(self) -> bool:
        """The call has ended (it may still be releasing what it started)."""
        return self._ended.is_set()

    async def wait_ended(self) -> None:
        """Wait until the call ends (cancelling this is safe)."""
        await self._ended.wait()

    def attach_sideband(self, send: Send) -> Callable[[], None]:
        """Send the session's server events to ``send`` too, from now on; returns the
        function that detaches it again (safe to call twice). ``send`` must only queue."""
        self._sidebands.append(send)

        def detach() -> None:
            if send in self._sidebands:
                self._sidebands.remove(send)

        return detach

    async def handle_sideband_message(self, data: str | bytes, reply: Send) -> None:
        """One client event from a sideband connection, into the session in turn with the
        data channel's and the audio; ``reply`` gets the errors about the message itself."""
        async with self._lock:
            if not self._ended.is_set():
                await handle_client_message(
                    self.session, data, reply, max_bytes=self._settings.max_message_bytes
                )

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
            self._send(
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
        await self.events.drain(EVENTS_DRAIN_S)  # the last events (a shutdown notice) go out
        self.events.closed = True
        self._track.stop()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._pc.close()
        except TimeoutError:
            log.warning("call %s: the peer connection did not close in time", self.id)
        log.info("call %s (session %s) closed: %s", self.id, self.session.id, self.end_reason)
        self._on_closed(self)

    async def _end_with_the_allowance(self) -> None:
        """Hang up once the user's daily allowance is used up (after the goodbye)."""
        allowance = self.session.allowance
        await allowance.ending.wait()
        self.hang_up(allowance.end_reason)

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

    def _send(self, event: ServerEvent) -> None:
        """The session's ``send``: to the data channel and every sideband connection."""
        self.events.send(event)
        for send in tuple(self._sidebands):
            send(event)

    # --- feeding the session ------------------------------------------------------------------

    async def _receive_audio(self, track: MediaStreamTrack) -> None:
        """Decoded frames → mono → the session; a silent connection ends the call."""
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
            samples = frame_to_mono(frame)
            async with self._lock:
                try:
                    await self.session.push_audio(samples, frame.sample_rate)
                except ProtocolError as error:
                    self.events.send(error.to_event())

    async def _serve_events(self) -> None:
        """Client events from the data channel, one at a time."""
        limit = self._settings.max_message_bytes
        while True:
            message = await self._inbox.get()
            async with self._lock:
                await handle_client_message(
                    self.session, message, self.events.send, max_bytes=limit
                )
