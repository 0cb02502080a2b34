"""Durable writes that outlive a database outage: one bounded queue per server process.

Transcript lines and the writes of memory updates (summaries, facts) are queued here and
stored in order by one task this object owns, which runs only while there is something
to store. When the database cannot be reached (:func:`~voice.memory.store.is_unreachable`)
the write at the head is retried with exponential backoff and everything behind it waits,
so writes land in the order they were made once the database is back. A write the
database refuses for another reason would fail again: it is dropped at once.

Nothing is lost silently. A write is dropped, logged at warning (kinds, counts and ids,
never text) and counted (``on_lost``, exported as ``voice_memory_writes_lost_total``) when
the queue is full (the oldest goes), when it has waited longer than ``max_age_s``, when
the database refuses it, or when it is still queued at :meth:`StoreWriter.aclose`.

One queue per process, not per session: an outage is the whole process's, so one bound
holds the RAM it may cost however many calls are live; a call that ends during the
outage hands its writes over instead of losing them; and deleting a user drops their
writes from every session in one place.

Privacy: queued text is in RAM only, as it was before it reached the store (which
encrypts it). :meth:`StoreWriter.forget_user` and :meth:`StoreWriter.delete_memory` drop
the user's queued writes and bump a generation number, so a memory update that was
already running when the user deleted their data cannot write it back afterwards.

Delivery is at least once: a transcript line whose commit was cut off by the outage may
be stored twice when retried (facts are deduplicated, a summary is replaced).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable

from voice.memory.database import is_unreachable
from voice.memory.store import (
    MAX_FACT_CHARS,
    MAX_SUMMARY_CHARS,
    MAX_TRANSCRIPT_CHARS,
    MemoryStore,
    clean_text,
)
from voice.memory.write_losses import LossReason, LostWrites, PendingWrite, WriteKind
from voice.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: (user generation, memory generation of the user and character); see :meth:`generation`.
Generation = tuple[int, int]


class StoreWriter:
    """The ordered, bounded, retried writes of one server process to ``store``."""

    def __init__(
        self,
        store: MemoryStore,
        *,
        max_pending: int = 2000,
        max_age_s: float = 600.0,
        flush_timeout_s: float = 10.0,
        attempt_timeout_s: float = 30.0,
        backoff_s: tuple[float, float] = (0.25, 5.0),
        clock: Callable[[], float] | None = None,
        on_lost: Callable[[str, str, int], None] | None = None,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        """``backoff_s`` is the first and the longest wait between retries; ``clock``
        (default: the event loop's) times the age of writes; ``on_lost(kind, reason, n)``
        and ``on_retry()`` feed the metrics."""
        if max_pending < 1 or max_age_s <= 0 or not 0 < backoff_s[0] <= backoff_s[1]:
            raise ValueError("max_pending >= 1, max_age_s > 0, 0 < first backoff <= longest")
        self.store = store
        self.max_pending = max_pending
        self.max_age_s = max_age_s
        self.flush_timeout_s = flush_timeout_s
        self.attempt_timeout_s = attempt_timeout_s
        self.backoff_s = backoff_s
        self._clock = clock
        self._on_retry = on_retry
        self._losses = LostWrites(on_lost)
        #: Failed attempts so far (each is retried unless the write was lost).
        self.retries = 0
        self._queue: deque[PendingWrite] = deque()
        self._in_flight: PendingWrite | None = None
        self._seq = 0
        self._failing = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        # Held by each write attempt and by deletions: a deletion waits for the write in
        # flight, so that write cannot land after the deletion.
        self._lock = asyncio.Lock()
        self._progress = asyncio.Condition()
        self._user_generation: Counter[str] = Counter()
        self._memory_generation: Counter[tuple[str, str]] = Counter()

    # --- queueing --------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Writes waiting to be stored (the one being stored included)."""
        return len(self._queue)

    @property
    def failing(self) -> bool:
        """The last attempt could not reach the database, and writes wait for it."""
        return self._failing

    def generation(self, user_id: str, character_id: str) -> Generation:
        """Changes whenever the user, or their memories of ``character_id``, are deleted."""
        return self._user_generation[user_id], self._memory_generation[user_id, character_id]

    def add_transcript(
        self, user_id: str, character_id: str, session_id: str, role: str, text: str
    ) -> int | None:
        """Queue a transcript line; its sequence number, ``None`` if none are kept.

        ``ValueError`` at once for a line the store would refuse (empty, too long).
        """
        if self.store.transcript_retention_days == 0:
            return None
        text = clean_text(text, MAX_TRANSCRIPT_CHARS, "transcript line")
        return self._submit("transcript", user_id, character_id, text, session_id, role)

    def set_summary(
        self,
        user_id: str,
        character_id: str,
        text: str,
        *,
        generation: Generation,
        session_id: str | None = None,
    ) -> int | None:
        """Queue the new running summary, unless the memory was deleted since ``generation``."""
        text = clean_text(text, MAX_SUMMARY_CHARS, "summary")
        if self._stale(user_id, character_id, generation, "summary", session_id):
            return None
        return self._submit("summary", user_id, character_id, text, session_id)

    def add_fact(
        self,
        user_id: str,
        character_id: str,
        text: str,
        *,
        generation: Generation,
        session_id: str | None = None,
    ) -> int | None:
        """Queue a fact (deduplicated when stored), unless deleted since ``generation``."""
        text = clean_text(text, MAX_FACT_CHARS, "fact")
        if self._stale(user_id, character_id, generation, "fact", session_id):
            return None
        return self._submit("fact", user_id, character_id, text, session_id)

    def queued_summary(self, user_id: str, character_id: str) -> str | None:
        """The newest summary still waiting to be stored for the user and character."""
        for write in reversed(self._queue):
            if write.kind == "summary" and (write.user_id, write.character_id) == (
                user_id,
                character_id,
            ):
                return write.text
        return None

    def queued_facts(self, user_id: str, character_id: str) -> list[str]:
        """Facts still waiting to be stored for the user and character, newest first."""
        return [
            write.text
            for write in reversed(self._queue)
            if write.kind == "fact"
            and (write.user_id, write.character_id) == (user_id, character_id)
        ]

    @property
    def lost(self) -> Counter[tuple[str, str]]:
        """Writes lost so far, by (kind, reason)."""
        return self._losses.counts

    def count_lost(
        self, kind: str, reason: LossReason, *, user_id: str, session_id: str | None
    ) -> None:
        """Log and count a loss found outside the queue (a memory update that could not run)."""
        self._losses.one(kind, reason, user_id=user_id, session_id=session_id)

    def _submit(
        self,
        kind: WriteKind,
        user_id: str,
        character_id: str,
        text: str,
        session_id: str | None,
        role: str | None = None,
    ) -> int | None:
        self._seq += 1
        write = PendingWrite(
            self._seq, kind, user_id, character_id, session_id, role, text, self._now()
        )
        if self._closed:
            self._losses.lose([write], "shutdown")
            return None
        self._queue.append(write)
        if len(self._queue) > self.max_pending:
            oldest = self._queue[1] if self._queue[0] is self._in_flight else self._queue[0]
            self._queue.remove(oldest)
            self._losses.lose([oldest], "queue_full")
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="memory-writes")
        return write.seq

    def _stale(
        self,
        user_id: str,
        character_id: str,
        generation: Generation,
        kind: str,
        session_id: str | None,
    ) -> bool:
        if generation == self.generation(user_id, character_id):
            return False
        log.info(
            "session %s: %s from before a deletion by user %s not stored",
            session_id,
            kind,
            user_id,
        )
        return True

    # --- waiting ---------------------------------------------------------------------------

    async def wait_written(self, seq: int, timeout: float | None = None) -> bool:
        """Wait until every write up to ``seq`` is stored (or lost); ``True`` if so.

        Returns ``False`` early while the database is unreachable (the writes stay queued,
        this object keeps retrying them) and when ``timeout`` passes. Cancelling the wait
        cancels no write.
        """
        try:
            async with asyncio.timeout(timeout), self._progress:
                await self._progress.wait_for(lambda: self._written(seq) or self._failing)
        except TimeoutError:
            pass
        return self._written(seq)

    def _written(self, seq: int) -> bool:
        # The queue is in sequence order: nothing up to seq is left if its head is later.
        return not self._queue or self._queue[0].seq > seq

    async def _notify(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    # --- the writing task ------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.backoff_s[0]
        while self._queue:
            self._expire()
            if not self._queue:
                break
            write = self._queue[0]
            error: BaseException | None = None
            async with self._lock:
                if not self._queue or self._queue[0] is not write:
                    continue  # dropped by a deletion while waiting for the lock
                self._in_flight = write
                try:
                    async with asyncio.timeout(self.attempt_timeout_s):
                        await self._store(write)
                except Exception as exc:
                    error = exc
                finally:
                    self._in_flight = None
                if error is None or not is_unreachable(error):
                    self._queue.remove(write)
            if error is None:
                if self._failing:
                    log.info("memory database reachable again; %d writes to store", self.pending)
                self._failing, delay = False, self.backoff_s[0]
            elif is_unreachable(error):
                self.retries += 1
                if self._on_retry is not None:
                    self._on_retry()
                if not self._failing:
                    log.warning(
                        "memory database unreachable (%s): %d writes wait, retried with backoff",
                        type(error).__name__,
                        self.pending,
                    )
                self._failing = True
                await self._notify()
                await asyncio.sleep(delay)
                delay = min(2 * delay, self.backoff_s[1])
                continue
            else:
                self._losses.lose([write], "rejected", type(error).__name__)
            await self._notify()
        await self._notify()

    async def _store(self, write: PendingWrite) -> None:
        store, user, character = self.store, write.user_id, write.character_id
        if write.kind == "transcript":
            assert write.session_id is not None and write.role is not None
            await store.add_transcript(user, character, write.session_id, write.role, write.text)
        elif write.kind == "summary":
            await store.set_summary(user, character, write.text)
        else:
            await store.add_fact(user, character, write.text)

    def _expire(self) -> None:
        cutoff = self._now() - self.max_age_s
        expired = []
        while self._queue and self._queue[0].queued_at <= cutoff:
            expired.append(self._queue.popleft())
        if expired:
            self._losses.lose(expired, "expired")

    # --- deletion --------------------------------------------------------------------------

    async def forget_user(self, user_id: str) -> int:
        """Drop the user's queued writes, then delete all their rows; rows deleted.

        The queued writes are dropped (and running memory updates kept from writing) even
        when the database then cannot be reached and the error propagates.
        """
        async with self._lock:
            self._user_generation[user_id] += 1
            self._drop(lambda write: write.user_id == user_id, user_id, "user deleted")
            return await self.store.delete_user(user_id)

    async def delete_memory(self, user_id: str, memory_id: str) -> bool:
        """Delete one memory and drop the queued memory writes of its user and character.

        A queued summary would rewrite what was deleted, and a memory update composed
        before the deletion may hold it too. If the database cannot be reached, the user's
        queued memory writes for every character are dropped and the error propagates.
        """
        async with self._lock:
            try:
                character_id = await self.store.delete(user_id, memory_id)
            except Exception:
                self._user_generation[user_id] += 1
                self._drop(
                    lambda write: write.user_id == user_id and write.kind != "transcript",
                    user_id,
                    "memory deleted",
                )
                raise
            if character_id is None:
                return False
            self._memory_generation[user_id, character_id] += 1
            self._drop(
                lambda write: (
                    (write.user_id, write.character_id) == (user_id, character_id)
                    and write.kind != "transcript"
                ),
                user_id,
                "memory deleted",
            )
            return True

    def _drop(self, match: Callable[[PendingWrite], bool], user_id: str, why: str) -> None:
        kept = deque(write for write in self._queue if not match(write))
        dropped = len(self._queue) - len(kept)
        self._queue = kept
        if dropped:
            log.info("%s: %d queued writes of user %s dropped", why, dropped, user_id)

    # --- shutdown --------------------------------------------------------------------------

    async def aclose(self, timeout: float | None = None) -> None:
        """Store what is queued, for at most ``timeout`` (default ``flush_timeout_s``);
        log and count the rest as lost. Writes queued later are lost too. Safe twice."""
        if self._closed:
            return
        self._closed = True
        task = self._task
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=self.flush_timeout_s if timeout is None else timeout)
        await cancel_and_wait(task)
        if self._queue:
            left, self._queue = list(self._queue), deque()
            self._losses.lose(left, "shutdown")
        await self._notify()

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()
