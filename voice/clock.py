"""The one clock of a call: what time it is, and how to wait.

Every part of a call that reads the time or waits for it (pacing audio, latency marks,
the echo guard's placement of the bot's audio on the input's time axis) takes the same
:class:`Clock`, passed down once by the transport. In production that is the event
loop's own clock; tests pass a virtual clock that moves only when they say so, so the
paced output runs for real without waiting on the wall clock.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds, and a sleep measured on the same axis."""

    def now(self) -> float:
        """The current time in seconds (only differences are meaningful)."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock. Cancelling the wait is safe."""


class LoopClock:
    """The running event loop's clock (``loop.time()``) and ``asyncio.sleep``."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
