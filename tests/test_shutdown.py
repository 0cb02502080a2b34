"""Graceful shutdown of a real `voice serve` on SIGTERM.

The first signal stops accepting connections and lets live calls go on for up to
``shutdown_drain_s`` (ending the wait as soon as none is left); calls still live then get
an ``error`` (``server_shutting_down``) and a close (WebSocket 1001; WebRTC hung up). What
was said is in the memory database afterwards; the exit code is 0. A second signal skips
the drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ServerProcess, start_server
from tests.webrtc_helpers import client_peer, http
from voice.config import Settings
from voice.services import memory_store

pytestmark = pytest.mark.e2e

#: How long after the drain (and the sessions' memory updates) the process may take to exit.
EXIT_BOUND_S = 60.0


async def next_event(ws: ClientConnection, event_type: str, timeout: float = 60) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            event: dict[str, Any] = json.loads(await ws.recv())
            if event["type"] == event_type:
                return event


async def exit_code(server: ServerProcess, timeout: float) -> int:
    try:
        return await asyncio.to_thread(server.process.wait, timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running {timeout:g} s later:\n{server.log()}") from None


async def logged(server: ServerProcess, text: str, timeout: float = 10) -> None:
    """Wait until the server's log has ``text`` (at most ``timeout`` s)."""

    def poll() -> bool:
        deadline = time.monotonic() + timeout
        while text not in server.log():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    assert await asyncio.to_thread(poll), f"not logged within {timeout:g} s: {text}"


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


async def assert_told_and_closed(ws: ClientConnection) -> None:
    """The shutdown's error event, then the 1001 close."""
    error = (await next_event(ws, "error", timeout=60))["error"]
    assert error["code"] == "server_shutting_down" and error["type"] == "server_error"
    with contextlib.suppress(ConnectionClosed):  # iterating ends quietly on a normal close
        async with asyncio.timeout(60):
            async for _ in ws:
                pass
    assert (ws.close_code, ws.close_reason) == (1001, "server shutting down")


async def test_a_reply_in_progress_is_finished_and_its_words_are_stored(tmp_path: Path) -> None:
    server = await asyncio.to_thread(start_server, tmp_path, VOICE_SHUTDOWN_DRAIN_S="300")
    try:
        url = f"{server.ws_base}/realtime?character=maren"
        async with connect(url, max_size=None) as ws:
            await next_event(ws, "response.done")  # her greeting
            said = "My favourite colour is teal, like the sea at dawn."
            await ws.send(
                json.dumps(
                    {
                        "type": "conversation.item.create",
                        "item": {
                            "type": "message",
                            "role": "user",
                            "content": [{"type": "input_text", "text": said}],
                        },
                    }
                )
            )
            await ws.send(
                json.dumps({"type": "response.create", "response": {"max_output_tokens": 40}})
            )
            await next_event(ws, "response.created")
            server.process.send_signal(signal.SIGTERM)
            await logged(server, "waiting up to 300 s for 1 call(s) to end")
            assert await asyncio.to_thread(refuses_connections, server.port)
            done = await next_event(ws, "response.done", timeout=180)
            # Written to its end: in full, or up to the token limit set above; not cut short.
            status = (done["response"]["status"], done["response"]["status_details"])
            assert status[0] == "completed" or status == (
                "incomplete", {"type": "incomplete", "reason": "max_output_tokens"}
            ), status  # fmt: skip
            assert done["response"]["output"][0]["content"][0]["transcript"]
        # The call ended by itself: the server exits long before the drain time is up.
        assert await exit_code(server, EXIT_BOUND_S) == 0
        assert "ending 1 call(s)" not in server.log()
    finally:
        server.stop()
    store = memory_store(Settings(data_dir=tmp_path / "data"))
    try:
        lines = await store.transcripts("local", character_id="maren")
    finally:
        await store.aclose()
    assert [line.text for line in lines if line.role == "user"] == [said]
    assert any(line.role == "assistant" and line.text for line in lines), lines


async def test_calls_still_live_after_the_drain_are_told_and_closed(tmp_path: Path) -> None:
    drain_s = 3.0
    server = await asyncio.to_thread(start_server, tmp_path, VOICE_SHUTDOWN_DRAIN_S=str(drain_s))

    async def signal_offer(offer: str) -> str:
        response = await http("POST", f"{server.http}/v1/realtime/calls", offer, "application/sdp")
        assert response.status == 201, response.text
        return response.text

    try:
        async with connect(f"{server.ws_base}/realtime", max_size=None) as ws:
            await next_event(ws, "session.created")
            async with client_peer(signal_offer) as peer:
                await peer.wait_for("session.created")
                signalled = time.monotonic()
                server.process.send_signal(signal.SIGTERM)
                await assert_told_and_closed(ws)
                notice = await peer.wait_for("error", timeout=30)
                assert notice["error"]["code"] == "server_shutting_down"
                async with asyncio.timeout(30):
                    await peer.ended.wait()
        assert await exit_code(server, drain_s + EXIT_BOUND_S) == 0
        assert time.monotonic() - signalled >= drain_s  # they were let go on first
        log = server.log()
        assert "ending 2 call(s) still live" in log
        assert "closed: server shutting down" in log  # the WebRTC call's end reason
    finally:
        server.stop()


async def test_a_second_signal_skips_the_drain(tmp_path: Path) -> None:
    server = await asyncio.to_thread(start_server, tmp_path, VOICE_SHUTDOWN_DRAIN_S="600")
    try:
        async with connect(f"{server.ws_base}/realtime", max_size=None) as ws:
            await next_event(ws, "session.created")
            server.process.send_signal(signal.SIGTERM)
            await logged(server, "waiting up to 600 s for 1 call(s) to end")
            server.process.send_signal(signal.SIGTERM)
            await assert_told_and_closed(ws)
        assert await exit_code(server, EXIT_BOUND_S) == 0
    finally:
        server.stop()
