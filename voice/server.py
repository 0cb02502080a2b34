"""HTTP and WebSocket front: ``/v1/realtime`` (Realtime API over WebSocket) and ``/health``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from voice.config import Settings
from voice.engines import Engines
from voice.protocol import ProtocolError, ServerEvent, dump_server_event
from voice.session import RealtimeSession

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


def create_app(settings: Settings, engines: Engines) -> Starlette:
    """The ASGI application, serving sessions on already loaded ``engines``."""
    registry = SessionRegistry()

    async def realtime(websocket: WebSocket) -> None:
        await websocket.accept()
        transport = WebSocketTransport(websocket)
        session = RealtimeSession(engines, settings, transport.emit)
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
                "tts": engines.tts.name,
                "llm": {"base_url": engines.llm.base_url, "model": engines.llm.model},
            },
            "model_queues": {
                "stt": engines.stt.worker.pending,
                "tts": engines.tts.worker.pending,
            },
            "llm_server_pid": engines.llm_server.pid if engines.llm_server else None,
            **registry.summary(),
        }
        return JSONResponse(body)

    app = Starlette(
        routes=[
            Route("/health", health),
            WebSocketRoute("/v1/realtime", realtime),
        ]
    )
    app.state.registry = registry
    return app


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
