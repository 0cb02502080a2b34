"""A session with a character and memory: greeting, prompt, recording (fake LLM and TTS;
real character cards, real SQLite memory store)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes import FakeEngines, FakeLLM, Recorder, VirtualClock
from tests.test_session_fakes import user_text
from voice.characters.library import CharacterLibrary
from voice.companion import Companions
from voice.config import Settings
from voice.memory.store import MemoryStore
from voice.services import memory_store
from voice.session import RealtimeSession

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MemoryStore]:
    memory = memory_store(Settings(data_dir=tmp_path))
    await memory.create()
    yield memory
    await memory.aclose()


def companions_for(store: MemoryStore, llm: FakeLLM) -> Companions:
    return Companions(
        library=CharacterLibrary(REPO / "characters"),
        store=store,
        llm=llm,  # type: ignore[arg-type]
        memory_every_turns=100,
    )


def make_session(
    store: MemoryStore, llm: FakeLLM, *, user: str = "sam", character: str | None = "maren"
) -> tuple[RealtimeSession, Recorder]:
    recorder = Recorder(VirtualClock())
    session = RealtimeSession(
        FakeEngines(llm),
        Settings(),
        recorder.send,
        recorder.clock,
        companions=companions_for(store, llm),
        user_id=user,
        character=character,
        user_name="Sam",
    )
    return session, recorder


async def test_character_greets_first_without_asking_the_model(store: MemoryStore) -> None:
    llm = FakeLLM(["unused"])
    session, recorder = make_session(store, llm)
    await session.start()
    await recorder.wait_for("response.done")
    created = recorder.of("session.created")[0]["session"]
    assert created["character"] == "maren"
    greeting = recorder.of("response.output_audio_transcript.done")[0]["transcript"]
    card = companions_for(store, llm).card("maren")
    assert greeting in [card.first_mes, *card.alternate_greetings] or "{{" not in greeting
    assert llm.prompts == [], "the greeting is the card's, not the model's"
    await session.aclose()


async def test_prompt_is_the_card_with_memory_and_turns(store: MemoryStore) -> None:
    await store.add_fact("sam", "maren", "Sam has a dog called Pixel.")
    llm = FakeLLM(["Hello again, Sam."])
    session, recorder = make_session(store, llm)
    await session.start()
    await recorder.wait_for("response.done")  # the greeting
    await session.handle_text(user_text("Do you remember my dog?"))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done", count=2)
    system = llm.prompts[0][0]
    assert system["role"] == "system"
    assert "Maren" in system["content"]
    assert "Pixel" in system["content"]
    assert llm.prompts[0][-1] == {"role": "user", "content": "Do you remember my dog?"}
    await session.aclose()
    transcript = await store.transcripts("sam", character_id="maren")
    assert [t.text for t in transcript][-1] == "Hello again, Sam."
    # In the order said: her greeting, the user's question, her reply.
    assert [t.role for t in transcript] == ["assistant", "user", "assistant"]
    assert transcript[1].text == "Do you remember my dog?"


async def test_a_reply_cut_at_the_token_limit_is_recorded_as_far_as_it_went(
    store: MemoryStore,
) -> None:
    llm = FakeLLM(["One two three four five six."])
    session, recorder = make_session(store, llm)
    await session.start()
    await recorder.wait_for("response.done")  # the greeting
    await session.handle_text(user_text("Count for me."))
    await session.handle_text('{"type": "response.create", "response": {"max_output_tokens": 3}}')
    await recorder.wait_for("response.done", count=2)
    assert recorder.of("response.done")[-1]["response"]["status"] == "incomplete"
    await session.aclose()
    transcript = await store.transcripts("sam", character_id="maren")
    assert [t.role for t in transcript] == ["assistant", "user", "assistant"]
    assert transcript[-1].text.split() == ["One", "two", "three"]


async def test_another_users_memories_never_reach_the_prompt(store: MemoryStore) -> None:
    await store.add_fact("alex", "maren", "Alex is allergic to cats.")
    llm = FakeLLM(["Hi."])
    session, recorder = make_session(store, llm, user="sam")
    await session.start()
    await recorder.wait_for("response.done")  # the greeting
    await session.handle_text(user_text("Hi."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done", count=2)
    assert all("cats" not in message["content"] for message in llm.prompts[0])
    await session.aclose()


async def test_unknown_character_is_an_error_and_the_session_goes_on(store: MemoryStore) -> None:
    session, recorder = make_session(store, FakeLLM(["x"]), character="nobody")
    await session.start()
    error = recorder.of("error")[0]["error"]
    assert "unknown character 'nobody'" in error["message"]
    assert "maren" in error["message"]
    assert recorder.of("session.created")[0]["session"]["character"] is None
    await session.handle_text(
        json.dumps({"type": "session.update", "session": {"type": "realtime", "character": "theo"}})
    )
    assert recorder.of("session.updated")[-1]["session"]["character"] == "theo"
    await session.aclose()
