"""MemoryStore on SQLite and real PostgreSQL: isolation, real deletion, encryption at rest."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from voice.config import Settings
from voice.memory.crypto import (
    DecryptionError,
    MemoryCipher,
    decode_key,
    generate_key,
    load_memory_key,
)
from voice.memory.database import create_engine, sqlite_url
from voice.memory.store import MemoryStore, normalize_text
from voice.services import memory_store

PG_ENV = "VOICE_TEST_DATABASE_URL"
ALICE_SECRET = "Alice keeps her spare key under the blue flowerpot"


class FakeClock:
    """Injected time: starts at a fixed instant and moves only when told."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A fresh database: a SQLite file, or a throwaway schema in ``$VOICE_TEST_DATABASE_URL``."""
    if request.param == "sqlite":
        sqlite = create_engine(sqlite_url(tmp_path))
        yield sqlite
        await sqlite.dispose()
        return
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(
            f"PostgreSQL tests need {PG_ENV} (.ci/run sets it), e.g. "
            "postgresql+asyncpg://voice:voice@127.0.0.1:5432/voice_test"
        )
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(url)
    async with admin.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    postgres = create_async_engine(url, connect_args={"server_settings": {"search_path": schema}})
    try:
        yield postgres
    finally:
        await postgres.dispose()
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cipher() -> MemoryCipher:
    return MemoryCipher(os.urandom(32))


@pytest.fixture
async def store(
    engine: AsyncEngine, cipher: MemoryCipher, clock: FakeClock
) -> AsyncIterator[MemoryStore]:
    memory = MemoryStore(engine, cipher, clock=clock)
    await memory.create()
    yield memory
    await memory.aclose()


def database_files(folder: Path) -> dict[str, bytes]:
    """The SQLite database and any journal or WAL beside it, by name."""
    return {path.name: path.read_bytes() for path in sorted(folder.glob("voice.db*"))}


async def count(engine: AsyncEngine, sql: str, **params: object) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(sql), params)).scalar_one())


async def column_bytes(engine: AsyncEngine, table: str) -> list[bytes]:
    async with engine.connect() as connection:
        rows = await connection.execute(text(f"SELECT text_enc FROM {table}"))
        return [bytes(row[0]) for row in rows]


# --- memories ---------------------------------------------------------------------------


async def test_facts_and_summary_round_trip(store: MemoryStore, clock: FakeClock) -> None:
    first = await store.add_fact("alice", "nova", "Alice has a dog called Pixel.")
    clock.advance(seconds=1)
    second = await store.add_fact("alice", "nova", "Alice works as a nurse.")
    assert first and second and first != second

    facts = await store.facts("alice", "nova")
    assert [fact.text for fact in facts] == [
        "Alice works as a nurse.",
        "Alice has a dog called Pixel.",
    ]
    assert facts[0].kind == "fact" and facts[0].created_at == clock.now
    assert [fact.text for fact in await store.facts("alice", "nova", limit=1)] == [
        "Alice works as a nurse."
    ]

    assert await store.summary("alice", "nova") is None
    await store.set_summary("alice", "nova", "They talked about Pixel.")
    clock.advance(seconds=1)
    await store.set_summary("alice", "nova", "They talked about Pixel and nursing.")
    assert await store.summary("alice", "nova") == "They talked about Pixel and nursing."

    memories = await store.memories("alice")
    assert [m.kind for m in memories] == ["summary", "fact", "fact"]
    summary = memories[0]
    assert summary.updated_at == clock.now and summary.created_at < summary.updated_at
    assert await store.memories("alice", "other-character") == []


async def test_duplicate_facts_are_skipped(store: MemoryStore) -> None:
    assert await store.add_fact("alice", "nova", "Alice likes jazz.")
    assert await store.add_fact("alice", "nova", "  alice LIKES   jazz ") is None
    assert await store.add_fact("alice", "nova", "Alice likes jazz!") is None
    assert await store.add_fact("alice", "kai", "Alice likes jazz.")  # another character
    assert await store.add_fact("bob", "nova", "Alice likes jazz.")  # another user
    assert len(await store.facts("alice", "nova")) == 1
    assert normalize_text("Émile\u2019s  DOG!") == normalize_text("émile s dog")


async def test_invalid_text_is_refused(store: MemoryStore) -> None:
    with pytest.raises(ValueError, match="empty"):
        await store.add_fact("alice", "nova", "   ")
    with pytest.raises(ValueError, match="exceeds"):
        await store.add_fact("alice", "nova", "x" * 501)
    with pytest.raises(ValueError, match="empty"):
        await store.set_summary("alice", "nova", "")


async def test_facts_are_bounded_per_character(
    engine: AsyncEngine, cipher: MemoryCipher, clock: FakeClock
) -> None:
    store = MemoryStore(engine, cipher, max_facts=3, clock=clock)
    await store.create()
    for number in range(5):
        clock.advance(seconds=1)
        await store.add_fact("alice", "nova", f"fact number {number}")
    assert [f.text for f in await store.facts("alice", "nova")] == [
        "fact number 4",
        "fact number 3",
        "fact number 2",
    ]
    assert await count(engine, "SELECT count(*) FROM memories") == 3


