"""HTTP routes that let a user see and delete what the server remembers about them.

``GET /v1/memory`` lists the caller's memories (``?character=`` narrows it),
``DELETE /v1/memory/{id}`` deletes one, ``DELETE /v1/users/me`` forgets the caller
entirely (memories and transcripts). Every route needs the caller's API key; another
user's memory id gets the same 404 as an id that never existed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voice.auth import Authenticator, unauthorized_response
from voice.memory.store import Memory, MemoryStore

#: Private data: no cache (browser or proxy) may keep a copy.
NO_STORE = {"Cache-Control": "no-store"}

UserHandler = Callable[[Request, str], Awaitable[Response]]


def memory_routes(store: MemoryStore, authenticator: Authenticator) -> list[Route]:
    """The memory routes, to be added to the application's routes."""

    def authenticated(handler: UserHandler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            user_id = authenticator.user_for_connection(request)
            if user_id is None:
                return unauthorized_response()
            return await handler(request, user_id)

        return endpoint

    async def list_memories(request: Request, user_id: str) -> Response:
        character = request.query_params.get("character") or None
        memories = await store.memories(user_id, character)
        body = {"object": "list", "data": [memory_json(memory) for memory in memories]}
        return JSONResponse(body, headers=NO_STORE)

    async def delete_memory(request: Request, user_id: str) -> Response:
        memory_id = request.path_params["memory_id"]
        if not await store.delete(user_id, memory_id):
            return JSONResponse(
                {
                    "error": {
                        "message": f"no memory with id {memory_id!r}",
                        "type": "invalid_request_error",
                        "code": "memory_not_found",
                    }
                },
                status_code=404,
                headers=NO_STORE,
            )
        return Response(status_code=204, headers=NO_STORE)

    async def forget_me(request: Request, user_id: str) -> Response:
        await store.delete_user(user_id)
        return Response(status_code=204, headers=NO_STORE)

    return [
        Route("/v1/memory", authenticated(list_memories), methods=["GET"]),
        Route("/v1/memory/{memory_id}", authenticated(delete_memory), methods=["DELETE"]),
        Route("/v1/users/me", authenticated(forget_me), methods=["DELETE"]),
    ]


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
