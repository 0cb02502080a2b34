"""The speaker with an engine that streams (a remote voice): each piece goes out as it comes,
the chunk's words with the first. Fakes only (a scripted engine, a recording output)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import numpy as np

from voice.clock import LoopClock
from voice.delivery import Prosody
from voice.inference import ModelWorker
from voice.speech import Speaker, TurnTimings
from voice.voices import Voice, VoicePreset

RATE = 16000


class FakeStreamingTTS:
    """Yields three 100 ms pieces per text; each after the test lets it (``release``)."""

    name = "fake-streaming"
    sample_rate = RATE
    default_prosody = Prosody()

    def __init__(self) -> None:
        self.worker = ModelWorker("fake-streaming-tts")
        self.release = asyncio.Semaphore(0)
        self.yielded = 0

    async def stream(
        self, text: str, prosody: Prosody | None = None
    ) -> AsyncGenerator[np.ndarray, None]:
        for _ in range(3):
            await self.release.acquire()
            self.yielded += 1
            yield np.full(RATE // 10, 0.25, dtype=np.float32)

    async def synthesize(self, text: str, prosody: Prosody | None = None) -> np.ndarray:
        raise AssertionError("a streaming engine is streamed")

    def resolve_speaker(self, speaker: int | str) -> int:
        return 0

    def close(self) -> None:
        self.worker.close()


class RecordingOutput:
    sample_rate = RATE

    def __init__(self) -> None:
        self.writes: list[int] = []
        self.wrote = asyncio.Event()

    async def write(self, samples: np.ndarray) -> None:
        self.writes.append(samples.size)
        self.wrote.set()


async def test_each_streamed_piece_goes_out_as_it_comes() -> None:
    tts = FakeStreamingTTS()
    output = RecordingOutput()
    told: list[tuple[str, float]] = []

    async def spoken(text: str, duration_ms: float) -> None:
        told.append((text, duration_ms))

    voice = Voice("fake", VoicePreset(engine="remote"), tts, Prosody())  # type: ignore[arg-type]
    speaker = Speaker(voice, output, LoopClock(), TurnTimings(), first_chunk_phrase_words=0,
                      spoken=spoken)  # type: ignore[arg-type]  # fmt: skip

    async def feed() -> None:
        async with speaker.speaking(with_audio=True):
            await speaker.push("Hello there my good friend.")

    task = asyncio.create_task(feed())
    for expected in (1, 2, 3):
        output.wrote.clear()
        tts.release.release()
        await asyncio.wait_for(output.wrote.wait(), 5)
        # The piece went out before the engine was allowed to make the next one.
        assert tts.yielded == expected and len(output.writes) == expected
    await asyncio.wait_for(task, 5)
    assert [text for text, _ in told] == ["Hello there my good friend.", "", ""]
    assert sum(ms for _, ms in told) == 300.0
    tts.close()
