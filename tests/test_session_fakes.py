"""Session logic with fake models (clearly fakes): event order, cancellation, truthful history.

The real models are exercised by the end-to-end tests; here the LLM, STT and TTS are
scripted so that each rule is checked exactly and fast, with the session's paced audio
output running on a virtual clock.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.fakes import FakeEngines, FakeLLM, Recorder, VirtualClock
from voice.config import Settings
from voice.session import RealtimeSession


def make_session(llm: FakeLLM, **settings: Any) -> tuple[RealtimeSession, Recorder, VirtualClock]:
    clock = VirtualClock()
    recorder = Recorder(clock)
    session = RealtimeSession(
        FakeEngines(llm), Settings(instructions="Be brief.", **settings), recorder.send, clock=clock
    )
    return session, recorder, clock


def user_text(text: str) -> str:
    return json.dumps(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            },
        }
    )


async def test_text_turn_event_order_and_history() -> None:
    llm = FakeLLM(["Hi Sam. Nice to see you again."])
    session, recorder, _ = make_session(llm)
    await session.start()
    await session.handle_text(user_text("I am Sam."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done")

    types = recorder.types()
    assert types[0] == "session.created"
    expected_order = [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_audio_transcript.delta",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ]
    positions = [types.index(name, types.index("response.created")) for name in expected_order]
    assert positions == sorted(positions)
    done = recorder.of("response.done")[0]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0]["transcript"] == "Hi Sam. Nice to see you again."
    # Audio: 50 ms per character of each chunk, at 24 kHz PCM16.
    deltas = recorder.of("response.output_audio.delta")
    assert all(d["response_id"] == done["id"] for d in deltas)
    assert llm.prompts[0] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "I am Sam."},
    ]


async def test_barge_in_truncates_to_what_was_heard_and_next_prompt_sees_it() -> None:
    llm = FakeLLM(["One two three four. Five six seven eight. Nine ten eleven twelve.", "Okay."])
    session, recorder, clock = make_session(llm)
    await session.start()
    await session.handle_text(user_text("Count for me."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.output_audio.delta")

    # The client has played 1.2 s of the reply when the user starts talking.
    await clock.advance(1.2)
    await session.interrupt("turn_detected")
    sent = recorder.of("response.output_audio_transcript.done")[0]["transcript"]
    assert sent.startswith("One two three four.")
    truncated = recorder.of("conversation.item.truncated")[-1]
    assert truncated["audio_end_ms"] == 1200
    assert session.response is not None
    heard = session.conversation.get(session.response.item_id).text  # type: ignore[union-attr]
    # "One two three four." is 19 characters = 950 ms; 250 ms more lands in the next clause.
    assert heard.startswith("One two three four. Five")
    assert "eight" not in heard

    await session.handle_text(user_text("Stop."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done", count=2)
    assistant_turns = [m["content"] for m in llm.prompts[1] if m["role"] == "assistant"]
    assert assistant_turns == [heard]


async def test_cancel_mid_stream_closes_the_llm_stream_and_stops_audio() -> None:
    llm = FakeLLM(["word " * 200], token_delay=0.002)
    session, recorder, _ = make_session(llm)
    await session.start()
    await session.handle_text(user_text("Talk."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.output_audio.delta")
    await session.handle_text('{"type": "response.cancel"}')
    done = recorder.of("response.done")
    assert done[-1]["response"]["status"] == "cancelled"
    assert done[-1]["response"]["status_details"]["reason"] == "client_cancelled"
    assert llm.closed_streams == 1
    count = len(recorder.events)
    await asyncio.sleep(0.05)
    assert len(recorder.events) == count, "events after the response was cancelled"
    assert session.busy_tasks == 0


async def test_close_during_response_stops_everything_silently() -> None:
    llm = FakeLLM(["word " * 200], token_delay=0.002)
    session, recorder, _ = make_session(llm)
    await session.start()
    await session.handle_text(user_text("Talk."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.output_audio.delta")
    await session.aclose()
    await session.aclose()  # twice is fine
    assert session.busy_tasks == 0
    assert llm.closed_streams == 1
    assert not recorder.of("response.done"), "a closed session has nobody to tell"


async def test_an_invalid_value_refuses_the_whole_update() -> None:
    session, recorder, _ = make_session(FakeLLM(["x"]))
    before = session.describe()
    update = {"type": "realtime", "instructions": "Rhyme.", "audio": {"output": {"voice": "zed"}}}
    await session.handle_text(json.dumps({"type": "session.update", "session": update}))
    assert "unknown voice 'zed'" in recorder.of("error")[0]["error"]["message"]
    assert session.describe() == before


async def test_an_optional_feature_is_not_applied_and_the_rest_is() -> None:
    session, recorder, _ = make_session(FakeLLM(["x"]))
    update = {
        "type": "realtime",
        "instructions": "Rhyme.",
        "tracing": "auto",
        "audio": {
            "input": {
                "noise_reduction": {"type": "near_field"},
                "turn_detection": {"type": "semantic_vad", "eagerness": "low"},
            },
            "output": {"voice": "marin"},
        },
    }
    await session.handle_text(json.dumps({"type": "session.update", "session": update}))
    assert not recorder.of("error")
    updated = recorder.of("session.updated")[0]["session"]
    assert updated["instructions"] == "Rhyme."
    assert updated["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
    assert updated["audio"]["input"]["turn_detection"]["eagerness"] == "low"
    assert updated["audio"]["input"]["noise_reduction"] is None
    assert updated["audio"]["output"]["voice"] == "fake-voice"  # "marin" is an alias
    assert updated["not_applied"] == ["tracing", "audio.input.noise_reduction"]


async def test_stage_directions_are_not_spoken_or_transcribed() -> None:
    llm = FakeLLM(["*laughs softly* Oh, you are funny. (whispering) It costs $2.50."])
    session, recorder, _ = make_session(llm)
    await session.start()
    await session.handle_text(user_text("Tell me a joke."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done")
    spoken = recorder.of("response.output_audio_transcript.done")[0]["transcript"]
    assert spoken == "Oh, you are funny. It costs $2.50."
    synthesized = " ".join(session._engines.voices.tts.texts)  # type: ignore[attr-defined]
    assert "laughs" not in synthesized and "whispering" not in synthesized
    assert "two dollars and fifty cents" in synthesized
