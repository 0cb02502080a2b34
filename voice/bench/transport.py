"""What the scripted conversations need from a connection, whatever carries it.

A *transport* turns an utterance into something it can send (a plan, computed once per
clip before anything is timed) and opens calls. A *call* sends client events, records
every server event as an :class:`~voice.bench.timeline.Observation` stamped on the
bench's clock, and says planned utterances at real-time pace. The WebSocket transport is
in :mod:`voice.bench.client`, the WebRTC one in :mod:`voice.bench.webrtc_call`.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import pydantic

from voice.audio import Float32Array
from voice.bench.timeline import Observation, TransportName

T = TypeVar("T")
PlanT = TypeVar("PlanT")
PlanT_contra = TypeVar("PlanT_contra", contravariant=True)
Clock = Callable[[], float]
Predicate = Callable[[Sequence[Observation]], T | None]


class ServerUnreachable(Exception):
    """The server could not be reached at all (refused, timed out, not a Realtime server)."""


class CallClosed(Exception):
    """The server closed the connection while the bench was waiting for an event."""


class ObservationLog:
    """A call's observations in arrival order, and waiting for one a predicate accepts."""

    def __init__(self) -> None:
        self.items: list[Observation] = []
        self._changed = asyncio.Event()

    def add(self, observation: Observation) -> None:
        self.items.append(observation)
        self._changed.set()

    def wake(self) -> None:
        """Make waiters look again (the call ended)."""
        self._changed.set()

    async def wait_for(
        self, predicate: Predicate[T], timeout: float, closed: Callable[[], str | None]
    ) -> T:
        """The first truthy ``predicate(items)``, re-checked on each new observation.

        Raises ``TimeoutError`` after ``timeout`` seconds and :class:`CallClosed` with
        ``closed()``'s reason once that is not None. Cancelling it is safe: nothing is
        consumed.
        """
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                result = predicate(self.items)
                if result:
                    return result
                reason = closed()
                if reason is not None:
                    raise CallClosed(reason)
                await self._changed.wait()


@dataclass(frozen=True)
class Target:
    """Where the server is: ``url`` is the Realtime base, e.g. ``ws://127.0.0.1:8000/v1``."""

    url: str
    api_key: str | None = None
    model: str = "voice"

    @property
    def realtime_url(self) -> str:
        """The WebSocket endpoint."""
        query = urllib.parse.urlencode({"model": self.model})
        return f"{self.url.rstrip('/')}/realtime?{query}"

    @property
    def calls_url(self) -> str:
        """The WebRTC signalling endpoint (HTTP, on the same host and base path)."""
        query = urllib.parse.urlencode({"model": self.model})
        base = urllib.parse.urlunsplit((self._http_scheme, *self._parts[1:3], "", ""))
        return f"{base.rstrip('/')}/realtime/calls?{query}"

    @property
    def health_url(self) -> str:
        return urllib.parse.urlunsplit((self._http_scheme, self._parts.netloc, "/health", "", ""))

    @property
    def _parts(self) -> urllib.parse.SplitResult:
        return urllib.parse.urlsplit(self.url)

    @property
    def _http_scheme(self) -> str:
        scheme = self._parts.scheme
        return {"ws": "http", "wss": "https"}.get(scheme, scheme)


@dataclass(frozen=True)
class Utterance:
    """16 kHz samples to say, and the index of the sample whose sending is timed."""

    samples: Float32Array
    mark_sample: int


class BenchCall(Protocol[PlanT_contra]):
    """One open Realtime session as the scripts drive it."""

    @property
    def clock(self) -> Clock: ...

    @property
    def observations(self) -> list[Observation]:
        """Every server event so far, in arrival order (the call appends to it)."""
        ...

    @property
    def schema_errors(self) -> list[str]:
        """Server messages that did not validate as Realtime events."""
        ...

    async def send(self, event: pydantic.BaseModel) -> None:
        """Send one client event; raises :class:`CallClosed` when the connection is gone."""
        ...

    async def wait_for(self, predicate: Predicate[T], timeout: float) -> T:
        """The first truthy ``predicate(observations)``, re-checked as observations arrive.

        Raises ``TimeoutError`` after ``timeout`` s and :class:`CallClosed` when the
        connection ends first. Cancelling it is safe: nothing is consumed.
        """
        ...

    async def say(self, plan: PlanT_contra) -> float:
        """Send ``plan`` at real-time pace; the clock when its marked sample was sent."""
        ...

    async def reply_heard(self, response_id: str | None, timeout: float) -> None:
        """Return once all audio of the finished ``response_id`` has arrived (or after
        ``timeout``)."""
        ...


@dataclass(frozen=True)
class Transport(Generic[PlanT]):
    """How the bench reaches a server: plans utterances once, opens a call per session."""

    name: TransportName
    plan: Callable[[Utterance], PlanT]
    connect: Callable[[Target, Clock], AbstractAsyncContextManager[BenchCall[PlanT]]]
