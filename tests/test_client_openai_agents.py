"""The OpenAI Agents SDK (PyPI ``openai-agents``) against a real server, with its defaults.

A ``RealtimeAgent`` run by a ``RealtimeRunner`` with no model settings, as in the SDK's
quickstart; only the URL and the API key point at this server. Its tracing export is off
through its documented switch (``agents.set_tracing_disabled(True)``),
so nothing leaves the machine; the ``tracing: "auto"`` it puts in its session is part of
its default session and goes to this server.

Function tools: a ``@function_tool`` on the agent, run by the SDK itself when the model
calls it; the SDK sends its ``function_call_output`` and asks for the continuation.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import client_scenarios as scenarios
from tests.client_drivers import AgentsDriver
from tests.conftest import Clip, ServerProcess
from voice.audio import Float32Array

pytestmark = pytest.mark.e2e


async def test_default_session_accepted(server: ServerProcess) -> None:
    async with AgentsDriver.connect(server.ws_base, server.api_key) as driver:
        await scenarios.default_session_accepted(driver)


async def test_spoken_turn(server: ServerProcess, speech: dict[str, Clip]) -> None:
    async with AgentsDriver.connect(server.ws_base, server.api_key) as driver:
        await scenarios.spoken_turn(driver, speech["ps_goforward"])
        assert "audio" in driver.client_events, "the SDK emitted no audio event"


async def test_push_to_talk(server: ServerProcess, speech: dict[str, Clip]) -> None:
    async with AgentsDriver.connect(
        server.ws_base, server.api_key, model_settings={"turn_detection": None}
    ) as driver:
        await scenarios.push_to_talk(driver, speech["ps_forever_input_2"])
        assert "audio" in driver.client_events


async def test_barge_in(server: ServerProcess, speech: dict[str, Clip]) -> None:
    async with AgentsDriver.connect(server.ws_base, server.api_key) as driver:
        await scenarios.barge_in(driver, speech["ps_goforward"])
        assert "audio_interrupted" in driver.client_events, driver.client_events


async def test_backchannel(server: ServerProcess, mm_hmm: Float32Array) -> None:
    async with AgentsDriver.connect(server.ws_base, server.api_key) as driver:
        again = await scenarios.backchannel(driver, mm_hmm)
        await driver.server.wait_for(
            "response.done", lambda e: e["response"]["id"] == again["response_id"], timeout=120
        )
        assert scenarios.surfaced_after(driver, "audio_interrupted", "audio"), driver.client_events


def weather_tool(calls: list[str]) -> Any:
    """A ``get_weather`` function tool that records the cities it was asked about."""
    from agents import function_tool

    @function_tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city.

        Args:
            city: The city's name.
        """
        calls.append(city)
        return scenarios.FORECAST

    return get_weather


def assert_the_sdk_ran_the_tool(
    driver: AgentsDriver, calls: list[str], tool_round: scenarios.ToolRound
) -> None:
    """The Python function ran once with the call's city; the SDK's events and history
    show the call, its output, and the reply after it, in order."""
    city = json.loads(tool_round.call["arguments"])["city"]
    assert calls == [city], (calls, tool_round.call)
    assert isinstance(city, str) and city.strip(), tool_round.call
    assert tool_round.output["output"] == scenarios.FORECAST, tool_round.output
    assert [event.type for event in driver.tool_events] == ["tool_start", "tool_end"]
    assert driver.tool_events[1].output == scenarios.FORECAST
    after_tool = driver.client_events[driver.client_events.index("tool_end") :]
    assert "audio" in after_tool, f"no audio of the continuation: {driver.client_events}"
    kinds = [(item.type, getattr(item, "role", None)) for item in driver.history]
    (tool_index,) = [i for i, (kind, _) in enumerate(kinds) if kind == "function_call"]
    tool_item = driver.history[tool_index]
    assert tool_item.call_id == tool_round.call["call_id"], tool_item
    assert tool_item.output == scenarios.FORECAST, tool_item
    assert ("message", "user") in kinds[:tool_index], kinds
    assert ("message", "assistant") in kinds[tool_index + 1 :], kinds


@pytest.mark.parametrize("forced", [True, False], ids=["forced", "auto"])
async def test_a_function_tool_runs_and_the_reply_continues(
    server: ServerProcess, forced: bool
) -> None:
    """``forced``: the forcing in one raw ``response.create`` (``RealtimeModelSendRawMessage``),
    not in the session. ``auto``: all through the SDK's own API (``send_message``, its
    default ``tool_choice``). Either way the SDK sends the output and asks for the reply."""
    calls: list[str] = []
    async with AgentsDriver.connect(
        server.ws_base, server.api_key, tools=[weather_tool(calls)]
    ) as driver:
        await scenarios.settle(driver)
        start = await scenarios.ask_for_weather(driver, forced=forced)
        tool_round = await scenarios.tool_call_continued(driver, "get_weather", after=start)
        assert_the_sdk_ran_the_tool(driver, calls, tool_round)
