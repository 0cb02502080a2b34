"""Function calling with the real embedded model, through the official Python SDK.

A forced tool choice (a named function, or ``required``) must always give a valid call:
the bundled SmolLM2 writes the arguments under a JSON-schema grammar. The call's output
then continues the reply. With ``auto``, a request that names what a tool does gets the
call, and small talk does not.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.realtime_helpers import EventLog, realtime, say_text

pytestmark = pytest.mark.e2e

WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "the city's name"}},
        "required": ["city"],
    },
}
TIMER: dict[str, Any] = {
    "type": "function",
    "name": "set_timer",
    "description": "Start a countdown timer.",
    "parameters": {
        "type": "object",
        "properties": {"minutes": {"type": "integer"}},
        "required": ["minutes"],
    },
}


async def tools_session(log: EventLog, tool_choice: Any) -> None:
    await log.connection.session.update(
        session={
            "type": "realtime", "output_modalities": ["text"],
            "instructions": "You are a helpful assistant. Answer in one short sentence.",
            "tools": [WEATHER, TIMER], "tool_choice": tool_choice,
        }  # type: ignore[typeddict-item]
    )  # fmt: skip
    await log.wait_for("session.updated")


def calls_of(done: Any) -> list[Any]:
    return [item for item in done.response.output if item.type == "function_call"]


@pytest.mark.parametrize(
    "choice", [{"type": "function", "name": "get_weather"}, "required"], ids=["named", "required"]
)
async def test_a_forced_tool_choice_always_gives_a_valid_call(
    server: ServerProcess, choice: Any
) -> None:
    async with realtime(server.ws_base, server.api_key) as log:
        await tools_session(log, choice)
        await say_text(log, "What's the weather like in Paris today?")
        done = await log.wait_for("response.done", timeout=120)
        assert done.response.status == "completed", done.response.status_details
        (call,) = calls_of(done)
        assert call.name in ("get_weather", "set_timer")
        arguments = json.loads(call.arguments)
        required = (WEATHER if call.name == "get_weather" else TIMER)["parameters"]["required"]
        assert all(name in arguments for name in required), arguments
        deltas = [e.delta for e in log.of_type("response.function_call_arguments.delta")]
        assert "".join(deltas) == call.arguments
        assert not log.of_type("error")


async def test_the_calls_output_continues_the_reply(server: ServerProcess) -> None:
    async with realtime(server.ws_base, server.api_key) as log:
        await tools_session(log, {"type": "function", "name": "get_weather"})
        await say_text(log, "What's the weather like in Paris today?")
        done = await log.wait_for("response.done", timeout=120)
        (call,) = calls_of(done)
        await log.connection.conversation.item.create(
            item={
                "type": "function_call_output", "call_id": call.call_id,
                "output": json.dumps({"city": "Paris", "sky": "sunny", "celsius": 24}),
            }
        )  # fmt: skip
        await log.connection.session.update(session={"type": "realtime", "tool_choice": "none"})
        await log.connection.response.create()
        after = len(log.events)
        final = await log.wait_for("response.done", timeout=120, after=after)
        assert final.response.status in ("completed", "incomplete")
        (message,) = [item for item in final.response.output if item.type == "message"]
        assert message.content[0].text.strip()
        assert not calls_of(final)


async def test_auto_calls_for_a_request_about_a_tool_and_not_for_small_talk(
    server: ServerProcess,
) -> None:
    async with realtime(server.ws_base, server.api_key) as log:
        await tools_session(log, "auto")
        await say_text(log, "Please set a timer for ten minutes.")
        done = await log.wait_for("response.done", timeout=120)
        (call,) = calls_of(done)
        assert call.name == "set_timer"
        assert isinstance(json.loads(call.arguments)["minutes"], int)
        after = len(log.events)
        await say_text(log, "How are you feeling this evening?")
        chat = await log.wait_for("response.done", timeout=120, after=after)
        assert not calls_of(chat)
