"""Which function a constrained reply calls (no I/O): the tool choice, the router, and what
the conversation already holds."""

from __future__ import annotations

from voice.constrained_calls import answered, chosen_without_model
from voice.tools import FunctionTool, Message, ToolChoice, ToolSpec, call_message, output_message

WEATHER = FunctionTool(
    "get_weather",
    "Get the current weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIMER = FunctionTool(
    "set_timer",
    "Start a countdown timer.",
    {"type": "object", "properties": {"minutes": {"type": "integer"}}, "required": ["minutes"]},
)
ASKED: list[Message] = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What's the weather like in Paris today?"},
]
CALLED = [
    *ASKED,
    call_message("call_1", "get_weather", '{"city": "Paris"}'),
    output_message("call_1", "Sunny, 24 degrees."),
]


def spec(choice: ToolChoice, *tools: FunctionTool) -> ToolSpec:
    return ToolSpec(tools or (WEATHER, TIMER), choice)


def test_auto_calls_the_tool_the_request_is_about() -> None:
    assert chosen_without_model(spec(ToolChoice("auto")), ASKED) is WEATHER


def test_auto_replies_in_words_once_the_result_answers_the_request() -> None:
    assert answered(CALLED)
    assert chosen_without_model(spec(ToolChoice("auto")), CALLED) is None


def test_a_new_request_after_a_result_may_call_again() -> None:
    again = [*CALLED, {"role": "assistant", "content": "Sunny."}]
    again.append({"role": "user", "content": "And the weather in Rome?"})
    assert not answered(again)
    assert chosen_without_model(spec(ToolChoice("auto")), again) is WEATHER


def test_a_forced_choice_calls_even_after_a_result() -> None:
    """The client asked for a call in this response (OpenAI's API does the same)."""
    assert chosen_without_model(spec(ToolChoice("auto", "set_timer")), CALLED) is TIMER
    assert chosen_without_model(spec(ToolChoice("required"), WEATHER), CALLED) is WEATHER
    assert chosen_without_model(spec(ToolChoice("required")), CALLED) == "ask"


def test_nothing_asked_is_nothing_answered() -> None:
    assert not answered([])
    assert not answered(ASKED)
