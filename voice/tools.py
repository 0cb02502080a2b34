"""Function tools: what a client offers the model, what it asks of it, and the calls that come back.

No I/O. A session (or one response) carries a :class:`ToolSpec`: its function tools and
the tool choice (``auto``, ``none``, ``required``, or one function by name). The model's
calls arrive as :class:`ToolCallDelta` pieces, which a reply turns into ``function_call``
items. In the chat messages sent to the model a call is an assistant message with
``tool_calls`` and its result a ``tool`` message, as the OpenAI chat format has them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

Message = dict[str, Any]
ChoiceMode = Literal["auto", "none", "required"]


@dataclass(frozen=True)
class FunctionTool:
    """A function the model may call: its name, what it does, and its JSON-schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any]

    def chat_tool(self) -> dict[str, Any]:
        """The tool as the chat completions API takes it."""
        return {
            "type": "function",
            "function": {
                "name": self.name, "description": self.description,
                "parameters": self.parameters,
            },
        }  # fmt: skip


@dataclass(frozen=True)
class ToolChoice:
    """``auto``, ``none``, ``required``, or (``function`` set) that one function."""

    mode: ChoiceMode = "auto"
    function: str | None = None

    def chat_choice(self) -> Any:
        """The tool choice as the chat completions API takes it."""
        if self.function is not None:
            return {"type": "function", "function": {"name": self.function}}
        return self.mode

    def wire(self) -> Any:
        """The tool choice as the Realtime API shows it."""
        if self.function is not None:
            return {"type": "function", "name": self.function}
        return self.mode


@dataclass(frozen=True)
class ToolSpec:
    """The tools a reply may call, and whether (or which) it must."""

    tools: tuple[FunctionTool, ...] = ()
    choice: ToolChoice = ToolChoice()

    @property
    def active(self) -> bool:
        """Whether the model may call anything at all."""
        return bool(self.tools) and self.choice.mode != "none"

    def tool(self, name: str) -> FunctionTool | None:
        return next((tool for tool in self.tools if tool.name == name), None)


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a call the model is writing: the ``index``-th call of its reply.

    The first piece of a call carries its ``call_id`` and ``name``; every piece may carry
    a piece of the JSON ``arguments``.
    """

    index: int
    call_id: str | None
    name: str | None
    arguments: str


def call_message(call_id: str, name: str, arguments: str) -> Message:
    """The assistant message of a function call, in the chat format."""
    return {
        "role": "assistant", "content": "",
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        ],
    }  # fmt: skip


def output_message(call_id: str, output: str) -> Message:
    """The result of a function call, in the chat format."""
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def as_text(messages: list[Message], spec: ToolSpec | None) -> list[Message]:
    """``messages`` for a model without native tool support: calls and results in words.

    A call becomes an assistant line "(I called name with {...})", its result a system
    line naming the function; the functions on offer are listed after the first
    system message.
    """
    names = {
        call["id"]: call["function"]["name"]
        for message in messages
        for call in message.get("tool_calls") or []
    }
    converted: list[Message] = []
    for message in messages:
        if message.get("tool_calls"):
            calls = [
                f"(I called {c['function']['name']} with {c['function']['arguments']})"
                for c in message["tool_calls"]
            ]
            converted.append({"role": "assistant", "content": " ".join(calls)})
        elif message.get("role") == "tool":
            name = names.get(message.get("tool_call_id", ""), "the function")
            converted.append(
                {"role": "system", "content": f"({name} returned: {message['content']})"}
            )
        else:
            converted.append({"role": message["role"], "content": message.get("content") or ""})
    if spec is not None and spec.active and converted and converted[0]["role"] == "system":
        offered = "; ".join(f"{tool.name}: {tool.description}" for tool in spec.tools)
        converted[0] = {
            "role": "system",
            "content": f"{converted[0]['content']}\n\nFunctions you can use: {offered}.",
        }
    return converted


def valid_arguments(tool: FunctionTool, arguments: str) -> bool:
    """Whether ``arguments`` is a JSON object with every required parameter of ``tool``."""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return False
    required = tool.parameters.get("required") or []
    return isinstance(value, dict) and all(name in value for name in required)