# --- isolation --------------------------------------------------------------------------


async def test_users_never_see_or_delete_each_others_rows(
    store: MemoryStore, engine: AsyncEngine
) -> None:
    fact_id = await store.add_fact("alice", "nova", ALICE_SECRET)
    assert fact_id is not None
    await store.set_summary("alice", "nova", "Alice summary")
    await store.add_transcript("alice", "nova", "s1", "user", "hello from alice")

    assert await store.memories("bob") == []
    assert await store.facts("bob", "nova") == []
    assert await store.summary("bob", "nova") is None
    assert await store.transcripts("bob") == []
    assert await store.transcripts("bob", session_id="s1") == []

    # Bob knows Alice's memory id: deleting it looks exactly like deleting a missing id.
    assert await store.delete("bob", fact_id) is None
    assert await store.delete("bob", str(uuid.uuid4())) is None
    assert await store.delete_user("bob") == 0
    assert len(await store.memories("alice")) == 2
    assert len(await store.transcripts("alice")) == 1

    # Bob's own summary for the same character is a separate row.
    await store.set_summary("bob", "nova", "Bob summary")
    assert await store.summary("alice", "nova") == "Alice summary"
    assert await count(engine, "SELECT count(*) FROM memories WHERE kind = 'summary'") == 2


async def test_ciphertext_is_bound_to_its_user(store: MemoryStore, engine: AsyncEngine) -> None:
    """A ciphertext moved into another user's row (by someone with DB access) does not open."""
    alice_id = await store.add_fact("alice", "nova", ALICE_SECRET)
    bob_id = await store.add_fact("bob", "nova", "Bob's own fact")
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE memories SET text_enc = "
                "(SELECT text_enc FROM memories WHERE id = :alice) WHERE id = :bob"
            ),
            {"alice": alice_id, "bob": bob_id},
        )
    with pytest.raises(DecryptionError):
        await store.memories("bob")


# --- deletion ---------------------------------------------------------------------------


async def test_delete_removes_the_row(store: MemoryStore, engine: AsyncEngine) -> None:
    fact_id = await store.add_fact("alice", "nova", ALICE_SECRET)
    kept = await store.add_fact("alice", "nova", "Alice likes tea")
    assert await store.delete("alice", fact_id or "") == "nova"  # the memory's character
    assert await store.delete("alice", fact_id or "") is None
    assert await count(engine, "SELECT count(*) FROM memories WHERE id = :id", id=fact_id) == 0
    assert [m.id for m in await store.memories("alice")] == [kept]


async def test_delete_user_removes_everything(store: MemoryStore, engine: AsyncEngine) -> None:
    await store.add_fact("alice", "nova", ALICE_SECRET)
    await store.add_fact("alice", "kai", "Alice likes tea")
    await store.set_summary("alice", "nova", "Alice summary")
    await store.add_transcript("alice", "nova", "s1", "user", "hello")
    await store.add_transcript("alice", "nova", "s1", "assistant", "hi Alice")
    await store.add_fact("bob", "nova", "Bob likes coffee")
    await store.add_transcript("bob", "nova", "s2", "user", "hello from bob")

    assert await store.delete_user("alice") == 5
    for table in ("memories", "transcripts"):
        sql = f"SELECT count(*) FROM {table} WHERE user_id = :user"
        assert await count(engine, sql, user="alice") == 0
        assert await count(engine, sql, user="bob") == 1
    assert await store.memories("alice") == [] and await store.transcripts("alice") == []


async def sqlite_leftovers(folder: Path, cipher: MemoryCipher, *, force_off: bool) -> int:
    """How many of the rows' ciphertexts are still in the SQLite file after ``delete_user``."""
    engine = create_engine(sqlite_url(folder))
    if force_off:  # runs after the store's own connect hook: the control experiment
        event.listen(engine.sync_engine, "connect", _secure_delete_off)
    store = MemoryStore(engine, cipher)
    await store.create()
    async with engine.connect() as connection:
        pragma = (await connection.execute(text("PRAGMA secure_delete"))).scalar_one()
        assert pragma == (0 if force_off else 1)
    for number in range(20):
        await store.add_fact("alice", "nova", f"{ALICE_SECRET} #{number}")
        await store.add_transcript("alice", "nova", "s1", "user", f"{ALICE_SECRET} said {number}")
    await store.add_fact("bob", "nova", "Bob likes coffee")
    sealed = await column_bytes(engine, "memories") + await column_bytes(engine, "transcripts")
    await store.delete_user("alice")
    await store.aclose()
    files = database_files(folder)
    assert list(files) == ["voice.db"]  # no journal or WAL left behind
    assert ALICE_SECRET.encode() not in files["voice.db"]
    assert (folder / "voice.db").stat().st_mode & 0o777 == 0o600
    return sum(blob in files["voice.db"] for blob in sealed)


