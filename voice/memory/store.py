"""Per-user memories and transcripts in SQLite or PostgreSQL (SQLAlchemy 2, asyncio).

Every method takes the user id and scopes every statement by it: a user can neither read
nor delete another user's rows, and asking for another user's row id looks exactly like
asking for one that does not exist. The one exception is :meth:`MemoryStore.prune`, the
retention sweep, which applies to all users alike.

Memory text and transcript text are encrypted (:mod:`voice.memory.crypto`); ids, user
ids, character ids, roles and timestamps are stored in the clear so that queries work.
Facts are deduplicated through a keyed digest of their normalized text.

Deletion is real: rows are deleted, not flagged. On SQLite every connection sets
``PRAGMA secure_delete=ON``, so SQLite overwrites deleted content with zeros instead of
leaving it in free pages of the file (Debian builds SQLite with that default; others do
not). That makes a ``VACUUM``, which rewrites and locks the whole database, unnecessary.
The default rollback journal is kept (no WAL), so old pages do not linger in a ``-wal``
file either. On PostgreSQL deleted rows disappear at once for every query and their
space is reclaimed by autovacuum; what stays on disk until then is ciphertext.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    delete,
    select,
)
from sqlalchemy.exc import (
    IntegrityError,
)
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from voice.memory.crypto import MemoryCipher
from voice.memory.database import Base, MemoryRow, TranscriptRow, describe_url, utc_now

MemoryKind = Literal["fact", "summary"]
Clock = Callable[[], datetime]

#: Longest fact and summary accepted, in characters.
MAX_FACT_CHARS = 500
MAX_SUMMARY_CHARS = 4000
#: Longest transcript line accepted, in characters.
MAX_TRANSCRIPT_CHARS = 20_000
_SUMMARY_KEY = "summary"


@dataclass(frozen=True)
class Memory:
    """A decrypted memory."""

    id: str
    user_id: str
    character_id: str
    kind: MemoryKind
    text: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TranscriptLine:
    """A decrypted transcript line."""

    id: int
    user_id: str
    character_id: str
    session_id: str
    role: str
    text: str
    created_at: datetime


def normalize_text(text: str) -> str:
    """Text compared for duplicates: case, punctuation and spacing folded away."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[\W_]+", " ", folded).strip()


def clean_text(text: str, limit: int, what: str) -> str:
    """``text`` with its spacing folded, as stored; ``ValueError`` if empty or too long."""
    cleaned = " ".join(text.split())
    if not cleaned:
        raise ValueError(f"empty {what}")
    if len(cleaned) > limit:
        raise ValueError(f"{what} of {len(cleaned)} characters exceeds {limit}")
    return cleaned


