"""Memory extraction: robust parsing, update_memory with scripted and real models, SessionMemory."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from voice.llm import ChatLLM
from voice.memory.crypto import MemoryCipher
from voice.memory.database import create_engine, sqlite_url
from voice.memory.extract import (
    MAX_FACTS_PER_UPDATE,
    Turn,
    clean_summary,
    parse_facts,
    stated_facts,
    tail,
    transcript_text,
    update_memory,
)
from voice.memory.recorder import Recollection, SessionMemory
from voice.memory.store import MemoryStore
from voice.memory.writer import StoreWriter

SAID = "My name is Sam and I have a dog called Pixel.\nI work as a nurse and I love hiking."
SESSION: list[Turn] = [
    {"role": "user", "content": "Hi there!"},
    {"role": "assistant", "content": "Hello! How are you today?"},
    {"role": "user", "content": "My name is Sam and I have a dog called Pixel."},
    {"role": "assistant", "content": "Nice to meet you, Sam! Pixel is a lovely name."},
    {"role": "user", "content": "I work as a nurse and I love hiking on weekends."},
    {"role": "assistant", "content": "That sounds wonderful."},
]


class ScriptedLLM:
    """Answers ``complete`` calls from a script; optionally waits for a gate first."""

    def __init__(self, *replies: str, gate: asyncio.Event | None = None) -> None:
        self.replies = list(replies)
        self.calls: list[list[dict[str, Any]]] = []
        self.gate = gate

    async def complete(self, messages: list[dict[str, Any]], *, max_tokens: int) -> str:
        self.calls.append(messages)
        if self.gate is not None:
            await self.gate.wait()
        if not self.replies:
            raise RuntimeError("script exhausted")
        return self.replies.pop(0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MemoryStore]:
    memory = MemoryStore(create_engine(sqlite_url(tmp_path)), MemoryCipher(os.urandom(32)))
    await memory.create()
    yield memory
    await memory.aclose()


# --- parsing ----------------------------------------------------------------------------


def test_bullet_facts_are_cleaned_and_grounded() -> None:
    reply = (
        "Here are the facts:\n"
        "- The user has a dog called Pixel\n"
        "* the user works as a nurse.\n"
        "2. The user loves hiking.\n"
        "- The user lives in Lisbon.\n"  # copied from the few-shot example: not said
        "- Does the user like cats?\n"
        "- User: My name is Sam\n"
        "- none\n"
        "-\n"
        f"- The user {'really ' * 40}likes dogs.\n"
        "- The user has a dog called Pixel.\n"
        "Sam works as a nurse.\n"  # not a bullet
    )
    assert parse_facts(reply, SAID) == [
        "The user has a dog called Pixel.",
        "The user works as a nurse.",
        "The user loves hiking.",
    ]


def test_json_facts_and_junk() -> None:
    reply = 'Sure! ["The user has a dog called Pixel", {"fact": "The user is a nurse"}, 3]'
    assert parse_facts(reply, SAID) == [
        "The user has a dog called Pixel.",
        "The user is a nurse.",
    ]
    assert parse_facts("[not json", SAID) == []
    assert parse_facts("", SAID) == []
    assert parse_facts("I cannot help with that.", SAID) == []
    many = "\n".join(f"- The user has dog number {n} called Pixel" for n in range(20))
    assert len(parse_facts(many, SAID + " number")) == MAX_FACTS_PER_UPDATE


def test_stated_names() -> None:
    lines = [
        "Hi, my name is sam and I have a dog.",
        "Please call me Samantha from now on.",
        "Call me back tomorrow.",
        "my name is not important",
        "My name's Lee.",
    ]
    assert stated_facts(lines) == [
        "The user's name is Sam.",
        "The user's name is Samantha.",
        "The user's name is Lee.",
    ]


def test_summary_cleaning() -> None:
    source = transcript_text(SESSION)
    cleaned = clean_summary("  Summary:  The user, Sam,\n has a dog. ", source)
    assert cleaned == "The user, Sam, has a dog."
    assert clean_summary("", source) is None
    assert clean_summary("ok", source) is None
    assert clean_summary("User: hi\nCompanion: hello", source) is None
    platitude = "The user has taken a positive step by acknowledging their own actions."
    assert clean_summary(platitude, source) is None
    long = "The user talks about dogs. " * 40
    cleaned = clean_summary(long, "dogs talks")
    assert cleaned is not None and len(cleaned) <= 600 and cleaned.endswith("dogs.")


def test_prompt_text_is_bounded() -> None:
    turns = [{"role": "user", "content": f"line {n} " + "word " * 20} for n in range(100)]
    text = transcript_text([*turns, {"role": "system", "content": "ignored"}], user_name="Sam")
    assert len(text) <= 3000 and text.startswith("Sam: line") and text.endswith("word")
    assert "ignored" not in text
    assert tail("abc def", 100) == "abc def" and tail("abc def ghi", 6) == "ghi"


# --- update_memory with a scripted model ------------------------------------------------


async def test_update_memory_writes_summary_and_facts() -> None:
    llm = ScriptedLLM(
        "Summary: Sam told the companion about Pixel, his dog.",
        "- The user has a dog called Pixel.\n"
        "- The user lives in Lisbon.\n"
        "- The user's name is Sam.",
    )
    update = await update_memory(llm, None, SESSION)

    assert update.summary == "Sam told the companion about Pixel, his dog."
    # The stated name first (rule), then the model's grounded facts; Lisbon was never said.
    assert update.facts == ["The user's name is Sam.", "The user has a dog called Pixel."]
    # The facts prompt shows only the user's own words.
    assert "Pixel is a lovely name" not in llm.calls[1][-1]["content"]
    assert "Pixel is a lovely name" in llm.calls[0][-1]["content"]

    # A second update sees the previous summary; an empty reply keeps it (None).
    llm = ScriptedLLM("", "- The user has a dog called Pixel.")
    again = await update_memory(llm, update.summary, SESSION[2:4])
    assert "Summary so far: Sam told the companion" in llm.calls[0][-1]["content"]
    assert again.summary is None
    assert again.facts == ["The user's name is Sam.", "The user has a dog called Pixel."]


async def test_no_user_words_means_no_model_call() -> None:
    llm = ScriptedLLM()
    update = await update_memory(llm, None, [{"role": "user", "content": " "}])
    assert update.summary is None and update.facts == [] and llm.calls == []


# --- SessionMemory ----------------------------------------------------------------------


async def test_session_memory_updates_every_n_turns_and_at_close(store: MemoryStore) -> None:
    gate = asyncio.Event()
    llm = ScriptedLLM(
        "The user introduced themselves as Sam.",
        "- The user has a dog called Pixel.",
        "Sam also works as a nurse.",
        "- The user works as a nurse.",
        gate=gate,
    )
    memory = SessionMemory(
        llm,
        StoreWriter(store),
        user_id="alice",
        character_id="nova",
        session_id="s1",
        every_turns=2,
    )
    assert await memory.recall() == Recollection(None, [])
    await memory.add_turn("user", "My name is Sam and I have a dog called Pixel.")
    await memory.add_turn("assistant", "Hello Sam!")
    assert not memory.updating
    await memory.add_turn("user", "Pixel is a beagle.")
    assert memory.updating  # second user turn: the update started in the background
    await memory.add_turn("assistant", "Beagles are lovely.")
    await memory.add_turn("user", "I work as a nurse.")  # arrives while updating
    gate.set()
    await memory.aclose()
    await memory.aclose()  # safe twice

    assert len(llm.calls) == 4  # one update mid-session, one at close
    assert "I work as a nurse." in llm.calls[2][-1]["content"]
    assert await store.summary("alice", "nova") == "Sam also works as a nurse."
    facts = {fact.text for fact in await store.facts("alice", "nova")}
    assert facts == {
        "The user's name is Sam.",
        "The user has a dog called Pixel.",
        "The user works as a nurse.",
    }
    lines = await store.transcripts("alice", session_id="s1")
    assert [line.role for line in lines] == ["user", "assistant", "user", "assistant", "user"]
    recollection = await memory.recall()
    assert recollection.summary == "Sam also works as a nurse."
    assert set(recollection.facts) == facts


async def test_session_memory_survives_a_failing_model(store: MemoryStore) -> None:
    memory = SessionMemory(
        ScriptedLLM(),
        StoreWriter(store),
        user_id="alice",
        character_id="nova",
        session_id="s1",
        every_turns=1,
    )
    await memory.add_turn("user", "My name is Sam.")
    await memory.add_turn("user", "x" * 30_000)  # too long to store: logged, not raised
    await memory.aclose()  # the scripted model raises: logged, not raised
    assert await store.facts("alice", "nova") == []
    assert len(await store.transcripts("alice")) == 1
    await memory.add_turn("user", "after close")  # ignored
    assert len(await store.transcripts("alice")) == 1


async def test_close_is_bounded_by_its_timeout(store: MemoryStore) -> None:
    never = asyncio.Event()
    memory = SessionMemory(
        ScriptedLLM("x", gate=never),
        StoreWriter(store),
        user_id="alice",
        character_id="nova",
        session_id="s1",
        final_timeout_s=0.05,
    )
    await memory.add_turn("user", "My name is Sam.")
    await memory.aclose()
    assert not memory.updating


# --- the real embedded model ------------------------------------------------------------


@pytest.mark.e2e
async def test_real_model_remembers_a_self_introduction() -> None:
    from voice.llm_server import EmbeddedLlamaServer, default_gguf_path

    server = EmbeddedLlamaServer(default_gguf_path())
    await server.start()
    llm = ChatLLM(server.base_url, "smollm2")
    try:
        update = await update_memory(llm, None, SESSION)
    finally:
        await llm.aclose()
        await server.stop()

    print(f"\nreal model: summary={update.summary!r}\nfacts={update.facts!r}")
    assert any("Sam" in fact for fact in update.facts), update.facts
    assert update.summary
