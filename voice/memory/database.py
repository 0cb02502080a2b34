"""The database: its tables (memories, transcripts, character cards, usage), its engine, and what
counts as the database being down.

SQLite (a file under the data folder) by default, PostgreSQL by URL; the same tables on
both. :mod:`voice.memory.store` reads and writes them; nothing here knows about users.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    event,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utc_now() -> datetime:
    return datetime.now(UTC)


class _UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class MemoryRow(Base):
    """A fact or the running summary about one user, for one character."""

    __tablename__ = "memories"
    __table_args__ = (
        UniqueConstraint("user_id", "character_id", "kind", "dedupe_key"),
        Index("ix_memories_user", "user_id", "character_id", "kind", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255))
    character_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    #: Keyed digest of the normalized fact text; the constant "summary" for summaries,
    #: so the unique constraint also allows one summary per user and character.
    dedupe_key: Mapped[str] = mapped_column(String(64))
    text_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(_UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(_UTCDateTime())


class TranscriptRow(Base):
    """One turn of a conversation as it was said (user) or heard (assistant)."""

    __tablename__ = "transcripts"
    __table_args__ = (
        Index("ix_transcripts_user", "user_id", "character_id", "session_id"),
        Index("ix_transcripts_created", "created_at"),
    )

    # An integer key orders lines of the same session even within one clock tick.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[str] = mapped_column(String(255))
    character_id: Mapped[str] = mapped_column(String(255))
    session_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    text_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(_UTCDateTime())


class CardRow(Base):
    """A character card file as uploaded (or seeded from the characters folder), shared by
    every replica on this database. Cards are the operator's content, not a user's."""

    __tablename__ = "character_cards"
    __table_args__ = (Index("ix_character_cards_updated", "updated_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The file's bytes as given (a PNG keeps its image): lossless, as the folder keeps them.
    data: Mapped[bytes] = mapped_column(LargeBinary)
    kind: Mapped[str] = mapped_column(String(8))  # "json" or "png"
    updated_at: Mapped[datetime] = mapped_column(_UTCDateTime())


class UsageRow(Base):
    """What one user consumed on one UTC day (``voice.usage``), added to by every replica."""

    __tablename__ = "usage"

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    audio_in_s: Mapped[float] = mapped_column(Float, default=0.0)
    audio_out_s: Mapped[float] = mapped_column(Float, default=0.0)
    responses: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)


def sqlite_url(data_dir: Path) -> str:
    """The default database: ``data_dir/voice.db``."""
    return f"sqlite+aiosqlite:///{(data_dir / 'voice.db').resolve()}"


def create_engine(url: str, *, connect_timeout_s: float = 5.0) -> AsyncEngine:
    """An async engine for ``url``; SQLite files are created 0600 with ``secure_delete`` on.

    A PostgreSQL connection attempt gives up after ``connect_timeout_s`` (asyncpg's
    default is a minute), so an unreachable database fails a request quickly instead of
    stalling it; pooled connections are pinged before use, so a restarted server is
    reconnected to.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        driver = parsed.get_driver_name()
        connect_args: dict[str, Any] = {}
        if driver == "asyncpg":
            connect_args["timeout"] = connect_timeout_s
        elif driver.startswith("psycopg"):
            connect_args["connect_timeout"] = max(1, round(connect_timeout_s))
        return create_async_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    engine = create_async_engine(url)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


class DatabaseUnavailableError(RuntimeError):
    """The memory database cannot be reached; the message names it (never its password)."""


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database could not be reached, so a retry may succeed.

    Connection refused or reset, unknown host, timeouts, a connection lost mid-statement
    (SQLAlchemy marks it invalidated), a locked SQLite file, and PostgreSQL refusing the
    connection: shutting down or starting up, too many connections, authentication or an
    unknown database (classes 08, 28, 3D, 53, 57 of SQLSTATE; the write never reached a
    table). Anything else (bad data, a constraint) would fail again.
    """
    if isinstance(exc, OSError | TimeoutError | OperationalError | InterfaceError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return exc.connection_invalidated or str(sqlstate or "")[:2] in _CONNECTION_SQLSTATES


#: SQLSTATE classes of a PostgreSQL server that cannot take the statement now.
_CONNECTION_SQLSTATES = frozenset({"08", "28", "3D", "53", "57"})


def unreachable_reason(exc: BaseException, connect_timeout_s: float) -> str:
    """A one-line reason for ``exc`` (from :func:`is_unreachable`), without secrets."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {connect_timeout_s:g} s"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        # The driver's own message, e.g. 'password authentication failed for user "voice"',
        # without the SQL statement and parameters SQLAlchemy appends.
        message = str(exc.orig).split("\n", 1)[0]
        return message.split(">: ", 1)[-1] or type(exc.orig).__name__
    return type(exc).__name__


def describe_url(url: URL) -> str:
    """Where a database is, for messages: host, port, database and user, no password."""
    if url.get_backend_name() == "sqlite":
        return f"SQLite file {url.database}"
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    return f"PostgreSQL at {where}, database {url.database!r}, user {url.username!r}"
