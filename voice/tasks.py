"""Task ownership helpers: every task is cancelled and awaited by the object that started it."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[object] | None, timeout: float = 2.0) -> None:
    """Cancel ``task`` and wait (at most ``timeout`` seconds) until it has finished.

    Safe to call with ``None``, a finished task, or twice. If the caller itself is
    cancelled while waiting, that cancellation propagates after the task was asked to stop.
    """
    if task is None or task.done():
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        log.warning("task %s did not stop within %.1f s of cancellation", task.get_name(), timeout)
        return
    with contextlib.suppress(asyncio.CancelledError):
        exc = task.exception()
        if exc is not None:
            log.warning("task %s failed while stopping: %r", task.get_name(), exc)
