"""Cross-site and DNS-rebinding requests against the server's real ASGI app.

The app is :func:`voice.server.create_app` on a real uvicorn port, with real settings,
keys, character library and memory store, but no models: every request here is refused
or answered before a session would need them. The last tests use a real ``voice serve``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import websockets
from websockets.typing import Origin, Subprotocol

from tests.asgi_helpers import serve
from tests.conftest import REPO, ServerProcess
from voice.characters.library import CharacterLibrary
from voice.characters.shared import SharedLibrary
from voice.companion import Companions
from voice.config import Settings
from voice.engines import Engines
from voice.memory.crypto import MemoryCipher
from voice.memory.database import create_engine, sqlite_url
from voice.memory.store import MemoryStore
from voice.memory.writer import StoreWriter
from voice.metrics import Metrics
from voice.server import create_app
from voice.services import Services, authenticator
from voice.throttle import FailureThrottle
from voice.usage import UsageStore
from voice.usage_policy import UsagePolicy

EVIL = "http://evil.example"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


async def request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> Answer:
    """One HTTP request to 127.0.0.1:``port`` with exactly the headers given (Host too)."""

    def call() -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request(method, path, body=body or None, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
            kind = response.getheader("content-type") or ""
            decoded = json.loads(data) if data and kind.startswith("application/json") else data
            return Answer(
                response.status, {k.lower(): v for k, v in response.getheaders()}, decoded
            )
        finally:
            connection.close()

    return await asyncio.to_thread(call)


@dataclass
class App:
    port: int
    key: str
    store: MemoryStore

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    settings = Settings(
        data_dir=tmp_path / "data",
        characters_dir=REPO / "characters",
        webclient_dir=REPO / "webclient",
    )
    auth = authenticator(settings)  # one local user, loopback trusted
    assert auth.local_key is not None and auth.trust_loopback
    auth.throttle = FailureThrottle(clock=lambda: 0.0)  # time stands still: no test races it
    store = MemoryStore(create_engine(sqlite_url(tmp_path)), MemoryCipher(os.urandom(32)))
    await store.create()
    await store.add_fact("local", "maren", "The user has a dog called Pixel")
    library = CharacterLibrary(settings.characters_dir, settings.max_card_bytes)
    # No models: nothing here gets as far as a session (a fake would hide a bug, so none).
    writer = StoreWriter(store)
    metrics = Metrics()
    usage = UsagePolicy(UsageStore(store.engine), settings, metrics.registry)
    shared = SharedLibrary(library, store.engine)
    await shared.start()
    services = Services(auth, shared, store, writer, cast(Companions, None), metrics, usage)
    asgi = create_app(settings, cast(Engines, None), services)
    async with serve(asgi) as base:
        yield App(int(base.rsplit(":", 1)[1]), auth.local_key, store)
    await shared.aclose()
    await store.aclose()


def refused_code(error: websockets.InvalidStatus) -> tuple[int, str]:
    body = json.loads(error.response.body or b"{}")
    return error.response.status_code, body["error"]["code"]


async def test_websocket_from_another_site_is_refused_before_it_opens(app: App) -> None:
    for origin in [EVIL, "null", f"http://127.0.0.1.evil.example:{app.port}"]:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(app.ws, origin=Origin(origin)):
                pass
        assert refused_code(refused.value) == (403, "origin_not_allowed")
        body = json.loads(refused.value.response.body or b"{}")
        assert "VOICE_ALLOWED_ORIGINS" in body["error"]["message"]
    # A key does not make another site's page welcome either.
    offered = [Subprotocol("realtime"), Subprotocol(f"openai-insecure-api-key.{app.key}")]
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(app.ws, origin=Origin(EVIL), subprotocols=offered):
            pass
    assert refused_code(refused.value) == (403, "origin_not_allowed")


async def test_websocket_under_a_rebinding_host_needs_the_key(app: App) -> None:
    rebound = f"ws://evil.example:{app.port}/v1/realtime"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(rebound, host="127.0.0.1", port=app.port):
            pass
    assert refused_code(refused.value) == (421, "untrusted_host")
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(
            rebound,
            host="127.0.0.1",
            port=app.port,
            origin=Origin(f"http://evil.example:{app.port}"),
        ):
            pass
    assert refused_code(refused.value) == (403, "origin_not_allowed")  # same-origin: no proof


@pytest.mark.parametrize("path", ["/v1/memory", "/v1/characters"])
async def test_rebinding_host_is_refused_without_a_key(app: App, path: str) -> None:
    rebound = await request(app.port, "GET", path, {"Host": f"evil.example:{app.port}"})
    assert rebound.status == 421, rebound.body
    assert rebound.body["error"]["code"] == "untrusted_host"
    assert "Authorization: Bearer" in rebound.body["error"]["message"]
    for host in [f"evil.example:{app.port}", "voice.example.org", "192.168.1.20:8000"]:
        keyed = await request(
            app.port, "GET", path, {"Host": host, "Authorization": f"Bearer {app.key}"}
        )
        assert keyed.status == 200, (host, keyed.body)
        assert keyed.body["object"] == "list" and keyed.body["data"]
    local = await request(app.port, "GET", path, {"Host": f"127.0.0.1:{app.port}"})
    assert local.status == 200 and local.body["data"]
    proxied = await request(
        app.port, "GET", path, {"Host": f"127.0.0.1:{app.port}", "X-Real-IP": "203.0.113.9"}
    )
    assert proxied.status == 421 and "proxy" in proxied.body["error"]["message"]


async def test_repeated_host_or_origin_headers_prove_nothing(app: App) -> None:
    """Two Origin headers (an allowed one first) or two Host headers: never trusted."""

    def raw(headers: list[tuple[str, str]]) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
        try:
            connection.putrequest("GET", "/v1/memory", skip_host=True)
            for name, value in headers:
                connection.putheader(name, value)
            connection.endheaders()
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    local = ("Host", f"127.0.0.1:{app.port}")
    two_origins = [local, ("Origin", f"http://127.0.0.1:{app.port}"), ("Origin", EVIL)]
    assert await asyncio.to_thread(raw, two_origins) == 403
    two_hosts = [local, ("Host", "evil.example")]
    assert await asyncio.to_thread(raw, two_hosts) == 421
    assert await asyncio.to_thread(raw, [local]) == 200


async def test_cross_origin_requests_are_refused_on_every_route(app: App) -> None:
    offer = b"v=0\r\n"  # never read: the refusal comes first
    sdp = {"Content-Type": "application/sdp", "Host": f"127.0.0.1:{app.port}"}
    calls = await request(app.port, "POST", "/v1/realtime/calls", {**sdp, "Origin": EVIL}, offer)
    assert calls.status == 403 and calls.body["error"]["code"] == "origin_not_allowed"
    keyed = {**sdp, "Origin": EVIL, "Authorization": f"Bearer {app.key}"}
    assert (await request(app.port, "POST", "/v1/realtime/calls", keyed, offer)).status == 403
    preflight = {"Origin": EVIL, "Access-Control-Request-Method": "POST"}
    assert (await request(app.port, "OPTIONS", "/v1/realtime/calls", preflight)).status == 403
    for method, path in [
        ("DELETE", "/v1/users/me"),
        ("GET", "/v1/memory"),
        ("GET", "/metrics"),
        ("GET", "/v1/realtime/config"),
        ("POST", "/v1/audio/speech"),
        ("POST", "/v1/audio/transcriptions"),
        ("GET", "/"),
    ]:
        answer = await request(app.port, method, path, {"Origin": "null"})
        assert answer.status == 403, (method, path)
    assert len(await app.store.memories("local")) == 1  # nothing was deleted
    # Tools without an Origin still reach /metrics and the web client, under any Host.
    metrics = await request(app.port, "GET", "/metrics", {"Host": "voice.example.org"})
    assert metrics.status == 200 and b"voice_" in metrics.body
    page = await request(app.port, "GET", "/", {"Host": f"localhost:{app.port}"})
    assert page.status == 200 and b"<html" in page.body.lower()
    # The server's own page (same origin, loopback Host) reaches the route, without a key
    # (which answers 415 to a body that is not SDP, before any session is made).
    own = {"Content-Type": "text/plain", "Origin": f"http://127.0.0.1:{app.port}"}
    reached = await request(app.port, "POST", "/v1/realtime/calls", own, b"v=0\r\n")
    assert reached.status == 415, reached.body


async def test_wrong_keys_are_slowed_down_and_never_logged(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    guesses = [f"vk_guess-{n:02d}" for n in range(10)]
    for guess in guesses:
        answer = await request(app.port, "GET", "/v1/memory", {"Authorization": f"Bearer {guess}"})
        assert answer.status == 401
    blocked = await request(app.port, "GET", "/v1/memory", {"Authorization": f"Bearer {app.key}"})
    assert blocked.status == 429 and blocked.body["error"]["code"] == "too_many_failed_attempts"
    assert blocked.headers["retry-after"] == "60"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"{app.ws}?api_key={app.key}"):
            pass
    assert refused.value.response.status_code == 429
    # The local page, which presents no key, is not locked out by someone guessing keys.
    assert (await request(app.port, "GET", "/v1/memory", {"Host": "localhost"})).status == 200
    await request(app.port, "GET", "/v1/memory", {"Origin": EVIL, "Authorization": "Bearer vk_x1"})
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert re.search(
        r"refused 403 /v1/memory from 127\.0\.0\.1: origin 'http://evil\.example'", logged
    )
    assert "wrong API key from 127.0.0.1 for /v1/memory" in logged
    assert "429 for a while" in logged
    for key in [*guesses, app.key, "vk_x1"]:
        assert key not in logged


# --- the real server (models loaded), as a new user would try it -------------------------


@pytest.mark.e2e
async def test_real_server_refuses_other_sites_and_rebinding(
    server: ServerProcess,
) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"{server.ws_base}/realtime", origin=Origin(EVIL)):
            pass
    assert refused_code(refused.value) == (403, "origin_not_allowed")
    for path in ["/v1/memory", "/v1/characters"]:
        rebound = await request(server.port, "GET", path, {"Host": f"evil.example:{server.port}"})
        assert rebound.status == 421 and rebound.body["error"]["code"] == "untrusted_host"
        keyed = await request(
            server.port,
            "GET",
            path,
            {"Host": "voice.example.org", "Authorization": f"Bearer {server.api_key}"},
        )
        assert keyed.status == 200, keyed.body
    offer = {"Content-Type": "application/sdp", "Origin": EVIL}
    calls = await request(server.port, "POST", "/v1/realtime/calls", offer, b"v=0\r\n")
    assert calls.status == 403
    health = await request(server.port, "GET", "/health", {"Host": "voice.example.org"})
    assert health.status == 200 and health.body["status"] == "ok"  # tools need no key
    wrong = await request(server.port, "GET", "/v1/memory", {"Authorization": "Bearer vk_guess"})
    assert wrong.status == 401  # one wrong key: far from the throttle's allowance
    assert (await request(server.port, "GET", "/health", {"Origin": EVIL})).status == 403
    log = server.log()
    assert (
        f"refused 421 /v1/memory from 127.0.0.1: no key and Host 'evil.example:{server.port}'"
        in log
    )
    assert (
        "refused 403 /v1/realtime from 127.0.0.1: origin 'http://evil.example' is not allowed"
        in log
    )
    assert "wrong API key from 127.0.0.1 for /v1/memory" in log
    # The key is printed once at start, for the user to copy; no line after that holds one.
    after_start = log.split("API key of the local user", 1)[1].split("\n", 1)[1]
    assert server.api_key not in after_start and "vk_guess" not in after_start
