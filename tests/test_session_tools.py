"""Function calling over the Realtime API, on the session (scripted fakes: clearly fakes).

The GA flow: tools in the session, passed to the model; a call streamed as a
``function_call`` item with its argument deltas, never spoken; the client's
``function_call_output`` continues the conversation; a cancel mid-call leaves a history
the next prompt can use. The real model's calls are tested in tests/test_tools_e2e.py.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes import FakeCall, FakeEngines, FakeLLM, Recorder, VirtualClock
from tests.test_session_fakes import user_text
from voice.config import Settings
from voice.session import RealtimeSession

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def make(replies: list[str | FakeCall], **llm: Any) -> tuple[RealtimeSession, Recorder, FakeLLM]:
    fake = FakeLLM(replies, **llm)
    recorder = Recorder(VirtualClock())
    session = RealtimeSession(
        FakeEngines(fake), Settings(instructions="Be brief."), recorder.send, recorder.clock
    )
    return session, recorder, fake


async def with_tools(session: RealtimeSession, **extra: Any) -> None:
    update = {"type": "realtime", "tools": [WEATHER], **extra}
    await session.handle_text(json.dumps({"type": "session.update", "session": update}))


def output_item(item_id: str) -> dict[str, Any]:
    return {"type": "conversation.item.create", "item": {"id": item_id}}


async def test_tools_are_stored_echoed_and_passed_to_the_model() -> None:
    session, recorder, llm = make(["Sure."])
    mcp = {"type": "mcp", "server_label": "x", "server_url": "https://mcp.example"}
    update = {"type": "realtime", "tools": [WEATHER, mcp], "tool_choice": "required"}
    await session.handle_text(json.dumps({"type": "session.update", "session": update}))
    echoed = recorder.of("session.updated")[0]["session"]
    assert [tool["name"] for tool in echoed["tools"]] == ["get_weather"]
    assert echoed["tool_choice"] == "required"
    assert echoed["not_applied"] == ["tools[1] (mcp)"]
    await session.handle_text(user_text("Weather?"))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done")
    spec = llm.tools[0]
    assert spec is not None and spec.choice.mode == "required"
    assert [tool.name for tool in spec.tools] == ["get_weather"]


async def test_a_call_is_streamed_as_a_function_call_item_and_never_spoken() -> None:
    session, recorder, _ = make([FakeCall("get_weather", '{"city": "Paris"}')])
    await with_tools(session)
    await session.handle_text(user_text("What's the weather in Paris?"))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done")
    types = recorder.types()
    start = types.index("response.created")
    flow = [t for t in types[start:] if t != "response.function_call_arguments.delta"]
    assert flow == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    deltas = recorder.of("response.function_call_arguments.delta")
    assert "".join(d["delta"] for d in deltas) == '{"city": "Paris"}'
    done = recorder.of("response.function_call_arguments.done")[0]
    assert (done["name"], done["arguments"]) == ("get_weather", '{"city": "Paris"}')
    output = recorder.of("response.done")[0]["response"]["output"]
    assert [item["type"] for item in output] == ["function_call"]
    assert output[0]["call_id"] == done["call_id"] and output[0]["status"] == "completed"
    assert session._engines.voices.tts.calls == 0  # type: ignore[attr-defined]
    assert not recorder.of("response.output_audio.delta")


async def test_a_call_cut_at_the_token_limit_is_incomplete() -> None:
    """Its arguments are partial: no client may take the call as one to run."""
    session, recorder, _ = make([FakeCall("get_weather", '{"city": "Paris"}')])
    await with_tools(session)
    await session.handle_text(user_text("What's the weather in Paris?"))
    await session.handle_text('{"type": "response.create", "response": {"max_output_tokens": 3}}')
    await recorder.wait_for("response.done")
    response = recorder.of("response.done")[0]["response"]
    assert response["status"] == "incomplete"
    assert response["status_details"]["reason"] == "max_output_tokens"
    [call] = response["output"]
    assert call["type"] == "function_call" and call["status"] == "incomplete"
    assert call["arguments"] == '{"city":'  # the name, then two chunks of four


async def test_speech_before_a_call_is_spoken_and_the_result_continues_the_reply() -> None:
    session, recorder, llm = make(
        [FakeCall("get_weather", '{"city": "Paris"}', before="Let me check."), "It is sunny."]
    )
    await with_tools(session)
    await session.handle_text(user_text("What's the weather in Paris?"))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done")
    output = recorder.of("response.done")[0]["response"]["output"]
    assert [item["type"] for item in output] == ["message", "function_call"]
    assert output[0]["content"][0]["transcript"] == "Let me check."
    assert recorder.of("response.output_audio.delta"), "the words before the call are spoken"
    call_id = output[1]["call_id"]

    result = {"type": "function_call_output", "call_id": call_id, "output": '{"sky": "sunny"}'}
    await session.handle_text(json.dumps({"type": "conversation.item.create", "item": result}))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done", count=2)
    prompt = llm.prompts[1]
    assert prompt[-3] == {"role": "assistant", "content": "Let me check."}
    assert prompt[-2]["tool_calls"][0]["function"] == {
        "name": "get_weather", "arguments": '{"city": "Paris"}'
    }  # fmt: skip
    assert prompt[-1] == {"role": "tool", "tool_call_id": call_id, "content": '{"sky": "sunny"}'}
    final = recorder.of("response.done")[1]["response"]["output"][0]
    assert final["content"][0]["transcript"] == "It is sunny."


async def test_a_call_cancelled_midway_is_incomplete_and_left_out_of_the_next_prompt() -> None:
    long_arguments = json.dumps({"city": "Paris " * 100})
    session, recorder, llm = make(
        [FakeCall("get_weather", long_arguments), "Okay."], token_delay=0.002
    )
    await with_tools(session)
    await session.handle_text(user_text("Weather?"))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.function_call_arguments.delta")
    await session.handle_text('{"type": "response.cancel"}')
    done = recorder.of("response.done")[0]["response"]
    assert done["status"] == "cancelled"
    assert done["output"][0]["type"] == "function_call"
    assert done["output"][0]["status"] == "incomplete"
    assert not recorder.of("response.function_call_arguments.done")
    await session.handle_text(user_text("Never mind."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done", count=2)
    assert not [m for m in llm.prompts[1] if m.get("tool_calls")]
    assert session.busy_tasks == 0


async def test_function_items_from_the_client_go_into_the_history() -> None:
    session, recorder, llm = make(["Done."])
    call = {"type": "function_call", "call_id": "call_1", "name": "get_weather",
            "arguments": '{"city": "Oslo"}'}  # fmt: skip
    result = {"type": "function_call_output", "call_id": "call_1", "output": "snow"}
    for item in (call, result):
        await session.handle_text(json.dumps({"type": "conversation.item.create", "item": item}))
    stray = {"type": "function_call_output", "call_id": "call_unknown", "output": "rain"}
    await session.handle_text(json.dumps({"type": "conversation.item.create", "item": stray}))
    assert not recorder.of("error")
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done")
    prompt = llm.prompts[0]
    assert prompt[-3]["tool_calls"][0]["id"] == "call_1"
    assert prompt[-2] == {"role": "tool", "tool_call_id": "call_1", "content": "snow"}
    assert prompt[-1] == {"role": "system", "content": "(A function returned: rain)"}
