"""Client events that work on conversation items and input audio, checked and carried out.

No I/O: each function validates one client event against the conversation (raising
:class:`~voice.protocol.ProtocolError` for a client mistake) and reports what it did
through :class:`~voice.wire.ServerEvents`. Truncation is the floor's (it knows what was
heard); these only find the item it applies to.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
from openai.types.realtime import (
    ConversationItemCreateEvent,
    ConversationItemDeleteEvent,
    ConversationItemRetrieveEvent,
    ConversationItemTruncateEvent,
)

from voice.audio import AudioCodec, AudioFormatError, Float32Array, resample
from voice.conversation import Conversation, Item
from voice.protocol import ProtocolError, new_id
from voice.response import ResponseRun
from voice.stt import STT_SAMPLE_RATE
from voice.user_turns import UserTurns
from voice.wire import ServerEvents
from voice.wire_items import wire_item

#: Content parts whose text a typed message may carry.
TEXT_PARTS = ("input_text", "output_text", "text", "output_audio")
#: The shortest audio ``input_audio_buffer.commit`` accepts (as the Realtime API does).
MIN_COMMIT_MS = 100


def check_commit(buffered_ms: int) -> None:
    """``input_audio_buffer.commit`` needs at least :data:`MIN_COMMIT_MS` of audio."""
    if buffered_ms < MIN_COMMIT_MS:
        raise ProtocolError(
            f"buffer too small: expected at least {MIN_COMMIT_MS} ms of audio, "
            f"have {buffered_ms} ms",
            code="input_audio_buffer_commit_empty",
        )


def decode_audio(audio: str, codec: AudioCodec, param: str = "audio") -> Float32Array:
    """Base64 audio from a client event, decoded in the session's input format."""
    try:
        data = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(
            f"'{param}' is not valid base64", code="invalid_base64", param=param
        ) from None
    try:
        return codec.decode(data)
    except AudioFormatError as exc:
        raise ProtocolError(
            f"'{param}': {exc} (session input format is {codec.name} at {codec.sample_rate} Hz)",
            code="invalid_audio_format", param=param,
        ) from None  # fmt: skip


def created(
    event: ConversationItemCreateEvent,
    conversation: Conversation,
    events: ServerEvents,
    turns: UserTurns,
    codec: AudioCodec,
) -> Item | None:
    """A message the client adds to the conversation (``conversation.item.create``).

    It goes at the end, or right after ``previous_item_id`` (``"root"``: first). A typed
    message is returned; a user message with ``input_audio`` is transcribed like a turn
    (its words arrive with ``...input_audio_transcription.completed``) and None returned.
    """
    wire = event.item
    after = _insertion_point(event.previous_item_id, conversation)
    item_id = wire.id or new_id("item")
    if conversation.get(item_id) is not None:
        raise ProtocolError(f"item id '{item_id}' already exists", param="item.id")
    if wire.type in ("function_call", "function_call_output"):
        item = _function_item(wire, item_id)
        _place(conversation, item, after)
        events.item_added(wire_item(item), after)
        events.item_done(wire_item(item), after)
        return None  # a call or its result is never said: nothing for the transcript
    if wire.type != "message":
        raise ProtocolError(
            f"conversation items of type '{wire.type}' are not supported; use 'message', "
            "'function_call' or 'function_call_output'",
            param="item.type",
        )
    audio = [part for part in wire.content if getattr(part, "type", None) == "input_audio"]
    if audio and wire.role == "user":
        samples = [
            decode_audio(getattr(part, "audio", None) or "", codec, "item.content.audio")
            for part in audio
        ]
        item = Item(item_id, "user", status="in_progress", from_audio=True)
        _place(conversation, item, after)
        speech = resample(np.concatenate(samples), codec.sample_rate, STT_SAMPLE_RATE)
        turns.add_audio_item(item, speech, after)
        return None
    texts = [
        getattr(part, "text", None) or getattr(part, "transcript", None) or ""
        for part in wire.content
        if getattr(part, "type", None) in TEXT_PARTS
    ]
    if not texts or not any(text.strip() for text in texts):
        raise ProtocolError(
            "message has no text content (input_text/output_text)", param="item.content"
        )
    item = Item(item_id, wire.role, text="".join(texts))
    _place(conversation, item, after)
    events.item_added(wire_item(item), after)
    events.item_done(wire_item(item), after)
    return item


