"""Conversation items as the Realtime API shows them (``realtime.item`` objects)."""

from __future__ import annotations

from typing import Any

from openai.types.realtime import (
    RealtimeConversationItemAssistantMessage,
    RealtimeConversationItemSystemMessage,
    RealtimeConversationItemUserMessage,
)
from openai.types.realtime.realtime_conversation_item_assistant_message import (
    Content as AssistantContent,
)
from openai.types.realtime.realtime_conversation_item_system_message import (
    Content as SystemContent,
)
from openai.types.realtime.realtime_conversation_item_user_message import Content as UserContent

from voice.conversation import Item

WireItem = (
    RealtimeConversationItemUserMessage
    | RealtimeConversationItemAssistantMessage
    | RealtimeConversationItemSystemMessage
)


def wire_item(item: Item) -> WireItem:
    """``item`` as a Realtime conversation item (audio items carry their transcript)."""
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
        assistant_part = (
            AssistantContent(type="output_audio", transcript=item.text)
            if item.from_audio
            else AssistantContent(type="output_text", text=item.text)
        )
        return RealtimeConversationItemAssistantMessage(
            role="assistant", content=[assistant_part], **common
        )
    return RealtimeConversationItemSystemMessage(
        role="system", content=[SystemContent(type="input_text", text=item.text)], **common
    )
