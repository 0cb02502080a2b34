"""One Realtime WebSocket connection for the bench: typed events in, stamped observations out.

The bench speaks to the server with the ``websockets`` library directly rather than the
``openai`` SDK's realtime client, whose reconnection and send queue would hide a dropped
connection inside a measurement. Server events are still parsed into the SDK's typed
``openai.types.realtime`` models, and client events are built from them.

Audio is sent as a microphone would: 40 ms ``input_audio_buffer.append`` chunks, each sent
when its last sample would have been captured, on a schedule computed from the start
(``loop.time()``), so a late chunk does not delay the ones after it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import typing
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, Union

import pydantic
from openai.types.realtime import (
    ConversationItemInputAudioTranscriptionCompletedEvent,
    InputAudioBufferAppendEvent,
    RealtimeErrorEvent,
    RealtimeServerEvent,
    ResponseAudioDeltaEvent,
    ResponseAudioTranscriptDoneEvent,
    ResponseCreatedEvent,
    ResponseDoneEvent,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from voice.audio import float_to_pcm16, resample
from voice.bench.timeline import Observation
from voice.bench.transport import (
    CallClosed,
    Clock,
    ObservationLog,
    Predicate,
    ServerUnreachable,
    Target,
    Transport,
    Utterance,
)
from voice.tasks import cancel_and_wait
from voice.vad import VAD_SAMPLE_RATE

T = TypeVar("T")

#: Opening the WebSocket, or fetching ``/health``, must finish within this.
CONNECT_TIMEOUT_S = 10.0
#: Sample rate of the reply audio: ``audio/pcm`` output, left at its 24 kHz default.
OUTPUT_RATE = 24000
#: The session's default input format, ``audio/pcm`` at 24 kHz.
WIRE_RATE = 24000
CHUNK_MS = 40
#: Samples per chunk, at the utterance's 16 kHz.
CHUNK_SAMPLES = VAD_SAMPLE_RATE * CHUNK_MS // 1000

#: The SDK's union of server events, with a discriminator pydantic understands.
_SERVER_EVENT: pydantic.TypeAdapter[RealtimeServerEvent] = pydantic.TypeAdapter(
    typing.cast(
        Any,
        Annotated[
            Union[typing.get_args(typing.get_args(RealtimeServerEvent)[0])],  # noqa: UP007
            pydantic.Field(discriminator="type"),
        ],
    )
)


@dataclass(frozen=True)
class AudioPlan:
    """Ready-to-send append messages, and the index of the chunk holding the marked sample."""

    messages: tuple[str, ...]
    mark_chunk: int


def plan_audio(utterance: Utterance) -> AudioPlan:
    """``utterance`` as 40 ms ``input_audio_buffer.append`` messages of 24 kHz PCM."""
    wire = float_to_pcm16(resample(utterance.samples, VAD_SAMPLE_RATE, WIRE_RATE))
    step = WIRE_RATE * 2 * CHUNK_MS // 1000
    messages = tuple(
        InputAudioBufferAppendEvent(
            type="input_audio_buffer.append",
            audio=base64.b64encode(wire[offset : offset + step]).decode("ascii"),
        ).model_dump_json(exclude_unset=True)
        for offset in range(0, len(wire), step)
    )
    return AudioPlan(messages, min(utterance.mark_sample // CHUNK_SAMPLES, len(messages) - 1))


def parse_server_event(message: str | bytes) -> RealtimeServerEvent:
    """Validate one server message into its typed model (raises ``pydantic.ValidationError``)."""
    return _SERVER_EVENT.validate_json(message)


def observe(event: RealtimeServerEvent, at: float) -> Observation:
    """What the bench keeps of an event: no audio, text only where it is scored."""
    item_id: str | None = getattr(event, "item_id", None)
    response_id: str | None = getattr(event, "response_id", None)
    if isinstance(event, ResponseCreatedEvent | ResponseDoneEvent):
        response_id = event.response.id
    if isinstance(event, ResponseDoneEvent):
        details = event.response.status_details
        reason = None if details is None else details.reason
        return Observation(
            event.type, at, response_id=response_id, status=event.response.status, detail=reason
        )
    if isinstance(event, ConversationItemInputAudioTranscriptionCompletedEvent):
        return Observation(event.type, at, item_id=item_id, text=event.transcript)
    if isinstance(event, ResponseAudioTranscriptDoneEvent):
        return Observation(event.type, at, item_id, response_id, text=event.transcript)
    if isinstance(event, ResponseAudioDeltaEvent):
        return Observation(event.type, at, item_id, response_id, audio_ms=_pcm_ms(event.delta))
    if isinstance(event, RealtimeErrorEvent):
        detail = f"{event.error.code or event.error.type}: {event.error.message}"
        return Observation(event.type, at, detail=detail)
    return Observation(event.type, at, item_id, response_id)


def _pcm_ms(payload: str) -> float:
    """Duration of base64 ``audio/pcm`` at 24 kHz (the session default the bench keeps)."""
    size = len(payload) * 3 // 4 - payload[-2:].count("=")
    return size / (OUTPUT_RATE * 2) * 1000.0


class RealtimeCall:
    """One open session: sends client events, records every server event with its arrival.

    A background task receives; :meth:`wait_for` wakes on each new event. The call owns
    that task and stops it in :meth:`aclose`, which is safe to call twice.
    """

    def __init__(self, websocket: ClientConnection, clock: Clock) -> None:
        self.clock = clock
        self._log = ObservationLog()
        self.schema_errors: list[str] = []
        self.close_reason: str | None = None
        self._websocket = websocket
        self._receiver = asyncio.create_task(self._receive(), name="bench-receive")

    async def _receive(self) -> None:
        try:
            async for message in self._websocket:
                at = self.clock()
                try:
                    event = parse_server_event(message)
                except pydantic.ValidationError as exc:
                    self.schema_errors.append(schema_problem(message, exc))
                    continue
                self._log.add(observe(event, at))
            self.close_reason = "closed by the server"
        except ConnectionClosed as exc:
            self.close_reason = f"closed by the server ({exc})"
        finally:
            self._log.wake()

    @property
    def observations(self) -> list[Observation]:
        return self._log.items

    async def send(self, event: pydantic.BaseModel) -> None:
        await self.send_text(event.model_dump_json(exclude_unset=True))

    async def send_text(self, message: str) -> None:
        try:
            await self._websocket.send(message)
        except ConnectionClosed as exc:
            raise CallClosed(f"closed by the server ({exc})") from None

    async def wait_for(self, predicate: Predicate[T], timeout: float) -> T:
        """The first truthy ``predicate(observations)``, re-checked on each event.

        Raises ``TimeoutError`` after ``timeout`` seconds and :class:`CallClosed` when the
        connection ends first. Cancelling it is safe: nothing is consumed.
        """
        return await self._log.wait_for(predicate, timeout, self._closed)

    def _closed(self) -> str | None:
        if not self._receiver.done():
            return None
        return self.close_reason or "connection closed"

    async def say(self, plan: AudioPlan) -> float:
        """Send ``plan`` at real-time pace; return when its marked chunk was sent (call clock)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        marked: float | None = None
        for index, message in enumerate(plan.messages):
            delay = started + (index + 1) * CHUNK_MS / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.send_text(message)
            if index == plan.mark_chunk:
                marked = self.clock()
        return self.clock() if marked is None else marked

    async def reply_heard(self, response_id: str | None, timeout: float) -> None:
        """Nothing to wait for: every audio delta arrives before its ``response.done``."""

    async def aclose(self) -> None:
        await cancel_and_wait(self._receiver)
        await self._websocket.close()


