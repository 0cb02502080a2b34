"""HTTP, WebSocket and WebRTC front of the server.

``/v1/realtime`` (Realtime API over WebSocket), ``/v1/realtime/calls`` (WebRTC signalling),
the web client at ``/``, and ``/health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from voice.auth import (
    Authenticator,
    accepted_subprotocol,
    reject_websocket,
    unauthorized_response,
)
from voice.characters.api import character_routes
from voice.config import Settings
from voice.engines import Engines
from voice.memory.api import memory_routes
from voice.playout import AudioOutput, Emit
from voice.protocol import ProtocolError, ServerEvent, dump_server_event
from voice.services import Services
from voice.session import RealtimeSession
from voice.webrtc import CallManager, webrtc_routes
from voice.webrtc.call import SessionFactory

log = logging.getLogger(__name__)

#: Messages up to this many times ``max_message_bytes`` are read and answered with an
#: error event; beyond it the WebSocket layer closes the connection (code 1009).
HARD_LIMIT_FACTOR = 4


class SessionRegistry:
    """The live sessions of this server process (for health and metrics only)."""

    def __init__(self) -> None:
        self.sessions: set[RealtimeSession] = set()

    def summary(self) -> dict[str, int]:
        return {
            "active_sessions": len(self.sessions),
            "session_tasks": sum(session.busy_tasks for session in self.sessions),
        }


class WebSocketTransport:
    """Serializes a session's server events onto one WebSocket."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._lock = asyncio.Lock()
        self.closed = False

    async def emit(self, event: ServerEvent) -> None:
        """Send one event; after the client is gone, events are dropped."""
        if self.closed:
            return
        text = dump_server_event(event)
        async with self._lock:
            try:
                await self._websocket.send_text(text)
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True


def create_app(settings: Settings, engines: Engines, services: Services) -> Starlette:
    """The ASGI application, serving sessions on loaded ``engines`` and ``services``."""
    registry = SessionRegistry()
    calls = CallManager(settings, registry.sessions)

    def new_session(
        connection: HTTPConnection, user: str, emit: Emit, output: AudioOutput | None = None
    ) -> RealtimeSession:
        """A session for ``user``; ``?character=`` and ``?user_name=`` pick who talks."""
        return RealtimeSession(
            engines,
            settings,
            emit,
            output=output,
            companions=services.companions,
            user_id=user,
            character=connection.query_params.get("character") or None,
            user_name=connection.query_params.get("user_name") or None,
            metrics=services.metrics,
        )

    def call_factory(request: Request, user: str) -> SessionFactory:
        return lambda emit, output: new_session(request, user, emit, output)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await calls.aclose()  # sessions live in memory only: none outlives the server

    async def realtime(websocket: WebSocket) -> None:
        user = services.auth.user_for_connection(websocket)
        if user is None:
            await reject_websocket(websocket)
            return
        await websocket.accept(subprotocol=accepted_subprotocol(websocket))
        transport = WebSocketTransport(websocket)
        session = new_session(websocket, user, transport.emit)
        registry.sessions.add(session)
        log.info("session %s connected", session.id)
        try:
            async with asyncio.timeout(settings.max_session_s):
                await session.start()
                await _serve_messages(websocket, session, transport, settings.max_message_bytes)
        except TimeoutError:
            await transport.emit(
                ProtocolError(
                    f"session exceeded its maximum length of {settings.max_session_s:.0f} s",
                    code="session_expired",
                ).to_event()
            )
            if websocket.client_state == WebSocketState.CONNECTED:
                await websocket.close(code=1000, reason="session expired")
        finally:
            transport.closed = True
            await session.aclose()
            registry.sessions.discard(session)
            log.info("session %s closed", session.id)

    async def health(request: Request) -> JSONResponse:
        body: dict[str, Any] = {
            "status": "ok",
            "models": {
                "vad": "silero",
                "stt": "ready",
                "tts": engines.voices.names,
                "llm": {"base_url": engines.llm.base_url, "model": engines.llm.model},
            },
            "model_queues": {
                "stt": engines.stt.worker.pending,
                "tts": engines.tts_pending,
            },
            "llm_server_pid": engines.llm_server.pid if engines.llm_server else None,
            **registry.summary(),
            "webrtc_calls": len(calls.calls),
        }
        return JSONResponse(body)

    async def metrics(request: Request) -> Response:
        services.metrics.active_sessions.set(len(registry.sessions))
        return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/metrics", metrics),
            WebSocketRoute("/v1/realtime", realtime),
            *webrtc_routes(
                calls,
                settings,
                identify=services.auth.user_for_connection,
                session_factory=call_factory,
            ),
            *_authenticated(character_routes(services.library), services.auth),
            *memory_routes(services.store, services.auth),
            *_webclient_routes(settings),  # last: it answers every other path
        ],
        lifespan=lifespan,
    )
    app.state.registry = registry
    return app


def _authenticated(routes: list[Route], auth: Authenticator) -> list[Route]:
    """The same routes, answering 401 to requests without a valid API key."""

    def guard(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[..., Any]:
        async def guarded(request: Request) -> Response:
            if auth.user_for_connection(request) is None:
                return unauthorized_response()
            return await endpoint(request)

        return guarded

    return [
        Route(route.path, guard(route.endpoint), methods=route.methods, name=route.name)
        for route in routes
    ]


def _webclient_routes(settings: Settings) -> list[BaseRoute]:
    """The browser client's static files at ``/``, if its folder is found."""
    candidates = [Path(__file__).resolve().parents[1] / "webclient", Path.cwd() / "webclient"]
    folder = settings.webclient_dir or next((p for p in candidates if p.is_dir()), None)
    if folder is None or not folder.is_dir():
        log.warning("web client folder not found (%s); / is not served", folder or candidates[0])
        return []
    return [Mount("/", StaticFiles(directory=folder, html=True), name="webclient")]


async def _serve_messages(
    websocket: WebSocket,
    session: RealtimeSession,
    transport: WebSocketTransport,
    max_bytes: int,
) -> None:
    """Feed client messages to the session until the client disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data: str | bytes | None = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        size = len(data.encode() if isinstance(data, str) else data)
        if size > max_bytes:
            await transport.emit(
                ProtocolError(
                    f"message of {size} bytes exceeds the limit of {max_bytes} bytes; "
                    "send audio in smaller input_audio_buffer.append events",
                    code="message_too_large",
                ).to_event()
            )
            continue
        await session.handle_text(data)
