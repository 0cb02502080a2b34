"""How well the server's model calls functions, and what a tool round trip costs a turn.

    .venv/bin/python scripts/tool_calls.py --spawn                 # default: constrained
    .venv/bin/python scripts/tool_calls.py --spawn --mode native   # the tools passed as they are
    .venv/bin/python scripts/tool_calls.py --url http://127.0.0.1:8000 --rounds 5

For each typed request of a fixed set (10 that a tool is for, 6 of small talk), with
three tools on offer and ``tool_choice: "auto"``, it records whether the reply called the
right tool (or, for small talk, none), whether the arguments are a JSON object with every
required parameter, and whether they carry what the request said (the city, the minutes).
Then it times spoken-reply latency (request -> first audio delta) of a plain reply and of
a reply through a tool: request -> call done, the client answers the call at once, result
-> first audio. ``--mode native`` spawns the server with ``VOICE_LLM_TOOL_CALLS=native``:
the tools go to the model as they are, which is what a model with no tool calling of its
own makes of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

from openai import AsyncOpenAI

from voice.bench.spawn import spawned_server

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function", "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
    },
    {
        "type": "function", "name": "set_timer", "description": "Start a countdown timer.",
        "parameters": {"type": "object", "properties": {"minutes": {"type": "integer"}},
                       "required": ["minutes"]},
    },
    {
        "type": "function", "name": "remember",
        "description": "Save a fact about the user to memory.",
        "parameters": {"type": "object", "properties": {"fact": {"type": "string"}},
                       "required": ["fact"]},
    },
]  # fmt: skip

#: (request, the tool it is for or None, what the arguments should carry)
REQUESTS: list[tuple[str, str | None, Any]] = [
    ("What's the weather like in Paris?", "get_weather", "paris"),
    ("Is it raining in London right now?", "get_weather", "london"),
    ("Will I need an umbrella in Berlin tomorrow?", "get_weather", "berlin"),
    ("How hot is it in Madrid today?", "get_weather", "madrid"),
    ("Set a timer for ten minutes.", "set_timer", 10),
    ("Start a three minute countdown.", "set_timer", 3),
    ("Remind me in five minutes with a timer.", "set_timer", 5),
    ("Please remember that my sister is called Ana.", "remember", "ana"),
    ("Don't forget my birthday is in May.", "remember", "may"),
    ("Remember that I am allergic to cats.", "remember", "cat"),
    ("How are you today?", None, None),
    ("Tell me a joke.", None, None),
    ("What did you do this morning?", None, None),
    ("I love the sea.", None, None),
    ("Do you like music?", None, None),
    ("Good night, talk to you tomorrow.", None, None),
]
INSTRUCTIONS = "You are a helpful companion. Answer in one short sentence."


@dataclass
class Outcome:
    request: str
    wanted: str | None
    called: str | None
    arguments: str
    valid: bool
    carries: bool

    @property
    def right_tool(self) -> bool:
        return self.called == self.wanted


class Session:
    """One Realtime connection with the official SDK, and the events it received."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.events: list[tuple[float, Any]] = []
        self._task = asyncio.create_task(self._receive())

    async def _receive(self) -> None:
        async for event in self.connection:
            self.events.append((time.perf_counter(), event))

    async def next(self, kind: str, after: int, timeout: float = 180.0) -> tuple[float, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for stamp, event in self.events[after:]:
                    if event.type == kind:
                        return stamp, event
                await asyncio.sleep(0.01)

    async def say(self, text: str, **response: Any) -> int:
        after = len(self.events)
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
        await self.connection.conversation.item.create(item=item)
        await self.connection.response.create(**({"response": response} if response else {}))
        return after

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


@contextlib.asynccontextmanager
async def session(url: str, api_key: str, **settings: Any) -> Any:
    client = AsyncOpenAI(
        api_key=api_key, base_url=f"{url}/v1", websocket_base_url=url.replace("http", "ws") + "/v1"
    )
    async with client.realtime.connect(model="voice") as connection:
        opened = Session(connection)
        await opened.next("session.created", 0)
        after = len(opened.events)
        await connection.session.update(
            session={"type": "realtime", "instructions": INSTRUCTIONS, **settings}
        )
        await opened.next("session.updated", after)
        try:
            yield opened
        finally:
            await opened.aclose()


def judge(request: str, wanted: str | None, expected: Any, done: Any) -> Outcome:
    calls = [item for item in done.response.output if item.type == "function_call"]
    call = calls[0] if calls else None
    arguments = call.arguments if call else ""
    valid = carries = False
    if call is not None:
        tool = next((t for t in TOOLS if t["name"] == call.name), None)
        try:
            value = json.loads(arguments)
        except json.JSONDecodeError:
            value = None
        if tool is not None and isinstance(value, dict):
            valid = all(name in value for name in tool["parameters"]["required"])
            if valid and expected is not None:
                given = next(iter(value.values()))
                carries = (
                    given == expected
                    if isinstance(expected, int)
                    else str(expected) in str(given).lower()
                )
    return Outcome(request, wanted, call.name if call else None, arguments, valid, carries)


async def accuracy(url: str, api_key: str) -> list[Outcome]:
    outcomes = []
    for request, wanted, expected in REQUESTS:
        # A session of its own per request: no earlier call sways the next.
        async with session(
            url, api_key, tools=TOOLS, tool_choice="auto", output_modalities=["text"]
        ) as live:
            after = await live.say(request)
            _, done = await live.next("response.done", after)
            outcome = judge(request, wanted, expected, done)
            outcomes.append(outcome)
            print(f"  {request!r:50} wanted {wanted or '-':12} got {outcome.called or '-':12} "
                  f"{outcome.arguments[:40]}", flush=True)  # fmt: skip
    return outcomes


async def latency(
    url: str, api_key: str, rounds: int
) -> tuple[list[float], list[float], list[float]]:
    """Request -> first audio (plain); request -> call done; result -> first audio."""
    plain, to_call, after_result = [], [], []
    for round_ in range(rounds):
        async with session(url, api_key) as live:
            sent = time.perf_counter()
            after = await live.say("What's the weather like in Paris?")
            stamp, _ = await live.next("response.output_audio.delta", after)
            plain.append(stamp - sent)
            await live.next("response.done", after)
        async with session(url, api_key, tools=TOOLS, tool_choice="auto") as live:
            sent = time.perf_counter()
            after = await live.say("What's the weather like in Paris?")
            stamp, call = await live.next("response.function_call_arguments.done", after)
            to_call.append(stamp - sent)
            await live.next("response.done", after)
            after = len(live.events)
            answered = time.perf_counter()
            output = json.dumps({"city": "Paris", "sky": "sunny", "celsius": 24})
            await live.connection.conversation.item.create(
                item={"type": "function_call_output", "call_id": call.call_id, "output": output}
            )
            await live.connection.response.create(response={"tool_choice": "none"})
            stamp, _ = await live.next("response.output_audio.delta", after)
            after_result.append(stamp - answered)
            await live.next("response.done", after)
        print(f"  round {round_ + 1}/{rounds}: plain {plain[-1] * 1000:.0f} ms, to call "
              f"{to_call[-1] * 1000:.0f} ms, result -> audio {after_result[-1] * 1000:.0f} ms",
              flush=True)  # fmt: skip
    return plain, to_call, after_result


def report(outcomes: list[Outcome], times: tuple[list[float], list[float], list[float]]) -> None:
    tool_requests = [o for o in outcomes if o.wanted is not None]
    small_talk = [o for o in outcomes if o.wanted is None]
    right = sum(o.right_tool and o.valid for o in tool_requests)
    carried = sum(o.right_tool and o.carries for o in tool_requests)
    false_calls = sum(o.called is not None for o in small_talk)
    print("--- function calls (tool_choice auto)")
    print(f"right tool, valid arguments: {right}/{len(tool_requests)}")
    print(f"right tool, arguments carry the request's value: {carried}/{len(tool_requests)}")
    print(f"calls on small talk: {false_calls}/{len(small_talk)}")
    plain, to_call, after_result = times
    if plain:
        ms = lambda values: f"median {statistics.median(values) * 1000:.0f} ms (n={len(values)})"  # noqa: E731
        print("--- latency (typed request, spoken reply)")
        print(f"request -> first audio, no tools: {ms(plain)}")
        print(f"request -> call done: {ms(to_call)}; result -> first audio: {ms(after_result)}")
        added = (
            statistics.median(to_call) + statistics.median(after_result) - statistics.median(plain)
        )
        print(f"a tool round trip adds (medians): {added * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--api-key", default="none")
    parser.add_argument("--spawn", action="store_true", help="start a voice serve of its own")
    parser.add_argument("--mode", choices=["constrained", "native"], default="constrained")
    parser.add_argument("--rounds", type=int, default=5, help="latency rounds (0: none)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url, key = args.url, args.api_key
        if args.spawn:
            server = stack.enter_context(
                spawned_server("tool-calls", VOICE_LLM_TOOL_CALLS=args.mode)
            )
            url, key = server.http, server.api_key
            print(f"spawned voice serve ({args.mode}) at {url}", flush=True)
        print(f"--- {len(REQUESTS)} requests, tools {[t['name'] for t in TOOLS]}", flush=True)
        outcomes = asyncio.run(accuracy(url, key))
        times = asyncio.run(latency(url, key, args.rounds)) if args.rounds else ([], [], [])
        report(outcomes, times)


if __name__ == "__main__":
    main()
