"""Task ownership helpers: every task is cancelled and awaited by the object that started it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


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


class _End:
    """How a read-ahead source ended: by itself, or with ``error``."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error


async def read_ahead(source: AsyncIterator[T], name: str) -> AsyncGenerator[T, None]:
    """Yield what ``source`` gives, drained as fast as it comes by a task of its own.

    The consumer may be slow (a reply's text waits for its speech, which plays in real
    time); the source is then not held open at the consumer's pace. An error of the
    source is raised here, after what came before it. Closing (or cancelling) this
    iteration cancels the task, which closes ``source``. Use with ``contextlib.aclosing``.
    """
    items: asyncio.Queue[T | _End] = asyncio.Queue()

    async def drain() -> None:
        try:
            async for item in source:
                items.put_nowait(item)
        except Exception as exc:  # handed to the consumer, not left on the task
            items.put_nowait(_End(exc))
        else:
            items.put_nowait(_End())
        finally:
            close = getattr(source, "aclose", None)  # an async generator's (the HTTP stream)
            if close is not None:
                await close()

    task = asyncio.create_task(drain(), name=name)
    try:
        while not isinstance(item := await items.get(), _End):
            yield item
        if item.error is not None:
            raise item.error
    finally:
        await cancel_and_wait(task)
