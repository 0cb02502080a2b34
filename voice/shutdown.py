"""The server's graceful stop: refuse new calls, let live ones finish, then end the rest.

On the first SIGTERM/SIGINT the command (:mod:`voice.cli`) stops accepting connections
and runs :meth:`GracefulShutdown.run`:

1. new calls are refused (503 ``server_shutting_down``) on connections already open;
2. live calls go on for up to ``shutdown_drain_s``; the wait ends as soon as none is left,
   or at once when :meth:`GracefulShutdown.skip` is called (a second signal);
3. each remaining call is told (an ``error`` event, code ``server_shutting_down``) and
   ended: WebSocket handlers watch :attr:`GracefulShutdown.ending` and close with 1001,
   WebRTC calls are hung up; their sessions close, which folds each call into memory;
4. it waits until every call has released its slot, so their memory writes are queued
   before the command flushes the writer and stops the models.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from openai.types.realtime.realtime_error import RealtimeError
from openai.types.realtime.realtime_error_event import RealtimeErrorEvent

from voice.capacity import SHUTTING_DOWN, Capacity
from voice.protocol import ServerEvent, new_id
from voice.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Once told to end, calls close their sessions (a memory update is bounded by 60 s) and
#: their sockets (bounded): beyond this the shutdown goes on without them.
ENDING_TIMEOUT_S = 90.0

EndCalls = Callable[[ServerEvent], Awaitable[None]]


def shutdown_notice() -> ServerEvent:
    """The ``error`` event a call still live at the end of the drain gets."""
    return RealtimeErrorEvent(
        type="error",
        event_id=new_id("event"),
        error=RealtimeError(
            type="server_error",
            code=SHUTTING_DOWN,
            message="the server is shutting down; this call has ended",
        ),
    )


class GracefulShutdown:
    """Drains the calls of one server; :meth:`run` once, :meth:`skip` from a second signal."""

    def __init__(self, capacity: Capacity, drain_s: float, end_webrtc_calls: EndCalls) -> None:
        self._capacity = capacity
        self.drain_s = drain_s
        self._end_webrtc_calls = end_webrtc_calls
        #: Set when the calls still live must end now (each tells its client and closes).
        self.ending = asyncio.Event()
        self._skip = asyncio.Event()
        self.started = False

    def skip(self) -> None:
        """Stop waiting for live calls: end them now."""
        self._skip.set()

    async def run(self) -> None:
        """Refuse new calls, drain, end what is left, wait for it to be released."""
        self.started = True
        capacity = self._capacity
        capacity.close()
        if capacity.in_use:
            log.info(
                "shutting down: waiting up to %g s for %d call(s) to end",
                self.drain_s, capacity.in_use,
            )  # fmt: skip
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.drain_s):
                await _first_set(capacity.idle, self._skip)
        if capacity.in_use:
            log.info("shutting down: ending %d call(s) still live", capacity.in_use)
        self.ending.set()
        await self._end_webrtc_calls(shutdown_notice())
        try:
            async with asyncio.timeout(ENDING_TIMEOUT_S):
                await capacity.idle.wait()
        except TimeoutError:
            log.warning("shutting down: %d call(s) did not end in time", capacity.in_use)


async def _first_set(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set (cancelling it is safe)."""
    waiters = [asyncio.create_task(event.wait(), name="shutdown-wait") for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            await cancel_and_wait(waiter)
