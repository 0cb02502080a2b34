"""The Origin and Host check in front of every route, HTTP and WebSocket alike.

:class:`OriginGate` wraps the whole ASGI application: it asks :mod:`voice.origin` about
each request and answers a refusal itself (a WebSocket handshake gets the HTTP denial
response, never an accepted-then-closed socket), or passes the request on with its
:class:`~voice.origin.Admission` in the scope, where :meth:`voice.auth.Authenticator.identify`
reads whether a request without a key may be the local user.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from voice.auth import ADMISSION_SCOPE_KEY, log_refusal, refusal_response, reject_websocket
from voice.origin import OriginPolicy, Refusal

#: Headers a reverse proxy adds: a request with any of them is not a local one.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")


class OriginGate:
    """ASGI middleware: refuse disallowed Origins, record the Admission of the rest."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        verdict = self.policy.admit(
            scheme=scope.get("scheme", "http"),
            host=_joined(connection, "host"),
            origin=_joined(connection, "origin"),
            client=connection.client.host if connection.client else None,
            forwarded=any(name in connection.headers for name in FORWARDING_HEADERS),
        )
        if isinstance(verdict, Refusal):
            log_refusal(connection, verdict)
            if scope["type"] == "websocket":
                await reject_websocket(WebSocket(scope, receive, send), verdict)
            else:
                await refusal_response(verdict)(scope, receive, send)
            return
        await self.app({**scope, ADMISSION_SCOPE_KEY: verdict}, receive, send)


def _joined(connection: HTTPConnection, name: str) -> str | None:
    """A header's value; repeated headers joined with commas (no valid Host or Origin)."""
    values = connection.headers.getlist(name)
    return ", ".join(values) if values else None
