"""StoreWriter and SessionMemory logic against a fake store whose database can be switched
off (FakeStore, below): order, bounds, losses, deletion, shutdown. The same behaviour on a
real PostgreSQL that is really stopped is in tests/test_database_outage.py."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from tests.test_memory_extraction import ScriptedLLM
from voice.memory.recorder import Recollection, SessionMemory
from voice.memory.store import Memory, MemoryStore
from voice.memory.writer import StoreWriter


class FakeClock:
    """Injected time for the age of queued writes."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeStore:
    """A fake MemoryStore in RAM: ``down`` makes every call fail as an unreachable
    database does (ConnectionRefusedError); ``refuse`` makes writes of that text fail as a
    database refusing the data would."""

    down: bool = False
    refuse: set[str] = field(default_factory=set)
    transcript_retention_days: int = 30
    lines: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    summaries: dict[tuple[str, str], str] = field(default_factory=dict)
    facts_: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    calls: int = 0

    def _call(self, text: str = "") -> None:
        self.calls += 1
        if self.down:
            raise ConnectionRefusedError(111, "Connect call failed")
        if text in self.refuse:
            raise ValueError("refused by the fake database")

    async def add_transcript(
        self, user_id: str, character_id: str, session_id: str, role: str, text: str
    ) -> int:
        self._call(text)
        self.lines.append((user_id, character_id, session_id, role, text))
        return len(self.lines)

    async def set_summary(self, user_id: str, character_id: str, text: str) -> None:
        self._call(text)
        self.summaries[user_id, character_id] = text

    async def add_fact(self, user_id: str, character_id: str, text: str) -> str | None:
        self._call(text)
        known = self.facts_.setdefault((user_id, character_id), [])
        if text in known:
            return None
        known.insert(0, text)
        return "id"

    async def summary(self, user_id: str, character_id: str) -> str | None:
        self._call()
        return self.summaries.get((user_id, character_id))

    async def facts(self, user_id: str, character_id: str, limit: int = 50) -> list[Memory]:
        self._call()
        texts = self.facts_.get((user_id, character_id), [])[:limit]
        return [cast(Memory, _FakeMemory(text)) for text in texts]

    async def delete_user(self, user_id: str) -> int:
        self._call()
        before = len(self.lines)
        self.lines = [line for line in self.lines if line[0] != user_id]
        return before - len(self.lines)

    async def delete(self, user_id: str, memory_id: str) -> str | None:
        self._call()
        user, _, character = memory_id.partition("/")  # the fake's ids: "user/character"
        if user != user_id or (user, character) not in self.summaries:
            return None
        del self.summaries[user, character]
        return character

    def texts(self, user_id: str | None = None) -> list[str]:
        return [line[4] for line in self.lines if user_id in (None, line[0])]


@dataclass(frozen=True)
class _FakeMemory:
    text: str


def writer_for(store: FakeStore, **options: Any) -> StoreWriter:
    options.setdefault("backoff_s", (0.01, 0.02))
    return StoreWriter(cast(MemoryStore, store), **options)


