"""HTTP, WebSocket and WebRTC front of the server.

``/v1/realtime`` (Realtime API over WebSocket; with ``?call_id=`` a sideband connection to a
WebRTC call), ``/v1/realtime/calls`` (WebRTC signalling), ``/v1/realtime/client_secrets``,
the web client at ``/``, and ``/health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from voice.audio_api import audio_routes
from voice.auth import Authenticator, accepted_subprotocol, log_refusal, reject_websocket
from voice.capacity import Capacity, Slot
from voice.characters.api import character_routes
from voice.client_messages import handle_client_message
from voice.client_secret_api import client_secret_routes
from voice.clock import Clock, LoopClock
from voice.config import Settings
from voice.engines import Engines
from voice.gate import OriginGate
from voice.memory.api import memory_routes
from voice.origin import OriginPolicy, Refusal
from voice.outbox import Outbox
from voice.playout import AudioOutput
from voice.process_stats import process_stats
from voice.protocol import ProtocolError
from voice.services import Services
from voice.session import RealtimeSession
from voice.session_start import ConflictingStart, SessionChecker, SessionStart, session_start
from voice.shutdown import GracefulShutdown, shutdown_notice
from voice.sideband import serve_sideband
from voice.stage_cpu import stage_cpu
from voice.tasks import cancel_and_wait
from voice.webrtc import CallManager, webrtc_routes
from voice.webrtc.call import SessionFactory
from voice.wire import Send

log = logging.getLogger(__name__)

#: Messages up to this many times ``max_message_bytes`` are read and answered with an
#: error event; beyond it the WebSocket layer closes the connection (code 1009).
HARD_LIMIT_FACTOR = 4
#: Closing a WebSocket waits at most this long (a client that stopped reading never takes
#: the close frame).
CLOSE_TIMEOUT_S = 5.0


class SessionRegistry:
    """The live sessions of this server process (for health and metrics only)."""

    def __init__(self) -> None:
        self.sessions: set[RealtimeSession] = set()

    def summary(self) -> dict[str, int]:
        return {
            "active_sessions": len(self.sessions),
            "session_tasks": sum(session.busy_tasks for session in self.sessions),
        }


def create_app(settings: Settings, engines: Engines, services: Services) -> Starlette:
    """The ASGI application, serving sessions on loaded ``engines`` and ``services``."""
    registry = SessionRegistry()
    calls = CallManager(settings, registry.sessions)
    checker = SessionChecker(
        settings, engines, lambda: [entry.id for entry in services.library.list()]
    )
    capacity = Capacity(settings.max_sessions, settings.max_sessions_per_user)
    shutdown = GracefulShutdown(
        capacity,
        settings.shutdown_drain_s,
        lambda notice: calls.aclose(notice, reason="server shutting down"),
    )

    def new_session(
        start: SessionStart,
        send: Send,
        clock: Clock,
        output: AudioOutput | None = None,
    ) -> RealtimeSession:
        """A session as ``start`` says (``?character=``, ``?user_name=``, ``?intent=``, and
        the configuration of the client secret or of the call)."""
        return RealtimeSession(
            engines,
            settings,
            send,
            clock,
            output=output,
            companions=services.companions,
            user_id=start.user,
            character=start.character,
            user_name=start.user_name,
            metrics=services.metrics,
            kind=start.kind,  # transcription: VAD and transcripts, no replies
            usage=services.usage.meter(start.user),
        )

    def call_factory(start: SessionStart) -> SessionFactory:
        return lambda send, output, clock: new_session(start, send, clock, output)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await calls.aclose()  # sessions live in memory only: none outlives the server

    async def realtime(websocket: WebSocket) -> None:
        caller = services.auth.identify_caller(websocket)
        if isinstance(caller, Refusal):
            await reject_websocket(websocket, caller)
            return
        if "call_id" in websocket.query_params:  # a sideband: joins a call, starts nothing
            await serve_sideband(websocket, calls, caller.user, settings)
            return
        given = [caller.grant.session] if caller.grant and caller.grant.session else []
        try:
            start = session_start(caller.user, websocket.query_params, given)
        except ConflictingStart as conflict:
            await reject_websocket(websocket, Refusal(400, "invalid_request_error", str(conflict),
                                                      "conflicting session kind"))  # fmt: skip
            return
        slot = await admit(caller.user)
        if isinstance(slot, Refusal):
            log_refusal(websocket, slot)
            await reject_websocket(websocket, slot)
            return
        try:
            await serve_session(websocket, start)
        finally:
            slot.release()

    async def admit(user: str) -> Slot | Refusal:
        """A capacity slot for a new call of ``user``, unless they are past a daily limit."""
        refusal = await services.usage.admit(user)
        if refusal is not None:
            return refusal
        return await capacity.admit_within(user, settings.admit_wait_ms / 1000)

    async def serve_session(websocket: WebSocket, start: SessionStart) -> None:
        await websocket.accept(subprotocol=accepted_subprotocol(websocket))
        not_reading = asyncio.Event()
        outbox = Outbox(
            websocket.send_text, max_bytes=settings.max_send_queue_bytes,
            on_overflow=not_reading.set,
        )  # fmt: skip
        session = new_session(start, outbox.send, LoopClock())
        outbox.name = session.id
        outbox.start()
        registry.sessions.add(session)
        log.info("session %s connected", session.id)
        close: tuple[int, str] | None = None
        try:
            async with asyncio.timeout(settings.max_session_s):
                await session.start()
                for update in start.updates:  # the client secret's session configuration
                    await handle_client_message(
                        session, update, outbox.send, max_bytes=settings.max_message_bytes
                    )
                await _first_of(
                    _serve_messages(websocket, session, outbox, settings.max_message_bytes),
                    not_reading.wait(),
                    shutdown.ending.wait(),
                    session.allowance.ending.wait(),
                )
            if outbox.overflowed:
                close = (1008, "send queue full: the client stopped reading its events")
            elif session.allowance.ending.is_set():
                close = (1000, session.allowance.end_reason)
            elif shutdown.ending.is_set():
                outbox.send(shutdown_notice())
                close = (1001, "server shutting down")
        except TimeoutError:
            outbox.send(
                ProtocolError(
                    f"session exceeded its maximum length of {settings.max_session_s:.0f} s",
                    code="session_expired",
                ).to_event()
            )
            close = (1000, "session expired")
        finally:
            await session.aclose()
            registry.sessions.discard(session)  # freed; the socket may take longer to close
            if close is not None:
                await outbox.drain(timeout=2.0)
            await outbox.aclose()
            if close is not None and websocket.client_state == WebSocketState.CONNECTED:
                with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect, TimeoutError):
                    async with asyncio.timeout(CLOSE_TIMEOUT_S):
                        await websocket.close(code=close[0], reason=close[1])
            log.info("session %s closed", session.id)

    async def health(request: Request) -> JSONResponse:
        llm_server = engines.llm_server
        body: dict[str, Any] = {
            # "degraded" while the embedded LLM server is down (being restarted)
            "status": "ok" if llm_server is None or llm_server.state == "running" else "degraded",
            "models": {
                "vad": "silero",
                "stt": "ready",
                "tts": engines.voices.names,
                "llm": {
                    "base_url": engines.llm.base_url,
                    "model": engines.llm.model,
                    "endpoints": engines.llm.endpoints(),
                },
            },
            "model_queues": {
                "stt": engines.stt.worker.pending,
                "tts": engines.tts_pending,
            },
            "llm_server_pid": llm_server.pid if llm_server else None,
            "llm_server": llm_server.status() if llm_server else None,
            **registry.summary(),
            "webrtc_calls": len(calls.calls),
            "process": {
                **process_stats(),
                "cpu_s": stage_cpu(llm_server.pids if llm_server else ()),
            },
        }
        return JSONResponse(body)

    async def metrics(request: Request) -> Response:
        services.metrics.active_sessions.set(len(registry.sessions))
        return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    def count(route: str) -> None:
        services.metrics.audio_api_requests.labels(route).inc()

    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/metrics", metrics),
            WebSocketRoute("/v1/realtime", realtime),
            *webrtc_routes(
                calls,
                settings,
                identify=services.auth.identify_caller,
                session_factory=call_factory,
                checker=checker,
                admit=admit,
            ),
            *client_secret_routes(
                services.auth, checker, max_body_bytes=settings.max_message_bytes
            ),
            *_authenticated(character_routes(services.library), services.auth),
            *_authenticated(audio_routes(engines, count), services.auth),
            *memory_routes(services.writer, services.auth, forget_also=services.usage.store.forget),
            *services.usage.routes(services.auth),
            *_webclient_routes(settings),  # last: it answers every other path
        ],
        middleware=[Middleware(OriginGate, policy=OriginPolicy(settings.allowed_origins))],
        lifespan=lifespan,
    )
    app.state.registry = registry
    app.state.shutdown = shutdown
    return app


def _authenticated(routes: list[Route], auth: Authenticator) -> list[Route]:
    """The same routes, refusing requests without a valid API key (401, 421 or 429)."""

    def guard(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[..., Any]:
        return auth.require_user(lambda request, _user: endpoint(request))

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


async def _first_of(*coroutines: Coroutine[Any, Any, object]) -> None:
    """Run ``coroutines`` until the first one ends; cancel the rest (and them, if cancelled)."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            await cancel_and_wait(task)
    for task in done:
        task.result()  # a failure in the first one to end is the caller's


async def _serve_messages(
    websocket: WebSocket, session: RealtimeSession, outbox: Outbox, max_bytes: int
) -> None:
    """Feed client messages to the session until the client disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data: str | bytes | None = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        await handle_client_message(session, data, outbox.send, max_bytes=max_bytes)
