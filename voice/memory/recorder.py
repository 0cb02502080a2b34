"""One live session's memory: what the model is told, what is recorded, when memory updates.

A session creates a :class:`SessionMemory` for its user and character, puts what
:meth:`~SessionMemory.recall` returns into the prompt, calls :meth:`~SessionMemory.add_turn`
for each finished user and assistant turn, and :meth:`~SessionMemory.aclose` when it ends.
Every ``every_turns`` user turns an update runs in a task this object owns; ``aclose``
waits for it and runs the final update over the turns not yet folded in.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from voice.memory.extract import CompletionModel, Turn, update_memory
from voice.memory.store import MemoryStore
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


class SessionMemory:
    """Memory for one session of one user with one character."""

    def __init__(
        self,
        llm: CompletionModel,
        store: MemoryStore,
        *,
        user_id: str,
        character_id: str,
        session_id: str,
        every_turns: int = 8,
        user_name: str | None = None,
        final_timeout_s: float = 60.0,
    ) -> None:
        self.user_id = user_id
        self.character_id = character_id
        self.session_id = session_id
        self.every_turns = every_turns
        self.user_name = user_name
        self.final_timeout_s = final_timeout_s
        self._llm = llm
        self._store = store
        self._pending: list[Turn] = []
        self._user_turns = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def recall(self) -> Recollection:
        """The summary and newest facts, for the prompt (``voice.characters.prompt``)."""
        summary = await self._store.summary(self.user_id, self.character_id)
        facts = await self._store.facts(self.user_id, self.character_id, PROMPT_FACTS)
        return Recollection(summary, [fact.text for fact in facts])

    async def add_turn(self, role: str, text: str) -> None:
        """Record a finished turn (transcript) and start an update when one is due."""
        if self._closed or not text.strip() or role not in ("user", "assistant"):
            return
        try:
            await self._store.add_transcript(
                self.user_id, self.character_id, self.session_id, role, text
            )
        except (SQLAlchemyError, ValueError) as exc:  # the conversation goes on without it
            log.warning(
                "session %s: transcript not stored: %s", self.session_id, type(exc).__name__
            )
        self._pending.append({"role": role, "content": text})
        del self._pending[:-MAX_PENDING_TURNS]
        if role == "user":
            self._user_turns += 1
        if self._user_turns >= self.every_turns and (self._task is None or self._task.done()):
            self._start_update()

    @property
    def updating(self) -> bool:
        return self._task is not None and not self._task.done()

    async def aclose(self) -> None:
        """Finish the running update, then fold in the remaining turns. Safe to call twice.

        Both are bounded by ``final_timeout_s``; cancelling ``aclose`` cancels the update.
        """
        if self._closed:
            return
        self._closed = True
        try:
            async with asyncio.timeout(self.final_timeout_s):
                if self._task is not None:
                    await asyncio.wait({self._task})
                if self._user_turns:
                    self._start_update()
                    assert self._task is not None
                    await asyncio.wait({self._task})
        except TimeoutError:
            log.warning("session %s: memory update timed out at close", self.session_id)
        finally:
            await cancel_and_wait(self._task)

    def _start_update(self) -> None:
        turns, self._pending, self._user_turns = self._pending, [], 0
        self._task = asyncio.create_task(
            self._update(turns), name=f"memory-update-{self.session_id}"
        )

    async def _update(self, turns: list[Turn]) -> None:
        try:
            update = await update_memory(
                self._llm,
                self._store,
                self.user_id,
                self.character_id,
                turns,
                user_name=self.user_name,
            )
        except Exception as exc:  # a failed update loses these turns for memory, not the session
            log.warning("session %s: memory update failed: %s", self.session_id, type(exc).__name__)
            return
        log.info(
            "session %s: memory updated (summary=%s, facts_added=%d)",
            self.session_id,
            update.summary is not None,
            len(update.facts),
        )
