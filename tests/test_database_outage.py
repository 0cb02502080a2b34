"""A real PostgreSQL, really stopped and started during the test (a throwaway cluster of
its own: tests/pg_cluster.py). Writes made during the outage land once it is back, past
the bound the loss is counted, deletion drops queued writes, a session starts without
memory, and ``voice serve`` refuses an unreachable database with one clear line.

Skipped with the reason when PostgreSQL's server binaries are not installed."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from tests.asgi_helpers import http, serve
from tests.conftest import REPO, ServerProcess, serve_until_exit, start_server
from tests.pg_cluster import PASSWORD, TempCluster, unavailable_reason
from tests.realtime_helpers import assert_answered, realtime, say_text
from tests.test_memory_extraction import ScriptedLLM
from tests.test_memory_writer import until
from voice.auth import Authenticator
from voice.characters.library import CharacterLibrary
from voice.companion import Companions
from voice.llm_server import free_port
from voice.memory.api import memory_routes
from voice.memory.crypto import KEY_FILE, MemoryCipher, decode_key
from voice.memory.database import create_engine
from voice.memory.recorder import Recollection, SessionMemory
from voice.memory.store import MemoryStore
from voice.memory.writer import StoreWriter
from voice.metrics import Metrics

KEY = os.urandom(32)
BACKOFF = (0.05, 0.5)


@pytest.fixture(scope="module")
def cluster() -> Iterator[TempCluster]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"no throwaway PostgreSQL cluster: {reason}")
    made = TempCluster()
    yield made
    made.destroy()


@pytest.fixture
def database_url(cluster: TempCluster) -> Iterator[str]:
    """A fresh database in the running cluster; the cluster is running again afterwards."""
    if not cluster.running():
        cluster.start()
    yield cluster.create_database(f"t_{uuid.uuid4().hex[:12]}")
    if not cluster.running():
        cluster.start()


def open_store(url: str, key: bytes = KEY) -> MemoryStore:
    return MemoryStore(create_engine(url, connect_timeout_s=2), MemoryCipher(key))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[MemoryStore]:
    memory = open_store(database_url)
    await memory.create()
    yield memory
    await memory.aclose()


async def stop(cluster: TempCluster) -> None:
    await asyncio.to_thread(cluster.stop)


async def start(cluster: TempCluster) -> None:
    await asyncio.to_thread(cluster.start)


# --- the write-behind on a real database --------------------------------------------


async def test_writes_made_during_an_outage_land_when_postgres_is_back(
    cluster: TempCluster, store: MemoryStore, database_url: str
) -> None:
    writer = StoreWriter(store, backoff_s=BACKOFF)
    llm = ScriptedLLM("Sam's dog Pixel is a beagle.", "- The user has a dog called Pixel.")
    memory = SessionMemory(
        llm, writer, user_id="sam", character_id="maren", session_id="s1", every_turns=2
    )
    await store.set_summary("sam", "maren", "Sam has a dog.")
    assert await memory.recall() == Recollection("Sam has a dog.", [])

    await stop(cluster)
    said = [
        ("user", "My dog is called Pixel."),
        ("assistant", "Pixel is a lovely name."),
        ("user", "Pixel is a beagle."),
    ]
    for role, text in said:
        await memory.add_turn(role, text)  # returns at once: nothing waits for the database
    await until(lambda: not memory.updating and writer.failing, timeout=30)
    assert writer.pending == 5  # three lines, the summary and a fact
    assert len(llm.calls) == 2

    await start(cluster)
    await until(lambda: writer.pending == 0, timeout=30)
    await memory.aclose()
    await writer.aclose()
    assert len(llm.calls) == 2, "the model is not asked again for the retries"
    assert writer.retries > 0 and not writer.lost

    reader = open_store(database_url)  # a new engine: what is really in the database
    try:
        lines = await reader.transcripts("sam", session_id="s1")
        assert [(line.role, line.text) for line in lines] == said
        assert await reader.summary("sam", "maren") == "Sam's dog Pixel is a beagle."
        facts = [fact.text for fact in await reader.facts("sam", "maren")]
        assert facts == ["The user has a dog called Pixel."]
    finally:
        await reader.aclose()


async def test_past_the_bound_the_loss_is_counted_and_the_rest_lands(
    cluster: TempCluster, store: MemoryStore, database_url: str
) -> None:
    metrics = Metrics()
    writer = StoreWriter(
        store,
        max_pending=3,
        backoff_s=BACKOFF,
        on_lost=metrics.count_lost_writes,
        on_retry=metrics.memory_write_retries.inc,
    )
    metrics.memory_writes_pending.set_function(lambda: writer.pending)
    await stop(cluster)
    for i in range(5):
        writer.add_transcript("sam", "maren", "s1", "user", f"line {i}")
    await until(lambda: writer.failing, timeout=30)

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    lost = {"kind": "transcript", "reason": "queue_full"}
    assert sample("voice_memory_writes_lost_total", **lost) == 2
    assert sample("voice_memory_writes_pending") == 3
    assert (sample("voice_memory_write_retries_total") or 0) >= 1

    await start(cluster)
    await until(lambda: writer.pending == 0, timeout=30)
    await writer.aclose()
    reader = open_store(database_url)
    try:
        assert [line.text for line in await reader.transcripts("sam")] == [
            "line 2",
            "line 3",
            "line 4",
        ]
    finally:
        await reader.aclose()


async def test_shutdown_during_an_outage_counts_what_was_not_written(
    cluster: TempCluster, store: MemoryStore
) -> None:
    writer = StoreWriter(store, backoff_s=BACKOFF)
    await stop(cluster)
    writer.add_transcript("sam", "maren", "s1", "user", "one")
    writer.add_transcript("sam", "maren", "s1", "assistant", "two")
    await writer.aclose(timeout=0.3)
    assert writer.lost == {("transcript", "shutdown"): 2}


async def test_deleting_a_user_during_an_outage_drops_their_queued_writes(
    cluster: TempCluster, store: MemoryStore, database_url: str
) -> None:
    await store.add_fact("alice", "maren", "Alice has a spare key under the flowerpot.")
    writer = StoreWriter(store, backoff_s=BACKOFF)
    app = Starlette(routes=memory_routes(writer, Authenticator({"a": "alice", "b": "bob"})))
    async with serve(app) as base:
        await stop(cluster)
        writer.add_transcript("alice", "maren", "s1", "user", "Alice's secret line.")
        writer.add_transcript("bob", "maren", "s2", "user", "Bob's line.")
        await until(lambda: writer.failing, timeout=30)

        reply = await http("DELETE", f"{base}/v1/users/me", key="a")
        assert reply.status == 503
        assert reply.body["error"]["code"] == "database_unavailable"
        assert writer.pending == 1  # only Bob's line is left to write
        listing = await http("GET", f"{base}/v1/memory", key="a")
        assert listing.status == 503

        await start(cluster)
        await until(lambda: writer.pending == 0, timeout=30)
        assert (await http("DELETE", f"{base}/v1/users/me", key="a")).status == 204
    await writer.aclose()

    reader = open_store(database_url)
    try:
        assert await reader.transcripts("alice") == [] and await reader.memories("alice") == []
        assert [line.text for line in await reader.transcripts("bob")] == ["Bob's line."]
    finally:
        await reader.aclose()


async def test_a_session_starts_without_memory_while_postgres_is_down(
    cluster: TempCluster, store: MemoryStore
) -> None:
    await store.add_fact("sam", "maren", "Sam has a dog called Pixel.")
    writer = StoreWriter(store, backoff_s=BACKOFF)
    companions = Companions(
        CharacterLibrary(REPO / "characters"), store, ScriptedLLM(), writer=writer
    )
    up = await companions.open("maren", user_id="sam", session_id="s1")
    assert up.recollection.facts == ["Sam has a dog called Pixel."]
    await up.aclose()

    await stop(cluster)
    async with asyncio.timeout(20):  # refused at once; at worst the read timeout
        down = await companions.open("maren", user_id="sam", session_id="s2")
    assert down.recollection == Recollection(None, [])
    assert down.greeting()
    await down.record("assistant", down.greeting() or "")
    await down.aclose()  # returns: the line waits in the writer
    assert writer.pending == 1
    await start(cluster)
    await until(lambda: writer.pending == 0, timeout=30)
    assert [line.session_id for line in await store.transcripts("sam")] == ["s2"]
    await writer.aclose()


# --- start-up with an unreachable database --------------------------------------------


def serve_refused(tmp: Path, url: str, *prefix: str, **env: str) -> str:
    """Run ``voice serve`` on ``url``: it must exit non-zero with one clear line."""
    returncode, log = serve_until_exit(tmp, 120, prefix=prefix, VOICE_DATABASE_URL=url, **env)
    assert returncode == 1, log
    assert "Traceback" not in log, log
    assert PASSWORD not in log and "wrong-password" not in log, log
    assert "loading models" not in log, "the database is checked before the models load"
    lines = [line for line in log.splitlines() if line.startswith("voice serve: ")]
    assert len(lines) == 1, log
    assert "check VOICE_DATABASE_URL" in lines[0]
    return lines[0]


def test_serve_refuses_a_closed_port(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    line = serve_refused(tmp_path, f"postgresql+asyncpg://voice:{PASSWORD}@127.0.0.1:{port}/x")
    assert f"PostgreSQL at 127.0.0.1:{port}" in line and "connection refused" in line, line


def test_serve_refuses_a_wrong_password(tmp_path: Path, cluster: TempCluster) -> None:
    if not cluster.running():
        cluster.start()
    line = serve_refused(tmp_path, cluster.url_for("voice", password="wrong-password"))
    assert f"127.0.0.1:{cluster.port}" in line, line
    assert 'password authentication failed for user "voice"' in line, line


def test_serve_refuses_a_database_that_does_not_answer(tmp_path: Path) -> None:
    """A port that accepts connections but never answers: bounded by the connect timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        line = serve_refused(
            tmp_path,
            f"postgresql+asyncpg://voice:{PASSWORD}@127.0.0.1:{port}/x",
            VOICE_DATABASE_CONNECT_TIMEOUT_S="1",
        )
    assert "no answer within 1 s" in line, line


