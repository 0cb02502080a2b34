"""A one-line progress bar, redrawn in place with ``\\r`` (no dependency)."""

from __future__ import annotations

from typing import TextIO

BAR_WIDTH = 20


class Progress:
    """``[#####...............] 5/20 turns``, written to ``stream`` as work completes."""

    def __init__(self, total: int, stream: TextIO, unit: str = "turns") -> None:
        self.total = total
        self.done = 0
        self._stream = stream
        self._unit = unit
        self._closed = False

    def render(self) -> str:
        filled = BAR_WIDTH * self.done // max(1, self.total)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return f"[{bar}] {self.done}/{self.total} {self._unit}"

    def advance(self, steps: int = 1) -> None:
        self.done = min(self.total, self.done + steps)
        self._stream.write("\r" + self.render())
        self._stream.flush()

    def close(self) -> None:
        """End the line; safe to call twice."""
        if not self._closed and self.done:
            self._stream.write("\n")
            self._stream.flush()
        self._closed = True
