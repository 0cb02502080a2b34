"""pipecat's ``OpenAIRealtimeLLMService`` in a pipeline without a transport, driven by the tests.

Run with this folder's own venv (see requirements.txt). The pipeline is the one of pipecat's
realtime examples, less the transport: ``user aggregator -> OpenAIRealtimeLLMService ->
(recorder) -> assistant aggregator``. Microphone audio goes in as ``InputAudioRawFrame``s,
typed text as an ``LLMMessagesAppendFrame(run_llm=True)``, and push-to-talk is pipecat's
manual turn mode (``turn_detection=False``) ended by ``UserStoppedSpeakingFrame``, as a
push-to-talk button's processor would push it. The service runs with its defaults: only the
WebSocket URL and the API key are given (env VOICE_WS_BASE, VOICE_API_KEY; VOICE_PTT=1).

The stdin/stdout protocol is the one of tests/node/bridge.mjs (see tests/client_drivers.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from typing import Any

from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    LLMMessagesAppendFrame,
    TTSAudioRawFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.openai.realtime import events
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService

RATE = 24000
CHUNK = RATE * 2 * 40 // 1000


def out(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class _ObservedSocket:
    """The service's own WebSocket, passing every server message on and printing a copy."""

    def __init__(self, socket: Any) -> None:
        self._socket = socket

    def __getattr__(self, name: str) -> Any:
        return getattr(self._socket, name)

    async def __aiter__(self) -> Any:
        async for message in self._socket:
            out({"server": json.loads(message)})
            yield message


class ObservedRealtimeService(OpenAIRealtimeLLMService):
    """``OpenAIRealtimeLLMService`` unchanged, except that the test sees what it receives."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Set once the service's own session.update was answered (it then sends audio).
        self.session_ready = asyncio.Event()

    async def _handle_evt_session_updated(self, evt: Any) -> None:
        await super()._handle_evt_session_updated(evt)
        self.session_ready.set()

    async def _connect(self) -> None:
        await super()._connect()
        # The receive task was created but has not started iterating the socket yet.
        if self._websocket is not None:
            self._websocket = _ObservedSocket(self._websocket)


class Recorder(FrameProcessor):
    """Reports the service's output frames: what an app's output transport would get."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame | InterruptionFrame | ErrorFrame):
            shown = f": {frame.error}" if isinstance(frame, ErrorFrame) else ""
            out({"client": type(frame).__name__ + shown})
        await self.push_frame(frame, direction)


def audio_frames(pcm: bytes) -> list[InputAudioRawFrame]:
    return [
        InputAudioRawFrame(audio=pcm[i : i + CHUNK], sample_rate=RATE, num_channels=1)
        for i in range(0, len(pcm), CHUNK)
    ]


async def main() -> None:
    ptt = os.environ.get("VOICE_PTT") == "1"
    settings = None
    if ptt:
        settings = OpenAIRealtimeLLMService.Settings(
            session_properties=events.SessionProperties(
                audio=events.AudioConfiguration(input=events.AudioInput(turn_detection=False))
            )
        )
    llm = ObservedRealtimeService(
        api_key=os.environ["VOICE_API_KEY"],
        base_url=f"{os.environ['VOICE_WS_BASE']}/realtime",
        settings=settings,
    )
    context = LLMContext([])
    user, assistant = LLMContextAggregatorPair(context)
    task = PipelineTask(
        Pipeline([user, llm, Recorder(), assistant]),
        params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
    )
    runner = PipelineRunner(handle_sigint=False)
    running = asyncio.create_task(runner.run(task))

    ready = asyncio.create_task(llm.session_ready.wait())
    await asyncio.wait([ready, running], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if not llm.session_ready.is_set():
        raise RuntimeError("pipecat's session was not set up within 30 s")
    out({"ready": True})

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async for line in reader:
        command = json.loads(line)
        op = command["op"]
        if op == "close":
            break
        if op == "audio":
            await task.queue_frames(audio_frames(base64.b64decode(command["audio"])))
        elif op == "text":
            message = {"role": "user", "content": command["text"]}
            await task.queue_frame(LLMMessagesAppendFrame(messages=[message], run_llm=True))
        elif op == "ptt":
            await task.queue_frame(UserStartedSpeakingFrame())
            await task.queue_frames(audio_frames(base64.b64decode(command["audio"])))
            await task.queue_frame(UserStoppedSpeakingFrame())
        elif op == "raw":
            assert command["event"] == {"type": "input_audio_buffer.clear"}
            await llm.send_client_event(events.InputAudioBufferClearEvent())
    await task.queue_frame(EndFrame())
    await asyncio.wait_for(running, 20)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as exc:
        out({"fatal": repr(exc)})
        raise
