"""How many calls the server takes at once: in all, and per user.

A call (a WebSocket session or a WebRTC call) holds a :class:`Slot` from before its
session is made until it has ended; a call beyond a limit is refused at once, with a
:class:`~voice.origin.Refusal` the transports turn into an HTTP denial, so no model work
starts for it. Refusing is better than admitting: every call on a 2-core server slows
when one more starts talking.

A call that has just hung up still holds its slot for the moment its session takes to
close, so a client that ends a call and at once starts the next one (a page reload, a
benchmark's next turn) would be refused: :meth:`Capacity.admit_within` waits a short
while for a slot to be released before it refuses.

When the server is shutting down (:meth:`Capacity.close`), every new call is refused with
``server_shutting_down``. No I/O here; :attr:`Capacity.idle` is set while no slot is held,
for the shutdown to wait on.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from voice.origin import Refusal

AT_CAPACITY = "server_at_capacity"
TOO_MANY_FOR_USER = "too_many_sessions"
SHUTTING_DOWN = "server_shutting_down"


class Slot:
    """One admitted call's place; :meth:`release` it when the call has ended (safe twice)."""

    def __init__(self, capacity: Capacity, user: str) -> None:
        self._capacity = capacity
        self.user = user
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._capacity._release(self)


class Capacity:
    """Admits calls up to ``max_sessions`` in all and ``max_per_user`` for one user."""

    def __init__(self, max_sessions: int, max_per_user: int) -> None:
        if max_sessions < 1 or max_per_user < 1:
            raise ValueError("capacity limits must be at least 1")
        self.max_sessions = max_sessions
        self.max_per_user = max_per_user
        self._per_user: Counter[str] = Counter()
        self.in_use = 0
        self.closed = False
        #: Set while no slot is held.
        self.idle = asyncio.Event()
        self.idle.set()
        #: Set (and replaced) on each release: a waiting admission tries again.
        self._released = asyncio.Event()

    async def admit_within(self, user: str, wait_s: float) -> Slot | Refusal:
        """:meth:`admit`, but a call refused for a limit waits up to ``wait_s`` for a slot
        to be released (a closing call's) and is then admitted or refused."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            verdict = self.admit(user)
            remaining = deadline - loop.time()
            if not isinstance(verdict, Refusal) or verdict.code == SHUTTING_DOWN:
                return verdict
            if remaining <= 0:
                return verdict
            try:
                async with asyncio.timeout(remaining):
                    await self._released.wait()
            except TimeoutError:
                return self.admit(user)

    def admit(self, user: str) -> Slot | Refusal:
        """A slot for a new call of ``user``, or why it is refused (503 or 429)."""
        if self.closed:
            return Refusal(
                503, SHUTTING_DOWN, "the server is shutting down; try again later",
                "shutting down", type="server_error",
            )  # fmt: skip
        if self.in_use >= self.max_sessions:
            return Refusal(
                503, AT_CAPACITY,
                f"the server is at capacity ({self.max_sessions} calls); try again later",
                f"at capacity ({self.max_sessions} calls)", type="server_error",
            )  # fmt: skip
        if self._per_user[user] >= self.max_per_user:
            return Refusal(
                429, TOO_MANY_FOR_USER,
                f"this API key already has {self.max_per_user} calls open, the most allowed; "
                "end one first",
                f"user at the limit of {self.max_per_user} calls", type="rate_limit_error",
            )  # fmt: skip
        self.in_use += 1
        self._per_user[user] += 1
        self.idle.clear()
        return Slot(self, user)

    def close(self) -> None:
        """Refuse every call from now on (the server is shutting down); held slots stay."""
        self.closed = True

    def _release(self, slot: Slot) -> None:
        self.in_use -= 1
        self._per_user[slot.user] -= 1
        if self._per_user[slot.user] <= 0:
            del self._per_user[slot.user]
        if self.in_use == 0:
            self.idle.set()
        released, self._released = self._released, asyncio.Event()
        released.set()
