"""Third-party Realtime clients, each driven through its own API against a real server.

A :class:`ClientDriver` wraps one client library (the OpenAI Agents SDK, LiveKit's plugin,
the Node SDKs, pipecat) with its **default settings**, only the URL and the API key
changed. It records every server event the client received, as the JSON the server sent
(:class:`ServerEvents`), and the client library's own events (``client_events``: what an
app written for that library sees). The scenarios in ``tests/client_scenarios.py`` drive
any driver the same way; each driver does what its library's users do, through the
library's API: streaming microphone audio, typed text, and its push-to-talk path.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import contextlib
import json
import os
import subprocess
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tests.realtime_helpers import WIRE_RATE, to_wire
from voice.audio import Float32Array

#: 40 ms of PCM16 at 24 kHz: one microphone chunk.
CHUNK_BYTES = WIRE_RATE * 2 * 40 // 1000

Event = dict[str, Any]


class ServerEvents:
    """Server events as the client received them, in order; tests wait for the ones they need."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._arrived = asyncio.Condition()

    async def add(self, event: Event) -> None:
        async with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    def find(
        self,
        event_type: str | tuple[str, ...],
        predicate: Callable[[Event], bool] = lambda _: True,
        after: int = 0,
    ) -> Event | None:
        types = (event_type,) if isinstance(event_type, str) else event_type
        for event in self.events[after:]:
            if event.get("type") in types and predicate(event):
                return event
        return None

    async def wait_for(
        self,
        event_type: str | tuple[str, ...],
        predicate: Callable[[Event], bool] = lambda _: True,
        *,
        after: int = 0,
        timeout: float = 60.0,
    ) -> Event:
        """The first event of ``event_type`` at index >= ``after`` matching ``predicate``."""
        try:
            async with asyncio.timeout(timeout), self._arrived:
                await self._arrived.wait_for(
                    lambda: self.find(event_type, predicate, after) is not None
                )
        except TimeoutError:
            raise AssertionError(
                f"no {event_type} within {timeout} s; the client saw: {self.summary(after)}"
            ) from None
        found = self.find(event_type, predicate, after)
        assert found is not None
        return found

    def of_type(self, event_type: str) -> list[Event]:
        return [event for event in self.events if event.get("type") == event_type]

    def index(self, event: Event) -> int:
        return next(i for i, seen in enumerate(self.events) if seen is event)

    def summary(self, after: int = 0) -> str:
        """The event types since ``after`` (audio deltas counted, errors in full)."""
        shown: list[str] = []
        deltas = 0
        for event in self.events[after:]:
            kind = str(event.get("type"))
            if kind == "response.output_audio.delta":
                deltas += 1
                continue
            if deltas:
                shown.append(f"{deltas}x audio.delta")
                deltas = 0
            shown.append(json.dumps(event["error"]) if kind == "error" else kind)
        if deltas:
            shown.append(f"{deltas}x audio.delta")
        return ", ".join(shown) or "nothing"


class ClientDriver(abc.ABC):
    """One call through a third-party client library."""

    name: str
    #: The library sends a ``session.update`` of its own on connecting.
    sends_session_update = True

    def __init__(self) -> None:
        self.server = ServerEvents()
        #: The library's own events (type names), as an app built on it sees them.
        self.client_events: list[str] = []

    @abc.abstractmethod
    async def send_audio(self, pcm16: bytes) -> None:
        """One microphone chunk (PCM16, 24 kHz mono), as the library takes audio."""

    @abc.abstractmethod
    async def say_text(self, text: str) -> None:
        """A typed user message that the library answers (it asks for a reply)."""

    @abc.abstractmethod
    async def push_to_talk(self, pcm16: bytes) -> None:
        """The library's push-to-talk path: turn detection off, the audio, commit, reply."""

    @abc.abstractmethod
    async def send_raw(self, event: Event) -> None:
        """A client event through the library's raw-event escape hatch."""

    async def stream(self, samples_16k: Float32Array, *, realtime_pace: bool = True) -> None:
        """Speech as microphone chunks, at real-time pace by default."""
        wire = to_wire(samples_16k)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for index, offset in enumerate(range(0, len(wire), CHUNK_BYTES)):
            await self.send_audio(wire[offset : offset + CHUNK_BYTES])
            if realtime_pace:
                await asyncio.sleep(max(0.0, started + (index + 1) * 0.04 - loop.time()))


def audio_bytes(server: ServerEvents, response_id: str) -> int:
    """Bytes of audio the server sent for one response, as the client received them."""
    return sum(
        len(base64.b64decode(event["delta"]))
        for event in server.of_type("response.output_audio.delta")
        if event.get("response_id") == response_id
    )


