"""Parsing client events and serializing server events (no I/O)."""

import json

import pytest
from openai.types.realtime import (
    InputAudioBufferAppendEvent,
    ResponseCreateEvent,
    SessionUpdateEvent,
)

from voice.protocol import (
    CLIENT_EVENT_TYPES,
    MAX_JSON_MEMBERS,
    MAX_NESTING_DEPTH,
    ProtocolError,
    dump_server_event,
    parse_client_event,
)


def test_every_ga_client_event_type_is_known() -> None:
    assert {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "conversation.item.create",
        "conversation.item.truncate",
        "response.create",
        "response.cancel",
    } <= set(CLIENT_EVENT_TYPES)


def test_parses_typed_events() -> None:
    event = parse_client_event('{"type": "input_audio_buffer.append", "audio": "AAA="}')
    assert isinstance(event, InputAudioBufferAppendEvent)
    assert event.audio == "AAA="
    assert isinstance(parse_client_event('{"type": "response.create"}'), ResponseCreateEvent)


def test_session_update_keeps_which_fields_were_set_and_extensions() -> None:
    event = parse_client_event(
        json.dumps(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "character": "mira",
                    "audio": {"input": {"turn_detection": None}},
                },
            }
        )
    )
    assert isinstance(event, SessionUpdateEvent)
    assert event.session.audio is not None and event.session.audio.input is not None
    assert "turn_detection" in event.session.audio.input.model_fields_set
    assert event.session.audio.input.turn_detection is None
    assert getattr(event.session, "character") == "mira"  # noqa: B009


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [
        ("{not json", "invalid_json", "not valid JSON"),
        ("[1, 2]", "invalid_event", "JSON object"),
        ('{"event_id": "x"}', "invalid_event", "'type'"),
        ('{"type": "input_audio_buffer.explode"}', "unknown_event_type", "explode"),
        ('{"type": "input_audio_buffer.append"}', "invalid_value", "audio"),
        (
            '{"type": "session.update", "session": {"type": "realtime", "audio": '
            '{"output": {"format": {"type": "audio/pcm", "rate": 16000}}}}}',
            "invalid_value",
            "rate",
        ),
    ],
)
def test_bad_messages_raise_protocol_errors(text: str, code: str, fragment: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_client_event(text)
    assert caught.value.code == code
    assert fragment in caught.value.message


def test_error_event_carries_the_client_event_id() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_client_event('{"type": "nope", "event_id": "evt_1"}')
    wire = json.loads(dump_server_event(caught.value.to_event()))
    assert wire["type"] == "error"
    assert wire["error"]["event_id"] == "evt_1"
    assert wire["error"]["code"] == "unknown_event_type"
    assert wire["event_id"].startswith("event_")


@pytest.mark.parametrize(
    ("text", "code", "fragment", "param"),
    [
        ('{"type":"session.update","session":' + "[" * 10_000 + "]" * 10_000 + "}",
         "nesting_too_deep", f"more than {MAX_NESTING_DEPTH} levels deep", None),
        ('{"type":"session.update","session":{"a":' * 17 + "1" + "}" * 34,
         "nesting_too_deep", "levels deep", None),
        ('{"type":"input_audio_buffer.clear","x":[' + ",".join(["1"] * 5000) + "]}",
         "too_many_values", f"more than {MAX_JSON_MEMBERS} array elements and object members",
         None),
        ('{"type":"input_audio_buffer.clear","x":[' + ",".join(['""'] * 5000) + "]}",
         "too_many_values", "array elements", None),
        ('{"type":"conversation.item.truncate","item_id":"i","content_index":0,"audio_end_ms":'
         + "9" * 4301 + "}", "number_out_of_range", "integer of 4301 digits; at most 20", None),
        ('{"type":"session.update","session":{"type":"realtime","audio":{"input":'
         '{"turn_detection":{"type":"server_vad","threshold":1e999}}}}}',
         "number_out_of_range", "1e999, too large for a 64-bit float", None),
        ('{"type":"response.create","response":{"max_output_tokens":NaN}}',
         "invalid_json", "NaN, which is not a JSON number", None),
        ('{"type":"response.create","response":{"instructions":"a\\ud800b"}}',
         "invalid_string", "surrogate", "response.instructions"),
        ('{"type":"\\udfff"}', "invalid_string", "surrogate", "type"),
        (b'{"type": "input_audio_buffer.append", "audio": "\xff\xfe"}',
         "invalid_json", "binary message is not UTF-8 JSON text: invalid start byte", None),
        ('{"type": "' + "x" * 100_000 + '"}', "unknown_event_type", "'" + "x" * 64 + "…'", "type"),
    ],
)  # fmt: skip
def test_limits_are_refused_with_their_own_code(
    text: str | bytes, code: str, fragment: str, param: str | None
) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_client_event(text)
    assert caught.value.code == code
    assert fragment in caught.value.message
    assert caught.value.param == param
    assert len(caught.value.message) < 300  # a huge message is not echoed back whole
    dump_server_event(caught.value.to_event()).encode("utf-8")


def test_within_the_limits_is_accepted() -> None:
    brackets = "[{," * 5000  # brackets and commas in a string are text, not structure
    event = parse_client_event(
        json.dumps(
            {
                "type": "response.create",
                "response": {
                    "instructions": brackets + "\ud83d\ude00",
                    "max_output_tokens": 10**19,
                },
            }
        )
    )
    assert isinstance(event, ResponseCreateEvent) and event.response is not None
    assert event.response.instructions == brackets + "\U0001f600"  # a surrogate pair is text
