"""Several embedded llama.cpp children, so simultaneous calls do not queue for one.

llama-cpp-python's server answers one request at a time: with four calls, each reply waited
for the other calls' whole replies (5 to 9 s to first audio in the 4-call soak). The pool runs
``processes`` children of the same model, each on its own port, supervised on its own;
:class:`voice.llm_router.EndpointRouter` sends each request to the least busy one.

On the 2-core reference machine one child is the default: a second made 4 benchmark calls
no faster, and in a 4-minute soak of 4 calls talking without pause it was slower (not
examined further: the copies share the cores, and each has its own prompt cache).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from voice.llm_server import EmbeddedLlamaServer, ServerState
from voice.llm_threads import write_threads

log = logging.getLogger(__name__)


class EmbeddedLlamaPool:
    """``processes`` :class:`EmbeddedLlamaServer` children of one GGUF."""

    def __init__(
        self,
        gguf_path: Path,
        *,
        processes: int = 1,
        threads: int = 2,
        batch_threads: int | None = None,
        context: int = 2048,
        log_dir: Path | None = None,
        cache_bytes: int = 0,
        threads_alone: int | None = None,
    ) -> None:
        """``threads_alone``: the children write with that many threads while at most one
        call is live (:meth:`set_alone`; it needs a ``log_dir`` for the threads file)."""
        if processes < 1:
            raise ValueError("the embedded LLM needs at least one process")
        self.threads = threads
        self.threads_alone = threads_alone or threads
        #: The file the children read their writing threads from (:mod:`voice.llm_threads`);
        #: None: they always write with ``threads``.
        self.threads_file: Path | None = None
        if log_dir is not None and self.threads_alone != threads:
            self.threads_file = log_dir / "llm-threads"
        self.children = [
            EmbeddedLlamaServer(
                gguf_path,
                threads=threads,
                batch_threads=batch_threads,
                context=context,
                cache_bytes=cache_bytes,
                log_path=None if log_dir is None else log_dir / _log_name(i, processes),
                threads_file=self.threads_file,
            )
            for i in range(processes)
        ]

    @property
    def base_urls(self) -> list[str]:
        return [child.base_url for child in self.children]

    @property
    def pid(self) -> int | None:
        """The first child's process id (None while it is down)."""
        return self.children[0].pid

    @property
    def pids(self) -> list[int]:
        """The process ids of the children running now."""
        return [pid for pid in (child.pid for child in self.children) if pid is not None]

    @property
    def state(self) -> ServerState:
        """``running`` when every child runs; else the first other state."""
        for child in self.children:
            if child.state != "running":
                return child.state
        return "running"

    @property
    def restarts(self) -> int:
        return sum(child.restarts for child in self.children)

    def set_on_restart(self, callback: Callable[[], None] | None) -> None:
        for child in self.children:
            child.on_restart = callback

    def status(self) -> dict[str, Any]:
        """What ``/health`` shows: the pool as one (the first child's pid, every restart,
        the last death) and each child."""
        exits = [child.last_exit for child in self.children if child.last_exit is not None]
        return {
            "pid": self.pid,
            "state": self.state,
            "restarts": self.restarts,
            "last_exit": exits[-1] if exits else None,
            "processes": [child.status() for child in self.children],
        }

    def set_alone(self, alone: bool) -> None:
        """Write with ``threads_alone`` threads from the next completion on while one call
        is live (``alone``), else with ``threads``."""
        if self.threads_file is None:
            return
        threads = self.threads_alone if alone else self.threads
        try:
            write_threads(self.threads_file, threads)
        except OSError as exc:  # the children keep the threads they have; the call goes on
            log.warning("embedded LLM: cannot set %d writing threads: %s", threads, exc)

    async def start(self, timeout_s: float = 120.0) -> None:
        """Start every child; return once all serve. One that fails stops them all."""
        if self.threads_file is not None:
            self.threads_file.parent.mkdir(parents=True, exist_ok=True)
            self.set_alone(True)  # no call yet
        try:
            async with asyncio.TaskGroup() as group:
                for child in self.children:
                    group.create_task(child.start(timeout_s))
        except BaseException as errors:
            await self.stop()
            if isinstance(errors, BaseExceptionGroup):
                raise errors.exceptions[0] from None
            raise

    def supervise(self, after_restart: Callable[[str], Awaitable[object]] | None = None) -> None:
        """Restart each child whenever it dies; ``after_restart(base_url)`` warms it up."""
        for child in self.children:
            warm = None if after_restart is None else _bound(after_restart, child.base_url)
            child.supervise(warm)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop every child (see :meth:`EmbeddedLlamaServer.stop`). Safe to call twice."""
        await asyncio.gather(*(child.stop(timeout_s) for child in self.children))


def _log_name(index: int, processes: int) -> str:
    return "llm-server.log" if processes == 1 else f"llm-server-{index + 1}.log"


def _bound(
    warm: Callable[[str], Awaitable[object]], base_url: str
) -> Callable[[], Awaitable[object]]:
    return lambda: warm(base_url)
