"""Property tests of the client-event parser: a typed event or a ProtocolError, nothing else.

Whatever a client sends, :func:`parse_client_event` returns an event of the class its
``type`` names, which serializes back to JSON, or raises :class:`ProtocolError` whose
``error`` event serializes too. No other exception, ever.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_strategies import (
    client_events,
    client_messages,
    hostile_texts,
    json_values,
    mutated_events,
)
from voice import json_limits
from voice.json_limits import nesting_exceeds
from voice.protocol import (
    CLIENT_EVENT_TYPES,
    MAX_NESTING_DEPTH,
    ProtocolError,
    dump_server_event,
    parse_client_event,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Every ``code`` a rejected message may carry.
PARSER_CODES = {
    "invalid_json",
    "invalid_event",
    "unknown_event_type",
    "invalid_value",
    "nesting_too_deep",
    "too_many_values",
    "number_out_of_range",
    "invalid_string",
}


def parse_or_error(message: str | bytes) -> Any:
    """The parsed event, or the ProtocolError; any other exception fails the test."""
    try:
        event = parse_client_event(message)
    except ProtocolError as error:
        assert error.code in PARSER_CODES, error.code
        assert error.message
        wire = json.loads(dump_server_event(error.to_event()).encode("utf-8"))
        assert wire["error"]["code"] == error.code
        return error
    assert isinstance(event, CLIENT_EVENT_TYPES[event.type])
    event.model_dump_json().encode("utf-8")  # whatever is accepted can be shown back
    return event


@FUZZ
@given(client_events())
def test_valid_events_parse_to_their_class(event: dict[str, Any]) -> None:
    parsed = parse_or_error(json.dumps(event))
    assert not isinstance(parsed, ProtocolError), parsed.message
    assert parsed.type == event["type"]
    assert parsed.event_id == event.get("event_id")


@FUZZ
@given(client_events())
def test_valid_events_parse_from_utf8_binary_frames(event: dict[str, Any]) -> None:
    parsed = parse_or_error(json.dumps(event, ensure_ascii=False).encode("utf-8"))
    assert not isinstance(parsed, ProtocolError), parsed.message


@FUZZ
@given(mutated_events())
def test_mutated_events_parse_or_raise_protocol_errors(event: dict[str, Any]) -> None:
    parse_or_error(json.dumps(event))


@FUZZ
@given(json_values())
def test_random_json_parses_or_raises_protocol_errors(value: Any) -> None:
    parse_or_error(json.dumps(value))


@FUZZ
@given(hostile_texts())
def test_hostile_texts_parse_or_raise_protocol_errors(text: str) -> None:
    parse_or_error(text)


@FUZZ
@given(client_messages())
def test_any_message_parses_or_raises_protocol_errors(message: str | bytes) -> None:
    parse_or_error(message)


@FUZZ
@given(st.binary(max_size=500))
def test_raw_bytes_parse_or_raise_protocol_errors(data: bytes) -> None:
    parse_or_error(data)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(item) for item in value.values()), default=0)
    return 0


@FUZZ
@given(json_values(max_leaves=40), st.integers(0, 6))
def test_nesting_check_agrees_with_the_real_depth(value: Any, limit: int) -> None:
    text = json.dumps(value, ensure_ascii=bool(limit % 2))  # escaped and raw strings alike
    assert nesting_exceeds(text, limit) == (depth_of(value) > limit)


def members_of(value: Any) -> int:
    if isinstance(value, list):
        return len(value) + sum(members_of(item) for item in value)
    if isinstance(value, dict):
        return len(value) + sum(members_of(item) for item in value.values())
    return 0


@FUZZ
@given(json_values(max_leaves=40), st.integers(0, 12))
def test_member_limit_holds_and_refuses_only_near_it(value: Any, limit: int) -> None:
    text = json.dumps(value)
    try:
        json_limits.loads(text, max_depth=100, max_int_digits=100, max_members=limit)
    except json_limits.JsonLimitError as error:
        assert error.code == "too_many_values"
        # The bound counts an empty array or object as one member: never more than that.
        assert members_of(value) + text.count("[]") + text.count("{}") > limit
    else:
        assert members_of(value) <= limit


def test_ten_thousand_levels_are_refused_before_decoding() -> None:
    message = '{"type":"session.update","session":' + "[" * 10_000 + "]" * 10_000 + "}"
    try:
        parse_client_event(message)
    except ProtocolError as error:
        assert error.code == "nesting_too_deep"
        assert f"more than {MAX_NESTING_DEPTH} levels" in error.message
    else:
        raise AssertionError("10,000 levels of nesting were accepted")
