"""Can the bundled SmolLM2-135M itself choose which tool a request is for?

    .venv/bin/python scripts/tool_choice_by_model.py

Asks the embedded llama.cpp server, for each request of scripts/tool_calls.py's set, a
multiple-choice question (A: just talk, B..: one tool each) and takes the option letter
with the highest log-probability as the model's choice (one token, no grammar needed).
This is why ``tool_choice: "auto"`` does not leave the choice to this model
(voice/tool_router.py): it prefers "A" whatever it is asked.
"""

from __future__ import annotations

import asyncio
import string
import tempfile
from pathlib import Path

from openai import AsyncOpenAI
from tool_calls import REQUESTS, TOOLS  # type: ignore[import-not-found]

from voice.llm_server import EMBEDDED_MODEL_ALIAS, EmbeddedLlamaServer, default_gguf_path


def question(request: str) -> str:
    options = ["just talk with the user"] + [f"{t['name']}: {t['description']}" for t in TOOLS]
    lines = [f'The user said: "{request}"', "What should the assistant do?"]
    lines += [f"{string.ascii_uppercase[i]}) {option}" for i, option in enumerate(options)]
    return "\n".join([*lines, "Answer with one letter."])


async def main() -> None:
    log = Path(tempfile.mkdtemp()) / "llm.log"
    server = EmbeddedLlamaServer(
        default_gguf_path(), threads=2, context=2048, cache_bytes=0, log_path=log
    )
    await server.start(120)
    client = AsyncOpenAI(base_url=server.base_url, api_key="none")
    letters = string.ascii_uppercase[: len(TOOLS) + 1]
    right = 0
    try:
        for request, wanted, _ in REQUESTS:
            messages = [
                {"role": "system", "content": "You pick the right action."},
                {"role": "user", "content": question(request)},
            ]
            result = await client.chat.completions.create(
                model=EMBEDDED_MODEL_ALIAS, messages=messages, max_tokens=1, temperature=0,  # type: ignore[arg-type]
                logprobs=True, top_logprobs=10,
            )  # fmt: skip
            content = result.choices[0].logprobs.content if result.choices[0].logprobs else None
            tops = content[0].top_logprobs if content else []
            scores = {t.token.strip(): t.logprob for t in tops if t.token.strip() in letters}
            best = max(scores, key=lambda letter: scores[letter]) if scores else "A"
            chosen = None if best == "A" else TOOLS[letters.index(best) - 1]["name"]
            right += chosen == wanted
            print(
                f"{request!r:50} wanted {wanted or '-':12} model chose {chosen or '-'}", flush=True
            )
    finally:
        await client.close()
        await server.stop()
    print(f"right choice: {right}/{len(REQUESTS)}")


if __name__ == "__main__":
    asyncio.run(main())
