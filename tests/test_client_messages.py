"""One client message into a session: limits and server bugs answered, never raised (fakes)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, cast

import pytest

from voice.client_messages import handle_client_message
from voice.protocol import ServerEvent, dump_server_event
from voice.session import RealtimeSession


class FakeSession:
    """A session whose ``handle_text`` fails the way a bug would (a fake, not the real one)."""

    id = "sess_fake"

    def __init__(self, failure: BaseException | None = None) -> None:
        self.failure = failure
        self.handled: list[str | bytes] = []

    async def handle_text(self, text: str | bytes) -> None:
        self.handled.append(text)
        if self.failure is not None:
            raise self.failure


async def deliver(session: FakeSession, data: str | bytes, max_bytes: int = 1000) -> list[Any]:
    sent: list[ServerEvent] = []

    real = cast(RealtimeSession, session)
    await handle_client_message(real, data, sent.append, max_bytes=max_bytes)
    return [json.loads(dump_server_event(event)) for event in sent]


async def test_a_bug_while_handling_is_logged_and_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = FakeSession(AttributeError("'Content' object has no attribute 'transcript'"))
    with caplog.at_level(logging.ERROR, logger="voice.client_messages"):
        events = await deliver(session, '{"type": "secret words of the user"}')
    assert [event["error"]["code"] for event in events] == ["server_error"]
    assert events[0]["error"]["type"] == "server_error"
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert "secret words" not in caplog.text  # the message itself is never logged


async def test_the_next_message_is_handled_after_a_bug() -> None:
    session = FakeSession(KeyError("x"))
    await deliver(session, "one")
    session.failure = None
    assert await deliver(session, "two") == []
    assert session.handled == ["one", "two"]


async def test_oversized_messages_are_refused_unread() -> None:
    session = FakeSession()
    events = await deliver(session, "é" * 600, max_bytes=1000)  # 1200 bytes of UTF-8
    assert events[0]["error"]["code"] == "message_too_large"
    assert "1200 bytes exceeds the limit of 1000 bytes" in events[0]["error"]["message"]
    assert session.handled == []


async def test_cancellation_is_not_swallowed() -> None:
    session = FakeSession(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await deliver(session, "{}")