class MemoryStore:
    """Encrypted memories and transcripts, scoped by user id."""

    def __init__(
        self,
        engine: AsyncEngine,
        cipher: MemoryCipher,
        *,
        transcript_retention_days: int = 30,
        max_facts: int = 200,
        clock: Clock = utc_now,
    ) -> None:
        """``max_facts`` bounds the facts kept per user and character (oldest go first)."""
        if transcript_retention_days < 0 or max_facts < 1:
            raise ValueError("transcript_retention_days must be >= 0 and max_facts >= 1")
        self.engine = engine
        self.transcript_retention_days = transcript_retention_days
        self.max_facts = max_facts
        self._cipher = cipher
        self._clock = clock
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    def describe(self) -> str:
        """Where the database is, for messages: host, port, database and user, no password."""
        return describe_url(self.engine.url)

    async def create(self) -> None:
        """Create the tables that do not exist yet."""
        async with self.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)

    async def aclose(self) -> None:
        """Close the connection pool. Safe to call twice."""
        await self.engine.dispose()

    # --- memories -----------------------------------------------------------------------

    async def add_fact(self, user_id: str, character_id: str, text: str) -> str | None:
        """Store a fact; its id, or ``None`` when the user already has it (normalized)."""
        text = clean_text(text, MAX_FACT_CHARS, "fact")
        dedupe_key = self._cipher.digest(f"{user_id}\0{character_id}\0{normalize_text(text)}")
        row = self._memory_row(user_id, character_id, "fact", dedupe_key, text)
        try:
            async with self._sessions.begin() as session:
                existing = await session.scalar(
                    select(MemoryRow.id).where(
                        *_of_kind(user_id, character_id, "fact"),
                        MemoryRow.dedupe_key == dedupe_key,
                    )
                )
                if existing is not None:
                    return None
                session.add(row)
                await session.flush()
                stale = (
                    select(MemoryRow.id)
                    .where(*_of_kind(user_id, character_id, "fact"))
                    .order_by(MemoryRow.created_at.desc(), MemoryRow.id)
                    .offset(self.max_facts)
                )
                await session.execute(
                    delete(MemoryRow).where(
                        MemoryRow.user_id == user_id, MemoryRow.id.in_(stale.scalar_subquery())
                    )
                )
        except IntegrityError:  # the same fact, added concurrently
            return None
        return row.id

    async def facts(self, user_id: str, character_id: str, limit: int = 50) -> list[Memory]:
        """The user's most recent facts for ``character_id``, newest first."""
        statement = (
            select(MemoryRow)
            .where(*_of_kind(user_id, character_id, "fact"))
            .order_by(MemoryRow.created_at.desc(), MemoryRow.id)
            .limit(limit)
        )
        async with self._sessions() as session:
            rows = (await session.scalars(statement)).all()
        return [self._memory(row) for row in rows]

    async def summary(self, user_id: str, character_id: str) -> str | None:
        """The running summary of the user's conversations with ``character_id``."""
        async with self._sessions() as session:
            row = await session.scalar(select(MemoryRow).where(*_is_summary(user_id, character_id)))
        return None if row is None else self._memory(row).text

    async def set_summary(self, user_id: str, character_id: str, text: str) -> None:
        """Replace the running summary (created on first use)."""
        text = clean_text(text, MAX_SUMMARY_CHARS, "summary")
        for attempt in range(2):
            try:
                async with self._sessions.begin() as session:
                    row = await session.scalar(
                        select(MemoryRow).where(*_is_summary(user_id, character_id))
                    )
                    if row is None:
                        session.add(
                            self._memory_row(user_id, character_id, "summary", _SUMMARY_KEY, text)
                        )
                    else:
                        row.text_enc = self._seal_memory(user_id, row.id, text)
                        row.updated_at = self._clock()
                return
            except IntegrityError:  # created concurrently: update that one instead
                if attempt:
                    raise

    async def memories(self, user_id: str, character_id: str | None = None) -> list[Memory]:
        """All the user's memories (facts and summaries), most recently updated first."""
        statement = select(MemoryRow).where(MemoryRow.user_id == user_id)
        if character_id is not None:
            statement = statement.where(MemoryRow.character_id == character_id)
        statement = statement.order_by(MemoryRow.updated_at.desc(), MemoryRow.id)
        async with self._sessions() as session:
            rows = (await session.scalars(statement)).all()
        return [self._memory(row) for row in rows]

    async def delete(self, user_id: str, memory_id: str) -> str | None:
        """Delete one of the user's memories: its character id, ``None`` if there is none."""
        async with self._sessions.begin() as session:
            character_id = await session.scalar(
                delete(MemoryRow)
                .where(MemoryRow.user_id == user_id, MemoryRow.id == memory_id)
                .returning(MemoryRow.character_id)
            )
        return character_id

    async def delete_user(self, user_id: str) -> int:
        """Forget the user: delete all their memories and transcripts; rows deleted."""
        async with self._sessions.begin() as session:
            memories = await session.execute(delete(MemoryRow).where(MemoryRow.user_id == user_id))
            lines = await session.execute(
                delete(TranscriptRow).where(TranscriptRow.user_id == user_id)
            )
        return _rowcount(memories) + _rowcount(lines)

    # --- transcripts --------------------------------------------------------------------

    async def add_transcript(
        self, user_id: str, character_id: str, session_id: str, role: str, text: str
    ) -> int | None:
        """Store one line; its id, or ``None`` when retention is 0 (nothing is stored)."""
        if self.transcript_retention_days == 0:
            return None
        text = clean_text(text, MAX_TRANSCRIPT_CHARS, "transcript line")
        row = TranscriptRow(
            user_id=user_id,
            character_id=character_id,
            session_id=session_id,
            role=role,
            text_enc=self._cipher.encrypt(text, _transcript_context(user_id, session_id)),
            created_at=self._clock(),
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return row.id

    async def transcripts(
        self,
        user_id: str,
        *,
        character_id: str | None = None,
        session_id: str | None = None,
        limit: int = 200,
    ) -> list[TranscriptLine]:
        """The user's most recent ``limit`` transcript lines, in the order they were said."""
        statement = select(TranscriptRow).where(TranscriptRow.user_id == user_id)
        if character_id is not None:
            statement = statement.where(TranscriptRow.character_id == character_id)
        if session_id is not None:
            statement = statement.where(TranscriptRow.session_id == session_id)
        statement = statement.order_by(TranscriptRow.id.desc()).limit(limit)
        async with self._sessions() as session:
            rows = (await session.scalars(statement)).all()
        return [self._transcript_line(row) for row in reversed(rows)]

    async def prune(self) -> int:
        """Delete transcript lines older than the retention (all of them at 0), for all users."""
        cutoff = self._clock() - timedelta(days=self.transcript_retention_days)
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(TranscriptRow).where(TranscriptRow.created_at <= cutoff)
            )
        return _rowcount(result)

    # --- rows ---------------------------------------------------------------------------

    def _memory_row(
        self, user_id: str, character_id: str, kind: MemoryKind, dedupe_key: str, text: str
    ) -> MemoryRow:
        row_id = str(uuid.uuid4())
        now = self._clock()
        return MemoryRow(
            id=row_id,
            user_id=user_id,
            character_id=character_id,
            kind=kind,
            dedupe_key=dedupe_key,
            text_enc=self._seal_memory(user_id, row_id, text),
            created_at=now,
            updated_at=now,
        )

    def _seal_memory(self, user_id: str, row_id: str, text: str) -> bytes:
        return self._cipher.encrypt(text, _memory_context(user_id, row_id))

    def _memory(self, row: MemoryRow) -> Memory:
        return Memory(
            id=row.id,
            user_id=row.user_id,
            character_id=row.character_id,
            kind=cast(MemoryKind, row.kind),
            text=self._cipher.decrypt(row.text_enc, _memory_context(row.user_id, row.id)),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def _transcript_line(self, row: TranscriptRow) -> TranscriptLine:
        context = _transcript_context(row.user_id, row.session_id)
        return TranscriptLine(
            id=row.id,
            user_id=row.user_id,
            character_id=row.character_id,
            session_id=row.session_id,
            role=row.role,
            text=self._cipher.decrypt(row.text_enc, context),
            created_at=row.created_at,
        )


def _of_kind(user_id: str, character_id: str, kind: MemoryKind) -> tuple[ColumnElement[bool], ...]:
    return (
        MemoryRow.user_id == user_id,
        MemoryRow.character_id == character_id,
        MemoryRow.kind == kind,
    )


def _is_summary(user_id: str, character_id: str) -> tuple[ColumnElement[bool], ...]:
    return (*_of_kind(user_id, character_id, "summary"), MemoryRow.dedupe_key == _SUMMARY_KEY)


def _memory_context(user_id: str, row_id: str) -> str:
    return f"memories\0{user_id}\0{row_id}"


def _transcript_context(user_id: str, session_id: str) -> str:
    return f"transcripts\0{user_id}\0{session_id}"


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount
