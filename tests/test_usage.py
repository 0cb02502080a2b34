"""Fair use: usage counted per user and day in a real SQLite database (two stores on one
file stand for two replicas), limits, and a call that reaches one (fake models, real
session and meter)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fakes import FakeEngines, FakeLLM, Recorder, VirtualClock
from tests.test_session_fakes import user_text
from voice.config import Settings
from voice.memory.database import Base, create_engine
from voice.session import RealtimeSession
from voice.usage import Limits, Usage, UsageMeter, UsageStore, limits_for, seconds_to_midnight

NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[UsageStore, UsageStore]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'voice.db'}"
    engines = [create_engine(url), create_engine(url)]
    async with engines[0].begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield UsageStore(engines[0], now=lambda: NOON), UsageStore(engines[1], now=lambda: NOON)
    for engine in engines:
        await engine.dispose()


async def test_replicas_add_to_one_row_per_user_and_day(
    stores: tuple[UsageStore, UsageStore],
) -> None:
    a, b = stores
    one = Usage(audio_in_s=1.5, responses=1, output_tokens=10)
    await asyncio.gather(*(store.add("alice", one) for store in (a, b) for _ in range(5)))
    used = await b.of_day("alice")
    assert used == Usage(audio_in_s=15.0, responses=10, output_tokens=100)
    assert await a.of_day("bob") == Usage()
    yesterday = NOON.date().replace(day=1)
    await a.add("alice", Usage(responses=3), day=yesterday)
    await a.forget("alice")  # deleting oneself keeps only today's counters
    assert await a.of_day("alice", yesterday) == Usage()
    assert (await a.of_day("alice")).responses == 10


def test_limits_and_what_is_left() -> None:
    limits = limits_for("alice", Limits(audio_minutes=10, responses=5),
                        {"alice": {"responses": 2}, "bob": {"tokens": 9}})  # fmt: skip
    assert limits == Limits(audio_minutes=10, responses=2, tokens=None)
    used = Usage(audio_in_s=120, audio_out_s=60, responses=1)
    assert limits.reached(used) is None
    assert "2 responses" in (limits.reached(Usage(responses=2)) or "")
    assert "10 minutes" in (limits.reached(Usage(audio_out_s=600)) or "")
    left = limits.rate_limits(used, 3600.0)
    assert left == [
        {"name": "requests", "limit_name": "responses", "limit": 2, "remaining": 1,
         "reset_seconds": 3600.0},
        {"limit_name": "audio_seconds", "limit": 600, "remaining": 420, "reset_seconds": 3600.0},
    ]  # fmt: skip
    assert seconds_to_midnight(NOON) == 12 * 3600


async def test_a_call_that_reaches_a_limit_says_goodbye_and_ends(
    stores: tuple[UsageStore, UsageStore],
) -> None:
    store, other = stores
    await other.add("alice", Usage(responses=1))  # one response earlier today, elsewhere
    clock = VirtualClock()
    recorder = Recorder(clock)
    settings = Settings(instructions="Be brief.", usage_limit_message="That is all for today.")
    session = RealtimeSession(
        FakeEngines(FakeLLM(["Hello there.", "Sure thing."])), settings, recorder.send,
        clock=clock, user_id="alice", usage=UsageMeter(store, "alice", Limits(responses=2)),
    )  # fmt: skip
    await session.start()
    await session.handle_text(user_text("Hi."))
    await session.handle_text('{"type": "response.create"}')
    await recorder.wait_for("response.done")
    (update,) = recorder.of("rate_limits.updated")
    assert update["rate_limits"][0] == {"name": "requests", "limit_name": "responses",
                                        "limit": 2, "remaining": 0,
                                        "reset_seconds": 12 * 3600.0}  # fmt: skip
    (error,) = recorder.of("error")
    assert error["error"]["code"] == "usage_limit_reached"
    assert "2 responses" in error["error"]["message"]
    # The goodbye is spoken, in the session's voice, then the call is to end.
    await recorder.wait_for("response.done", count=2)
    goodbye = recorder.of("response.done")[1]["response"]
    assert goodbye["output"][0]["content"][0]["transcript"] == "That is all for today."
    await clock.run_until(session.allowance.ending.is_set, 30)
    assert session.allowance.end_reason == "daily usage limit reached"
    await session.aclose()
    # Both responses were stored (the goodbye too: it was spoken).
    assert (await store.of_day("alice")).responses == 3
