"""API keys to user ids: header, subprotocol and query forms, the local key, WebSocket refusal,
keyless local requests, and the throttle on wrong keys."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import websockets
from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.typing import Subprotocol

from tests.asgi_helpers import serve
from voice.auth import (
    ADMISSION_SCOPE_KEY,
    LOCAL_USER,
    UNAUTHORIZED,
    Authenticator,
    accepted_subprotocol,
    presented_key,
    reject_websocket,
)
from voice.config import Settings
from voice.keyfiles import load_or_create_local_key
from voice.origin import Admission, OriginPolicy, Refusal
from voice.services import authenticator
from voice.throttle import FailureThrottle

KEYS = {"alice-key": "alice", "bob-key": "bob"}


def test_bearer_header() -> None:
    auth = Authenticator(KEYS)
    assert auth.user_for("Bearer alice-key", None) == "alice"
    assert auth.user_for("bearer   bob-key ", None) == "bob"
    assert auth.user_for("Bearer wrong", None) is None
    assert auth.user_for("Bearer alice-key-and-more", None) is None
    assert auth.user_for("Bearer alice", None) is None  # a prefix of a key
    assert auth.user_for("Basic alice-key", None) is None
    assert auth.user_for("Bearer ", None) is None
    assert auth.user_for(None, None) is None
    assert auth.user_for("Bearer clé-ünïcode", None) is None


def test_query_key_and_subprotocol() -> None:
    auth = Authenticator(KEYS)
    assert auth.user_for(None, "alice-key") == "alice"
    assert auth.user_for(None, "") is None
    offered = ["realtime", "openai-insecure-api-key.bob-key", "openai-beta.realtime-v1"]
    assert auth.user_for(None, None, offered) == "bob"
    assert auth.user_for(None, None, ["realtime", "openai-insecure-api-key.nope"]) is None


def test_the_first_credential_presented_decides() -> None:
    """A wrong header is not rescued by a right query key (and the other way round)."""
    auth = Authenticator(KEYS)
    assert auth.user_for("Bearer wrong", "alice-key") is None
    assert auth.user_for("Bearer alice-key", "wrong") == "alice"
    assert auth.user_for(None, "wrong", ["openai-insecure-api-key.bob-key"]) == "bob"
    assert presented_key(None, None, ["realtime"]) is None


def test_configured_keys_come_from_json_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VOICE_API_KEYS", json.dumps(KEYS))
    settings = Settings(data_dir=tmp_path)
    assert settings.api_keys == KEYS
    assert "alice-key" not in repr(settings)
    auth = authenticator(settings)
    assert auth.local_key is None and auth.user_for("Bearer bob-key", None) == "bob"
    assert not (tmp_path / "local-api-key").exists()
    with pytest.raises(ValueError, match="empty"):
        Settings(api_keys={"": "alice"})
    with pytest.raises(ValueError, match="at least one"):
        Authenticator({})


def test_local_key_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    auth = authenticator(settings)
    key_file = tmp_path / "data" / "local-api-key"
    assert auth.local_key and len(auth.local_key) >= 40
    # A key beginning with "-" would read as an option: voice bench --api-key -x... fails.
    assert auth.local_key.startswith("vk_")
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert [path.name for path in key_file.parent.iterdir()] == ["local-api-key"]  # no temp
    assert key_file.read_text().strip() == auth.local_key
    assert auth.user_for(f"Bearer {auth.local_key}", None) == LOCAL_USER
    assert authenticator(settings).local_key == auth.local_key


def test_local_key_file_is_tightened(tmp_path: Path) -> None:
    key_file = tmp_path / "local-api-key"
    key_file.write_text("existing-key\n")
    key_file.chmod(0o644)
    assert load_or_create_local_key(tmp_path) == "existing-key"
    assert key_file.stat().st_mode & 0o777 == 0o600


async def _whoami(websocket: WebSocket) -> None:
    """The WebSocket handshake pattern for the realtime endpoint."""
    auth = Authenticator(KEYS)
    user = auth.identify(websocket)
    if isinstance(user, Refusal):
        await reject_websocket(websocket, user)
        return
    await websocket.accept(subprotocol=accepted_subprotocol(websocket))
    await websocket.send_text(user)
    await websocket.close()


async def test_websocket_handshake_forms() -> None:
    app = Starlette(routes=[WebSocketRoute("/ws", _whoami)])
    async with serve(app) as base:
        url = base.replace("http://", "ws://") + "/ws"
        async with websockets.connect(
            url, additional_headers={"Authorization": "Bearer alice-key"}
        ) as ws:
            assert await ws.recv() == "alice" and ws.subprotocol is None
        async with websockets.connect(f"{url}?api_key=bob-key") as ws:
            assert await ws.recv() == "bob"
        browser = [Subprotocol("realtime"), Subprotocol("openai-insecure-api-key.bob-key")]
        async with websockets.connect(url, subprotocols=browser) as ws:
            assert await ws.recv() == "bob" and ws.subprotocol == "realtime"
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(f"{url}?api_key=wrong"):
                pass
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body or b"")["error"]["code"] == "invalid_api_key"


# --- keyless local requests, and wrong keys counted per address ---------------------------


class FakeClock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def connection(
    *,
    key: str | None = None,
    admission: Admission | None = None,
    client: str = "127.0.0.1",
    kind: str = "http",
) -> HTTPConnection:
    """A request's ASGI scope as the server would see it (no server needed)."""
    headers = [(b"host", b"127.0.0.1:8000")]
    if key is not None:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    scope: dict[str, object] = {
        "type": kind,
        "path": "/v1/memory",
        "query_string": b"",
        "headers": headers,
        "client": (client, 50123),
        "scheme": "http" if kind == "http" else "ws",
    }
    if admission is not None:
        scope[ADMISSION_SCOPE_KEY] = admission
    return HTTPConnection(scope)