def _secure_delete_off(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA secure_delete=OFF")
    cursor.close()


async def test_sqlite_file_keeps_no_trace_after_delete_user(
    tmp_path: Path, cipher: MemoryCipher
) -> None:
    """secure_delete zeroes deleted rows: not even their ciphertext stays in the file.

    The control run (secure_delete forced off) shows the check would see leftovers.
    """
    assert await sqlite_leftovers(tmp_path / "on", cipher, force_off=False) == 1  # Bob's
    assert await sqlite_leftovers(tmp_path / "off", cipher, force_off=True) > 1


# --- encryption -------------------------------------------------------------------------


async def test_plaintext_never_reaches_the_database(
    store: MemoryStore, engine: AsyncEngine, tmp_path: Path
) -> None:
    await store.add_fact("alice", "nova", ALICE_SECRET)
    await store.set_summary("alice", "nova", f"Summary: {ALICE_SECRET}")
    await store.add_transcript("alice", "nova", "s1", "user", ALICE_SECRET)
    for table in ("memories", "transcripts"):
        blobs = await column_bytes(engine, table)
        assert blobs and all(b"flowerpot" not in blob for blob in blobs)
    await engine.dispose()
    for content in database_files(tmp_path).values():  # SQLite; PostgreSQL: the columns
        assert b"flowerpot" not in content
    texts = {memory.text for memory in await store.memories("alice")}
    assert texts == {ALICE_SECRET, f"Summary: {ALICE_SECRET}"}


async def test_another_key_cannot_read(engine: AsyncEngine, store: MemoryStore) -> None:
    await store.add_fact("alice", "nova", ALICE_SECRET)
    stranger = MemoryStore(engine, MemoryCipher(os.urandom(32)))
    with pytest.raises(DecryptionError):
        await stranger.memories("alice")


def test_key_decoding_and_settings(tmp_path: Path) -> None:
    key = generate_key()
    raw = decode_key(key)
    assert len(raw) == 32
    urlsafe = key.replace("+", "-").replace("/", "_").rstrip("=")
    assert decode_key(urlsafe) == raw
    with pytest.raises(ValueError, match="32 bytes"):
        decode_key("c2hvcnQ=")
    with pytest.raises(ValueError, match="base64"):
        decode_key("not base64 at all!")
    with pytest.raises(ValueError, match="memory_key"):
        Settings(memory_key="c2hvcnQ=")
    assert Settings(memory_key=key).memory_key == key
    assert key not in repr(Settings(memory_key=key))


def test_generated_key_file_is_private_and_stable(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = MemoryCipher(load_memory_key(settings))
    key_file = tmp_path / "data" / "memory.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    sealed = first.encrypt("hello", "ctx")
    assert MemoryCipher(load_memory_key(settings)).decrypt(sealed, "ctx") == "hello"
    with pytest.raises(DecryptionError):
        first.decrypt(sealed, "another row")


# --- transcripts ------------------------------------------------------------------------


async def test_transcripts_in_order_and_filtered(store: MemoryStore) -> None:
    for number in range(5):
        await store.add_transcript("alice", "nova", "s1", "user", f"line {number}")
    await store.add_transcript("alice", "kai", "s2", "assistant", "other session")
    lines = await store.transcripts("alice", session_id="s1", limit=3)
    assert [line.text for line in lines] == ["line 2", "line 3", "line 4"]
    assert [line.text for line in await store.transcripts("alice", character_id="kai")] == [
        "other session"
    ]
    assert (await store.transcripts("alice"))[-1].role == "assistant"


async def test_retention_prunes_old_transcripts(
    engine: AsyncEngine, cipher: MemoryCipher, clock: FakeClock
) -> None:
    store = MemoryStore(engine, cipher, transcript_retention_days=30, clock=clock)
    await store.create()
    await store.add_transcript("alice", "nova", "s1", "user", "old")
    clock.advance(days=20)
    await store.add_transcript("bob", "nova", "s2", "user", "recent")
    clock.advance(days=11)
    assert await store.prune() == 1
    assert await store.transcripts("alice") == []
    assert [line.text for line in await store.transcripts("bob")] == ["recent"]


async def test_zero_retention_stores_no_transcripts(
    engine: AsyncEngine, cipher: MemoryCipher, clock: FakeClock
) -> None:
    keeping = MemoryStore(engine, cipher, clock=clock)
    await keeping.create()
    await keeping.add_transcript("alice", "nova", "s1", "user", "kept before")
    store = MemoryStore(engine, cipher, transcript_retention_days=0, clock=clock)
    assert await store.add_transcript("alice", "nova", "s1", "user", "never kept") is None
    assert await store.prune() == 1  # switching to 0 drops what was kept before
    assert await count(engine, "SELECT count(*) FROM transcripts") == 0


async def test_from_settings_uses_sqlite_under_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", transcript_retention_days=7)
    store = memory_store(settings)
    await store.create()
    try:
        assert await store.add_fact("local", "nova", "a fact")
        assert store.transcript_retention_days == 7
        assert (tmp_path / "data" / "voice.db").is_file()
    finally:
        await store.aclose()
        await store.aclose()  # safe twice
