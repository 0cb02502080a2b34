"""OpenAI Realtime API (GA) wire format: typed parsing of client events, typed server events.

No I/O: text in, typed events out; typed events in, JSON text out. The event models are
the ones the official ``openai`` package ships in ``openai.types.realtime``.
"""

from __future__ import annotations

import secrets
import typing
from typing import Any, Final, Literal

import pydantic
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from openai.types.realtime.realtime_error import RealtimeError
from openai.types.realtime.realtime_error_event import RealtimeErrorEvent

from voice import json_limits

ClientEvent = RealtimeClientEvent
ServerEvent = RealtimeServerEvent

#: Deepest nesting of arrays and objects a client message may have. Realtime client events
#: nest about six levels (a tool's JSON schema a few more); the check runs before the JSON
#: is decoded, so no message drives the decoder or pydantic into deep recursion.
MAX_NESTING_DEPTH: Final = 32
#: Most array elements and object members a client message may hold in all: validating
#: costs per value, and an audio message has three (a session.update with tools a few
#: hundred); 130,000 content parts in one 4 MiB message took pydantic seconds.
MAX_JSON_MEMBERS: Final = 4096
#: Most digits an integer in a client message may have (a 64-bit integer has 19).
MAX_INT_DIGITS: Final = 20

#: Client event classes by their ``type`` field.
CLIENT_EVENT_TYPES: dict[str, type[pydantic.BaseModel]] = {
    typing.get_args(cls.model_fields["type"].annotation)[0]: cls
    for cls in typing.get_args(typing.get_args(RealtimeClientEvent)[0])
}


def new_id(prefix: str) -> str:
    """Identifiers shaped like the Realtime API's (``item_…``, ``resp_…``, ``event_…``)."""
    return f"{prefix}_{secrets.token_hex(10)}"


#: The ``error.type`` of an error event: a client mistake, or the server's own trouble.
ErrorKind = Literal["invalid_request_error", "server_error"]


class ProtocolError(Exception):
    """A client mistake (or, with ``kind="server_error"``, a condition of the server's, such
    as a busy model), reported to the client as an ``error`` event."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid_request_error",
        param: str | None = None,
        event_id: str | None = None,
        kind: ErrorKind = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.event_id = event_id
        self.kind: ErrorKind = kind

    def to_event(self) -> RealtimeErrorEvent:
        return RealtimeErrorEvent(
            type="error",
            event_id=new_id("event"),
            error=RealtimeError(
                type=self.kind,
                code=self.code,
                message=self.message,
                param=self.param,
                event_id=self.event_id,
            ),
        )


def server_error_event(message: str) -> RealtimeErrorEvent:
    """An ``error`` event for the server's own failure (type and code ``server_error``)."""
    return RealtimeErrorEvent(
        type="error",
        event_id=new_id("event"),
        error=RealtimeError(type="server_error", code="server_error", message=message),
    )


def parse_client_event(text: str | bytes) -> ClientEvent:
    """Parse and validate one client event; raise :class:`ProtocolError` on any problem.

    The JSON limits (:data:`MAX_NESTING_DEPTH`, :data:`MAX_JSON_MEMBERS`,
    :data:`MAX_INT_DIGITS`, finite numbers, no lone surrogates: see :mod:`voice.json_limits`)
    are checked before and while the text is decoded, so no message drives the decoder or
    pydantic into deep recursion or seconds of work.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                f"binary message is not UTF-8 JSON text: {exc.reason} at byte {exc.start}",
                code="invalid_json",
            ) from None
    try:
        data: Any = json_limits.loads(
            text,
            max_depth=MAX_NESTING_DEPTH,
            max_members=MAX_JSON_MEMBERS,
            max_int_digits=MAX_INT_DIGITS,
        )
    except json_limits.JsonLimitError as exc:
        raise ProtocolError(f"message {exc.message}", code=exc.code, param=exc.param) from None
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
            f"unknown client event type {_excerpt(event_type)}", code="unknown_event_type",
            param="type", event_id=event_id,
        )  # fmt: skip
    try:
        return typing.cast(ClientEvent, cls.model_validate(data))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if not str(part)[:1].isupper())
        where = where if len(where) <= 200 else where[:200] + "…"
        raise ProtocolError(
            f"invalid '{event_type}': {where or 'event'}: {first['msg']}",
            code="invalid_value", param=where or None, event_id=event_id,
        ) from None  # fmt: skip


def _excerpt(text: str, limit: int = 64) -> str:
    """``text`` quoted for an error message, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def dump_server_event(event: ServerEvent) -> str:
    """JSON text of a server event, without the fields that were never set."""
    return event.model_dump_json(exclude_unset=True)
