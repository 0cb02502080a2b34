"""The model worker: one call at a time, waiting calls by priority, then in order."""

from __future__ import annotations

import asyncio
import threading

import pytest

from voice.inference import ModelBusyError, ModelWorker, Priority, at_priority


async def occupied(worker: ModelWorker) -> tuple[asyncio.Task[str], threading.Event]:
    """A call that holds the worker's thread until the event is set."""
    release, running = threading.Event(), threading.Event()

    def hold() -> str:
        running.set()
        release.wait(10)
        return "held"

    task = asyncio.create_task(worker.run(hold))
    while not running.is_set():  # noqa: ASYNC110 - the thread signals nothing else
        await asyncio.sleep(0.001)
    return task, release


async def test_waiting_calls_go_by_priority_then_in_order() -> None:
    worker = ModelWorker("order")
    order: list[str] = []
    try:
        holder, release = await occupied(worker)
        calls = []
        for name, priority in [
            ("later-1", Priority.SOON), ("first-1", Priority.NOW),
            ("later-2", Priority.SOON), ("first-2", Priority.NOW),
        ]:  # fmt: skip
            with at_priority(priority):
                calls.append(asyncio.create_task(worker.run(order.append, name)))
        await asyncio.sleep(0.01)  # every call is queued behind the held one
        assert worker.pending == 5
        release.set()
        await asyncio.gather(holder, *calls)
        assert order == ["first-1", "first-2", "later-1", "later-2"]
        assert worker.pending == 0
    finally:
        worker.close()


async def test_the_default_priority_is_soon() -> None:
    worker = ModelWorker("default")
    order: list[str] = []
    try:
        holder, release = await occupied(worker)
        plain = asyncio.create_task(worker.run(order.append, "plain"))
        with at_priority(Priority.NOW):
            urgent = asyncio.create_task(worker.run(order.append, "urgent"))
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(holder, plain, urgent)
        assert order == ["urgent", "plain"]
    finally:
        worker.close()


async def test_a_cancelled_waiting_call_never_runs_and_frees_its_place() -> None:
    worker = ModelWorker("cancel", max_pending=2)
    ran: list[str] = []
    try:
        holder, release = await occupied(worker)
        waiting = asyncio.create_task(worker.run(ran.append, "cancelled"))
        await asyncio.sleep(0.01)
        with pytest.raises(ModelBusyError):
            await worker.run(ran.append, "one too many")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert worker.pending == 1
        after = asyncio.create_task(worker.run(ran.append, "after"))
        release.set()
        await asyncio.gather(holder, after)
        assert ran == ["after"]
    finally:
        worker.close()


async def test_errors_reach_the_caller_and_the_worker_goes_on() -> None:
    worker = ModelWorker("errors")
    try:
        with pytest.raises(ZeroDivisionError):
            await worker.run(lambda: 1 / 0)
        assert await worker.run(lambda: "still here") == "still here"
    finally:
        worker.close()


async def test_close_drops_waiting_calls_and_refuses_new_ones() -> None:
    worker = ModelWorker("close")
    holder, release = await occupied(worker)
    waiting = asyncio.create_task(worker.run(lambda: "never"))
    await asyncio.sleep(0.01)
    worker.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    assert await holder == "held"  # the running call finishes
    with pytest.raises(ModelBusyError, match="shut down"):
        await worker.run(lambda: "late")
    worker.close()  # twice is fine


async def test_join_waits_for_the_running_call_after_close() -> None:
    worker = ModelWorker("join")
    holder, release = await occupied(worker)
    worker.close()
    assert not worker.join(timeout=0.05)  # the call still holds the thread
    release.set()
    assert worker.join(timeout=5)
    assert await holder == "held"
