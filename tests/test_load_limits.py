"""Bounded under load, against a real `voice serve` with small limits.

Calls beyond capacity are refused (503 in all, 429 per user) before any session is made,
after a short wait for a closing call's place;
a WebSocket client that stops reading is closed with 1008 and its session freed; a WebRTC
client that stops reading (a frozen process) has its call ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import REPO, ServerProcess, start_server
from tests.webrtc_helpers import ClientPeer

pytestmark = pytest.mark.e2e

KEYS = {"key-alice": "alice", "key-bob": "bob", "key-carol": "carol"}
SEND_QUEUE_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Two calls in all, one per user, small send buffers; media may pause for a minute."""
    running = start_server(
        tmp_path_factory.mktemp("limits"),
        VOICE_API_KEYS=json.dumps(KEYS),
        VOICE_MAX_SESSIONS="2",
        VOICE_MAX_SESSIONS_PER_USER="1",
        VOICE_MAX_SEND_QUEUE_BYTES=str(SEND_QUEUE_BYTES),
        VOICE_WEBRTC_MAX_BUFFERED_BYTES="8192",
        VOICE_WEBRTC_DISCONNECT_S="60",
    )
    yield running
    running.stop()


async def until(
    server: ServerProcess, check: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """The first ``/health`` body ``check`` accepts, polled for at most ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while True:
            body = await asyncio.to_thread(server.health)
            if check(body):
                return body
            await asyncio.sleep(0.1)


def idle(body: dict[str, Any]) -> bool:
    return bool(
        body["active_sessions"] == 0 and body["session_tasks"] == 0 and body["webrtc_calls"] == 0
    )


@contextlib.asynccontextmanager
async def websocket(
    server: ServerProcess, key: str, **options: Any
) -> AsyncIterator[ClientConnection]:
    async with connect(
        f"{server.ws_base}/realtime",
        additional_headers={"Authorization": f"Bearer {key}"},
        max_size=None,
        **options,
    ) as ws:
        yield ws


async def next_event(ws: ClientConnection, event_type: str, timeout: float = 30) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            event: dict[str, Any] = json.loads(await ws.recv())
            if event["type"] == event_type:
                return event


async def refused_handshake(server: ServerProcess, key: str) -> tuple[int, dict[str, Any]]:
    with pytest.raises(InvalidStatus) as refused:
        async with websocket(server, key):
            pass
    response = refused.value.response
    return response.status_code, json.loads(response.body or b"{}")


def post_offer(server: ServerProcess, key: str, offer: str) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{server.http}/v1/realtime/calls", offer.encode(), method="POST",
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {key}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def an_offer() -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio")
    pc.createDataChannel("oai-events")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


def error_of(body: str | dict[str, Any]) -> dict[str, Any]:
    data = json.loads(body) if isinstance(body, str) else body
    error: dict[str, Any] = data["error"]
    return error


def connected_sessions(server: ServerProcess) -> int:
    return server.log().count(" connected")  # "session … connected", "call … connected"


# --- capacity ------------------------------------------------------------------------------


async def test_calls_beyond_capacity_are_refused_before_any_session_is_made(
    limited: ServerProcess,
) -> None:
    await until(limited, idle, 30)
    async with websocket(limited, "key-alice") as alice:
        await next_event(alice, "session.created")

        # Alice has her one call: a second is refused, over either transport.
        status, body = await refused_handshake(limited, "key-alice")
        assert status == 429, body
        assert error_of(body)["code"] == "too_many_sessions"
        status, text = await asyncio.to_thread(post_offer, limited, "key-alice", await an_offer())
        assert status == 429 and error_of(text)["code"] == "too_many_sessions", text

        # Bob takes the second place, over WebRTC.
        bob = ClientPeer()

        async def signal_bob(offer: str) -> str:
            status, answer = await asyncio.to_thread(post_offer, limited, "key-bob", offer)
            assert status == 201, answer
            return answer

        try:
            await bob.connect(signal_bob)
            await bob.wait_for("session.created")
            before = connected_sessions(limited)

            # The server is full: Carol is refused on both transports, with 503.
            status, body = await refused_handshake(limited, "key-carol")
            assert status == 503, body
            error = error_of(body)
            assert error["code"] == "server_at_capacity" and error["type"] == "server_error"
            assert "2 calls" in error["message"]
            offer = await an_offer()
            status, text = await asyncio.to_thread(post_offer, limited, "key-carol", offer)
            assert status == 503 and error_of(text)["code"] == "server_at_capacity", text

            busy = await asyncio.to_thread(limited.health)
            assert busy["active_sessions"] == 2 and busy["webrtc_calls"] == 1
            assert connected_sessions(limited) == before  # no session was made for them
        finally:
            await bob.aclose()
    # Both hung up: their places are free again, and Carol gets in.
    await until(limited, idle, 30)
    async with websocket(limited, "key-carol") as carol:
        await next_event(carol, "session.created")
    log = limited.log()
    assert "refused 503 /v1/realtime from 127.0.0.1: at capacity (2 calls)" in log
    assert "refused 503 /v1/realtime/calls from 127.0.0.1: at capacity (2 calls)" in log
    assert "refused 429 /v1/realtime from 127.0.0.1: user at the limit of 1 calls" in log
    assert not [key for key in KEYS if key in log]


async def test_a_user_at_the_limit_who_hangs_up_and_calls_again_at_once_is_admitted(
    limited: ServerProcess,
) -> None:
    await until(limited, idle, 30)
    for _ in range(5):  # her one place is released a moment after she has hung up
        async with websocket(limited, "key-alice") as alice:
            await next_event(alice, "session.created")
    refusals = limited.log().count("refused 429 /v1/realtime from 127.0.0.1")
    async with websocket(limited, "key-alice") as alice:
        await next_event(alice, "session.created")
        started = time.monotonic()
        status, body = await refused_handshake(limited, "key-alice")  # she is still on
        assert status == 429 and error_of(body)["code"] == "too_many_sessions", body
        assert time.monotonic() - started >= 0.4  # it waited for a place first (500 ms)
    assert limited.log().count("refused 429 /v1/realtime from 127.0.0.1") == refusals + 1


# --- a WebSocket client that stops reading ----------------------------------------------------


def user_item(text: str, item_id: str | None = None) -> str:
    item: dict[str, Any] = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }
    if item_id is not None:
        item["id"] = item_id
    return json.dumps({"type": "conversation.item.create", "item": item})


async def test_a_websocket_client_that_stops_reading_is_closed_and_its_session_freed(
    limited: ServerProcess,
) -> None:
    await until(limited, idle, 30)
    rss_before = (await asyncio.to_thread(limited.health))["process"]["rss_bytes"]
    # The client reads nothing after the greeting: its library stops taking frames off the
    # socket (max_queue=1) and the kernel buffers fill; it sends no pings of its own.
    async with websocket(limited, "key-alice", max_queue=1, ping_interval=None) as ws:
        await next_event(ws, "session.created")
        await ws.send(user_item("Tell me a very long story about a lighthouse keeper."))
        await ws.send(json.dumps({"type": "response.create"}))
        # A steady stream of large events on top of the spoken reply, each small enough to
        # be written at once to a client that reads: 256 KiB back every 20 ms (~12 MB/s).
        await ws.send(user_item("x" * 256 * 1024, "item_big"))
        retrieve = json.dumps({"type": "conversation.item.retrieve", "item_id": "item_big"})
        asked = 0
        deadline = time.monotonic() + 60
        freed: dict[str, Any] | None = None
        while freed is None and time.monotonic() < deadline:
            for _ in range(10):
                await ws.send(retrieve)
                asked += 1
                await asyncio.sleep(0.02)
            body = await asyncio.to_thread(limited.health)
            freed = body if idle(body) else None
        assert freed is not None, f"session still open after {asked} retrieves"
        # The server kept at most the queue, the socket's buffers and the item itself.
        grown = freed["process"]["rss_bytes"] - rss_before
        assert grown < 64 * 1024 * 1024, (grown, asked)
        # Now read: the events written before the close, then the close itself.
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(30):
                async for _ in ws:
                    pass
        assert ws.close_code == 1008
        assert ws.close_reason == "send queue full: the client stopped reading its events"
    assert "events unread by the client; closing it" in limited.log()


# --- a WebRTC client that stops reading --------------------------------------------------------


async def test_a_webrtc_client_that_stops_reading_has_its_call_ended(
    limited: ServerProcess,
) -> None:
    await until(limited, idle, 30)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.stalled_peer", limited.http, "key-bob",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        async with asyncio.timeout(90):
            while (line := await child.stdout.readline()) and line.strip() != b"stalling":
                pass
        assert line, "the peer exited before it stalled"
        # The client is frozen; its call lives on until its unsent events pass the limit.
        await until(limited, idle, 25)
        log = limited.log()
        ended = [line for line in log.splitlines() if " closed: " in line and "call rtc_" in line]
        assert ended and "the client stopped reading its events" in ended[-1], log
    finally:
        child.send_signal(signal.SIGKILL)  # also ends a stopped process
        await child.wait()
