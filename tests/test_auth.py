"""API keys to user ids: header, subprotocol and query forms, the local key, WebSocket refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import websockets
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.typing import Subprotocol

from tests.asgi_helpers import serve
from voice.auth import (
    LOCAL_USER,
    Authenticator,
    accepted_subprotocol,
    load_or_create_local_key,
    presented_key,
    reject_websocket,
)
from voice.config import Settings

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
    auth = Authenticator.from_settings(settings)
    assert auth.local_key is None and auth.user_for("Bearer bob-key", None) == "bob"
    assert not (tmp_path / "local-api-key").exists()
    with pytest.raises(ValueError, match="empty"):
        Settings(api_keys={"": "alice"})
    with pytest.raises(ValueError, match="at least one"):
        Authenticator({})


def test_local_key_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    auth = Authenticator.from_settings(settings)
    key_file = tmp_path / "data" / "local-api-key"
    assert auth.local_key and len(auth.local_key) >= 40
    # A key beginning with "-" would read as an option: voice bench --api-key -x... fails.
    assert auth.local_key.startswith("vk_")
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert [path.name for path in key_file.parent.iterdir()] == ["local-api-key"]  # no temp
    assert key_file.read_text().strip() == auth.local_key
    assert auth.user_for(f"Bearer {auth.local_key}", None) == LOCAL_USER
    assert Authenticator.from_settings(settings).local_key == auth.local_key


def test_local_key_file_is_tightened(tmp_path: Path) -> None:
    key_file = tmp_path / "local-api-key"
    key_file.write_text("existing-key\n")
    key_file.chmod(0o644)
    assert load_or_create_local_key(tmp_path) == "existing-key"
    assert key_file.stat().st_mode & 0o777 == 0o600


async def _whoami(websocket: WebSocket) -> None:
    """The WebSocket handshake pattern for the realtime endpoint."""
    auth = Authenticator(KEYS)
    user = auth.user_for_connection(websocket)
    if user is None:
        await reject_websocket(websocket)
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
