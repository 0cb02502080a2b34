"""Who is calling: API keys (bearer tokens) mapped to user ids.

A key is accepted from, in this order: an ``Authorization: Bearer <key>`` header, and on
WebSocket handshakes (browsers cannot set headers there) the
``openai-insecure-api-key.<key>`` subprotocol that the OpenAI browser SDK offers, or an
``?api_key=`` query parameter. The first credential presented is the one checked; a
wrong one is not rescued by another.

A client secret (``ek_…``, minted by ``POST /v1/realtime/client_secrets``: see
:mod:`voice.client_secrets`) is accepted in the same places, but only where a Realtime
session is opened or its call is ended (:meth:`Authenticator.identify_caller`); every
other route wants a real key (:meth:`Authenticator.identify`), so a secret handed to a
browser cannot read memories, upload cards or mint more secrets.

Keys are compared as SHA-256 digests with :func:`hmac.compare_digest` against every
configured key, so timing reveals neither a key's prefix nor its length. Wrong keys (and
wrong client secrets) are counted per client address (:mod:`voice.throttle`): past the
allowance, attempts with a key get 429 until the window passes. No log line holds a key
(or a secret), right or wrong.

A request without a key stands for the local user only where :class:`OriginGate`
(:mod:`voice.gate`) admitted it as local (loopback peer, loopback Host, allowed or absent
Origin; see :mod:`voice.origin`). Without the gate in front, nothing is local.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket

from voice.client_secrets import ClientSecrets, Expired, Grant
from voice.origin import Admission, Refusal
from voice.throttle import FailureThrottle

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

LOCAL_USER = "local"
SUBPROTOCOL_KEY_PREFIX = "openai-insecure-api-key."
#: The subprotocol a browser client offers next to its key; the server must select it.
REALTIME_SUBPROTOCOL = "realtime"
#: Where :class:`voice.gate.OriginGate` leaves its :class:`Admission` in the ASGI scope.
ADMISSION_SCOPE_KEY = "voice.admission"

UNAUTHORIZED = Refusal(
    401,
    "invalid_api_key",
    "missing or invalid API key; send Authorization: Bearer <key>",
    "missing or invalid API key",
    headers=(("WWW-Authenticate", "Bearer"),),
)

SECRET_NOT_ACCEPTED = Refusal(
    401,
    "client_secret_not_accepted",
    "client secrets open Realtime sessions only (WebSocket /v1/realtime, POST "
    "/v1/realtime/calls); this route needs an API key: send Authorization: Bearer <key>",
    "a client secret where an API key is needed",
    headers=(("WWW-Authenticate", "Bearer"),),
)


@dataclass(frozen=True)
class Caller:
    """Who opens a session: the user, and the client secret they came with, if any."""

    user: str
    #: The client secret presented (its session configuration); ``None`` for an API key or
    #: the keyless local user.
    grant: Grant | None = None


UserHandler = Callable[[Request, str], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


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
        throttle: FailureThrottle | None = None,
        secrets: ClientSecrets | None = None,
    ) -> None:
        if not keys:
            raise ValueError("an Authenticator needs at least one API key")
        self._digests = [(_digest(key), user) for key, user in keys.items()]
        #: The generated single-user key (for printing at start), or ``None``.
        self.local_key = local_key
        #: Single-user mode only: a request without a key that the Origin gate admitted as
        #: local is the local user (the browser client served at ``/`` has no key to present).
        self.trust_loopback = trust_loopback and local_key is not None
        #: Wrong keys per client address.
        self.throttle = throttle if throttle is not None else FailureThrottle()
        #: Client secrets minted by this process's users.
        self.secrets = secrets if secrets is not None else ClientSecrets()

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

    def identify(self, connection: HTTPConnection) -> str | Refusal:
        """The user of an HTTP request or a WebSocket handshake, or why it is refused.

        Plain HTTP takes the header only: any HTTP client can set it, and a key in a URL
        ends up in logs and browser history. The subprotocol and ``?api_key=`` forms are
        for WebSocket handshakes, where browsers cannot set headers. Refusals: 401 (no or
        a wrong key, or a client secret), 421 (no key, from this machine, under a Host
        that is not a loopback name), 429 (too many wrong keys from this address lately).
        """
        caller = self.identify_caller(connection)
        if isinstance(caller, Refusal):
            return caller
        if caller.grant is not None:
            return SECRET_NOT_ACCEPTED
        return caller.user

    def identify_caller(self, connection: HTTPConnection) -> Caller | Refusal:
        """As :meth:`identify`, also accepting a live client secret (for the routes that
        open a Realtime session or end its call); an expired one gets 401 saying so."""
        websocket = connection.scope["type"] == "websocket"
        authorization = connection.headers.get("authorization")
        query_key = connection.query_params.get("api_key") if websocket else None
        subprotocols = connection.scope.get("subprotocols", ()) if websocket else ()
        key = presented_key(authorization, query_key, subprotocols)
        address = connection.client.host if connection.client else "unknown"
        if key is None:
            admission = connection.scope.get(ADMISSION_SCOPE_KEY)
            if not self.trust_loopback or not isinstance(admission, Admission):
                return UNAUTHORIZED
            if admission.local:
                return Caller(LOCAL_USER)
            if admission.keyless_refusal is not None:
                log_refusal(connection, admission.keyless_refusal)
                return admission.keyless_refusal
            return UNAUTHORIZED
        wait = self.throttle.retry_after(address)
        if wait is not None:
            return _too_many_failures(wait)
        user = self.user_for_key(key)
        if user is not None:
            return Caller(user)
        found = self.secrets.lookup(key)
        if isinstance(found, Grant):
            return Caller(found.user, found)
        if isinstance(found, Expired):  # not a guess: whoever holds it was given it
            log.info("expired client secret from %s for %s", address, connection.scope["path"])
            return _expired(found)
        log.info("wrong API key from %s for %s", address, connection.scope["path"])
        if self.throttle.record_failure(address):
            log.warning(
                "%d wrong API keys from %s within %.0f s: its attempts get 429 for a while",
                self.throttle.max_failures,
                address,
                self.throttle.window_s,
            )
        return UNAUTHORIZED

    def require_user(self, handler: UserHandler) -> Endpoint:
        """An endpoint that calls ``handler(request, user)``, or answers the refusal."""

        async def endpoint(request: Request) -> Response:
            user = self.identify(request)
            if isinstance(user, Refusal):
                return refusal_response(user)
            return await handler(request, user)

        return endpoint


def accepted_subprotocol(websocket: WebSocket) -> str | None:
    """The subprotocol to accept: ``realtime`` when the client offered it, else none.

    Browsers fail a handshake whose response selects none of the offered subprotocols,
    so a client authenticating with ``openai-insecure-api-key.<key>`` needs this one.
    """
    offered = websocket.scope.get("subprotocols", ())
    return REALTIME_SUBPROTOCOL if REALTIME_SUBPROTOCOL in offered else None


def refusal_response(refusal: Refusal) -> JSONResponse:
    """``refusal`` as an OpenAI-style error body."""
    return JSONResponse(
        {
            "error": {
                "message": refusal.message,
                "type": refusal.type,
                "code": refusal.code,
            }
        },
        status_code=refusal.status,
        headers=dict(refusal.headers),
    )


async def reject_websocket(websocket: WebSocket, refusal: Refusal = UNAUTHORIZED) -> None:
    """Refuse a handshake with ``refusal``'s HTTP response where the server supports it,
    else close code 1008 (a policy violation) before accepting."""
    try:
        await websocket.send_denial_response(refusal_response(refusal))
    except RuntimeError:
        await websocket.close(code=1008, reason=refusal.code)


def _expired(expired: Expired) -> Refusal:
    when = datetime.fromtimestamp(expired.expires_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Refusal(
        401,
        "client_secret_expired",
        f"this client secret expired at {when}; mint a new one with "
        "POST /v1/realtime/client_secrets",
        "expired client secret",
        headers=(("WWW-Authenticate", "Bearer"),),
    )


def _too_many_failures(wait: int) -> Refusal:
    return Refusal(
        429,
        "too_many_failed_attempts",
        f"too many wrong API keys from this address; try again in {wait} s",
        "too many wrong API keys",
        headers=(("Retry-After", str(wait)),),
    )


def log_refusal(connection: HTTPConnection, refusal: Refusal) -> None:
    """One log line per refusal: status, reason, path, Origin and Host (never a key)."""
    log.warning(
        "refused %s %s from %s: %s (origin %r, host %r)",
        refusal.status,
        connection.scope["path"],
        connection.client.host if connection.client else "unknown",
        refusal.reason,
        _cut(connection.headers.get("origin")),
        _cut(connection.headers.get("host")),
    )


def _cut(value: str | None, limit: int = 120) -> str | None:
    return value if value is None or len(value) <= limit else value[:limit] + "…"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