def _function_item(wire: Any, item_id: str) -> Item:
    """A function call (the client's record of one) or a call's result, checked."""
    if not wire.call_id:
        raise ProtocolError(f"a {wire.type} item needs a call_id", param="item.call_id")
    if wire.type == "function_call":
        if not wire.name:
            raise ProtocolError("a function_call item needs a name", param="item.name")
        return Item(
            item_id, "assistant", kind="function_call", call_id=wire.call_id, name=wire.name,
            arguments=wire.arguments or "",
        )  # fmt: skip
    # A result whose call is not in the conversation (deleted, or never seen here) is kept
    # too: the model is told of it in words.
    return Item(item_id, "user", text=wire.output or "", kind="function_call_output",
                call_id=wire.call_id)  # fmt: skip


def _insertion_point(previous_item_id: str | None, conversation: Conversation) -> str | None:
    """The item a new one goes after: the last (``previous_item_id`` not given), none
    (``"root"``: it goes first), or the one named."""
    if previous_item_id is None:
        return conversation.last_id
    if previous_item_id == "root":
        return None
    if conversation.get(previous_item_id) is None:
        raise ProtocolError(f"no item with id '{previous_item_id}'", param="previous_item_id")
    return previous_item_id


def _place(conversation: Conversation, item: Item, after: str | None) -> None:
    if after is not None and after == conversation.last_id:
        conversation.add(item)
    else:
        conversation.insert(item, after)


def silence_note(idle_ms: int) -> Item:
    """What the model is told when the user has said nothing for a while (idle timeout)."""
    seconds = round(idle_ms / 1000)
    return Item(
        new_id("item"), "system",
        text=f"(The user has said nothing for {seconds} seconds. Gently check in with them.)",
    )  # fmt: skip


def truncatable(
    event: ConversationItemTruncateEvent, conversation: Conversation, live: ResponseRun | None
) -> Item:
    """The assistant audio item ``conversation.item.truncate`` may cut, checked.

    The item of the reply still speaking (``live``) is as long as the audio sent so far.
    """
    item = conversation.get(event.item_id)
    if item is None or item.role != "assistant":
        raise ProtocolError(f"no assistant item with id '{event.item_id}'", param="item_id")
    if not item.from_audio:
        raise ProtocolError("the item has no audio to truncate", param="item_id")
    speaking = live is not None and live.item_id == item.id and not live.done
    audio_ms = live.audio_ms if speaking and live else item.audio_ms
    if event.audio_end_ms > audio_ms + 1:
        raise ProtocolError(
            f"audio_end_ms {event.audio_end_ms} is beyond the item's audio ({audio_ms:.0f} ms)",
            param="audio_end_ms",
        )
    return item


def delete(
    event: ConversationItemDeleteEvent, conversation: Conversation, events: ServerEvents
) -> None:
    if not conversation.delete(event.item_id):
        raise ProtocolError(f"no item with id '{event.item_id}'", param="item_id")
    events.item_deleted(event.item_id)


def retrieve(
    event: ConversationItemRetrieveEvent,
    conversation: Conversation,
    events: ServerEvents,
    live: ResponseRun | None,
) -> None:
    item = conversation.get(event.item_id)
    if item is None:
        raise ProtocolError(f"no item with id '{event.item_id}'", param="item_id")
    speaking = live is not None and live.item_id == item.id and not live.done
    events.item_retrieved(live.wire_item() if speaking and live else wire_item(item))
