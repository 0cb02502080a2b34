"""OpenAI Realtime API (GA) wire format: typed parsing of client events, typed server events.

No I/O: text in, typed events out; typed events in, JSON text out. The event models are
the ones the official ``openai`` package ships in ``openai.types.realtime``.
"""

from __future__ import annotations

import json
import secrets
import typing
from typing import Any

import pydantic
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from openai.types.realtime.realtime_error import RealtimeError
from openai.types.realtime.realtime_error_event import RealtimeErrorEvent

ClientEvent = RealtimeClientEvent
ServerEvent = RealtimeServerEvent

#: Client event classes by their ``type`` field.
CLIENT_EVENT_TYPES: dict[str, type[pydantic.BaseModel]] = {
    typing.get_args(cls.model_fields["type"].annotation)[0]: cls
    for cls in typing.get_args(typing.get_args(RealtimeClientEvent)[0])
}


def new_id(prefix: str) -> str:
    """Identifiers shaped like the Realtime API's (``item_…``, ``resp_…``, ``event_…``)."""
    return f"{prefix}_{secrets.token_hex(10)}"


class ProtocolError(Exception):
    """A client mistake, reported to the client as an ``error`` event."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid_request_error",
        param: str | None = None,
        event_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.event_id = event_id

    def to_event(self) -> RealtimeErrorEvent:
        return RealtimeErrorEvent(
            type="error",
            event_id=new_id("event"),
            error=RealtimeError(
                type="invalid_request_error",
                code=self.code,
                message=self.message,
                param=self.param,
                event_id=self.event_id,
            ),
        )


def parse_client_event(text: str | bytes) -> ClientEvent:
    """Parse and validate one client event; raise :class:`ProtocolError` on any problem."""
    try:
        data: Any = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"message is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ProtocolError("a client event must be a JSON object", code="invalid_event")
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    event_type = data.get("type")
    if not isinstance(event_type, str):
        raise ProtocolError(
            "client event has no 'type' string", code="invalid_event", param="type",
            event_id=event_id,
        )  # fmt: skip
    cls = CLIENT_EVENT_TYPES.get(event_type)
    if cls is None:
        raise ProtocolError(
            f"unknown client event type '{event_type}'", code="unknown_event_type",
            param="type", event_id=event_id,
        )  # fmt: skip
    try:
        return typing.cast(ClientEvent, cls.model_validate(data))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if not str(part)[0].isupper())
        raise ProtocolError(
            f"invalid '{event_type}': {where or 'event'}: {first['msg']}",
            code="invalid_value", param=where or None, event_id=event_id,
        ) from None  # fmt: skip


def dump_server_event(event: ServerEvent) -> str:
    """JSON text of a server event, without the fields that were never set."""
    return event.model_dump_json(exclude_unset=True)
