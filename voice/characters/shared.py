"""The character library kept in the database, so that every replica sees every card.

At start the characters folder seeds the table (a card whose id the table lacks is
inserted; one it has is left as it is there: an upload that replaced it wins); from then on
the table is the truth. Uploads are stored there, never on one replica's disk, and every
replica reads what changed since it last looked: when a call names a card it does not
know, before listing, and every ``refresh_s`` in the background. Reads in between are
served from memory (a :class:`CharacterLibrary`), so a session start costs no query when
the card is known. An unreachable database keeps the cards already read; an upload then
fails with :class:`DatabaseUnavailableError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from starlette.concurrency import run_in_threadpool

from voice.characters.card import CharacterCard, ExportSpec, parse_card
from voice.characters.fields import CardError
from voice.characters.library import CharacterEntry, CharacterLibrary, DuplicateCharacterError
from voice.memory.database import CardRow, DatabaseUnavailableError, is_unreachable, utc_now
from voice.tasks import cancel_and_wait

log = logging.getLogger(__name__)

CardKind = Literal["json", "png"]
#: Rows are read again from a little before the newest one seen: two replicas' clocks and
#: a commit landing in the same instant must not hide a card.
OVERLAP = timedelta(seconds=5)


class SharedLibrary:
    """A :class:`CharacterLibrary` (the cards in memory) kept in step with the database."""

    def __init__(self, library: CharacterLibrary, engine: AsyncEngine, *, refresh_s: float = 10.0):
        self._library = library
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._refresh_s = refresh_s
        self._seen: dict[str, datetime] = {}  # id -> updated_at of the version in memory
        self._newest: datetime | None = None
        self._lock = asyncio.Lock()
        self._poll: asyncio.Task[None] | None = None

    # --- what the routes and the companions read (from memory) ------------------------

    @property
    def max_bytes(self) -> int:
        return self._library.max_bytes

    @property
    def errors(self) -> dict[str, str]:
        return self._library.errors

    def list(self) -> list[CharacterEntry]:
        return self._library.list()

    def get(self, character_id: str) -> CharacterEntry | None:
        return self._library.get(character_id)

    def export(self, character_id: str, fmt: CardKind = "json",
               spec: ExportSpec = "chara_card_v3") -> bytes:  # fmt: skip
        return self._library.export(character_id, fmt, spec)

    async def find(self, character_id: str) -> CharacterEntry | None:
        """The card ``character_id``; one this replica does not know yet is looked up."""
        entry = self._library.get(character_id)
        if entry is None:
            await self.refresh()
            entry = self._library.get(character_id)
        return entry

    # --- the database ---------------------------------------------------------------------

    async def start(self) -> None:
        """Seed the table from the folder, read it all, and keep reading it."""
        await self._seed()
        await self.refresh(raising=True)
        self._poll = asyncio.create_task(self._keep_refreshing(), name="character-refresh")

    async def _seed(self) -> None:
        async with self._sessions() as session, session.begin():
            known = set((await session.scalars(select(CardRow.id))).all())
            for entry in self._library.list():
                if entry.id in known or entry.path is None:
                    continue
                kind: CardKind = "png" if entry.path.suffix.lower() == ".png" else "json"
                data = await asyncio.to_thread(entry.path.read_bytes)
                session.add(CardRow(id=entry.id, data=data, kind=kind, updated_at=utc_now()))
                log.info("character card %s added to the database from %s", entry.id,
                         entry.path.name)  # fmt: skip

    async def refresh(self, *, raising: bool = False) -> None:
        """Read the cards that changed since the last look."""
        async with self._lock:
            query = select(CardRow)
            if self._newest is not None:
                query = query.where(CardRow.updated_at > self._newest - OVERLAP)
            try:
                async with self._sessions() as session:
                    rows = (await session.scalars(query)).all()
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                if raising or not is_unreachable(exc):
                    raise
                log.warning("character cards not refreshed: database unreachable (%s)",
                            type(exc).__name__)  # fmt: skip
                return
            for row in rows:
                self._newest = max(self._newest or row.updated_at, row.updated_at)
                if self._seen.get(row.id) == row.updated_at:
                    continue
                try:
                    card = await run_in_threadpool(self._parse, row.data, row.kind)
                except CardError as exc:  # stored by an older version with other rules
                    log.warning("character card %s in the database not loaded: %s", row.id, exc)
                    continue
                self._library.put(CharacterEntry(row.id, card, None))
                self._seen[row.id] = row.updated_at

    def _parse(self, data: bytes, kind: str) -> CharacterCard:
        return parse_card(data, max_bytes=self._library.max_bytes,
                          kind="png" if kind == "png" else "json")  # fmt: skip

    async def store(
        self, data: bytes, filename_hint: str | None = None, *, replace: bool = False,
        kind: CardKind | None = None,
    ) -> CharacterEntry:  # fmt: skip
        """Validate a card file and store it in the database for every replica.

        Raises :class:`CardError`, :class:`DuplicateCharacterError` (a taken id, unless
        ``replace``) and :class:`DatabaseUnavailableError`.
        """
        character_id, card = await run_in_threadpool(
            self._library.validate, data, filename_hint, kind
        )
        stored_kind: CardKind = "png" if card.avatar_png is not None else "json"
        now = utc_now()
        try:
            async with self._sessions() as session, session.begin():
                row = await session.get(CardRow, character_id)
                if row is not None and not replace:
                    raise DuplicateCharacterError(
                        f"a character with id {character_id!r} already exists"
                    )
                if row is None:
                    session.add(CardRow(id=character_id, data=data, kind=stored_kind,
                                        updated_at=now))  # fmt: skip
                else:
                    row.data, row.kind, row.updated_at = data, stored_kind, now
        except IntegrityError:  # another replica stored the same id at the same moment
            raise DuplicateCharacterError(
                f"a character with id {character_id!r} already exists"
            ) from None
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            if not is_unreachable(exc):
                raise
            raise DatabaseUnavailableError("the database is unreachable; the card was not "
                                           "stored") from None  # fmt: skip
        entry = CharacterEntry(character_id, card, None)
        self._library.put(entry)
        self._seen[character_id] = now
        return entry

    async def _keep_refreshing(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            with contextlib.suppress(SQLAlchemyError, OSError, TimeoutError):
                await self.refresh()

    async def aclose(self) -> None:
        if self._poll is not None:
            await cancel_and_wait(self._poll)
