"""Admission (voice/capacity.py), the shutdown's order (voice/shutdown.py), /proc parsing.

No server here: the limits and the drain are plain objects; the end-to-end tests are in
tests/test_load_limits.py and tests/test_shutdown.py.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from voice.capacity import Capacity, Slot
from voice.origin import Refusal
from voice.process_stats import parse_status, process_stats
from voice.protocol import ServerEvent
from voice.shutdown import GracefulShutdown


def admitted(result: Slot | Refusal) -> Slot:
    assert isinstance(result, Slot), result
    return result


def refused(result: Slot | Refusal) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


def test_the_limits_in_all_and_per_user() -> None:
    capacity = Capacity(max_sessions=3, max_per_user=2)
    a1 = admitted(capacity.admit("alice"))
    admitted(capacity.admit("alice"))
    third = refused(capacity.admit("alice"))
    assert (third.status, third.code, third.type) == (429, "too_many_sessions", "rate_limit_error")
    admitted(capacity.admit("bob"))
    full = refused(capacity.admit("carol"))
    assert (full.status, full.code, full.type) == (503, "server_at_capacity", "server_error")
    assert "3 calls" in full.message
    assert capacity.in_use == 3 and not capacity.idle.is_set()

    a1.release()
    a1.release()  # twice: counted once
    assert capacity.in_use == 2
    admitted(capacity.admit("carol"))
    refused(capacity.admit("alice"))  # the server is full again, whoever asks


def test_idle_is_set_when_the_last_slot_is_released() -> None:
    capacity = Capacity(max_sessions=2, max_per_user=2)
    slots = [admitted(capacity.admit("u")), admitted(capacity.admit("v"))]
    slots[0].release()
    assert not capacity.idle.is_set()
    slots[1].release()
    assert capacity.idle.is_set() and capacity.in_use == 0
    assert admitted(capacity.admit("u"))  # the per-user count went back to zero


def test_a_closed_capacity_refuses_everyone_and_keeps_the_slots_it_gave() -> None:
    capacity = Capacity(max_sessions=2, max_per_user=2)
    slot = admitted(capacity.admit("u"))
    capacity.close()
    closing = refused(capacity.admit("v"))
    assert (closing.status, closing.code) == (503, "server_shutting_down")
    assert capacity.in_use == 1
    slot.release()
    assert capacity.idle.is_set()


def test_limits_below_one_are_a_mistake() -> None:
    with pytest.raises(ValueError):
        Capacity(max_sessions=0, max_per_user=1)


# --- the shutdown's order ---------------------------------------------------------------------


class EndedCalls:
    """Stands for the WebRTC calls (a fake): records the notice, releases their slots."""

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots
        self.notices: list[ServerEvent] = []

    async def __call__(self, notice: ServerEvent) -> None:
        self.notices.append(notice)
        for slot in self.slots:
            slot.release()


async def test_the_drain_ends_as_soon_as_no_call_is_left() -> None:
    capacity = Capacity(max_sessions=4, max_per_user=4)
    slot = admitted(capacity.admit("u"))
    ended = EndedCalls([])
    shutdown = GracefulShutdown(capacity, drain_s=3600, end_webrtc_calls=ended)
    running = asyncio.create_task(shutdown.run())
    await asyncio.sleep(0)
    assert refused(capacity.admit("v")).code == "server_shutting_down"
    assert not running.done() and not shutdown.ending.is_set()
    slot.release()  # the call ends by itself
    async with asyncio.timeout(5):
        await running
    assert shutdown.ending.is_set()
    assert [notice.type for notice in ended.notices] == ["error"]


async def test_calls_still_live_after_the_drain_time_are_ended() -> None:
    capacity = Capacity(max_sessions=4, max_per_user=4)
    websocket = admitted(capacity.admit("u"))
    webrtc = admitted(capacity.admit("v"))
    ended = EndedCalls([webrtc])
    shutdown = GracefulShutdown(capacity, drain_s=0.05, end_webrtc_calls=ended)
    running = asyncio.create_task(shutdown.run())
    async with asyncio.timeout(5):
        await shutdown.ending.wait()  # the WebSocket handler's cue
    (notice,) = ended.notices
    assert notice.error.code == "server_shutting_down"  # type: ignore[union-attr]
    assert notice.error.type == "server_error"  # type: ignore[union-attr]
    assert not running.done()  # waits for the WebSocket call to close
    websocket.release()
    async with asyncio.timeout(5):
        await running
    assert capacity.idle.is_set()


async def test_skip_ends_the_drain_at_once() -> None:
    capacity = Capacity(max_sessions=4, max_per_user=4)
    slot = admitted(capacity.admit("u"))
    shutdown = GracefulShutdown(capacity, drain_s=3600, end_webrtc_calls=EndedCalls([slot]))
    running = asyncio.create_task(shutdown.run())
    await asyncio.sleep(0)
    shutdown.skip()
    async with asyncio.timeout(5):
        await running
    assert shutdown.ending.is_set() and capacity.in_use == 0


# --- what /health says of the process ------------------------------------------------------------


def test_parse_status_reads_resident_memory_and_threads() -> None:
    text = "Name:\tpython\nVmPeak:\t  900 kB\nVmRSS:\t  123456 kB\nThreads:\t7\n"
    assert parse_status(text) == (123456 * 1024, 7)
    assert parse_status("Name:\tx\n") == (None, None)


async def test_process_stats_of_this_process(tmp_path: Path) -> None:
    stats = process_stats()
    assert stats["asyncio_tasks"] is not None and stats["asyncio_tasks"] >= 1
    if sys.platform == "linux":
        assert stats["rss_bytes"] and stats["rss_bytes"] > 1024 * 1024
        assert stats["open_fds"] and stats["threads"]
    missing = process_stats(tmp_path / "no-proc")
    assert missing["rss_bytes"] is None and missing["open_fds"] is None


async def test_a_call_at_the_limit_waits_briefly_for_a_closing_call_to_release_its_slot() -> None:
    capacity = Capacity(max_sessions=3, max_per_user=1)
    closing = admitted(capacity.admit("alice"))
    asyncio.get_running_loop().call_later(0.05, closing.release)
    assert isinstance(await capacity.admit_within("alice", 5.0), Slot)


async def test_a_call_at_the_limit_is_refused_when_no_slot_is_released_in_time() -> None:
    capacity = Capacity(max_sessions=3, max_per_user=1)
    admitted(capacity.admit("alice"))
    other = admitted(capacity.admit("bob"))
    asyncio.get_running_loop().call_later(0.01, other.release)  # not one of hers
    refusal = await capacity.admit_within("alice", 0.1)
    assert isinstance(refusal, Refusal) and refusal.code == "too_many_sessions"
    capacity.close()
    shut = await capacity.admit_within("carol", 5.0)  # no wait when shutting down
    assert isinstance(shut, Refusal) and shut.code == "server_shutting_down"
