"""A reply split at a noticed pause (fakes, virtual clock): WebSocket clients flush their
audio on ``speech_started``, so the response they knew ends there with what was heard;
speech that does not interrupt releases the rest as a new response that starts again at
the clause that was cut, speech that interrupts drops it unheard."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes import MS_PER_CHAR, FakeLLM, FakeVoices, Recorder, VirtualClock
from voice.audio import AudioCodec
from voice.conversation import Conversation
from voice.endpointing import SpeechStarted
from voice.floor import Floor
from voice.playout import WebSocketAudioOutput
from voice.protocol import ProtocolError
from voice.response import ReplyPlan
from voice.turn_log import TurnLog
from voice.turns import InterruptBot, PauseBot, ResumeBot
from voice.wire import ServerEvents

COUNTING = "One two three four. Five six seven eight. Nine ten eleven twelve."


class Call:
    """A floor on a paced WebSocket output, with what the client and the history saw."""

    def __init__(self, llm: FakeLLM, lead_ms: float = 400) -> None:
        self.llm = llm
        self.clock = VirtualClock()
        self.client = Recorder(self.clock)
        events = ServerEvents(self.client.send)
        self.output = WebSocketAudioOutput(
            events, AudioCodec("audio/pcm", 24000), lead_ms=lead_ms, clock=self.clock
        )
        self.conversation = Conversation()
        self.recorded: list[str] = []
        self.floor = Floor(
            self.output, llm, self.conversation, events, self.clock,
            TurnLog("sess_test", self.clock, None, lambda ms: None),
            on_reply_end=lambda run, item: self.recorded.append(item.text),
        )  # fmt: skip

    async def reply(self) -> None:
        voice = await FakeVoices().get()
        plan = ReplyPlan([{"role": "user", "content": "Count."}], voice, True, None)
        await self.floor.reply(plan, None)
        await self.client.wait_for("response.output_audio.delta")

    async def speech_over_the_bot(self) -> None:
        for action in (SpeechStarted(0), PauseBot(0, noticed=True)):
            await self.floor.take(action, interrupt_response=True)

    def audio_ms(self, response_id: str) -> float:
        deltas = [e for e in self.client.of("response.output_audio.delta")]
        samples = sum(
            len(e["delta"]) * 3 // 4 // 2 for e in deltas if e["response_id"] == response_id
        )
        return samples * 1000 / 24000

    def done(self) -> list[dict[str, Any]]:
        return [event["response"] for event in self.client.of("response.done")]


async def test_the_known_response_ends_at_the_pause_with_what_was_heard() -> None:
    call = Call(FakeLLM([COUNTING]))
    await call.reply()
    await call.clock.advance(1.2)  # the client has played 1.2 s
    await call.speech_over_the_bot()

    [first] = call.done()
    assert first["status"] == "cancelled"
    assert first["status_details"]["reason"] == "turn_detected"
    heard = first["output"][0]["content"][0]["transcript"]
    assert heard.startswith("One two three four. Five") and "eight" not in heard
    assert call.client.of("conversation.item.truncated")[-1]["audio_end_ms"] == 1200
    [item] = list(call.conversation)
    assert item.text == heard and item.status == "incomplete"
    assert call.recorded == [heard]

    count = len(call.client.events)
    await call.clock.advance(2.0)  # paused: nothing reaches the client
    assert len(call.client.events) == count
    with pytest.raises(ProtocolError):  # a client that cancels on speech_started: it ended
        await call.floor.cancel()


async def test_the_words_played_before_the_pause_are_kept_to_tell_its_echo() -> None:
    call = Call(FakeLLM([COUNTING]))
    await call.reply()
    await call.clock.advance(1.2)
    await call.speech_over_the_bot()
    words = call.floor.words_before_pause
    assert words.startswith("One two three four. Five six"), words
    assert "eight" not in words and "Nine" not in words  # not played yet


async def test_speech_that_does_not_interrupt_resumes_at_the_clause_that_was_cut() -> None:
    call = Call(FakeLLM([COUNTING]))
    await call.reply()
    await call.clock.advance(1.2)
    await call.speech_over_the_bot()
    await call.floor.take(ResumeBot(), interrupt_response=True)
    await call.client.wait_for("response.done", count=2)

    first, second = call.done()
    assert second["status"] == "completed" and second["id"] != first["id"]
    transcript = second["output"][0]["content"][0]["transcript"]
    assert transcript == "Five six seven eight. Nine ten eleven twelve."
    said_again = len("Five six seven eight.") + len("Nine ten eleven twelve.")
    assert call.audio_ms(second["id"]) == pytest.approx(said_again * MS_PER_CHAR)
    types = call.client.types()
    created = [i for i, t in enumerate(types) if t == "response.created"][1]
    deltas = [i for i, e in enumerate(call.client.events) if e.get("response_id") == second["id"]]
    assert min(deltas) > created  # announced before any of its audio
    heard, continuation = list(call.conversation)
    assert heard.text == first["output"][0]["content"][0]["transcript"]
    assert continuation.text == transcript and continuation.status == "completed"
    added = call.client.of("conversation.item.added")[-1]
    assert added["previous_item_id"] == heard.id
    assert call.recorded == [heard.text, transcript]
    told = [done["usage"]["output_tokens"] for done in (first, second) if done.get("usage")]
    assert sum(told) == len(COUNTING.split()), told  # each token told once, over the two


async def test_speech_that_interrupts_drops_the_rest_unheard() -> None:
    llm = FakeLLM([COUNTING], token_delay=0.001)
    call = Call(llm)
    await call.reply()
    await call.clock.advance(0.5)
    await call.speech_over_the_bot()
    count = len(call.client.events)
    await call.floor.take(InterruptBot(), interrupt_response=True)
    await call.clock.advance(3.0)
    assert len(call.client.events) == count, "the continuation was heard of"
    assert llm.closed_streams == 1
    assert call.floor.busy_tasks == 0
    [item] = list(call.conversation)
    assert item.text == "One two three four."[: len(item.text)]


async def test_a_reply_written_to_the_end_but_still_playing_is_said_again() -> None:
    call = Call(FakeLLM(["One two. Three four."]))  # 950 ms; sent 400 ms ahead of play
    await call.reply()
    await call.client.wait_for("response.done")
    await call.clock.advance(0.2)  # played 750 ms: "One two." (400 ms) and "Three"
    await call.speech_over_the_bot()
    first = call.done()[0]
    assert first["status"] == "completed"  # its end was told before the speech came
    truncated = call.client.of("conversation.item.truncated")[-1]["audio_end_ms"]
    assert 500 < truncated < 1000
    [item] = list(call.conversation)
    assert item.text == "One two. Three"
    await call.floor.take(ResumeBot(), interrupt_response=True)
    await call.client.wait_for("response.done", count=2)
    second = call.done()[1]
    assert second["status"] == "completed"
    assert second["output"][0]["content"][0]["transcript"] == "Three four."
    assert call.audio_ms(second["id"]) == pytest.approx(len("Three four.") * MS_PER_CHAR)
    assert first["usage"]["output_tokens"] == 4  # the words the model wrote, told once
    assert second["usage"]["output_tokens"] == second["usage"]["input_tokens"] == 0
