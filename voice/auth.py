"""Who is calling: API keys (bearer tokens) mapped to user ids.

A key is accepted from, in this order: an ``Authorization: Bearer <key>`` header, and on
WebSocket handshakes (browsers cannot set headers there) the
``openai-insecure-api-key.<key>`` subprotocol that the OpenAI browser SDK offers, or an
``?api_key=`` query parameter. The first credential presented is the one checked; a
wrong one is not rescued by another.

Keys are compared as SHA-256 digests with :func:`hmac.compare_digest` against every
configured key, so timing reveals neither a key's prefix nor its length.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

if TYPE_CHECKING:
    from voice.config import Settings

log = logging.getLogger(__name__)

LOCAL_USER = "local"
LOCAL_KEY_FILE = "local-api-key"
SUBPROTOCOL_KEY_PREFIX = "openai-insecure-api-key."
#: The subprotocol a browser client offers next to its key; the server must select it.
REALTIME_SUBPROTOCOL = "realtime"


def load_or_create_secret(path: Path, make: Callable[[], bytes]) -> bytes:
    """The content of the secret file ``path``, created with ``make()`` (mode 0600) if absent.

    The secret is written to a private temporary file and linked into place, so the file
    appears complete or not at all, and two processes starting at once agree on one
    secret. An existing file readable by others is tightened to 0600 with a warning.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(make() + b"\n")
            with contextlib.suppress(FileExistsError):  # another process won the race
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    if path.stat().st_mode & 0o077:
        log.warning("secret file %s was readable by others; setting mode 0600", path)
        path.chmod(0o600)
    return path.read_bytes().strip()


def new_api_key() -> str:
    """A random key. The prefix keeps it from starting with "-", which command lines
    (``voice bench --api-key KEY``) would read as an option."""
    return "vk_" + secrets.token_urlsafe(32)


def load_or_create_local_key(data_dir: Path) -> str:
    """The single-user key in ``data_dir/local-api-key``, generated on first use."""
    secret = load_or_create_secret(data_dir / LOCAL_KEY_FILE, lambda: new_api_key().encode())
    return secret.decode()


def presented_key(
    authorization: str | None, query_key: str | None, subprotocols: Sequence[str] = ()
) -> str | None:
    """The credential a client presented, by precedence; ``None`` when there is none."""
    if authorization is not None and authorization.strip():
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return ""  # presented, but not a bearer token: wrong
        return token.strip() or None  # "Bearer " with nothing: no key presented
    for protocol in subprotocols:
        if protocol.startswith(SUBPROTOCOL_KEY_PREFIX):
            return protocol.removeprefix(SUBPROTOCOL_KEY_PREFIX)
    return query_key


class Authenticator:
    """Maps presented API keys to user ids."""

    def __init__(
        self,
        keys: Mapping[str, str],
        *,
        local_key: str | None = None,
        trust_loopback: bool = False,
    ) -> None:
        if not keys:
            raise ValueError("an Authenticator needs at least one API key")
        self._digests = [(_digest(key), user) for key, user in keys.items()]
        #: The generated single-user key (for printing at start), or ``None``.
        self.local_key = local_key
        #: Single-user mode only: a client on this machine that presents no key at all is
        #: the local user (the browser client served at ``/`` has no key to present).
        self.trust_loopback = trust_loopback and local_key is not None

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        """Configured ``api_keys``, or the local key (created on first start) for ``local``."""
        if settings.api_keys:
            return cls(settings.api_keys)
        key = load_or_create_local_key(settings.data_dir)
        return cls({key: LOCAL_USER}, local_key=key, trust_loopback=settings.trust_loopback)

    def user_for_key(self, key: str | None) -> str | None:
        """The user id ``key`` belongs to, or ``None``; runs in constant time."""
        if not key:
            return None
        digest = _digest(key)
        found: str | None = None
        for candidate, user in self._digests:
            if hmac.compare_digest(digest, candidate):
                found = user
        return found

    def user_for(
        self,
        authorization_header: str | None,
        query_key: str | None,
        subprotocols: Sequence[str] = (),
    ) -> str | None:
        """The user id for a request's credentials, or ``None`` when they are missing or wrong."""
        return self.user_for_key(presented_key(authorization_header, query_key, subprotocols))

    def user_for_connection(self, connection: HTTPConnection) -> str | None:
        """The user id of an HTTP request or a WebSocket handshake (a Starlette connection).

        Plain HTTP takes the header only: any HTTP client can set it, and a key in a URL
        ends up in logs and browser history. The subprotocol and ``?api_key=`` forms are
        for WebSocket handshakes, where browsers cannot set headers.
        """
        websocket = connection.scope["type"] == "websocket"
        authorization = connection.headers.get("authorization")
        query_key = connection.query_params.get("api_key") if websocket else None
        subprotocols = connection.scope.get("subprotocols", ()) if websocket else ()
        if presented_key(authorization, query_key, subprotocols) is None and self._loopback(
            connection
        ):
            return LOCAL_USER
        return self.user_for(authorization, query_key, subprotocols)

    def _loopback(self, connection: HTTPConnection) -> bool:
        if not self.trust_loopback or connection.client is None:
            return False
        try:
            return ipaddress.ip_address(connection.client.host).is_loopback
        except ValueError:
            return False


def accepted_subprotocol(websocket: WebSocket) -> str | None:
    """The subprotocol to accept: ``realtime`` when the client offered it, else none.

    Browsers fail a handshake whose response selects none of the offered subprotocols,
    so a client authenticating with ``openai-insecure-api-key.<key>`` needs this one.
    """
    offered = websocket.scope.get("subprotocols", ())
    return REALTIME_SUBPROTOCOL if REALTIME_SUBPROTOCOL in offered else None


def unauthorized_response() -> JSONResponse:
    """401 with an OpenAI-style error body."""
    return JSONResponse(
        {
            "error": {
                "message": "missing or invalid API key; send Authorization: Bearer <key>",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        },
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def reject_websocket(websocket: WebSocket) -> None:
    """Refuse a handshake: HTTP 401 where the server supports it, else close code 1008."""
    try:
        await websocket.send_denial_response(unauthorized_response())
    except RuntimeError:
        await websocket.close(code=1008, reason="invalid API key")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
