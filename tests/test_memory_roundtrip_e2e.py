"""A fact told in session one is in the prompt of session two, with the real embedded model
writing the memory (STT and TTS are fakes here: this is about the prompt, not the audio)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PATIENT_LLM_S, REPO, ServerProcess
from tests.fakes import FakeEngines, FakeLLM, Recorder, VirtualClock
from tests.test_session_fakes import user_text
from voice.characters.library import CharacterLibrary
from voice.companion import Companions
from voice.config import Settings
from voice.llm import ChatLLM
from voice.services import memory_store
from voice.session import RealtimeSession
from voice.tools import ToolCallDelta

pytestmark = pytest.mark.e2e


class RecordingLLM(ChatLLM):
    """The real chat client, remembering the prompts it sent (to look at them)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(
            base_url,
            "smollm2",
            max_tokens=60,
            first_token_timeout_s=PATIENT_LLM_S,
            stall_timeout_s=PATIENT_LLM_S,
        )
        self.prompts: list[list[dict[str, str]]] = []

    async def stream(
        self, messages: list[dict[str, Any]], **options: Any
    ) -> AsyncIterator[str | ToolCallDelta]:
        self.prompts.append(messages)
        async for delta in super().stream(messages, **options):
            yield delta


async def test_a_fact_from_session_one_is_in_the_prompt_of_session_two(
    server: ServerProcess, tmp_path: Path
) -> None:
    llm = RecordingLLM(server.health()["models"]["llm"]["base_url"])
    store = memory_store(Settings(data_dir=tmp_path))
    await store.create()
    companions = Companions(CharacterLibrary(REPO / "characters"), store, llm)
    engines = FakeEngines(FakeLLM([]))
    engines.llm = llm  # type: ignore[assignment]

    async def session(text: str) -> RealtimeSession:
        recorder = Recorder(VirtualClock())
        call = RealtimeSession(
            engines,
            Settings(),
            recorder.send,
            recorder.clock,
            companions=companions,
            user_id="sam",
            character="maren",
        )
        await call.start()
        await recorder.wait_for("response.done")  # her greeting
        await call.handle_text(user_text(text))
        await call.handle_text('{"type": "response.create"}')
        await recorder.wait_for("response.done", count=2, timeout=90)
        return call

    first = await session("My name is Sam and I have a dog called Pixel.")
    await first.aclose()  # the memory update runs here, with the real model
    facts = [memory.text for memory in await store.memories("sam", "maren")]
    assert any("Sam" in fact for fact in facts), facts

    second = await session("Do you remember me?")
    system = llm.prompts[-1][0]["content"]
    assert "Sam" in system, system
    await second.aclose()
    await store.aclose()
    await llm.aclose()
