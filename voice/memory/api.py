"""HTTP routes that let a user see and delete what the server remembers about them.

``GET /v1/memory`` lists the caller's memories (``?character=`` narrows it),
``DELETE /v1/memory/{id}`` deletes one, ``DELETE /v1/users/me`` forgets the caller
entirely (memories and transcripts). Every route needs the caller's API key; another
user's memory id gets the same 404 as an id that never existed.

Deleting also drops the caller's writes still queued for the database (see
:mod:`voice.memory.writer`), so nothing deleted is written back afterwards. While the
database is unreachable every route answers 503 ``database_unavailable`` (the queued
writes are dropped all the same) and the client may retry.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voice.auth import Authenticator, Endpoint, UserHandler
from voice.memory.database import is_unreachable
from voice.memory.store import Memory
from voice.memory.writer import StoreWriter

log = logging.getLogger(__name__)

#: Private data: no cache (browser or proxy) may keep a copy.
NO_STORE = {"Cache-Control": "no-store"}

UNAVAILABLE = "database_unavailable"


def memory_routes(
    writer: StoreWriter,
    authenticator: Authenticator,
    *,
    forget_also: Callable[[str], Awaitable[None]] | None = None,
) -> list[Route]:
    """The memory routes, to be added to the application's routes; ``forget_also(user)``
    deletes what else is kept about a user who asks to be forgotten."""
    store = writer.store

    def authenticated(handler: UserHandler) -> Endpoint:
        """``handler`` for the caller's user; 503 while the database is unreachable."""

        async def reachable(request: Request, user_id: str) -> Response:
            try:
                return await handler(request, user_id)
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                log.warning("memory route: database unreachable (%s)", type(exc).__name__)
                return _error(503, "the memory database is unreachable; retry later", UNAVAILABLE)

        return authenticator.require_user(reachable)

    async def list_memories(request: Request, user_id: str) -> Response:
        character = request.query_params.get("character") or None
        memories = await store.memories(user_id, character)
        body = {"object": "list", "data": [memory_json(memory) for memory in memories]}
        return JSONResponse(body, headers=NO_STORE)

    async def delete_memory(request: Request, user_id: str) -> Response:
        memory_id = request.path_params["memory_id"]
        if not await writer.delete_memory(user_id, memory_id):
            return _error(404, f"no memory with id {memory_id!r}", "memory_not_found")
        return Response(status_code=204, headers=NO_STORE)

    async def forget_me(request: Request, user_id: str) -> Response:
        await writer.forget_user(user_id)
        if forget_also is not None:
            await forget_also(user_id)
        return Response(status_code=204, headers=NO_STORE)

    return [
        Route("/v1/memory", authenticated(list_memories), methods=["GET"]),
        Route("/v1/memory/{memory_id}", authenticated(delete_memory), methods=["DELETE"]),
        Route("/v1/users/me", authenticated(forget_me), methods=["DELETE"]),
    ]


def _error(status: int, message: str, code: str) -> JSONResponse:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return JSONResponse(
        {"error": {"message": message, "type": kind, "code": code}},
        status_code=status,
        headers=NO_STORE,
    )


def memory_json(memory: Memory) -> dict[str, Any]:
    """A memory on the wire; times are Unix seconds, as in the OpenAI API."""
    return {
        "id": memory.id,
        "object": "memory",
        "character": memory.character_id,
        "kind": memory.kind,
        "text": memory.text,
        "created_at": int(memory.created_at.timestamp()),
        "updated_at": int(memory.updated_at.timestamp()),
    }
