"""read_ahead: a slow consumer does not hold its source open at its own pace."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from voice.tasks import read_ahead


class Source:
    """An async generator that records how far it got and whether it was closed."""

    def __init__(self, count: int, fail_after: int | None = None) -> None:
        self.count, self.fail_after = count, fail_after
        self.given = 0
        self.closed = False

    async def items(self) -> AsyncIterator[int]:
        try:
            for i in range(self.count):
                if i == self.fail_after:
                    raise ConnectionError("the stream broke")
                self.given += 1
                yield i
                await asyncio.sleep(0)
        finally:
            self.closed = True


async def test_the_source_is_drained_while_the_consumer_waits() -> None:
    source = Source(50)
    got = []
    async with contextlib.aclosing(read_ahead(source.items(), "test")) as items:
        async for item in items:
            got.append(item)
            if item == 0:
                await asyncio.sleep(0.05)  # a slow consumer: its audio plays
                assert source.given == 50 and source.closed  # all read meanwhile
    assert got == list(range(50))


async def test_an_error_of_the_source_comes_after_what_it_gave() -> None:
    source = Source(10, fail_after=3)
    got = []
    with pytest.raises(ConnectionError, match="broke"):
        async with contextlib.aclosing(read_ahead(source.items(), "test")) as items:
            async for item in items:
                got.append(item)
    assert got == [0, 1, 2] and source.closed


async def test_closing_early_stops_and_closes_the_source() -> None:
    release = asyncio.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            yield 1
            await release.wait()  # the model is still writing
            yield 2
        finally:
            closed.set()

    closed = asyncio.Event()
    async with contextlib.aclosing(read_ahead(endless(), "test")) as items:
        assert await anext(items) == 1
    assert closed.is_set()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "test"]


async def test_cancelling_the_consumer_stops_the_source() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            while True:
                await asyncio.sleep(1)
                yield 0
        finally:
            closed.set()

    async def consume() -> None:
        async with contextlib.aclosing(read_ahead(endless(), "test")) as items:
            async for _ in items:
                pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed.is_set()