LOCAL_KEY = "vk_local-key"


def local_auth(throttle: FailureThrottle | None = None) -> Authenticator:
    return Authenticator(
        {LOCAL_KEY: LOCAL_USER}, local_key=LOCAL_KEY, trust_loopback=True, throttle=throttle
    )


def test_keyless_is_local_only_where_the_gate_said_so() -> None:
    auth = local_auth()
    rebound = OriginPolicy().admit(
        scheme="http", host="evil.example:8000", origin=None, client="127.0.0.1"
    )
    assert isinstance(rebound, Admission) and rebound.keyless_refusal is not None

    assert auth.identify(connection(admission=Admission(local=True))) == LOCAL_USER
    assert auth.identify(connection()) == UNAUTHORIZED  # no gate in front: nothing is local
    assert auth.identify(connection(admission=rebound)) == rebound.keyless_refusal  # 421
    assert auth.identify(connection(admission=Admission(local=False))) == UNAUTHORIZED
    # A wrong key is not rescued by being local; the right key works under any Host.
    assert auth.identify(connection(key="wrong", admission=Admission(local=True))) == UNAUTHORIZED
    assert auth.identify(connection(key=LOCAL_KEY, admission=rebound)) == LOCAL_USER
    # With configured keys (or trust_loopback off) there is no local user.
    assert Authenticator(KEYS).identify(connection(admission=Admission(local=True))) == UNAUTHORIZED
    no_trust = Authenticator({LOCAL_KEY: LOCAL_USER}, local_key=LOCAL_KEY, trust_loopback=False)
    assert no_trust.identify(connection(admission=Admission(local=True))) == UNAUTHORIZED


def test_wrong_keys_are_throttled_per_address() -> None:
    clock = FakeClock()
    auth = Authenticator(KEYS, throttle=FailureThrottle(max_failures=3, window_s=60, clock=clock))
    attacker, neighbour = "198.51.100.7", "198.51.100.8"
    for _ in range(3):
        assert auth.identify(connection(key="guess", client=attacker)) == UNAUTHORIZED
        clock.now += 1
    blocked = auth.identify(connection(key="alice-key", client=attacker))  # even the right key
    assert isinstance(blocked, Refusal) and blocked.status == 429
    assert blocked.code == "too_many_failed_attempts"
    assert dict(blocked.headers) == {"Retry-After": "57"}  # the first failure was 3 s ago
    # Another address is not affected, and its success clears nothing of the attacker's.
    assert auth.identify(connection(key="bob-key", client=neighbour)) == "bob"
    assert auth.identify(connection(key="guess", client=neighbour)) == UNAUTHORIZED
    clock.now += 56.5
    still = auth.identify(connection(key="alice-key", client=attacker))
    assert isinstance(still, Refusal) and dict(still.headers) == {"Retry-After": "1"}
    clock.now += 0.5  # the first failure is 60 s old: one more try
    assert auth.identify(connection(key="alice-key", client=attacker)) == "alice"
    assert auth.identify(connection(key="guess", client=attacker)) == UNAUTHORIZED
    again = auth.identify(connection(key="alice-key", client=attacker))
    assert isinstance(again, Refusal) and again.status == 429  # 3 failures in the last 60 s


