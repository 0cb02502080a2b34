"""Conversation items and responses as the Realtime API shows them (``realtime.item``,
``realtime.response``), and what a response cost. No I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from openai.types.realtime import (
    ConversationItem,
    RealtimeConversationItemAssistantMessage,
    RealtimeConversationItemFunctionCall,
    RealtimeConversationItemFunctionCallOutput,
    RealtimeConversationItemSystemMessage,
    RealtimeConversationItemUserMessage,
    RealtimeResponse,
    RealtimeResponseUsage,
)
from openai.types.realtime.realtime_conversation_item_assistant_message import (
    Content as AssistantContent,
)
from openai.types.realtime.realtime_conversation_item_system_message import (
    Content as SystemContent,
)
from openai.types.realtime.realtime_conversation_item_user_message import Content as UserContent
from openai.types.realtime.realtime_response_status import Error, RealtimeResponseStatus

from voice.conversation import Item, ItemStatus
from voice.llm import StreamReport

WireItem = (
    RealtimeConversationItemUserMessage
    | RealtimeConversationItemAssistantMessage
    | RealtimeConversationItemSystemMessage
    | RealtimeConversationItemFunctionCall
    | RealtimeConversationItemFunctionCallOutput
)
ResponseStatus = Literal["in_progress", "completed", "cancelled", "failed", "incomplete"]
CancelReason = Literal["turn_detected", "client_cancelled"]


def wire_item(item: Item) -> WireItem:
    """``item`` as a Realtime conversation item (audio items carry their transcript)."""
    if item.kind == "function_call":
        return function_call_item(item.id, item.call_id, item.name, item.arguments, item.status)
    if item.kind == "function_call_output":
        return RealtimeConversationItemFunctionCallOutput(
            type="function_call_output", id=item.id, object="realtime.item",
            call_id=item.call_id, output=item.text, status=item.status,
        )  # fmt: skip
    common: dict[str, Any] = {
        "type": "message", "id": item.id, "object": "realtime.item", "status": item.status,
    }  # fmt: skip
    if item.role == "user":
        part = (
            UserContent(type="input_audio", transcript=item.text or None)
            if item.from_audio
            else UserContent(type="input_text", text=item.text)
        )
        return RealtimeConversationItemUserMessage(role="user", content=[part], **common)
    if item.role == "assistant":
        return assistant_item(item.id, item.text, item.status, with_audio=item.from_audio)
    return RealtimeConversationItemSystemMessage(
        role="system", content=[SystemContent(type="input_text", text=item.text)], **common
    )


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: ItemStatus
) -> RealtimeConversationItemFunctionCall:
    return RealtimeConversationItemFunctionCall(
        type="function_call", id=item_id, object="realtime.item", call_id=call_id, name=name,
        arguments=arguments, status=status,
    )  # fmt: skip


def assistant_item(
    item_id: str, text: str, status: ItemStatus, *, with_audio: bool
) -> RealtimeConversationItemAssistantMessage:
    content = (
        AssistantContent(type="output_audio", transcript=text)
        if with_audio
        else AssistantContent(type="output_text", text=text)
    )
    return RealtimeConversationItemAssistantMessage(
        type="message", role="assistant", id=item_id, object="realtime.item", status=status,
        content=[content],
    )  # fmt: skip


def response_object(
    response_id: str,
    status: ResponseStatus,
    output: Sequence[ConversationItem],
    *,
    with_audio: bool,
    reason: CancelReason | None = None,
    error: str | None = None,
    metadata: dict[str, str] | None = None,
    usage: RealtimeResponseUsage | None = None,
) -> RealtimeResponse:
    """A ``realtime.response``: its status (with why it was cancelled, cut off or failed),
    its output and what it cost."""
    details: RealtimeResponseStatus | None = None
    if status == "cancelled":
        details = RealtimeResponseStatus(type="cancelled", reason=reason)
    elif status == "incomplete":
        details = RealtimeResponseStatus(type="incomplete", reason="max_output_tokens")
    elif status == "failed":
        details = RealtimeResponseStatus(
            type="failed", error=Error(type="server_error", code=error)
        )
    return RealtimeResponse(
        id=response_id, object="realtime.response", status=status, status_details=details,
        output=list(output), output_modalities=["audio"] if with_audio else ["text"],
        metadata=metadata, usage=usage,
    )  # fmt: skip


def usage_of(report: StreamReport) -> RealtimeResponseUsage | None:
    """The tokens a reply cost, as far as the model said (all text: no audio tokens).

    A count the model did not give is left out, not sent as ``null``: clients validate
    ``usage`` as numbers (the Node Agents SDK ignores a ``response.done`` whose
    ``input_tokens`` is null, and then never asks for another response)."""
    given, written = report.input_tokens, report.output_tokens
    if written is None:
        return None
    total = None if given is None else given + written
    return RealtimeResponseUsage.model_validate(
        {
            **_known(input_tokens=given, total_tokens=total), "output_tokens": written,
            "input_token_details": {
                **_known(text_tokens=given, cached_tokens=report.cached_tokens), "audio_tokens": 0
            },
            "output_token_details": {"text_tokens": written, "audio_tokens": 0},
        }
    )  # fmt: skip


def _known(**counts: int | None) -> dict[str, int]:
    """The counts that are known (the fields not given stay out of the JSON)."""
    return {name: count for name, count in counts.items() if count is not None}