def schema_problem(message: str | bytes, exc: pydantic.ValidationError) -> str:
    try:
        kind = json.loads(message).get("type", "?")
    except (ValueError, AttributeError):
        kind = "?"
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"invalid {kind} event: {where}: {first['msg']}"


@contextlib.asynccontextmanager
async def open_call(target: Target, clock: Clock) -> AsyncIterator[RealtimeCall]:
    """A new Realtime session; closed on exit, also when the caller is cancelled."""
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else None
    try:
        websocket = await connect(
            target.realtime_url,
            additional_headers=headers,
            open_timeout=CONNECT_TIMEOUT_S,
            close_timeout=2,
            max_size=None,  # as the SDK: replies may carry large audio deltas
            compression=None,
            proxy=None,  # a local server; never route it through an environment proxy
        )
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
        raise ServerUnreachable(f"cannot open {target.realtime_url}: {exc}") from None
    call = RealtimeCall(websocket, clock)
    try:
        yield call
    finally:
        await call.aclose()


def has_event(event_type: str) -> Predicate[Observation]:
    """Predicate: the first observation of ``event_type`` (or an error event)."""

    def find(observations: Sequence[Observation]) -> Observation | None:
        return next((o for o in observations if o.type in (event_type, "error")), None)

    return find


def _get_health(url: str) -> dict[str, Any] | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=CONNECT_TIMEOUT_S) as response:
            body = json.load(response)
    except urllib.error.HTTPError:
        return None  # it answers HTTP, only not /health: another Realtime server
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServerUnreachable(f"server unreachable at {url}: {reason}") from None
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def fetch_health(target: Target) -> dict[str, Any] | None:
    """The server's ``/health`` body; ``None`` if it has none; unreachable: an exception."""
    return await asyncio.to_thread(_get_health, target.health_url)


#: The Realtime protocol over a WebSocket, audio as base64 PCM in JSON events.
WEBSOCKET: Transport[AudioPlan] = Transport("websocket", plan_audio, open_call)
