"""Two ``voice serve`` replicas on one PostgreSQL, with the same keys and memory key: a card
uploaded through one is used in a call on the other, a fact told on one is in the next
prompt on the other, and a deletion through one is gone for both. The chat model is the
shared test server's, behind a recording proxy (tests/faulty_chat_endpoint.py) so the
prompts can be read; everything else is real.

Skipped with the reason when PostgreSQL's server binaries are not installed."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ServerProcess, start_server
from tests.faulty_chat_endpoint import FaultyChatEndpoint
from tests.pg_cluster import TempCluster, unavailable_reason
from tests.realtime_helpers import assert_answered, realtime, say_text

pytestmark = pytest.mark.e2e

KEY = "vk_replica_test_alice"
MEMORY_KEY = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="  # 32 bytes, test only
CARD = {
    "spec": "chara_card_v3",
    "spec_version": "3.0",
    "data": {
        "name": "Mira",
        "description": "{{char}} keeps a lighthouse and speaks briefly.",
        "first_mes": "Hello, I am Mira.",
    },
}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"no throwaway PostgreSQL cluster: {reason}")
    cluster = TempCluster()
    try:
        yield cluster.create_database(f"r_{uuid.uuid4().hex[:12]}")
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def chat(server: ServerProcess) -> Iterator[FaultyChatEndpoint]:
    proxy = FaultyChatEndpoint(server.health()["models"]["llm"]["base_url"]).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def replicas(
    server: ServerProcess,
    database: str,
    chat: FaultyChatEndpoint,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    llm = server.health()["models"]["llm"]
    started: list[ServerProcess] = []
    try:
        for name in ("a", "b"):
            tmp = tmp_path_factory.mktemp(f"replica-{name}")
            (tmp / "characters").mkdir()
            started.append(
                start_server(
                    tmp,
                    VOICE_DATABASE_URL=database,
                    VOICE_MEMORY_KEY=MEMORY_KEY,
                    VOICE_API_KEYS=json.dumps({KEY: "alice"}),
                    VOICE_CHARACTERS_DIR=str(tmp / "characters"),  # nothing on disk
                    VOICE_LLM_BASE_URL=chat.base_url,
                    VOICE_LLM_MODEL=llm["model"],
                    VOICE_MEMORY_EVERY_TURNS="1",
                )
            )
        yield started[0], started[1]
    finally:
        for replica in started:
            replica.stop()


def call_http(server: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{server.http}{path}", data=data, method=method,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def facts(server: ServerProcess) -> list[dict[str, Any]]:
    return call_http(server, "GET", "/v1/memory?character=mira")["data"]


def last_prompt(chat: FaultyChatEndpoint) -> str:
    streamed = chat.streams()
    return json.dumps(streamed[-1].request["messages"]) if streamed else ""


async def talk(server: ServerProcess, text: str) -> None:
    async with realtime(server.ws_base, KEY, character="mira") as log:
        greeting = await log.wait_for("response.done", timeout=120)
        await say_text(log, text, max_output_tokens=16)
        done = await log.wait_for("response.done", after=log.index(greeting) + 1, timeout=120)
        assert_answered(done.response)


async def test_two_replicas_share_cards_and_memory(
    replicas: tuple[ServerProcess, ServerProcess], chat: FaultyChatEndpoint
) -> None:
    a, b = replicas
    uploaded = call_http(a, "POST", "/v1/characters?id=mira", CARD)
    assert uploaded["id"] == "mira"
    # Through B, the card A stored: listed, and used in a call at once.
    assert "mira" in [entry["id"] for entry in call_http(b, "GET", "/v1/characters")["data"]]
    await talk(b, "Hello there.")
    assert "lighthouse" in last_prompt(chat)

    await talk(a, "My name is Zed, and I collect old maps.")
    deadline = time.monotonic() + 120
    while not any("Zed" in fact["text"] for fact in facts(b)):
        assert time.monotonic() < deadline, "the fact told on A never reached B's memory"
        await asyncio.sleep(1)
    await talk(b, "What do you know about me?")
    assert "Zed" in last_prompt(chat)

    for fact in facts(b):
        call_http(b, "DELETE", f"/v1/memory/{fact['id']}")
    assert facts(a) == []
    await talk(a, "Good evening.")
    # The session's own turns mention Zed no more: only what memory would have added.
    assert "Zed" not in last_prompt(chat)