# --- the OpenAI Agents SDK (Python) ------------------------------------------------------


class AgentsDriver(ClientDriver):
    """``openai-agents``: a ``RealtimeAgent`` run by a ``RealtimeRunner``, default settings."""

    name = "openai-agents"

    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session
        #: The SDK's ``tool_start`` / ``tool_end`` events, as the app gets them.
        self.tool_events: list[Any] = []
        #: The conversation as the SDK holds it (its last ``history_updated``).
        self.history: list[Any] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        ws_base: str,
        api_key: str,
        *,
        model_settings: dict[str, Any] | None = None,
        tools: Sequence[Any] = (),
    ) -> AsyncIterator[AgentsDriver]:
        """A session with the SDK's defaults (``model_settings``: the app's overrides;
        ``tools``: the agent's ``@function_tool``s)."""
        from agents import set_tracing_disabled
        from agents.realtime import RealtimeAgent, RealtimeRunner

        set_tracing_disabled(True)  # its documented switch: no trace export to api.openai.com
        agent = RealtimeAgent(
            name="Assistant", instructions="You are a helpful voice assistant.", tools=list(tools)
        )
        runner = RealtimeRunner(
            agent, config={"model_settings": model_settings} if model_settings else None
        )
        session = await runner.run(
            model_config={"url": f"{ws_base}/realtime?model=voice", "api_key": api_key}
        )
        async with session:
            driver = cls(session)
            driver._task = asyncio.create_task(driver._receive())
            try:
                yield driver
            finally:
                driver._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await driver._task

    async def _receive(self) -> None:
        async for event in self.session:
            self.client_events.append(event.type)
            if event.type in ("tool_start", "tool_end"):
                self.tool_events.append(event)
            elif event.type == "history_updated":
                self.history = list(event.history)
            if event.type == "raw_model_event" and event.data.type == "raw_server_event":
                await self.server.add(dict(event.data.data))

    async def send_audio(self, pcm16: bytes) -> None:
        await self.session.send_audio(pcm16)

    async def say_text(self, text: str) -> None:
        await self.session.send_message(text)

    async def push_to_talk(self, pcm16: bytes) -> None:
        from agents.realtime.model_inputs import RealtimeModelSendRawMessage

        # Turn detection is off from the start (connect(model_settings=...)); the SDK's
        # send_audio(commit=True) appends and commits, a raw response.create asks at once.
        chunks = [pcm16[i : i + CHUNK_BYTES] for i in range(0, len(pcm16), CHUNK_BYTES)]
        for chunk in chunks[:-1]:
            await self.session.send_audio(chunk)
        await self.session.send_audio(chunks[-1], commit=True)
        await self.session.model.send_event(
            RealtimeModelSendRawMessage(message={"type": "response.create"})
        )

    async def send_raw(self, event: Event) -> None:
        from agents.realtime.model_inputs import RealtimeModelSendRawMessage

        body = {key: value for key, value in event.items() if key != "type"}
        await self.session.model.send_event(
            RealtimeModelSendRawMessage(message={"type": event["type"], "other_data": body})
        )


# --- LiveKit Agents' OpenAI plugin (Python) ---------------------------------------------------


class LiveKitDriver(ClientDriver):
    """``livekit-plugins-openai``: ``realtime.RealtimeModel()`` with its defaults and its
    ``RealtimeSession`` used directly, as ``AgentSession`` uses it, without a LiveKit room.

    Push-to-talk is LiveKit's manual turn detection: ``model.session(turn_detection_disabled
    =True)``, then ``commit_audio()`` and ``generate_reply()``, as ``commit_user_turn`` does.
    """

    name = "livekit-plugins-openai"

    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session
        self._pending: list[asyncio.Task[None]] = []
        #: The future of the last ``generate_reply()``.
        self.generation: asyncio.Future[Any] | None = None
        session.on("openai_server_event_received", self._on_server_event)
        for name in (
            "input_speech_started",
            "input_speech_stopped",
            "input_audio_transcription_completed",
            "generation_created",
            "error",
        ):
            session.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(event: Any) -> None:
            shown = getattr(getattr(event, "error", None), "message", None) or ""
            self.client_events.append(f"{name}: {shown}" if shown else name)

        return record

    def _on_server_event(self, event: Event) -> None:
        self._pending.append(asyncio.create_task(self.server.add(dict(event))))

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, http_base: str, api_key: str, *, ptt: bool = False
    ) -> AsyncIterator[LiveKitDriver]:
        from livekit.plugins.openai import realtime

        model = realtime.RealtimeModel(base_url=http_base, api_key=api_key)
        session = model.session(turn_detection_disabled=ptt)
        driver = cls(session)
        try:
            yield driver
        finally:
            await session.aclose()
            await model.aclose()
            for task in driver._pending:
                task.cancel()

    async def send_audio(self, pcm16: bytes) -> None:
        from livekit import rtc

        self.session.push_audio(
            rtc.AudioFrame(
                data=pcm16,
                sample_rate=WIRE_RATE,
                num_channels=1,
                samples_per_channel=len(pcm16) // 2,
            )
        )

    async def say_text(self, text: str) -> None:
        chat_ctx = self.session.chat_ctx.copy()
        chat_ctx.add_message(role="user", content=text)
        await self.session.update_chat_ctx(chat_ctx)
        self.generation = self.session.generate_reply()

    async def push_to_talk(self, pcm16: bytes) -> None:
        for offset in range(0, len(pcm16), CHUNK_BYTES):
            await self.send_audio(pcm16[offset : offset + CHUNK_BYTES])
        self.session.commit_audio()
        self.generation = self.session.generate_reply()

    async def send_raw(self, event: Event) -> None:
        from openai.types.realtime import InputAudioBufferClearEvent

        assert event == {"type": "input_audio_buffer.clear"}, "only the sentinel is sent raw"
        self.session.send_event(InputAudioBufferClearEvent(type="input_audio_buffer.clear"))


