"""One Realtime WebSocket connection for the bench: typed events in, stamped observations out.

The bench speaks to the server with the ``websockets`` library directly rather than the
``openai`` SDK's realtime client, whose reconnection and send queue would hide a dropped
connection inside a measurement. Server events are still parsed into the SDK's typed
``openai.types.realtime`` models, and client events are built from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import typing
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, Union

import pydantic
from openai.types.realtime import (
    ConversationItemInputAudioTranscriptionCompletedEvent,
    RealtimeErrorEvent,
    RealtimeServerEvent,
    ResponseAudioDeltaEvent,
    ResponseAudioTranscriptDoneEvent,
    ResponseCreatedEvent,
    ResponseDoneEvent,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from voice.bench.timeline import Observation
from voice.tasks import cancel_and_wait

T = TypeVar("T")
Clock = Callable[[], float]
Predicate = Callable[[Sequence[Observation]], T | None]

#: Opening the WebSocket, or fetching ``/health``, must finish within this.
CONNECT_TIMEOUT_S = 10.0
#: Sample rate of the reply audio: ``audio/pcm`` output, left at its 24 kHz default.
OUTPUT_RATE = 24000

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


class ServerUnreachable(Exception):
    """The server could not be reached at all (refused, timed out, not a WebSocket)."""


class CallClosed(Exception):
    """The server closed the connection while the bench was waiting for an event."""


@dataclass(frozen=True)
class Target:
    """Where the server is: ``url`` is the Realtime base, e.g. ``ws://127.0.0.1:8000/v1``."""

    url: str
    api_key: str | None = None
    model: str = "voice"

    @property
    def realtime_url(self) -> str:
        query = urllib.parse.urlencode({"model": self.model})
        return f"{self.url.rstrip('/')}/realtime?{query}"

    @property
    def health_url(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        return urllib.parse.urlunsplit((scheme, parts.netloc, "/health", "", ""))


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
        self.observations: list[Observation] = []
        self.schema_errors: list[str] = []
        self.close_reason: str | None = None
        self._websocket = websocket
        self._changed = asyncio.Event()
        self._receiver = asyncio.create_task(self._receive(), name="bench-receive")

    async def _receive(self) -> None:
        try:
            async for message in self._websocket:
                at = self.clock()
                try:
                    event = parse_server_event(message)
                except pydantic.ValidationError as exc:
                    self.schema_errors.append(_schema_problem(message, exc))
                    continue
                self.observations.append(observe(event, at))
                self._changed.set()
            self.close_reason = "closed by the server"
        except ConnectionClosed as exc:
            self.close_reason = f"closed by the server ({exc})"
        finally:
            self._changed.set()

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
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                result = predicate(self.observations)
                if result:
                    return result
                if self._receiver.done():
                    raise CallClosed(self.close_reason or "connection closed")
                await self._changed.wait()

    async def aclose(self) -> None:
        await cancel_and_wait(self._receiver)
        await self._websocket.close()


def _schema_problem(message: str | bytes, exc: pydantic.ValidationError) -> str:
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
