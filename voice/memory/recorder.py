"""One live session's memory: what the model is told, what is recorded, when memory updates.

A session creates a :class:`SessionMemory` for its user and character, puts what
:meth:`~SessionMemory.recall` returns into the prompt, calls :meth:`~SessionMemory.add_turn`
for each finished user and assistant turn, and :meth:`~SessionMemory.aclose` when it ends.
Every ``every_turns`` user turns an update runs in a task this object owns; ``aclose``
waits for it and runs the final update over the turns not yet folded in.

Writes go through the process's :class:`~voice.memory.writer.StoreWriter`, so a database
outage costs the call nothing: transcript lines and the update's summary and facts wait
there and land when the database is back. Reads are another matter: ``recall`` while the
database is unreachable gives an empty recollection (logged) and the call starts without
memory; an update needs the previous summary, so while neither the database nor this
session knows it, the update is put off (its turns kept for the next one) before the model
is asked anything, and at the end of the session such an update is lost, logged and counted.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from voice.memory.database import is_unreachable
from voice.memory.extract import CompletionModel, Turn, unique, update_memory
from voice.memory.writer import Generation, StoreWriter
from voice.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Facts put into the system prompt, newest first.
PROMPT_FACTS = 12
#: Turns waiting for an update are capped; the oldest are dropped beyond this.
MAX_PENDING_TURNS = 200


@dataclass(frozen=True)
class Recollection:
    """What the companion remembers about the user when a session starts."""

    summary: str | None
    facts: list[str]


class _Unknown:
    """The stored summary is not known (the database could not be read)."""


UNKNOWN = _Unknown()


class SessionMemory:
    """Memory for one session of one user with one character."""

    def __init__(
        self,
        llm: CompletionModel,
        writer: StoreWriter,
        *,
        user_id: str,
        character_id: str,
        session_id: str,
        every_turns: int = 8,
        user_name: str | None = None,
        final_timeout_s: float = 60.0,
        read_timeout_s: float = 10.0,
    ) -> None:
        """``read_timeout_s`` bounds each read of the database (``recall``, the summary)."""
        self.user_id = user_id
        self.character_id = character_id
        self.session_id = session_id
        self.every_turns = every_turns
        self.user_name = user_name
        self.final_timeout_s = final_timeout_s
        self.read_timeout_s = read_timeout_s
        self._llm = llm
        self._writer = writer
        self._pending: list[Turn] = []
        self._user_turns = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_write: int | None = None
        # The stored summary as this session last knew it: read, or written by it.
        self._summary: str | _Unknown | None = UNKNOWN
        self._generation = writer.generation(user_id, character_id)

    async def recall(self) -> Recollection:
        """The summary and newest facts, for the prompt (``voice.characters.prompt``).

        Writes still queued count as remembered. If the database cannot be read, the
        recollection holds only those (usually nothing): logged, and the session goes on.
        """
        user, character = self.user_id, self.character_id
        store = self._writer.store
        self._check_generation()
        try:
            async with asyncio.timeout(self.read_timeout_s):
                summary = await store.summary(user, character)
                facts = [fact.text for fact in await store.facts(user, character, PROMPT_FACTS)]
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            log.warning(
                "session %s: memory database unreachable (%s); starting without memory",
                self.session_id,
                type(exc).__name__,
            )
            summary, facts = None, []
        else:
            self._summary = summary
        queued = self._writer.queued_summary(user, character)
        facts = unique(self._writer.queued_facts(user, character) + facts)[:PROMPT_FACTS]
        return Recollection(queued if queued is not None else summary, facts)

    async def add_turn(self, role: str, text: str) -> None:
        """Record a finished turn (transcript) and start an update when one is due.

        Never waits for the database: the line is queued (:class:`StoreWriter`).
        """
        if self._closed or not text.strip() or role not in ("user", "assistant"):
            return
        self._check_generation()
        try:
            seq = self._writer.add_transcript(
                self.user_id, self.character_id, self.session_id, role, text
            )
        except ValueError as exc:  # the conversation goes on without it
            log.warning(
                "session %s: transcript not stored: %s", self.session_id, type(exc).__name__
            )
        else:
            self._last_write = seq if seq is not None else self._last_write
        self._pending.append({"role": role, "content": text})
        del self._pending[:-MAX_PENDING_TURNS]
        if role == "user":
            self._user_turns += 1
        if self._user_turns >= self.every_turns and (self._task is None or self._task.done()):
            self._start_update(final=False)

    @property
    def updating(self) -> bool:
        return self._task is not None and not self._task.done()

    async def aclose(self) -> None:
        """Finish the running update, fold in the remaining turns, wait for the writes.

        All bounded by ``final_timeout_s``; writes still queued then (or at once while the
        database is unreachable) stay with the writer, which keeps retrying them.
        Cancelling ``aclose`` cancels the update. Safe to call twice.
        """
        if self._closed:
            return
        self._closed = True
        written = True
        try:
            async with asyncio.timeout(self.final_timeout_s):
                if self._task is not None:
                    await asyncio.wait({self._task})
                self._check_generation()
                if self._user_turns:
                    self._start_update(final=True)
                    assert self._task is not None
                    await asyncio.wait({self._task})
                if self._last_write is not None:
                    written = await self._writer.wait_written(self._last_write)
        except TimeoutError:
            log.warning("session %s: memory update timed out at close", self.session_id)
        finally:
            await cancel_and_wait(self._task)
        if not written:
            log.info(
                "session %s: closed with writes still queued (database unreachable)",
                self.session_id,
            )

    def _check_generation(self) -> None:
        """After the user deleted their data (or these memories), forget what was pending."""
        generation = self._writer.generation(self.user_id, self.character_id)
        if generation != self._generation:
            self._generation = generation
            self._pending, self._user_turns, self._summary = [], 0, UNKNOWN

    def _start_update(self, *, final: bool) -> None:
        self._check_generation()
        turns, self._pending, self._user_turns = self._pending, [], 0
        self._task = asyncio.create_task(
            self._update(turns, self._generation, final=final),
            name=f"memory-update-{self.session_id}",
        )

    async def _previous_summary(self) -> str | _Unknown | None:
        """The summary to update: queued, else stored, else as this session last knew it."""
        queued = self._writer.queued_summary(self.user_id, self.character_id)
        if queued is not None:
            return queued
        try:
            async with asyncio.timeout(self.read_timeout_s):
                return await self._writer.store.summary(self.user_id, self.character_id)
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            return self._summary

    async def _update(self, turns: list[Turn], generation: Generation, *, final: bool) -> None:
        try:
            previous = await self._previous_summary()
        except Exception as exc:
            log.warning("session %s: memory update failed: %s", self.session_id, type(exc).__name__)
            return
        if isinstance(previous, _Unknown):
            self._put_off(turns, final=final)
            return
        try:
            update = await update_memory(self._llm, previous, turns, user_name=self.user_name)
        except Exception as exc:  # a failed model call loses these turns for memory
            log.warning("session %s: memory update failed: %s", self.session_id, type(exc).__name__)
            return
        writer, user, character = self._writer, self.user_id, self.character_id
        if generation != writer.generation(user, character):
            log.info("session %s: memory deleted during the update: not stored", self.session_id)
            return
        self._summary = previous
        seqs = []
        if update.summary is not None:
            seqs.append(
                writer.set_summary(
                    user,
                    character,
                    update.summary,
                    generation=generation,
                    session_id=self.session_id,
                )
            )
            self._summary = update.summary
        for fact in update.facts:
            seqs.append(
                writer.add_fact(
                    user, character, fact, generation=generation, session_id=self.session_id
                )
            )
        self._last_write = max([seq for seq in seqs if seq is not None], default=self._last_write)
        log.info(
            "session %s: memory updated (summary=%s, facts=%d)",
            self.session_id,
            update.summary is not None,
            len(update.facts),
        )

    def _put_off(self, turns: list[Turn], *, final: bool) -> None:
        """The previous summary cannot be read: keep the turns for the next update."""
        if final:
            self._writer.count_lost(
                "memory_update", "unreachable", user_id=self.user_id, session_id=self.session_id
            )
            return
        log.warning(
            "session %s: memory database unreachable: memory update put off", self.session_id
        )
        self._pending[:0] = turns
        del self._pending[:-MAX_PENDING_TURNS]
        self._user_turns += sum(turn["role"] == "user" for turn in turns)