# --- clients in another process (Node, or a venv of their own) -----------------------------


class BridgeDriver(ClientDriver):
    """A client library in a child process (``tests/node/bridge.mjs``, pipecat's bridge).

    The bridge connects with the library's defaults, prints one JSON object a line
    (``{"server": event}`` for each server event the library received, ``{"client":
    type}`` for the library's own events, ``{"ready": true}``, ``{"fatal": message}``),
    and reads commands from stdin, one JSON object a line: ``{"op": "audio" | "text" |
    "ptt" | "raw" | "close", ...}``, each carried out through the library's API. A bridge
    whose client has a function tool also prints ``{"tool": {...}}`` (its handler ran, the
    library's tool events) and ``{"history": [...]}`` (the conversation the library holds).
    """

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        super().__init__()
        self.name = name
        self.process = process
        #: What the bridge reported of its client's tool: handler runs, tool events.
        self.tool_events: list[Event] = []
        #: The conversation as the library holds it (the last one reported).
        self.history: list[Event] = []
        self.stderr: list[str] = []
        self.ready = asyncio.Event()
        self.fatal: str | None = None
        self._tasks = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    @contextlib.asynccontextmanager
    async def spawn(
        cls, name: str, command: Sequence[str], *, env: dict[str, str], cwd: Path | None = None
    ) -> AsyncIterator[BridgeDriver]:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
            cwd=cwd,
            limit=16 * 1024 * 1024,
        )
        driver = cls(name, process)
        try:
            try:
                async with asyncio.timeout(60):
                    await driver.ready.wait()
            except TimeoutError:
                raise AssertionError(f"{name} bridge not ready: {driver.diagnostics()}") from None
            if driver.fatal is not None:
                raise AssertionError(f"{name} bridge failed: {driver.diagnostics()}")
            yield driver
        finally:
            await driver.aclose()

    def diagnostics(self) -> str:
        return f"fatal={self.fatal!r} stderr={''.join(self.stderr)[-3000:]!r}"

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                self.stderr.append(f"[stdout] {line.decode(errors='replace')}")
                continue
            if "server" in message:
                await self.server.add(message["server"])
            elif "client" in message:
                self.client_events.append(message["client"])
            elif "tool" in message:
                self.tool_events.append(message["tool"])
            elif "history" in message:
                self.history = message["history"]
            elif "fatal" in message:
                self.fatal = message["fatal"]
                self.ready.set()
            elif message.get("ready"):
                self.ready.set()
        self.ready.set()

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.stderr.append(line.decode(errors="replace"))

    async def _command(self, **command: Any) -> None:
        assert self.process.stdin is not None
        if self.process.returncode is not None:
            raise AssertionError(f"{self.name} bridge exited: {self.diagnostics()}")
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()

    async def send_audio(self, pcm16: bytes) -> None:
        await self._command(op="audio", audio=base64.b64encode(pcm16).decode())

    async def say_text(self, text: str) -> None:
        await self._command(op="text", text=text)

    async def push_to_talk(self, pcm16: bytes) -> None:
        await self._command(op="ptt", audio=base64.b64encode(pcm16).decode())

    async def send_raw(self, event: Event) -> None:
        await self._command(op="raw", event=event)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._command(op="close")
        try:
            async with asyncio.timeout(10):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def pcm_of(samples_16k: Float32Array) -> bytes:
    return to_wire(np.asarray(samples_16k, dtype=np.float32))
