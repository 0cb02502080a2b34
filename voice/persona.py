"""Who the bot is in a call (a companion, or no one), and what was said, recorded to her memory.

:class:`Persona` opens the companion a session talks as (its character card, her memory
of this user) and records the call's turns to her memory in the order they were said. A
reply is recorded only once what the user heard of it is final: when the next turn is
recorded, when another reply ends, or when the call ends. Until then a barge-in may still
cut it down to the words that were played. Writes run one at a time on a task owned
here, so the transcript keeps the spoken order even though each write is awaited; a
companion the session leaves is closed (her final memory update) after her writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from voice.companion import Companion, Companions, UnknownCharacterError
from voice.conversation import Item
from voice.protocol import ProtocolError
from voice.response import ResponseRun
from voice.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Writes waiting for the companion (one per spoken turn, so a handful at most). Beyond
#: this the newest is dropped, with a warning: a store that slow is broken.
MAX_PENDING_WRITES = 256

Write = Callable[[], Awaitable[None]]


class Persona:
    """The companion one call talks as, and the record of what was said to her."""

    def __init__(self, companions: Companions | None, *, user_id: str, session_id: str) -> None:
        self._companions = companions
        self._user_id = user_id
        self._session_id = session_id
        #: The companion the bot talks as now (None: plain instructions, no memory).
        self.companion: Companion | None = None
        #: The last reply, with the companion it was said as, not yet recorded.
        self._reply: tuple[Companion, Item] | None = None
        self._writes: deque[Write] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    async def become(self, character: str | None, user_name: str | None) -> None:
        """Talk as ``character`` from now on (None: as no one).

        Raises :class:`~voice.protocol.ProtocolError` for a character that does not exist;
        then nothing changed. The companion left behind is closed after her writes.
        """
        companion = None
        if character is not None:
            try:
                if self._companions is None:
                    raise UnknownCharacterError(character, [])
                companion = await self._companions.open(
                    character, user_id=self._user_id, session_id=self._session_id,
                    user_name=user_name,
                )  # fmt: skip
            except UnknownCharacterError as exc:
                raise ProtocolError(str(exc), param="session.character") from None
        if self.companion is not None:
            self._close(self.companion)
        self.companion = companion

    def greeting(self) -> tuple[str, str | None] | None:
        """What she says first, as on a phone she picked up, and the voice she asks for."""
        companion = self.companion
        greeting = companion.greeting() if companion is not None else None
        return (greeting, companion.voice) if companion is not None and greeting else None

    def reply_ended(self, run: ResponseRun, item: Item) -> None:
        """A reply (``run``, its message ``item``) ended; it is recorded once what was heard
        is final. A failed reply was not heard at all; one cut at the token limit was, up to
        there."""
        if run.status not in ("completed", "cancelled", "incomplete"):
            return
        self.flush()
        if self.companion is not None:
            self._reply = (self.companion, item)

    def said(self, role: str, text: str) -> None:
        """A turn to record now (a user's words, or a typed message)."""
        self.flush()
        if self.companion is not None:
            self._write(self.companion, role, text)

    def flush(self) -> None:
        """Record the held reply now, as it stands (truncated, if it was)."""
        if self._reply is not None:
            (companion, item), self._reply = self._reply, None
            self._write(companion, "assistant", item.text)

    def _close(self, companion: Companion) -> None:
        """Close ``companion`` (its final memory update) after what is held and pending."""
        self.flush()
        self._enqueue(companion.aclose)

    async def aclose(self) -> None:
        """Record what is held, close the companion after her writes, wait for them, stop."""
        if self.companion is not None:
            self._close(self.companion)
            self.companion = None
        self.flush()
        if self._task is not None:
            await self._idle.wait()
        await cancel_and_wait(self._task)

    def _write(self, companion: Companion, role: str, text: str) -> None:
        if text.strip():
            self._enqueue(lambda: companion.record(role, text))

    def _enqueue(self, write: Write) -> None:
        if len(self._writes) >= MAX_PENDING_WRITES:
            log.warning("session %s: transcript write dropped (backlog full)", self._session_id)
            return
        self._writes.append(write)
        self._idle.clear()
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"persona-{self._session_id}")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._writes:
                write = self._writes.popleft()
                try:
                    await write()
                except Exception as exc:  # the call goes on without this record
                    log.warning(
                        "session %s: transcript write failed: %s",
                        self._session_id, type(exc).__name__,
                    )  # fmt: skip
            self._idle.set()
