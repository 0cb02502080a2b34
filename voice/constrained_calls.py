"""Function calls from a chat model without native tool calling, by constrained decoding.

The embedded llama.cpp server streams text only (its tool-calling chat format cannot
stream a call), but it decodes under a JSON-schema grammar (``response_format`` with a
``schema``). So a call is made in two steps: which function (the one named by the tool
choice; for ``required`` with several tools, a one-word answer constrained to their names;
for ``auto``, :func:`voice.tool_router.relevant_tool`, unless a function's result already
answers the user's last message), then its arguments, written by
the model as JSON that the grammar keeps valid against the function's parameters.
No I/O here: these build the requests; :class:`voice.llm.ChatLLM` sends them.
"""

from __future__ import annotations

import json
from typing import Any

from voice.tool_router import relevant_tool
from voice.tools import FunctionTool, Message, ToolSpec


def last_user_text(messages: list[Message]) -> str:
    """The words of the user's last message (what a tool would be for)."""
    return next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")


def answered(messages: list[Message]) -> bool:
    """Whether a function's result (a ``tool`` message) came after the user's last message."""
    for message in reversed(messages):
        if message.get("role") == "tool":
            return True
        if message.get("role") == "user":
            return False
    return False


def chosen_without_model(spec: ToolSpec, messages: list[Message]) -> FunctionTool | str | None:
    """The function to call when no model is needed to tell: the one the choice names,
    the only one there is for ``required``, the router's pick (or None: reply) for ``auto``.
    ``"ask"`` when the model must pick one of several for ``required``.

    ``messages`` are in the chat format (results as ``tool`` messages). With ``auto``, once
    a result answers the user's last message the reply is in words: the router would pick
    the same function for the same words again, and a client that asks for the
    continuation with the session's ``auto`` (as the Agents SDKs do) would loop forever."""
    if spec.choice.function is not None:
        return spec.tool(spec.choice.function)
    if spec.choice.mode == "required":
        return spec.tools[0] if len(spec.tools) == 1 else "ask"
    if answered(messages):
        return None
    return relevant_tool(last_user_text(messages), spec.tools)


def pick_request(spec: ToolSpec, messages: list[Message]) -> tuple[list[Message], dict[str, Any]]:
    """Messages and ``response_format`` for the model to name one function (``required``)."""
    names = [tool.name for tool in spec.tools]
    ask = {
        "role": "user",
        "content": "Which function fits what I asked? Answer with its name, one of: "
        + ", ".join(names)
        + ".",
    }
    schema = {"type": "object", "properties": {"name": {"enum": names}}, "required": ["name"]}
    return [*messages, ask], {"type": "json_object", "schema": schema}


def picked(content: str, spec: ToolSpec) -> FunctionTool:
    """The function the model named (the grammar allows only their names)."""
    try:
        name = json.loads(content).get("name")
    except (json.JSONDecodeError, AttributeError):
        name = None
    return spec.tool(name) or spec.tools[0]


def arguments_request(
    tool: FunctionTool, messages: list[Message]
) -> tuple[list[Message], dict[str, Any]]:
    """Messages and ``response_format`` for the model to write ``tool``'s arguments."""
    properties = tool.parameters.get("properties") or {}
    fields = ", ".join(_field(name, spec) for name, spec in properties.items())
    request = last_user_text(messages)
    ask = {
        "role": "user",
        "content": f'I asked: "{request}" Call {tool.name} ({tool.description}) for that. '
        f"Write its arguments as JSON, taken from what I asked: {fields or 'none'}.",
    }
    schema = tool.parameters or {"type": "object", "properties": {}}
    return [*messages, ask], {"type": "json_object", "schema": schema}


def _field(name: str, spec: Any) -> str:
    """One parameter in words: ``city (string: the city's name)``."""
    kind = spec.get("type", "value") if isinstance(spec, dict) else "value"
    about = spec.get("description") if isinstance(spec, dict) else None
    return f"{name} ({kind}: {about})" if about else f"{name} ({kind})"
