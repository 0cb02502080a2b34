"""The one place where model inference crosses into threads.

Each loaded model gets a :class:`ModelWorker`: a single dedicated thread, so calls to one
model never overlap (the native runtimes are not re-entrant per instance), and a bounded
number of waiting calls, so one busy call cannot queue unbounded work for everybody.
Waiting calls are taken by :class:`Priority`: with several calls on one machine, a call's
first audio goes ahead of another call's later clauses.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import enum
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

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


class Priority(enum.IntEnum):
    """Which waiting call a model takes next: the lowest value first, then in order.

    With several calls on one model, a user waiting for a reply must not wait behind
    another call's later clauses: those have the audio already playing as slack.
    """

    #: On the way to a reply's first audio: the user's words (guessed during a pause,
    #: committed, or heard over the bot), a reply's first clause.
    NOW = 0
    #: A reply's later clauses, the audio API.
    SOON = 1


_priority: contextvars.ContextVar[Priority] = contextvars.ContextVar(
    "model_priority", default=Priority.SOON
)


@contextlib.contextmanager
def at_priority(priority: Priority) -> Iterator[None]:
    """Model calls made in this block (and in tasks created in it) wait at ``priority``."""
    token = _priority.set(priority)
    try:
        yield
    finally:
        _priority.reset(token)


@dataclass(order=True)
class _Job:
    priority: int
    sequence: int
    future: concurrent.futures.Future[Any] | None = field(compare=False)
    call: Callable[[], Any] | None = field(compare=False)


#: Put last by :meth:`ModelWorker.close`: the thread ends when it gets there.
_STOP = 1 << 30


class ModelWorker:
    """Runs calls to one model on its own thread, one at a time, with a bounded queue;
    waiting calls are taken by :class:`Priority`, then in the order they came.

    Cancelling the awaiting coroutine removes a call that has not started yet; a call
    that already runs finishes on its thread and its result is dropped.
    """

    def __init__(self, name: str, max_pending: int = 8) -> None:
        self.name = name
        self.max_pending = max_pending
        self._pending = 0
        self._lock = threading.Lock()
        self._jobs: queue.PriorityQueue[_Job] = queue.PriorityQueue()
        self._sequence = itertools.count()
        self._closed = False
        self.last_wait_s = 0.0
        #: Called (on the worker thread) with each call's wait for the worker, in seconds.
        self.on_wait: Callable[[float], None] | None = None
        self._thread = threading.Thread(
            target=self._serve, name=f"model-{name}", args=(f"voice-{name}",), daemon=True
        )
        self._thread.start()

    @property
    def pending(self) -> int:
        """Calls queued or running right now."""
        return self._pending

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the model's thread and return its result; it waits at the
        :class:`Priority` of :func:`at_priority` (default ``SOON``)."""
        priority = _priority.get()
        queued_at = time.perf_counter()

        def timed() -> T:
            self.last_wait_s = time.perf_counter() - queued_at
            if self.on_wait is not None:
                self.on_wait(self.last_wait_s)
            return fn(*args)

        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:  # so that nothing is queued after the stop
            if self._closed:
                raise ModelBusyError(f"{self.name} model is shut down")
            if self._pending >= self.max_pending:
                raise ModelBusyError(f"{self.name} model is busy ({self._pending} calls waiting)")
            self._pending += 1
            future.add_done_callback(self._release)
            self._jobs.put(_Job(int(priority), next(self._sequence), future, timed))
        return await asyncio.wrap_future(future)

    def _serve(self, thread_name: str) -> None:
        name_os_thread(thread_name)
        while (job := self._jobs.get()).future is not None and job.call is not None:
            if not job.future.set_running_or_notify_cancel():
                continue  # its caller was cancelled while it waited
            try:
                result = job.call()
            except BaseException as exc:
                job.future.set_exception(exc)
            else:
                job.future.set_result(result)

    def _release(self, _: concurrent.futures.Future[T]) -> None:
        # Runs on the worker thread or on the loop thread, whichever finished the future.
        with self._lock:
            self._pending -= 1

    def close(self) -> None:
        """Stop accepting work; queued calls are dropped, a running one finishes."""
        dropped: list[concurrent.futures.Future[Any]] = []
        with self._lock:
            if self._closed:
                return
            self._closed = True
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job.future is not None:
                    dropped.append(job.future)
            self._jobs.put(_Job(_STOP, next(self._sequence), None, None))
        for future in dropped:  # outside the lock: cancelling runs _release
            future.cancel()

    def join(self, timeout: float | None = None) -> bool:
        """Wait (blocking) for the thread to end after :meth:`close`; whether it ended.

        A model thread still running native code while the interpreter exits aborts the
        process ("terminate called without an active exception"), so whoever closes a
        worker at exit waits for it.
        """
        self._thread.join(timeout)
        return not self._thread.is_alive()
