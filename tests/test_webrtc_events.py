"""The data channel's send side (voice/webrtc/events.py) against a fake channel: events
go out while the peer takes them; once it stops, the buffer is bounded and the call ends.

The end-to-end case (a frozen client process) is in tests/test_load_limits.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from voice.protocol import server_error_event
from voice.webrtc.events import EventChannel


class FakeDataChannel:
    """Stands for aiortc's RTCDataChannel (a fake): keeps what is sent as unsent until
    :meth:`take` (the peer acknowledging it), and emits ``bufferedamountlow`` as aiortc does."""

    def __init__(self, ready_state: str = "open") -> None:
        self.readyState = ready_state
        self.bufferedAmountLowThreshold = 0
        self.sent: list[str] = []
        self.bufferedAmount = 0
        self._handlers: dict[str, list[Callable[..., Any]]] = {}

    def on(self, name: str, handler: Callable[..., Any]) -> None:
        self._handlers.setdefault(name, []).append(handler)

    def remove_listener(self, name: str, handler: Callable[..., Any]) -> None:
        self._handlers[name].remove(handler)

    def emit(self, name: str) -> None:
        for handler in list(self._handlers.get(name, [])):
            handler()

    def send(self, text: str) -> None:
        self.sent.append(text)
        self.bufferedAmount += len(text)

    def take(self) -> None:
        """The peer took everything."""
        was = self.bufferedAmount
        self.bufferedAmount = 0
        if was > self.bufferedAmountLowThreshold:
            self.emit("bufferedamountlow")


def event(size: int = 100) -> Any:
    return server_error_event("x" * size)


def channel_with(limit: int) -> tuple[EventChannel, FakeDataChannel, list[str]]:
    reasons: list[str] = []
    events = EventChannel(max_buffered_bytes=limit, on_overflow=reasons.append)
    fake = FakeDataChannel()
    events.attach(fake)  # type: ignore[arg-type]
    return events, fake, reasons


def test_a_peer_that_takes_its_events_gets_them_all() -> None:
    events, fake, reasons = channel_with(4096)
    for _ in range(200):
        events.send(event())
        fake.take()
    assert len(fake.sent) == 200 and not reasons and not events.overflowed


def test_a_peer_that_stops_taking_events_ends_the_call_once_and_the_buffer_stays_bounded() -> None:
    events, fake, reasons = channel_with(4096)
    for _ in range(200):
        events.send(event())
    assert events.overflowed and events.closed
    assert fake.bufferedAmount <= 4096
    (reason,) = reasons
    assert reason.startswith("the client stopped reading its events")
    sent = len(fake.sent)
    events.send(event())
    assert len(fake.sent) == sent  # nothing more is queued once it gave up


def test_one_large_event_alone_is_not_a_peer_that_stopped_reading() -> None:
    events, fake, reasons = channel_with(4096)
    events.send(event(10_000))
    assert not reasons and len(fake.sent) == 1
    events.send(event())  # but another behind it, unsent, is
    assert reasons and len(fake.sent) == 1


def test_the_backlog_from_before_the_channel_opened_is_bounded_too() -> None:
    reasons: list[str] = []
    events = EventChannel(max_buffered_bytes=4096, on_overflow=reasons.append)
    for _ in range(100):
        events.send(event())
    fake = FakeDataChannel()
    events.attach(fake)  # type: ignore[arg-type]
    assert reasons and fake.bufferedAmount <= 4096


async def test_drain_waits_until_the_peer_has_taken_what_was_sent() -> None:
    events, fake, _ = channel_with(1 << 20)
    events.send(event())
    draining = asyncio.create_task(events.drain(timeout=5))
    await asyncio.sleep(0)
    assert not draining.done()
    fake.take()
    async with asyncio.timeout(1):
        await draining
    assert not fake._handlers["bufferedamountlow"]  # its listener is removed
    await events.drain(timeout=5)  # nothing unsent: returns at once


async def test_drain_gives_up_after_its_timeout() -> None:
    events, fake, _ = channel_with(1 << 20)
    events.send(event())
    await events.drain(timeout=0.01)
    assert fake.bufferedAmount > 0
