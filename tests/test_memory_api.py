"""The memory HTTP routes on a real uvicorn server: listing, deleting, forgetting, auth."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from tests.asgi_helpers import http, serve
from voice.auth import Authenticator
from voice.memory.api import memory_routes
from voice.memory.crypto import MemoryCipher
from voice.memory.database import create_engine, sqlite_url
from voice.memory.store import MemoryStore
from voice.memory.writer import StoreWriter

KEYS = {"alice-key": "alice", "bob-key": "bob"}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MemoryStore]:
    memory = MemoryStore(create_engine(sqlite_url(tmp_path)), MemoryCipher(os.urandom(32)))
    await memory.create()
    yield memory
    await memory.aclose()


@pytest.fixture
async def base(store: MemoryStore) -> AsyncIterator[str]:
    app = Starlette(routes=memory_routes(StoreWriter(store), Authenticator(KEYS)))
    async with serve(app) as url:
        yield url


async def test_lists_only_the_callers_memories(store: MemoryStore, base: str) -> None:
    fact_id = await store.add_fact("alice", "nova", "Alice has a dog called Pixel")
    await store.set_summary("alice", "kai", "Alice talked about tea")
    await store.add_fact("bob", "nova", "Bob likes coffee")

    reply = await http("GET", f"{base}/v1/memory", key="alice-key")
    assert reply.status == 200
    assert reply.headers["cache-control"] == "no-store"
    assert reply.body["object"] == "list"
    by_id = {item["id"]: item for item in reply.body["data"]}
    assert len(by_id) == 2
    fact = by_id[fact_id]
    assert fact["object"] == "memory" and fact["kind"] == "fact" and fact["character"] == "nova"
    assert fact["text"] == "Alice has a dog called Pixel"
    assert isinstance(fact["created_at"], int) and fact["updated_at"] >= fact["created_at"]

    reply = await http("GET", f"{base}/v1/memory?character=kai", key="alice-key")
    assert [item["text"] for item in reply.body["data"]] == ["Alice talked about tea"]
    reply = await http("GET", f"{base}/v1/memory", key="bob-key")
    assert [item["text"] for item in reply.body["data"]] == ["Bob likes coffee"]


async def test_delete_one_memory(store: MemoryStore, base: str) -> None:
    fact_id = await store.add_fact("alice", "nova", "Alice has a dog called Pixel")

    # Bob cannot delete Alice's memory, and cannot tell that it exists.
    stranger = await http("DELETE", f"{base}/v1/memory/{fact_id}", key="bob-key")
    missing = await http("DELETE", f"{base}/v1/memory/no-such-id", key="bob-key")
    assert stranger.status == missing.status == 404
    assert stranger.body["error"]["code"] == missing.body["error"]["code"] == "memory_not_found"
    assert len(await store.memories("alice")) == 1

    reply = await http("DELETE", f"{base}/v1/memory/{fact_id}", key="alice-key")
    assert reply.status == 204 and reply.body is None
    assert await store.memories("alice") == []
    again = await http("DELETE", f"{base}/v1/memory/{fact_id}", key="alice-key")
    assert again.status == 404


async def test_forget_me_deletes_only_the_caller(store: MemoryStore, base: str) -> None:
    await store.add_fact("alice", "nova", "Alice has a dog called Pixel")
    await store.add_transcript("alice", "nova", "s1", "user", "hello")
    await store.add_fact("bob", "nova", "Bob likes coffee")

    reply = await http("DELETE", f"{base}/v1/users/me", key="alice-key")
    assert reply.status == 204
    assert await store.memories("alice") == [] and await store.transcripts("alice") == []
    assert len(await store.memories("bob")) == 1
    listing = await http("GET", f"{base}/v1/memory", key="alice-key")
    assert listing.body["data"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/memory"), ("DELETE", "/v1/memory/x"), ("DELETE", "/v1/users/me")],
)
@pytest.mark.parametrize("key", [None, "wrong-key", ""])
async def test_every_route_needs_a_valid_key(
    store: MemoryStore, base: str, method: str, path: str, key: str | None
) -> None:
    await store.add_fact("alice", "nova", "Alice has a dog called Pixel")
    reply = await http(method, f"{base}{path}", key=key)
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == "Bearer"
    assert reply.body["error"]["code"] == "invalid_api_key"
    assert len(await store.memories("alice")) == 1


async def test_http_takes_the_key_from_the_header_only(store: MemoryStore, base: str) -> None:
    """A key in an HTTP URL would end up in logs and browser history: refused."""
    await store.add_fact("alice", "nova", "Alice has a dog called Pixel")
    reply = await http("GET", f"{base}/v1/memory?api_key=alice-key")
    assert reply.status == 401
