"""Shared fixtures: real speech clips from ../shared/speech and a real server on a free port."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from voice.audio import Float32Array, read_wav_mono
from voice.llm_server import free_port

REPO = Path(__file__).resolve().parents[1]
SPEECH_DIR = REPO.parent / "shared" / "speech"


@dataclass(frozen=True)
class Clip:
    name: str
    transcript: str
    samples: Float32Array  # 16 kHz mono

    @property
    def seconds(self) -> float:
        return len(self.samples) / 16000


@pytest.fixture(scope="session")
def speech() -> dict[str, Clip]:
    """The real speech clips by file stem; skips when ../shared/speech is absent."""
    manifest = SPEECH_DIR / "manifest.tsv"
    if not manifest.is_file():
        pytest.skip(f"real speech clips not found: {manifest} is missing")
    clips: dict[str, Clip] = {}
    with manifest.open(newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            samples, rate = read_wav_mono(SPEECH_DIR / row["file"])
            assert rate == 16000, f"{row['file']} is {rate} Hz, expected 16000"
            clips[Path(row["file"]).stem] = Clip(row["file"], row["transcript"], samples)
    return clips


@dataclass
class ServerProcess:
    """A ``voice serve`` child process and how to reach it."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1"

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.http}/health", timeout=5) as response:
            body: dict[str, Any] = json.load(response)
            return body

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(tmp: Path, **env: str) -> ServerProcess:
    """Start ``python -m voice serve`` on a free port and wait until it is ready."""
    port = free_port()
    log_path = tmp / f"server-{port}.log"
    environment = {**os.environ, "VOICE_DATA_DIR": str(tmp / "data"), **env}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "voice", "serve", "--port", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=tmp,
        )
    server = ServerProcess(process, port, log_path)
    deadline = time.monotonic() + 180
    while "ready in" not in server.log():
        if process.poll() is not None:
            raise RuntimeError(f"voice serve exited ({process.returncode}):\n{server.log()}")
        if time.monotonic() > deadline:
            server.stop()
            raise TimeoutError(f"voice serve not ready after 180 s:\n{server.log()}")
        time.sleep(0.2)
    return server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server (embedded models) shared by the end-to-end tests."""
    running = start_server(tmp_path_factory.mktemp("server"))
    yield running
    running.stop()
