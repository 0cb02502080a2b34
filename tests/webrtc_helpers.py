"""A test-side WebRTC client peer (aiortc), as a browser would use ``/v1/realtime/calls``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from voice.audio import Float32Array, resample
from voice.clock import LoopClock
from voice.webrtc.events import EVENTS_CHANNEL
from voice.webrtc.frames import WEBRTC_SAMPLE_RATE, frame_to_mono
from voice.webrtc.output import WebRTCAudioOutput
from voice.webrtc.track import OutputAudioTrack
from voice.wire import ServerEvents

#: Sends an SDP offer, returns the SDP answer.
Signal = Callable[[str], Awaitable[str]]


@dataclass
class HttpResponse:
    status: int
    headers: Message
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


async def http(
    method: str,
    url: str,
    body: str | None = None,
    content_type: str | None = None,
    *,
    key: str | None = None,
) -> HttpResponse:
    """One HTTP request with the standard library (in a thread), 4xx/5xx included;
    ``key`` (an API key or a client secret) goes in ``Authorization: Bearer``."""

    def send() -> HttpResponse:
        request = urllib.request.Request(
            url, data=None if body is None else body.encode(), method=method
        )
        if content_type is not None:
            request.add_header("Content-Type", content_type)
        if key is not None:
            request.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return HttpResponse(response.status, response.headers, response.read().decode())
        except urllib.error.HTTPError as error:
            return HttpResponse(error.code, error.headers, error.read().decode())

    return await asyncio.to_thread(send)


class ClientPeer:
    """The client end of a call: a microphone track, the event channel, received audio."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.channel = self.pc.createDataChannel(EVENTS_CHANNEL)
        clock = LoopClock()
        self.microphone = WebRTCAudioOutput(ServerEvents(self._on_microphone), clock=clock)
        self._spoken = asyncio.Event()
        self.microphone_track = OutputAudioTrack(self.microphone, clock=clock)
        self.pc.addTrack(self.microphone_track)
        self.events: list[dict[str, Any]] = []
        #: Received audio: (arrival time on the loop clock, 48 kHz mono samples) per frame.
        self.frames: list[tuple[float, Float32Array]] = []
        self._arrived = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)
        self.opened = asyncio.Event()
        self.channel.on("open", self.opened.set)
        #: Set when the connection is closed or has failed.
        self.ended = asyncio.Event()
        self.pc.on("connectionstatechange", self._on_connection_state)

    async def connect(self, signal: Signal) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await signal(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        async with asyncio.timeout(15):
            await self.opened.wait()

    def send(self, event: dict[str, Any]) -> None:
        self.channel.send(json.dumps(event))

    async def speak(self, samples_16k: Float32Array) -> None:
        """Play ``samples_16k`` into the call in real time; returns once all of it was sent."""
        self._spoken.clear()
        self.microphone.begin("utterance", "")
        await self.microphone.write(resample(samples_16k, 16000, WEBRTC_SAMPLE_RATE))
        self.microphone.finish("utterance")
        await self._spoken.wait()

    def _on_microphone(self, event: Any) -> None:
        if event.type == "output_audio_buffer.stopped":
            self._spoken.set()

    def _on_connection_state(self) -> None:
        if self.pc.connectionState in ("closed", "failed"):
            self.ended.set()

    async def wait_for(
        self,
        event_type: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda _: True,
        *,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            matches = (e for e in self.events if e["type"] == event_type and predicate(e))
            return next(matches, None)

        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: find() is not None)
        found = find()
        assert found is not None
        return found

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == event_type]

    def received_audio(self, since: float = 0.0) -> Float32Array:
        chunks = [samples for at, samples in self.frames if at >= since]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()

    def _on_message(self, message: str | bytes) -> None:
        self.events.append(json.loads(message))
        task = asyncio.ensure_future(self._notify())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self) -> None:
        async with self._arrived:
            self._arrived.notify_all()

    def _on_track(self, track: MediaStreamTrack) -> None:
        task = asyncio.ensure_future(self._receive(track))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _receive(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, AudioFrame)
            self.frames.append((loop.time(), frame_to_mono(frame)))


@contextlib.asynccontextmanager
async def client_peer(signal: Signal) -> AsyncIterator[ClientPeer]:
    peer = ClientPeer()
    try:
        await peer.connect(signal)
        yield peer
    finally:
        await peer.aclose()
