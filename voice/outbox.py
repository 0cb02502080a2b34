"""A connection's outbound queue: sending an event never waits on the network.

The session and its parts hand server events to :meth:`Outbox.send`, which serializes
and queues them and returns at once; one writer task, owned by the outbox, writes them
to the socket in order. So a client that reads slowly delays only its own events, never
the input path (VAD, turn-taking) that produced them.

Policy when full: the queue holds at most ``max_bytes`` of serialized events (or one
event, however large, when nothing else waits: a single big event says nothing about the
client). Audio is paced to real time, so a reading client keeps it short; a client that
has stopped reading fills it, and then the connection is closed with a reason
(``on_overflow``) instead of buffering without bound. Nothing is dropped silently before
that.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from voice.protocol import ServerEvent, dump_server_event, server_error_event
from voice.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Write = Callable[[str], Awaitable[None]]


class Outbox:
    """Events queued for one connection and the task that writes them."""

    def __init__(
        self, write: Write, *, max_bytes: int, on_overflow: Callable[[], None], name: str = ""
    ) -> None:
        self._write = write
        self._max_bytes = max_bytes
        self._on_overflow = on_overflow
        #: For log lines: the connection's session id.
        self.name = name
        self._queue: deque[str] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        #: No more events are queued: the connection is closing or gone.
        self.closed = False
        self.overflowed = False

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def start(self) -> None:
        """Start the writer task (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"outbox-{self.name}")

    def send(self, event: ServerEvent) -> None:
        """Queue ``event``; dropped once closed. Never waits."""
        if self.closed:
            return
        try:
            text = dump_server_event(event)
        except Exception:  # a server bug: it must not end the connection
            log.error("cannot serialize a %s event", event.type, exc_info=True)
            text = dump_server_event(server_error_event(f"the server failed to send {event.type}"))
        if self._bytes and self._bytes + len(text) > self._max_bytes:
            self.closed = self.overflowed = True
            log.warning(
                "connection %s: %d bytes of events unread by the client; closing it",
                self.name, self._bytes,
            )  # fmt: skip
            self._on_overflow()
            return
        self._queue.append(text)
        self._bytes += len(text)
        self._idle.clear()
        self._ready.set()

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until everything queued so far has been written."""
        if self._task is None or self._task.done():
            return
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            log.info("connection %s: %d bytes of events not written", self.name, self._bytes)

    async def aclose(self) -> None:
        """Stop queueing and stop the writer; unwritten events are dropped. Safe twice."""
        self.closed = True
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            while self._queue:
                text = self._queue.popleft()
                self._bytes -= len(text)
                try:
                    await self._write(text)
                except Exception as exc:  # the peer is gone: nothing more can be written
                    log.debug("connection %s: write failed: %r", self.name, exc)
                    self.closed = True
                    self._queue.clear()
                    self._bytes = 0
            self._ready.clear()
            self._idle.set()
