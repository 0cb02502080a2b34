"""Server events onto the ``oai-events`` data channel the client opens.

The session starts (and emits ``session.created``) when the call is answered, before the
channel is open; those first events wait in a short backlog and go out when it opens.

Policy when the peer stops reading: events the peer has not taken yet wait in aiortc's
send buffer (``RTCDataChannel.bufferedAmount``; SCTP moves the next message out only once
the peer has acknowledged the previous ones). A reading peer keeps it near zero; past
``max_buffered_bytes`` the channel stops sending and calls ``on_overflow`` with the reason
(the call hangs up) instead of buffering without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from aiortc import RTCDataChannel

from voice.protocol import ServerEvent, dump_server_event, server_error_event

log = logging.getLogger(__name__)

#: The data channel name of OpenAI's WebRTC flow.
EVENTS_CHANNEL = "oai-events"
#: Events kept while the channel is not open yet; when full, the oldest is dropped.
MAX_BACKLOG = 256
#: Default of ``max_buffered_bytes`` (the server passes ``webrtc_max_buffered_bytes``).
MAX_BUFFERED_BYTES = 1024 * 1024


class EventChannel:
    """Serializes a session's server events onto one data channel."""

    def __init__(
        self,
        *,
        max_backlog: int = MAX_BACKLOG,
        max_buffered_bytes: int = MAX_BUFFERED_BYTES,
        on_overflow: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self._channel: RTCDataChannel | None = None
        self._backlog: deque[str] = deque(maxlen=max_backlog)
        self._max_buffered = max_buffered_bytes
        self._on_overflow = on_overflow
        self.closed = False
        #: The peer stopped reading: the channel gave up (and ``on_overflow`` was called).
        self.overflowed = False

    def attach(self, channel: RTCDataChannel) -> None:
        """Send on ``channel`` from now on; the backlog goes out as soon as it is open."""
        self._channel = channel
        if channel.readyState == "open":
            self._flush()
        else:
            channel.on("open", self._flush)

    def send(self, event: ServerEvent) -> None:
        """Send one event, or keep it until the channel opens; dropped once closed.

        An event that cannot be serialized (a server bug) is logged and replaced by a
        ``server_error`` event: the bug does not end the call.
        """
        if self.closed:
            return
        try:
            text = dump_server_event(event)
        except Exception:
            log.error("cannot serialize a %s event", event.type, exc_info=True)
            text = dump_server_event(server_error_event(f"the server failed to send {event.type}"))
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            self._send(channel, text)
            return
        if channel is not None and channel.readyState == "closed":
            return
        if len(self._backlog) == self._backlog.maxlen:
            log.warning("data channel not open: dropping the oldest pending event")
        self._backlog.append(text)

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until the events sent so far have left the buffer.

        For the last events of a call (a shutdown notice): closing the connection drops
        what is still buffered. Cancelling it is safe.
        """
        channel = self._channel
        if channel is None or channel.readyState != "open" or self.overflowed:
            return
        sent = asyncio.Event()

        def low() -> None:
            if channel.bufferedAmount <= channel.bufferedAmountLowThreshold:
                sent.set()

        channel.on("bufferedamountlow", low)
        try:
            low()
            async with asyncio.timeout(timeout):
                await sent.wait()
        except TimeoutError:
            log.info("data channel: %d bytes of events not sent", channel.bufferedAmount)
        finally:
            channel.remove_listener("bufferedamountlow", low)

    def _send(self, channel: RTCDataChannel, text: str) -> None:
        buffered = channel.bufferedAmount
        # One event however large may wait alone: only unsent events before it say the peer
        # is not taking them.
        if buffered and buffered + len(text) > self._max_buffered:
            self.closed = self.overflowed = True
            self._backlog.clear()
            log.warning("data channel: %d bytes of events not taken by the peer", buffered)
            self._on_overflow(
                f"the client stopped reading its events ({buffered} bytes waiting to be sent)"
            )
            return
        channel.send(text)

    def _flush(self) -> None:
        channel = self._channel
        while self._backlog and channel is not None and channel.readyState == "open":
            if self.closed:
                return
            self._send(channel, self._backlog.popleft())