def test_serve_refuses_an_unknown_host(tmp_path: Path) -> None:
    """Name resolution fails inside a network namespace with only loopback, so the test
    sends no query to the machine's resolver."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-n", "true"], check=False).returncode:
        pytest.skip("needs unshare -n (util-linux, as root) for a network namespace")
    line = serve_refused(
        tmp_path, f"postgresql+asyncpg://voice:{PASSWORD}@db.example.invalid/x", unshare, "-n"
    )
    assert "PostgreSQL at db.example.invalid:5432" in line and "unknown host" in line, line


# --- end to end: a real server, a real client, PostgreSQL stopped during the call ----------


def metric(server_http: str, name: str) -> float:
    """Sum of the samples named ``name`` on the server's /metrics page."""
    with urllib.request.urlopen(f"{server_http}/metrics", timeout=10) as response:
        page = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith(name) and line[len(name)] in " {"
    )


async def settled(server: ServerProcess, timeout: float) -> None:
    """Wait until the server has closed its sessions (memory folded in) and stored all."""

    def idle() -> bool:
        health = server.health()
        return health["active_sessions"] == 0 and metric(server.http, PENDING) == 0

    async with asyncio.timeout(timeout):
        while not await asyncio.to_thread(idle):  # noqa: ASYNC110 (another process)
            await asyncio.sleep(0.5)