async def until(condition: Any, timeout: float = 5.0) -> None:
    """Wait for ``condition()`` to hold, at most ``timeout``: it reads counters of the
    writer or the fakes, which no event signals, so it is polled."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def test_writes_wait_while_the_database_is_down_and_land_in_order() -> None:
    store = FakeStore(down=True)
    writer = writer_for(store)
    seqs = [writer.add_transcript("alice", "nova", "s1", "user", f"line {i}") for i in range(5)]
    await until(lambda: writer.retries >= 3)
    assert writer.failing and writer.pending == 5 and store.lines == []
    # While unreachable, a session does not wait for its writes.
    assert await writer.wait_written(seqs[-1], timeout=5) is False

    store.down = False
    await until(lambda: writer.pending == 0)
    assert await writer.wait_written(seqs[-1], timeout=5) is True
    assert store.texts() == [f"line {i}" for i in range(5)]
    assert not writer.failing and writer.pending == 0 and not writer.lost
    await writer.aclose()


async def test_a_full_queue_drops_the_oldest_and_counts_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FakeStore(down=True)
    lost: list[tuple[str, str, int]] = []
    writer = writer_for(store, max_pending=3, on_lost=lambda *loss: lost.append(loss))
    for i in range(5):
        writer.add_transcript("alice", "nova", "s1", "user", f"secret line {i}")
    assert writer.pending == 3
    assert writer.lost == {("transcript", "queue_full"): 2}
    assert lost == [("transcript", "queue_full", 1)] * 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("queue_full" in w and "alice" in w and "s1" in w for w in warnings), warnings
    assert not any("secret" in record.getMessage() for record in caplog.records)

    store.down = False
    await writer.aclose()
    assert store.texts() == ["secret line 2", "secret line 3", "secret line 4"]


async def test_writes_older_than_the_bound_expire_and_are_counted() -> None:
    store, clock = FakeStore(down=True), FakeClock()
    writer = writer_for(store, max_age_s=60, clock=clock)
    writer.add_transcript("alice", "nova", "s1", "user", "old")
    clock.now += 30
    writer.add_transcript("alice", "nova", "s1", "user", "newer")
    await until(lambda: writer.retries >= 1)
    clock.now += 31  # "old" is 61 s old now, "newer" 31 s
    await until(lambda: writer.pending == 1)
    assert writer.lost == {("transcript", "expired"): 1}
    store.down = False
    await writer.aclose()
    assert store.texts() == ["newer"]


async def test_a_write_the_database_refuses_is_dropped_at_once_and_counted() -> None:
    store = FakeStore(refuse={"bad"})
    writer = writer_for(store)
    writer.add_transcript("alice", "nova", "s1", "user", "bad")
    last = writer.add_transcript("alice", "nova", "s1", "user", "good")
    assert last is not None and await writer.wait_written(last, timeout=5)
    assert store.texts() == ["good"]
    assert writer.lost == {("transcript", "rejected"): 1} and writer.retries == 0
    await writer.aclose()


async def test_invalid_text_is_refused_when_queued_not_later() -> None:
    writer = writer_for(FakeStore())
    with pytest.raises(ValueError, match="exceeds"):
        writer.add_transcript("alice", "nova", "s1", "user", "x" * 30_000)
    with pytest.raises(ValueError, match="empty"):
        writer.add_transcript("alice", "nova", "s1", "user", "   ")
    assert writer.pending == 0
    assert (
        writer_for(FakeStore(transcript_retention_days=0)).add_transcript(
            "alice", "nova", "s1", "user", "kept nowhere"
        )
        is None
    )


async def test_forgetting_a_user_drops_their_queued_writes_even_while_down() -> None:
    store = FakeStore(down=True)
    writer = writer_for(store)
    generation = writer.generation("alice", "nova")
    writer.add_transcript("alice", "nova", "s1", "user", "alice's secret")
    writer.set_summary("alice", "nova", "Alice has a secret.", generation=generation)
    writer.add_transcript("bob", "nova", "s2", "user", "bob's line")
    with pytest.raises(ConnectionRefusedError):
        await writer.forget_user("alice")  # the route answers 503; the queue is clean
    assert writer.pending == 1
    assert writer.queued_summary("alice", "nova") is None
    # A memory update composed before the deletion cannot queue its writes afterwards.
    assert writer.set_summary("alice", "nova", "Alice has a secret.", generation=generation) is None
    assert writer.add_fact("alice", "nova", "Alice has a secret.", generation=generation) is None
    assert writer.generation("alice", "nova") != generation

    store.down = False
    await writer.aclose()
    assert store.texts() == ["bob's line"] and store.summaries == {}
    assert not writer.lost  # dropped on request: not a loss


async def test_deleting_a_memory_drops_queued_memory_writes_of_that_character() -> None:
    store = FakeStore(summaries={("alice", "nova"): "Alice likes tea."})
    writer = writer_for(store)
    store.down = True
    nova, kai = writer.generation("alice", "nova"), writer.generation("alice", "kai")
    writer.set_summary("alice", "nova", "Alice likes tea and cake.", generation=nova)
    writer.add_fact("alice", "kai", "Alice has a cat.", generation=kai)
    writer.add_transcript("alice", "nova", "s1", "user", "I like tea.")
    await until(lambda: writer.failing)
    store.down = False
    assert await writer.delete_memory("alice", "alice/nova") is True
    assert writer.queued_summary("alice", "nova") is None
    assert writer.generation("alice", "kai") == kai  # another character's memory stays
    await writer.aclose()
    assert store.summaries == {}  # not written back
    assert store.facts_ == {("alice", "kai"): ["Alice has a cat."]}
    assert store.texts() == ["I like tea."]  # a transcript is not a memory
    assert await writer.delete_memory("alice", "alice/nova") is False


async def test_shutdown_stores_what_it_can_then_counts_the_rest() -> None:
    store = FakeStore(down=True)
    writer = writer_for(store)
    writer.add_transcript("alice", "nova", "s1", "user", "one")
    writer.add_fact(
        "alice", "nova", "Alice has a cat.", generation=writer.generation("alice", "nova")
    )
    await writer.aclose(timeout=0.1)
    assert writer.lost == {("transcript", "shutdown"): 1, ("fact", "shutdown"): 1}
    assert writer.pending == 0
    assert writer.add_transcript("alice", "nova", "s1", "user", "too late") is None
    assert writer.lost["transcript", "shutdown"] == 2
    await writer.aclose()  # safe twice


# --- SessionMemory over the writer ----------------------------------------------------


def session_memory(writer: StoreWriter, llm: ScriptedLLM, **options: Any) -> SessionMemory:
    options.setdefault("every_turns", 2)
    return SessionMemory(
        llm, writer, user_id="alice", character_id="nova", session_id="s1", **options
    )


async def test_an_update_during_an_outage_runs_the_model_once_and_lands_later() -> None:
    store = FakeStore(summaries={("alice", "nova"): "Alice has a cat."})
    writer = writer_for(store)
    llm = ScriptedLLM("Alice has a cat called Tom.", "- The user has a cat called Tom.")
    memory = session_memory(writer, llm)
    assert await memory.recall() == Recollection("Alice has a cat.", [])
    store.down = True
    await memory.add_turn("user", "My cat is called Tom.")
    await memory.add_turn("assistant", "Tom is a fine name.")
    await memory.add_turn("user", "He is a tabby cat.")
    await until(lambda: not memory.updating)
    # The summary read failed, so the update used the one recalled at the start.
    assert "Summary so far: Alice has a cat." in llm.calls[0][-1]["content"]
    assert writer.queued_summary("alice", "nova") == "Alice has a cat called Tom."
    assert await memory.recall() == Recollection(
        "Alice has a cat called Tom.", ["The user has a cat called Tom."]
    )

    store.down = False
    await memory.aclose()
    await writer.aclose()  # flushes
    assert len(llm.calls) == 2  # never re-run for the retries
    assert store.summaries["alice", "nova"] == "Alice has a cat called Tom."
    assert store.facts_["alice", "nova"] == ["The user has a cat called Tom."]
    assert store.texts() == ["My cat is called Tom.", "Tom is a fine name.", "He is a tabby cat."]
    assert not writer.lost


async def test_recall_while_down_starts_without_memory(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore(summaries={("alice", "nova"): "Alice has a cat."}, down=True)
    memory = session_memory(writer_for(store), ScriptedLLM())
    assert await memory.recall() == Recollection(None, [])
    assert any("starting without memory" in r.getMessage() for r in caplog.records)


async def test_an_update_with_no_known_summary_is_put_off_then_counted_at_close() -> None:
    store = FakeStore(down=True)
    writer = writer_for(store)
    llm = ScriptedLLM()
    memory = session_memory(writer, llm)
    await memory.recall()  # fails: the stored summary is unknown
    for text in ("My cat is called Tom.", "He is a tabby."):
        await memory.add_turn("user", text)
    await until(lambda: not memory.updating)
    assert llm.calls == []  # put off before asking the model (it would clobber the summary)
    await memory.aclose()
    assert llm.calls == []
    assert writer.lost == {("memory_update", "unreachable"): 1}
    store.down = False
    await writer.aclose()
    assert store.texts() == ["My cat is called Tom.", "He is a tabby."]  # the lines survive


async def test_a_put_off_update_runs_once_the_database_is_back() -> None:
    store = FakeStore(down=True)
    writer = writer_for(store)
    llm = ScriptedLLM("Alice's cat Tom is a tabby.", "- The user has a cat called Tom.")
    memory = session_memory(writer, llm)
    await memory.recall()
    await memory.add_turn("user", "My cat is called Tom.")
    await memory.add_turn("user", "He is a tabby.")
    await until(lambda: not memory.updating)
    store.down = False
    await memory.aclose()  # the final update folds in the put-off turns
    await writer.aclose()
    assert "My cat is called Tom." in llm.calls[0][-1]["content"]
    assert store.summaries["alice", "nova"] == "Alice's cat Tom is a tabby."
    assert not writer.lost


async def test_an_update_running_when_the_user_is_forgotten_writes_nothing() -> None:
    store = FakeStore()
    writer = writer_for(store)
    gate = asyncio.Event()
    llm = ScriptedLLM("Alice has a cat called Tom.", "- The user has a cat called Tom.", gate=gate)
    memory = session_memory(writer, llm)
    await memory.recall()
    await memory.add_turn("user", "My cat is called Tom.")
    await memory.add_turn("user", "He is a tabby.")
    await until(lambda: len(llm.calls) == 1)  # the model is writing the summary
    await writer.forget_user("alice")
    gate.set()
    await until(lambda: not memory.updating)
    await memory.add_turn("user", "A new start.")
    await memory.aclose()
    assert store.summaries == {} and store.facts_ == {}
    # Lines said after the deletion are new data; the ones before were deleted.
    assert store.texts() == ["A new start."]
    await writer.aclose()
