"""A ``voice serve`` of the scripts' own: a free port, a temporary data folder, stopped after.

For measurement scripts that need a server of their own (``--spawn``): it runs the
installed code with the given environment, waits (bounded) for its "ready" line, and is
stopped with SIGTERM (then killed, if it does not stop) when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: How long a spawned server may take to load its models.
READY_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class SpawnedServer:
    """Where a spawned server listens, its local key, and its log file."""

    http: str
    api_key: str
    log_path: Path
    pid: int

    @property
    def ws_base(self) -> str:
        return self.http.replace("http://", "ws://") + "/v1"


@contextlib.contextmanager
def spawned_server(prefix: str, **env: str) -> Iterator[SpawnedServer]:
    """``voice serve`` in a fresh folder (a copy of the characters), with ``env`` set."""
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    shutil.copytree(REPO / "characters", folder / "characters")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {
        **os.environ,
        "VOICE_DATA_DIR": str(folder / "data"),
        "VOICE_CHARACTERS_DIR": str(folder / "characters"),
        "VOICE_VOICES_DIR": str(REPO / "voices"),
        **env,
    }
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "voice", "serve", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=folder,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while b"ready in" not in log_path.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"voice serve did not start; see {log_path}")
            time.sleep(0.2)
        key = (folder / "data" / "local-api-key").read_text().strip()
        yield SpawnedServer(f"http://127.0.0.1:{port}", key, log_path, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
