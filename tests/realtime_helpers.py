"""Test-side helpers around the official ``openai`` realtime client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection

from voice.audio import Float32Array, float_to_pcm16, pcm16_to_float, resample
from voice.bench.wer import word_error_rate as word_error_rate  # re-exported for the tests
from voice.bench.wer import words as words

WIRE_RATE = 24000


class EventLog:
    """Receives every server event in the background; tests wait for the ones they need."""

    def __init__(self, connection: AsyncRealtimeConnection) -> None:
        self.connection = connection
        self.events: list[Any] = []
        self._arrived = asyncio.Condition()
        self._task = asyncio.create_task(self._receive())

    async def _receive(self) -> None:
        async for event in self.connection:
            async with self._arrived:
                self.events.append(event)
                self._arrived.notify_all()

    async def wait_for(
        self,
        event_type: str,
        predicate: Callable[[Any], bool] = lambda _: True,
        *,
        after: int = 0,
        timeout: float = 60.0,
    ) -> Any:
        """The first event of ``event_type`` at index >= ``after`` matching ``predicate``."""

        def find() -> Any:
            for event in self.events[after:]:
                if event.type == event_type and predicate(event):
                    return event
            return None

        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: find() is not None)
        return find()

    def of_type(self, event_type: str) -> list[Any]:
        return [event for event in self.events if event.type == event_type]

    def index(self, event: Any) -> int:
        return next(i for i, seen in enumerate(self.events) if seen is event)

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


@contextlib.asynccontextmanager
async def realtime(ws_base: str, api_key: str, **query: str) -> AsyncIterator[EventLog]:
    """Connect with the official SDK, unchanged: only the base URLs point at our server."""
    client = AsyncOpenAI(
        api_key=api_key,
        base_url=ws_base.replace("ws://", "http://"),
        websocket_base_url=ws_base,
    )
    async with client.realtime.connect(model="voice", extra_query=query) as connection:
        log = EventLog(connection)
        try:
            await log.wait_for("session.created", timeout=10)
            yield log
        finally:
            await log.aclose()


async def say_text(log: EventLog, text: str, **response: Any) -> None:
    """Send ``text`` as a typed user message and ask for a reply (``response`` params)."""
    await log.connection.conversation.item.create(
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )
    await log.connection.response.create(**({"response": response} if response else {}))


def to_wire(samples_16k: Float32Array) -> bytes:
    return float_to_pcm16(resample(samples_16k, 16000, WIRE_RATE))


async def stream_audio(
    connection: AsyncRealtimeConnection,
    samples_16k: Float32Array,
    *,
    chunk_ms: int = 40,
    realtime_pace: bool = True,
) -> None:
    """Send audio as ``input_audio_buffer.append`` events, at real-time pace by default."""
    wire = to_wire(samples_16k)
    step = WIRE_RATE * 2 * chunk_ms // 1000
    loop = asyncio.get_running_loop()
    started = loop.time()
    for index, offset in enumerate(range(0, len(wire), step)):
        await connection.input_audio_buffer.append(
            audio=base64.b64encode(wire[offset : offset + step]).decode()
        )
        if realtime_pace:
            await asyncio.sleep(max(0.0, started + (index + 1) * chunk_ms / 1000 - loop.time()))


def silence(seconds: float) -> Float32Array:
    return np.zeros(int(seconds * 16000), dtype=np.float32)


def response_audio(log: EventLog, response_id: str) -> Float32Array:
    """All audio deltas of one response, decoded to float at the wire rate."""
    chunks = [
        pcm16_to_float(base64.b64decode(event.delta))
        for event in log.of_type("response.output_audio.delta")
        if event.response_id == response_id
    ]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


def assert_answered(response: Any) -> None:
    """The reply was written: in full, or up to the token limit a test set to keep it short."""
    if response.status == "incomplete":
        assert response.status_details.reason == "max_output_tokens", response
    else:
        assert response.status == "completed", response
