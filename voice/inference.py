"""The one place where model inference crosses into threads.

Each loaded model gets a :class:`ModelWorker`: a single dedicated thread, so calls to one
model never overlap (the native runtimes are not re-entrant per instance), and a bounded
number of waiting calls, so one busy call cannot queue unbounded work for everybody.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from voice.stage_cpu import name_os_thread

T = TypeVar("T")


class WorkQueue(Protocol):
    """What the server reads of a model's queue: a :class:`ModelWorker`, or a remote
    engine's (:class:`voice.remote_speech.RemoteQueue`)."""

    name: str
    #: Called with each call's wait for the model, in seconds.
    on_wait: Callable[[float], None] | None

    @property
    def pending(self) -> int: ...

    def close(self) -> None: ...


class ModelBusyError(RuntimeError):
    """Raised when a model's queue is full; the caller should report it, not wait."""


class ModelWorker:
    """Runs calls to one model on its own thread, in order, with a bounded queue.

    Cancelling the awaiting coroutine removes a call that has not started yet; a call
    that already runs finishes on its thread and its result is dropped.
    """

    def __init__(self, name: str, max_pending: int = 8) -> None:
        self.name = name
        self.max_pending = max_pending
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"model-{name}",
            initializer=name_os_thread, initargs=(f"voice-{name}",),
        )  # fmt: skip
        self._pending = 0
        self._lock = threading.Lock()
        self.last_wait_s = 0.0
        #: Called (on the worker thread) with each call's wait for the worker, in seconds.
        self.on_wait: Callable[[float], None] | None = None

    @property
    def pending(self) -> int:
        """Calls queued or running right now."""
        return self._pending

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the model's thread and return its result."""
        with self._lock:
            if self._pending >= self.max_pending:
                raise ModelBusyError(f"{self.name} model is busy ({self._pending} calls waiting)")
            self._pending += 1
        queued_at = time.perf_counter()

        def timed() -> T:
            self.last_wait_s = time.perf_counter() - queued_at
            if self.on_wait is not None:
                self.on_wait(self.last_wait_s)
            return fn(*args)

        future = self._executor.submit(timed)
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _: concurrent.futures.Future[T]) -> None:
        # Runs on the worker thread or on the loop thread, whichever finished the future.
        with self._lock:
            self._pending -= 1

    def close(self) -> None:
        """Stop accepting work; queued calls are dropped, a running one finishes."""
        self._executor.shutdown(wait=False, cancel_futures=True)
