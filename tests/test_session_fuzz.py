"""Property: no sequence of client messages, valid or not, breaks a session.

A session on the scripted fakes of ``tests.fakes`` (clearly fakes) is driven by random
sequences of well-formed events (in any order, with any ids) and malformed messages.
For every one: no exception escapes, a malformed message gets exactly one ``error``
event, a well-formed one at most one; and afterwards the session still answers.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes import FakeEngines, FakeLLM, Recorder, VirtualClock
from tests.fuzz_strategies import client_events, mutated_events
from voice.config import Settings
from voice.session import RealtimeSession

ITEM_IDS = st.sampled_from(["item_1", "item_x", "", "a" * 300])


def _pcm(seconds: float, level: float) -> str:
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal(int(24000 * seconds)) * level * 32767).astype("<i2")
    return base64.b64encode(samples.tobytes()).decode()


def _message(role: str, text: str) -> dict[str, Any]:
    part = "input_text" if role != "assistant" else "output_text"
    return {"type": "message", "role": role, "content": [{"type": part, "text": text}]}


WELL_FORMED = st.one_of(
    st.builds(
        lambda s, level: {"type": "input_audio_buffer.append", "audio": _pcm(s, level)},
        st.sampled_from([0.02, 0.1, 0.5]),
        st.sampled_from([0.0, 0.01, 0.3]),
    ),
    st.just({"type": "input_audio_buffer.commit"}),
    st.just({"type": "input_audio_buffer.clear"}),
    st.just({"type": "output_audio_buffer.clear"}),
    st.just({"type": "response.create"}),
    st.builds(
        lambda modality: {"type": "response.create", "response": {"output_modalities": modality}},
        st.sampled_from([["text"], ["audio"]]),
    ),
    st.just({"type": "response.cancel"}),
    st.builds(
        lambda role, text: {"type": "conversation.item.create", "item": _message(role, text)},
        st.sampled_from(["user", "assistant", "system"]),
        st.text(max_size=40),
    ),
    st.builds(
        lambda item_id, ms: {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": ms,
        },
        ITEM_IDS,
        st.integers(min_value=0, max_value=100_000),
    ),
    st.builds(lambda i: {"type": "conversation.item.delete", "item_id": i}, ITEM_IDS),
    st.builds(lambda i: {"type": "conversation.item.retrieve", "item_id": i}, ITEM_IDS),
    st.builds(
        lambda session: {"type": "session.update", "session": session},
        st.fixed_dictionaries(
            {"type": st.just("realtime")},
            optional={
                "instructions": st.text(max_size=30),
                "output_modalities": st.sampled_from([["text"], ["audio"], ["audio", "text"]]),
                "max_output_tokens": st.sampled_from([1, 50, "inf"]),
                "audio": st.sampled_from(
                    [
                        {"input": {"turn_detection": None}},
                        {"input": {"turn_detection": {"type": "server_vad"}}},
                        {"input": {"format": {"type": "audio/pcmu"}}},
                        {"output": {"format": {"type": "audio/pcma"}}},
                        {"output": {"voice": "nobody"}},
                    ]
                ),
            },
        ),
    ),
)

MALFORMED = st.one_of(
    st.binary(max_size=50).map(lambda raw: b"\xff" + raw),  # not UTF-8, not JSON
    st.text(max_size=30).map(lambda text: "{" + text),  # broken JSON
    st.just('"a string"'),
    st.just("[1, 2, 3]"),
    st.just('{"type": 7}'),
    st.just('{"type": "no.such.event"}'),
    st.just('{"type": "input_audio_buffer.append", "audio": "%%%not base64%%%"}'),
    st.just('{"type": "input_audio_buffer.append", "audio": 12}'),
    st.just('{"type": "session.update", "session": "realtime"}'),
    st.just('{"type": "conversation.item.truncate", "item_id": 5}'),
    st.just('{"type": "response.create", "response": {"output_modalities": ["video"]}}'),
)

#: Events of the protocol's own shapes, some mutated: valid or not, at most one error each.
ANY_SHAPE = st.one_of(client_events(), mutated_events())

MESSAGES = st.lists(
    st.one_of(
        WELL_FORMED.map(lambda e: (json.dumps(e), False)),
        ANY_SHAPE.map(lambda e: (json.dumps(e), False)),
        MALFORMED.map(lambda m: (m, True)),
    ),
    max_size=25,
)


async def _scenario(messages: list[tuple[str | bytes, bool]]) -> None:
    clock = VirtualClock()
    recorder = Recorder(clock)
    session = RealtimeSession(
        FakeEngines(FakeLLM(["Sure, that works."])), Settings(), recorder.send, clock
    )
    await session.start()
    for message, malformed in messages:
        before = len(recorder.of("error"))
        await session.handle_text(message)  # must not raise
        errors = len(recorder.of("error")) - before
        assert errors == 1 if malformed else errors <= 1, (message, recorder.of("error")[before:])
        await clock.advance(0.05)
    # Afterwards the session still answers a typed turn, in text.
    await clock.advance(5.0)
    if session.response is not None and not session.response.done:
        await session.handle_text('{"type": "response.cancel"}')
    done_before = len(recorder.of("response.done"))
    update = {
        "type": "session.update",
        "session": {"type": "realtime", "instructions": "Hi.", "max_output_tokens": "inf"},
    }
    await session.handle_text(json.dumps(update))
    await session.handle_text(
        json.dumps({"type": "conversation.item.create", "item": _message("user", "Still there?")})
    )
    await session.handle_text(
        '{"type": "response.create", "response": {"output_modalities": ["text"]}}'
    )
    await recorder.wait_for("response.done", count=done_before + 1, timeout=10)
    assert recorder.of("response.done")[-1]["response"]["status"] == "completed"
    await session.aclose()
    assert session.busy_tasks == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSAGES)
def test_no_message_sequence_breaks_a_session(messages: list[tuple[str | bytes, bool]]) -> None:
    asyncio.run(_scenario(messages))
