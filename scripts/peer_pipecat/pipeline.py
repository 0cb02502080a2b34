"""pipecat's local voice pipeline on the server's models, timed like ``voice bench``.

Runs in pipecat's own venv (made by ``scripts/peer_pipecat.py``; see requirements.txt),
with no import of this project. The pipeline, without a transport:

    audio in -> VADProcessor(Silero) -> WhisperSTTService -> user aggregator
        -> OpenAILLMService (the llama.cpp server) -> PiperTTSService -> probe
        -> assistant aggregator

Each clip is said at real-time pace in 20 ms frames (0.3 s silence, the clip, 1.5 s
silence). t0 is when the frame holding the clip's last speech sample (given by the
driver, found by the same Silero rule as the bench) was queued; first audio is the first
``TTSAudioRawFrame`` after it, as the bench takes the first audio delta. Between clips the
context goes back to the system prompt only, as each bench turn is a fresh session.

Input: a JSON job on stdin. Output: one JSON line per turn on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InputAudioRawFrame,
    LLMFullResponseEndFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transcriptions.language import Language
from pipecat.turns.user_start.vad_user_turn_start_strategy import VADUserTurnStartStrategy
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies

RATE = 16000
FRAME = RATE * 20 // 1000
LEAD_S, TAIL_S = 0.3, 1.5
INSTRUCTIONS = "You are a helpful companion. Answer in one short sentence."


class Probe(FrameProcessor):
    """Stamps the turn's transcript, first TTS audio and reply end on the same clock."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: dict[str, float] = {}
        self.done = asyncio.Event()

    def reset(self) -> None:
        self.marks = {}
        self.done.clear()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        now = time.perf_counter()
        if isinstance(frame, TTSAudioRawFrame):
            self.marks.setdefault("first_audio", now)
        elif isinstance(frame, (TTSStoppedFrame, LLMFullResponseEndFrame)):
            self.marks[type(frame).__name__] = now
            if "first_audio" in self.marks and "TTSStoppedFrame" in self.marks:
                self.done.set()
        await self.push_frame(frame, direction)


class Heard(FrameProcessor):
    """Stamps the final transcription (between the STT and the user aggregator)."""

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self._probe = probe

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame):
            self._probe.marks["transcribed"] = time.perf_counter()
            self._probe.marks["words"] = len(frame.text.split())
        await self.push_frame(frame, direction)


def read_clip(path: str) -> np.ndarray:
    with wave.open(path, "rb") as wav:
        assert wav.getframerate() == RATE and wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


async def say(task: PipelineTask, samples: np.ndarray, mark: int) -> float:
    """Queue ``samples`` in 20 ms frames at real-time pace; when frame ``mark`` went."""
    t0 = 0.0
    start = time.perf_counter()
    for k, offset in enumerate(range(0, len(samples), FRAME)):
        chunk = samples[offset : offset + FRAME]
        await task.queue_frame(InputAudioRawFrame(chunk.tobytes(), RATE, 1))
        if offset <= mark < offset + FRAME:
            t0 = time.perf_counter()
        await asyncio.sleep(max(0.0, start + (k + 1) * FRAME / RATE - time.perf_counter()))
    return t0


async def main() -> None:
    job = json.load(sys.stdin)
    context = LLMContext([{"role": "system", "content": INSTRUCTIONS}])
    strategies = UserTurnStrategies(
        start=[VADUserTurnStartStrategy()],
        stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=job["user_speech_timeout"])],
    )
    aggregators = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(user_turn_strategies=strategies)
    )
    probe = Probe()
    stt = WhisperSTTService(
        settings=WhisperSTTService.Settings(model=job["whisper"], language=Language.EN),
        device="cpu", compute_type="int8",
    )  # fmt: skip
    llm = OpenAILLMService(
        base_url=job["llm_url"], api_key="none",
        settings=OpenAILLMService.Settings(model=job["llm_model"]),
    )  # fmt: skip
    tts = PiperTTSService(
        settings=PiperTTSService.Settings(voice=job["voice"]), download_dir=Path(job["voice_dir"])
    )
    vad = SileroVADAnalyzer(params=VADParams(stop_secs=job["vad_stop_s"]))
    pipeline = Pipeline([
        VADProcessor(vad_analyzer=vad), stt, Heard(probe), aggregators.user(), llm, tts, probe,
        aggregators.assistant(),
    ])  # fmt: skip
    task = PipelineTask(
        pipeline, params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=24000)
    )
    runner = PipelineRunner(handle_sigint=False)
    running = asyncio.create_task(runner.run(task))
    await asyncio.sleep(1.0)  # the pipeline starts (models load in the constructors)
    silence = np.zeros(round(LEAD_S * RATE), dtype=np.int16)
    for clip in job["clips"]:
        samples = read_clip(clip["path"])
        said = np.concatenate([silence, samples, np.zeros(round(TAIL_S * RATE), dtype=np.int16)])
        context.set_messages([{"role": "system", "content": INSTRUCTIONS}])
        probe.reset()
        t0 = await say(task, said, silence.size + clip["speech_end"] - 1)
        try:
            await asyncio.wait_for(probe.done.wait(), timeout=60)
        except TimeoutError:
            pass
        marks = {k: v for k, v in probe.marks.items() if k != "words"}
        result: dict[str, Any] = {"clip": clip["name"], "words": probe.marks.get("words")}
        result.update({f"{k}_ms": round((v - t0) * 1000, 1) for k, v in marks.items()})
        print(json.dumps(result), flush=True)
        await asyncio.sleep(0.5)
    await task.queue_frame(EndFrame())
    await running


if __name__ == "__main__":
    asyncio.run(main())
