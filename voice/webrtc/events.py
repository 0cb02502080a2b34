"""Server events onto the ``oai-events`` data channel the client opens.

The session starts (and emits ``session.created``) when the call is answered, before the
channel is open; those first events wait in a short backlog and go out when it opens.
"""

from __future__ import annotations

import logging
from collections import deque

from aiortc import RTCDataChannel

from voice.protocol import ServerEvent, dump_server_event

log = logging.getLogger(__name__)

#: The data channel name of OpenAI's WebRTC flow.
EVENTS_CHANNEL = "oai-events"
#: Events kept while the channel is not open yet; when full, the oldest is dropped.
MAX_BACKLOG = 256


class EventChannel:
    """Serializes a session's server events onto one data channel."""

    def __init__(self, *, max_backlog: int = MAX_BACKLOG) -> None:
        self._channel: RTCDataChannel | None = None
        self._backlog: deque[str] = deque(maxlen=max_backlog)
        self.closed = False

    def attach(self, channel: RTCDataChannel) -> None:
        """Send on ``channel`` from now on; the backlog goes out as soon as it is open."""
        self._channel = channel
        if channel.readyState == "open":
            self._flush()
        else:
            channel.on("open", self._flush)

    def send(self, event: ServerEvent) -> None:
        """Send one event, or keep it until the channel opens; dropped once closed."""
        if self.closed:
            return
        text = dump_server_event(event)
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            channel.send(text)
            return
        if channel is not None and channel.readyState == "closed":
            return
        if len(self._backlog) == self._backlog.maxlen:
            log.warning("data channel not open: dropping the oldest pending event")
        self._backlog.append(text)

    async def emit(self, event: ServerEvent) -> None:
        """:meth:`send`, in the shape a session's ``emit`` has."""
        self.send(event)

    def _flush(self) -> None:
        channel = self._channel
        while self._backlog and channel is not None and channel.readyState == "open":
            channel.send(self._backlog.popleft())
