"""How many calls share this process's models right now.

A call that is alone on the machine has cores to spare: it may start its speculative
transcription earlier in a pause (more guesses thrown away) and let the embedded LLM write
with more threads. With other calls live, the same spending slows everyone (BENCHMARKS.md,
"Spare cores for a lone call"), so each of those choices asks :attr:`CallLoad.alone`
when it is made. No I/O here, no locks: the event loop's thread is the only writer.
"""

from __future__ import annotations

from collections.abc import Callable


class CallTicket:
    """One live call's place in the count; :meth:`leave` when it ends (safe twice)."""

    def __init__(self, load: CallLoad) -> None:
        self._load = load
        self.left = False

    def leave(self) -> None:
        if not self.left:
            self.left = True
            self._load._leave()


class CallLoad:
    """The number of live calls, and who wants to know when it changes."""

    def __init__(self) -> None:
        self.live = 0
        #: Called with the new :attr:`alone` whenever it changes.
        self.on_change: Callable[[bool], None] | None = None

    @property
    def alone(self) -> bool:
        """Whether at most one call is live (the one asking)."""
        return self.live <= 1

    def join(self) -> CallTicket:
        self._set(self.live + 1)
        return CallTicket(self)

    def _leave(self) -> None:
        self._set(self.live - 1)

    def _set(self, live: int) -> None:
        was = self.alone
        self.live = live
        if self.alone != was and self.on_change is not None:
            self.on_change(self.alone)
