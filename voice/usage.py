"""Fair use: what each user consumed today, and the daily limits an operator sets.

Usage is accounted per user and UTC day in the database (every replica adds to the same
row): audio seconds in (what the user sent) and out (what the bot spoke), responses, and
LLM tokens. A call keeps a :class:`UsageMeter`: it adds as it goes, stores the increments
after every response and at the end (an unreachable database keeps them for the next
try, in memory), reports what is left in a ``rate_limits.updated`` event after each
response, and says when a limit is reached so the call can end politely. A new call of a
user past a limit is refused (429) before anything is made for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import delete, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from voice.memory.database import UsageRow, is_unreachable

log = logging.getLogger(__name__)

Now = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Usage:
    """One user's consumption (of a day, or increments not stored yet)."""

    audio_in_s: float = 0.0
    audio_out_s: float = 0.0
    responses: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    @property
    def audio_minutes(self) -> float:
        return (self.audio_in_s + self.audio_out_s) / 60

    @property
    def empty(self) -> bool:
        return self == Usage()

    def to_dict(self) -> dict[str, Any]:
        return {
            "audio_in_seconds": round(self.audio_in_s, 1),
            "audio_out_seconds": round(self.audio_out_s, 1),
            "audio_minutes": round(self.audio_minutes, 2),
            "responses": self.responses,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


@dataclass(frozen=True)
class Limits:
    """Daily limits of one user; ``None``: unlimited."""

    audio_minutes: float | None = None
    responses: int | None = None
    tokens: int | None = None

    @property
    def any(self) -> bool:
        return any(value is not None for value in (self.audio_minutes, self.responses, self.tokens))

    def reached(self, used: Usage) -> str | None:
        """Which limit ``used`` has reached (a sentence for the user), or ``None``."""
        if self.audio_minutes is not None and used.audio_minutes >= self.audio_minutes:
            return f"the daily allowance of {self.audio_minutes:g} minutes of audio is used up"
        if self.responses is not None and used.responses >= self.responses:
            return f"the daily allowance of {self.responses} responses is used up"
        if self.tokens is not None and used.input_tokens + used.output_tokens >= self.tokens:
            return f"the daily allowance of {self.tokens} model tokens is used up"
        return None

    def rate_limits(self, used: Usage, reset_s: float) -> list[dict[str, Any]]:
        """What is left, as the Realtime API's ``rate_limits`` list. Its ``name`` is one of
        the API's own (``requests``: responses; ``tokens``), which clients validate; audio
        has no such name, so that entry has none, and every entry says what it counts in
        ``limit_name``."""

        def entry(name: str | None, counts: str, limit: int, spent: int) -> dict[str, Any]:
            named = {"name": name} if name else {}
            return {
                **named,
                "limit_name": counts,
                "limit": limit,
                "remaining": max(0, limit - spent),
                "reset_seconds": reset_s,
            }

        out = []
        if self.responses is not None:
            out.append(entry("requests", "responses", self.responses, used.responses))
        if self.tokens is not None:
            out.append(
                entry("tokens", "tokens", self.tokens, used.input_tokens + used.output_tokens)
            )
        if self.audio_minutes is not None:
            out.append(
                entry(
                    None,
                    "audio_seconds",
                    round(self.audio_minutes * 60),
                    round(used.audio_in_s + used.audio_out_s),
                )
            )
        return out


def limits_for(
    user: str, default: Limits, per_user: Mapping[str, Mapping[str, float | int | None]]
) -> Limits:
    """``default`` with the user's own limits (from ``usage_limits``) in place."""
    own = per_user.get(user)
    if own is None:
        return default
    minutes, responses, tokens = (
        own.get(name) for name in ("audio_minutes", "responses", "tokens")
    )
    return Limits(
        default.audio_minutes if minutes is None else float(minutes),
        default.responses if responses is None else int(responses),
        default.tokens if tokens is None else int(tokens),
    )


def seconds_to_midnight(now: datetime) -> float:
    """Seconds until the next UTC day begins (when daily usage starts again)."""
    tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return round((tomorrow - now).total_seconds(), 1)


class UsageStore:
    """Per user and UTC day counters, added to atomically by every replica."""

    def __init__(self, engine: AsyncEngine, *, now: Now = _utc_now) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.now = now

    def today(self) -> date:
        return self.now().astimezone(UTC).date()

    async def of_day(self, user: str, day: date | None = None) -> Usage:
        async with self._sessions() as session:
            row = await session.get(UsageRow, (user, (day or self.today()).isoformat()))
        if row is None:
            return Usage()
        return Usage(
            row.audio_in_s, row.audio_out_s, row.responses, row.input_tokens, row.output_tokens
        )

    async def add(self, user: str, delta: Usage, day: date | None = None) -> None:
        """Add ``delta`` to the user's row of ``day`` (default: today)."""
        if delta.empty:
            return
        key = (day or self.today()).isoformat()
        values = {f.name: getattr(UsageRow, f.name) + getattr(delta, f.name) for f in fields(delta)}
        statement = update(UsageRow).where(UsageRow.user_id == user, UsageRow.day == key)
        for attempt in range(2):
            async with self._sessions() as session, session.begin():
                result = cast(CursorResult[Any], await session.execute(statement.values(**values)))
                if result.rowcount:
                    return
                try:
                    async with session.begin_nested():
                        session.add(
                            UsageRow(
                                user_id=user,
                                day=key,
                                **{f.name: getattr(delta, f.name) for f in fields(delta)},
                            )
                        )
                    return
                except IntegrityError:  # another replica made the row first: add to it
                    if attempt:
                        raise

    async def forget(self, user: str) -> None:
        """Forget the user's usage of every day but today: deleting oneself deletes one's
        data, and is no way around today's limits (today's row holds only counters)."""
        today = self.today().isoformat()
        async with self._sessions() as session, session.begin():
            await session.execute(
                delete(UsageRow).where(UsageRow.user_id == user, UsageRow.day != today)
            )


class UsageMeter:
    """One call's usage: counted as it goes, stored after each response and at the end."""

    def __init__(
        self,
        store: UsageStore,
        user: str,
        limits: Limits,
        *,
        on_counted: Callable[[Usage], None] | None = None,
        on_limit: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.user = user
        self.limits = limits
        self._day = store.today()
        self._stored = Usage()  # the day's usage as last read or written
        self._pending = Usage()
        self._on_counted = on_counted
        self._on_limit = on_limit
        self._flush: asyncio.Task[None] | None = None

    @property
    def used(self) -> Usage:
        """Today's usage as this call knows it (other calls' since the last read aside)."""
        return self._stored + self._pending

    async def open(self) -> None:
        """Read what the user used today already (an unreachable database: start at 0)."""
        try:
            self._stored = await self.store.of_day(self.user, self._day)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            if not is_unreachable(exc):
                raise
            log.warning("usage of a user not read: database unreachable (%s)", type(exc).__name__)

    def add(self, delta: Usage) -> None:
        self._pending = self._pending + delta
        if self._on_counted is not None:
            self._on_counted(delta)

    def reached(self) -> str | None:
        return self.limits.reached(self.used)

    def note_limit_reached(self) -> None:
        """The call ends for a limit (counted by the policy)."""
        if self._on_limit is not None:
            self._on_limit()

    def rate_limits(self) -> list[dict[str, Any]]:
        return self.limits.rate_limits(self.used, seconds_to_midnight(self.store.now()))

    def store_soon(self) -> None:
        """Store the increments in the background (one write at a time)."""
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._store(), name=f"usage-{self.user}")

    async def _store(self) -> None:
        delta, self._pending = self._pending, Usage()
        day = self._day
        try:
            await self.store.add(self.user, delta, day)
            self._stored = self._stored + delta
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            self._pending = delta + self._pending  # kept for the next try
            log.warning("usage not stored yet (%s); kept for the next try", type(exc).__name__)
        today = self.store.today()
        if today != day:  # a call that runs past midnight counts on the new day from now on
            self._day, self._stored = today, Usage()

    async def aclose(self) -> None:
        """Store what is left (waiting for a write in flight first)."""
        if self._flush is not None:
            await self._flush
        await self._store()
