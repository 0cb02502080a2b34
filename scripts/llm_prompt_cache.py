"""Time to first token of the embedded LLM when calls with different characters take turns.

Starts the embedded llama.cpp server (SmolLM2-135M) once without and once with its RAM
prompt cache, and sends real companion prompts (card, memory, history, as built for a
session) in two orders: the same character every time (one call), and two characters
alternating (two calls taking turns). Each request adds one user turn to its character's
history, as a conversation does. Prints medians; asserts nothing.

    .venv/bin/python scripts/llm_prompt_cache.py --rounds 8
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from voice.characters.library import CharacterLibrary
from voice.companion import Companion, Companions
from voice.config import Settings
from voice.llm import ChatLLM
from voice.llm_server import EMBEDDED_MODEL_ALIAS, EmbeddedLlamaServer, default_gguf_path
from voice.services import memory_store

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "How was your night so far?",
    "What do you see from up there right now?",
    "Tell me something that made you laugh this week.",
    "Do you ever get tired of the work?",
    "What would you cook for a friend tonight?",
]


async def open_companions(data: Path) -> dict[str, Companion]:
    store = memory_store(Settings(data_dir=data))
    await store.create()
    companions = Companions(CharacterLibrary(REPO / "characters"), store, llm=None)  # type: ignore[arg-type]
    return {
        name: await companions.open(name, user_id="sam", session_id=name, user_name="Sam")
        for name in ("maren", "theo")
    }


async def first_token_s(llm: ChatLLM, messages: list[dict[str, str]]) -> tuple[float, str]:
    started = time.perf_counter()
    first: float | None = None
    text = ""
    async for delta in llm.stream(messages, max_tokens=24):
        first = first or time.perf_counter() - started
        text += delta
    return (first or time.perf_counter() - started), text


async def run(order: list[str], companions: dict[str, Companion], llm: ChatLLM) -> list[float]:
    histories: dict[str, list[dict[str, str]]] = {name: [] for name in companions}
    times = []
    for index, name in enumerate(order):
        turns = histories[name]
        turns.append({"role": "user", "content": QUESTIONS[index % len(QUESTIONS)]})
        seconds, reply = await first_token_s(llm, companions[name].messages(turns))
        turns.append({"role": "assistant", "content": reply})
        times.append(seconds)
    return times[2:]  # the first request of each character fills the cache


async def measure(cache_bytes: int, rounds: int, companions: dict[str, Companion]) -> None:
    with tempfile.TemporaryDirectory() as logs:
        server = EmbeddedLlamaServer(
            default_gguf_path(), cache_bytes=cache_bytes, log_path=Path(logs) / "llm.log"
        )
        print(f"starting the embedded LLM, prompt cache {cache_bytes >> 20} MiB ...", flush=True)
        await server.start()
        llm = ChatLLM(server.base_url, EMBEDDED_MODEL_ALIAS)
        try:
            one = await run(["maren"] * (rounds + 2), companions, llm)
            two = await run(["maren", "theo"] * (rounds // 2 + 1), companions, llm)
        finally:
            await llm.aclose()
            await server.stop()
    for label, times in (("one character", one), ("two alternating", two)):
        print(
            f"  {label:16s} first token median {statistics.median(times) * 1000:5.0f} ms, "
            f"max {max(times) * 1000:5.0f} ms (n={len(times)})",
            flush=True,
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="measured requests per order")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        companions = await open_companions(Path(data))
        for cache_bytes in (0, 256 << 20):
            await measure(cache_bytes, args.rounds, companions)


if __name__ == "__main__":
    asyncio.run(main())
