"""What memory retrieval and prompt assembly cost, and an example second-session prompt.

    .venv/bin/python scripts/prompt_cost.py

A user with a summary and three facts opens a session with Maren (memory recall from a
SQLite store, as at the start of every session); then the prompt of a turn with 21 earlier
turns is assembled (card, memory, lorebook scan, budget), as before every reply.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from voice.characters.library import CharacterLibrary
from voice.companion import Companions
from voice.config import Settings
from voice.services import memory_store

REPO = Path(__file__).resolve().parents[1]
FACTS = [
    "The user's name is Sam.",
    "Sam has a dog named Pixel.",
    "Sam works night shifts as a nurse.",
]
REPLY = "The wind came in off the water and the lamp kept turning through all of it."


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.3f} ms, max {max(values) * 1000:.3f} ms"


async def main() -> None:
    store = memory_store(Settings(data_dir=Path(tempfile.mkdtemp())))
    await store.create()
    summary = "Sam called late at night; they talked about Sam's dog Pixel and the storm."
    await store.set_summary("sam", "maren", summary)
    for fact in FACTS:
        await store.add_fact("sam", "maren", fact)
    companions = Companions(CharacterLibrary(REPO / "characters"), store, llm=None)  # type: ignore[arg-type]

    opens = []
    for index in range(50):
        started = time.perf_counter()
        companion = await companions.open(
            "maren", user_id="sam", session_id=f"s{index}", user_name="Sam"
        )
        opens.append(time.perf_counter() - started)
    turns = [{"role": "assistant", "content": companion.greeting() or ""}]
    for index in range(10):
        turns.append({"role": "user", "content": f"Tell me about the storm, part {index}."})
        turns.append({"role": "assistant", "content": REPLY})
    turns.append({"role": "user", "content": "Do you remember my dog?"})
    builds = []
    for _ in range(200):
        started = time.perf_counter()
        messages = companion.messages(turns)
        builds.append(time.perf_counter() - started)

    print(f"session start, memory recall from SQLite + card (n=50): {ms(opens)}")
    print(f"prompt assembly per turn, 22 turns (n=200): {ms(builds)}")
    print(json.dumps(messages[:1] + messages[-3:], indent=1))
    print(f"messages: {len(messages)}")
    await store.aclose()


if __name__ == "__main__":
    asyncio.run(main())
