"""Task ownership helpers: every task is cancelled and awaited by the object that started it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

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


async def first_of(*coroutines: Coroutine[Any, Any, object]) -> None:
    """Run ``coroutines`` until the first one ends; cancel the rest (and them, if cancelled).

    A failure of the first one to end is raised here.
    """
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            await cancel_and_wait(task)
    for task in done:
        task.result()
