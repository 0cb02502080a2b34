"""pipecat's ``OpenAIRealtimeLLMService`` (PyPI ``pipecat-ai``) against a real server.

pipecat pins ``protobuf<7`` and ``soxr~=1.0``, older than what the server's own dependencies
install (onnxruntime brings protobuf 7), so it lives in a venv of its own,
``tests/pipecat/.venv``, made here from ``tests/pipecat/requirements.txt`` (pinned) and made
again only when that file changes. The service runs in a pipeline without a transport
(``tests/pipecat/bridge.py``), with its default settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests import client_scenarios as scenarios
from tests.client_drivers import BridgeDriver
from tests.conftest import Clip, ServerProcess
from voice.audio import Float32Array

pytestmark = pytest.mark.e2e

PIPECAT_DIR = Path(__file__).parent / "pipecat"


@pytest.fixture(scope="session")
def pipecat_python() -> Path:
    """The Python of pipecat's own venv, made (or remade when its requirements changed)."""
    venv = PIPECAT_DIR / ".venv"
    requirements = PIPECAT_DIR / "requirements.txt"
    python = venv / "bin" / "python"
    stamp = venv / ".voice-requirements-sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if not stamp.is_file() or stamp.read_text() != digest:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
            check=True,
            timeout=900,
        )
        stamp.write_text(digest)
    return python


@contextlib.asynccontextmanager
async def pipecat(
    python: Path, server: ServerProcess, *, ptt: bool = False
) -> AsyncIterator[BridgeDriver]:
    env = {
        "VOICE_WS_BASE": server.ws_base,
        "VOICE_API_KEY": server.api_key,
        "VOICE_PTT": "1" if ptt else "0",
        "PYTHONPATH": "",  # not the server's code: pipecat's venv only
    }
    command = [str(python), str(PIPECAT_DIR / "bridge.py")]
    async with BridgeDriver.spawn("pipecat", command, env=env, cwd=PIPECAT_DIR) as driver:
        yield driver


async def test_default_session_accepted(server: ServerProcess, pipecat_python: Path) -> None:
    async with pipecat(pipecat_python, server) as driver:
        await scenarios.default_session_accepted(driver)


async def test_spoken_turn(
    server: ServerProcess, pipecat_python: Path, speech: dict[str, Clip]
) -> None:
    async with pipecat(pipecat_python, server) as driver:
        await scenarios.spoken_turn(driver, speech["ps_goforward"])
        assert "TTSAudioRawFrame" in driver.client_events, driver.client_events


async def test_push_to_talk(
    server: ServerProcess, pipecat_python: Path, speech: dict[str, Clip]
) -> None:
    async with pipecat(pipecat_python, server, ptt=True) as driver:
        await scenarios.push_to_talk(driver, speech["ps_forever_input_2"])


async def test_barge_in(
    server: ServerProcess, pipecat_python: Path, speech: dict[str, Clip]
) -> None:
    async with pipecat(pipecat_python, server) as driver:
        await scenarios.barge_in(driver, speech["ps_goforward"])
        assert "InterruptionFrame" in driver.client_events, driver.client_events


async def test_backchannel(
    server: ServerProcess, pipecat_python: Path, mm_hmm: Float32Array
) -> None:
    async with pipecat(pipecat_python, server) as driver:
        again = await scenarios.backchannel(driver, mm_hmm)
        await driver.server.wait_for(
            "response.done", lambda e: e["response"]["id"] == again["response_id"], timeout=120
        )
        assert scenarios.surfaced_after(driver, "InterruptionFrame", "TTSAudioRawFrame"), (
            driver.client_events
        )
