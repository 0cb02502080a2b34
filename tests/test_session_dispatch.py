"""Every client event type of the Realtime API reaches a handler of the session.

The session dispatches with a ``match`` over the parsed event models (mypy checks it is
exhaustive); this checks the same at run time, against the event types the installed
``openai`` package defines, with the session on fakes (clearly fakes).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.fakes import FakeEngines, FakeLLM, Recorder, VirtualClock
from voice.config import Settings
from voice.protocol import CLIENT_EVENT_TYPES, parse_client_event
from voice.session import RealtimeSession

SILENCE_200_MS = base64.b64encode(bytes(2 * 4800)).decode()

#: A minimal valid instance of every client event type.
MINIMAL: dict[str, dict[str, Any]] = {
    "session.update": {"session": {"type": "realtime", "instructions": "Be brief."}},
    "input_audio_buffer.append": {"audio": SILENCE_200_MS},
    "input_audio_buffer.commit": {},
    "input_audio_buffer.clear": {},
    "output_audio_buffer.clear": {},
    "conversation.item.create": {
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Hello."}],
        }
    },
    "conversation.item.truncate": {"item_id": "item_x", "content_index": 0, "audio_end_ms": 0},
    "conversation.item.delete": {"item_id": "item_x"},
    "conversation.item.retrieve": {"item_id": "item_x"},
    "response.create": {},
    "response.cancel": {},
}


def test_the_table_names_every_client_event_type() -> None:
    assert set(MINIMAL) == set(CLIENT_EVENT_TYPES)


async def test_every_client_event_type_has_a_handler() -> None:
    clock = VirtualClock()
    recorder = Recorder(clock)
    session = RealtimeSession(FakeEngines(FakeLLM(["Hi."])), Settings(), recorder.send, clock)
    await session.start()
    for event_type, fields in MINIMAL.items():
        parse_client_event(json.dumps({"type": event_type, **fields}))  # valid, as the API has it
        before = len(recorder.of("error"))
        # An unhandled type would fail the match's assert_never; a client mistake in this
        # state (nothing to cancel, no such item) is an error event, handled like any other.
        await session.handle_text(json.dumps({"type": event_type, **fields}))
        errors = recorder.of("error")[before:]
        assert all(e["error"]["code"] != "unknown_event_type" for e in errors), event_type
        assert len(errors) <= 1, (event_type, errors)
    await session.aclose()
    assert session.busy_tasks == 0
