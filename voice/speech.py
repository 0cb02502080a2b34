"""A reply's voice: its text cut into clauses, each planned and synthesized while the model writes.

:class:`Speaker` takes the text as it streams in (:meth:`Speaker.push`), cuts it into chunks
(:mod:`voice.chunking`), and a task of its own plans each chunk's delivery (stage directions
become prosody, numbers are spelled out: :mod:`voice.delivery`), synthesizes it and writes
it to the audio output. Before each chunk's audio goes out it tells its reply
(``spoken(text, duration_ms)``), so the reply can record where those words lie in its audio.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from voice.audio import Float32Array, StreamResampler
from voice.chunking import SentenceChunker
from voice.clock import Clock
from voice.delivery import Segment, plan_speech, plan_transcript
from voice.inference import Priority, at_priority
from voice.playout import AudioOutput
from voice.tts import TTSEngine, stream_plan
from voice.voices import Voice

#: Text chunks waiting for synthesis; when full, reading from the LLM pauses (backpressure).
MAX_PENDING_CHUNKS = 8

#: Told of a chunk's words (empty for trailing audio) and its audio's length (ms).
Spoken = Callable[[str, float], Awaitable[None]]


@dataclass
class TurnTimings:
    """Timestamps (seconds on the call's clock) of one response's milestones."""

    created: float = 0.0
    first_text: float | None = None
    #: The first clause's audio was synthesized (for a held run: maybe before release).
    first_synthesized: float | None = None
    #: A held run was released (its reply became the answer to the user's turn).
    released: float | None = None
    first_audio: float | None = None
    last_audio: float | None = None


class Speaker:
    """Speaks one reply's text through ``output`` in ``voice``."""

    def __init__(
        self,
        voice: Voice,
        output: AudioOutput,
        clock: Clock,
        timings: TurnTimings,
        *,
        first_chunk_phrase_words: int,
        spoken: Spoken,
    ) -> None:
        self._voice = voice
        self._output = output
        self._clock = clock
        self._timings = timings
        self._spoken = spoken
        self._chunker = SentenceChunker(first_chunk_phrase_words=first_chunk_phrase_words)
        self._chunks: asyncio.Queue[str | None] = asyncio.Queue(MAX_PENDING_CHUNKS)

    @contextlib.asynccontextmanager
    async def speaking(self, with_audio: bool) -> AsyncIterator[None]:
        """While open, pushed text is spoken; on exit, the rest is spoken to the end.

        A synthesis error cancels the block and is raised (in an exception group); so is
        an error of the block. Without audio nothing is spoken (the text is written).
        """
        if not with_audio:
            yield
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self._speak())
            yield
            for chunk in self._chunker.flush():
                await self._chunks.put(chunk)
            await self._chunks.put(None)

    async def push(self, delta: str) -> None:
        """More of the reply's text; waits while the TTS is ``MAX_PENDING_CHUNKS`` behind."""
        for chunk in self._chunker.push(delta):
            await self._chunks.put(chunk)

    async def _speak(self) -> None:
        tts = self._voice.tts
        resampler = StreamResampler(tts.sample_rate, self._output.sample_rate)
        delivery = self._voice.delivery_state()
        while (chunk := await self._chunks.get()) is not None:
            plan = plan_speech(chunk, delivery)
            # A remote voice streams a chunk in pieces: its words go with the first one.
            words = plan_transcript(plan)
            # The first clause is what the user waits for; later ones have it as slack.
            first = self._timings.first_synthesized is None
            with at_priority(Priority.NOW if first else Priority.SOON):
                await self._speak_plan(tts, plan, words, resampler)
        tail = resampler.flush()
        if tail.size:
            await self._send("", tail)

    async def _speak_plan(
        self, tts: TTSEngine, plan: list[Segment], words: str, resampler: StreamResampler
    ) -> None:
        async with contextlib.aclosing(stream_plan(tts, plan)) as pieces:
            async for piece in pieces:
                samples = resampler.process(piece)
                if not samples.size:
                    continue
                if self._timings.first_synthesized is None:
                    self._timings.first_synthesized = self._clock.now()
                await self._send(words, samples)
                words = ""

    async def _send(self, text: str, samples: Float32Array) -> None:
        await self._spoken(text, len(samples) * 1000 / self._output.sample_rate)
        if self._timings.first_audio is None:
            self._timings.first_audio = self._clock.now()
        await self._output.write(samples)
        self._timings.last_audio = self._clock.now()
