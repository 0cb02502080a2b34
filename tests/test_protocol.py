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