PENDING = "voice_memory_writes_pending"
#: Generous bounds: on a loaded 2-core machine the model's prompt (a character card) and
#: the greeting's speech can take a minute or more.
RESPONSE_TIMEOUT = 300


@pytest.mark.e2e
async def test_a_call_goes_on_through_an_outage_and_its_transcript_lands(
    cluster: TempCluster, database_url: str, tmp_path: Path
) -> None:
    server = start_server(
        tmp_path, VOICE_DATABASE_URL=database_url, VOICE_DATABASE_CONNECT_TIMEOUT_S="2"
    )
    said = ["Tell me about the lighthouse.", "What do you see from up there at night?"]
    try:
        async with realtime(server.ws_base, server.api_key, character="maren") as call:
            await call.wait_for("response.done", timeout=RESPONSE_TIMEOUT)  # her greeting
            # Short text replies: this test is about the database, not the voice.
            await call.connection.session.update(
                session={"type": "realtime", "output_modalities": ["text"], "max_output_tokens": 16}
            )
            await call.wait_for("session.updated", timeout=30)
            await stop(cluster)
            for text in said:
                after = len(call.events)
                await say_text(call, text)
                done = await call.wait_for("response.done", after=after, timeout=RESPONSE_TIMEOUT)
                assert_answered(done.response)
                assert done.response.output[0].content[0].text.strip(), done
            assert metric(server.http, PENDING) > 0  # the transcript waits for the database

            # A call that starts during the outage starts too, without memory.
            async with realtime(server.ws_base, server.api_key, character="maren") as second:
                greeting = await second.wait_for("response.done", timeout=RESPONSE_TIMEOUT)
                assert_answered(greeting.response)
            await start(cluster)
        await settled(server, timeout=RESPONSE_TIMEOUT)

        # The server's own key, from its data folder, decrypts what it wrote.
        reader = open_store(database_url, decode_key((tmp_path / "data" / KEY_FILE).read_text()))
        try:
            lines = await reader.transcripts("local", character_id="maren")
        finally:
            await reader.aclose()
        assert [line.text for line in lines if line.role == "user"] == said
        first_call = [line.role for line in lines if line.session_id == lines[0].session_id]
        assert first_call == ["assistant", "user", "assistant", "user", "assistant"], lines
        assert len({line.session_id for line in lines}) == 2  # the second call's greeting
        assert metric(server.http, "voice_memory_write_retries_total") > 0
        assert metric(server.http, "voice_memory_writes_lost_total") == 0
    finally:
        returncode = server.stop()
    log = server.log()
    assert returncode == 0, log
    assert "memory database unreachable" in log and "starting without memory" in log
    assert "memory database reachable again" in log
    assert all(text not in log for text in said), "transcripts are never logged"