def test_blocked_address_keeps_its_keyless_local_access() -> None:
    """Guessing keys from this machine does not lock the local web client out."""
    clock = FakeClock()
    auth = local_auth(throttle=FailureThrottle(max_failures=2, window_s=60, clock=clock))
    for _ in range(2):
        auth.identify(connection(key="guess", admission=Admission(local=True)))
    blocked = auth.identify(connection(key=LOCAL_KEY, admission=Admission(local=True)))
    assert isinstance(blocked, Refusal) and blocked.status == 429
    assert auth.identify(connection(admission=Admission(local=True))) == LOCAL_USER


def test_throttle_window_and_bounded_memory() -> None:
    clock = FakeClock()
    throttle = FailureThrottle(max_failures=2, window_s=10, max_addresses=3, clock=clock)
    assert throttle.retry_after("192.0.2.1") is None
    assert throttle.record_failure("192.0.2.1") is False
    clock.now += 4
    assert throttle.record_failure("192.0.2.1") is True  # the allowance is used up
    assert throttle.retry_after("192.0.2.1") == 6
    clock.now += 5.2
    assert throttle.retry_after("192.0.2.1") == 1  # whole seconds, rounded up
    clock.now += 0.8
    assert throttle.retry_after("192.0.2.1") is None
    # Slow failures never block: two within 10 s are needed.
    for _ in range(5):
        clock.now += 11
        throttle.record_failure("192.0.2.9")
        assert throttle.retry_after("192.0.2.9") is None
    # At most three addresses are remembered; the one touched longest ago goes first.
    throttle.record_failure("192.0.2.2")
    throttle.record_failure("192.0.2.3")
    assert len(throttle) == 3
    throttle.record_failure("192.0.2.4")
    assert len(throttle) == 3 and throttle.retry_after("192.0.2.9") is None


def test_throttle_counts_ipv6_per_64_and_mapped_ipv4_as_ipv4() -> None:
    clock = FakeClock()
    throttle = FailureThrottle(max_failures=2, window_s=60, clock=clock)
    throttle.record_failure("2001:db8:1:2::1")
    throttle.record_failure("2001:db8:1:2:ffff::99")  # the same /64: one host
    assert throttle.retry_after("2001:db8:1:2::abcd") == 60
    assert throttle.retry_after("2001:db8:1:3::1") is None
    throttle.record_failure("::ffff:192.0.2.5")
    throttle.record_failure("192.0.2.5")
    assert throttle.retry_after("192.0.2.5") == 60
    with pytest.raises(ValueError):
        FailureThrottle(max_failures=0)


def test_no_log_record_holds_a_key(caplog: pytest.LogCaptureFixture) -> None:
    """Wrong keys, the right key, a blocked address and a refused Host: no key in any record."""
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    auth = local_auth(throttle=FailureThrottle(max_failures=3, window_s=60, clock=clock))
    rebound = OriginPolicy().admit(
        scheme="http", host="evil.example:8000", origin=None, client="127.0.0.1"
    )
    assert isinstance(rebound, Admission)
    guesses = [f"vk_guess-number-{n}" for n in range(4)]
    for guess in guesses:
        auth.identify(connection(key=guess, client="203.0.113.9"))
    auth.identify(connection(key=LOCAL_KEY, client="203.0.113.10"))
    auth.identify(connection(admission=rebound))
    websocket = connection(kind="websocket", client="203.0.113.11")
    websocket.scope["query_string"] = b"api_key=vk_query-guess"
    auth.identify(websocket)
    logged = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.__dict__!r}" for record in caplog.records
    )
    assert "wrong API key from 203.0.113.9" in logged  # the failures are logged...
    assert "429 for a while" in logged and "421" in logged and "evil.example" in logged
    for key in [*guesses, LOCAL_KEY, "vk_query-guess"]:
        assert key not in logged  # ...without the keys
