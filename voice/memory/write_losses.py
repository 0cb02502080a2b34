"""Queued memory writes, and those that were never stored: logged (never their text), counted."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger("voice.memory.writer")

WriteKind = Literal["transcript", "summary", "fact"]
#: Why writes were lost, as the ``reason`` label of the lost-writes counter; a memory
#: update that could not run because the database was unreachable is ``unreachable``.
LossReason = Literal["queue_full", "expired", "rejected", "shutdown", "unreachable"]
LOSS_REASONS: tuple[LossReason, ...] = (
    "queue_full",
    "expired",
    "rejected",
    "shutdown",
    "unreachable",
)
#: Kinds of loss, the ``kind`` label: the writes, and memory updates (``memory_update``).
LOSS_KINDS = ("transcript", "summary", "fact", "memory_update")


@dataclass(frozen=True, eq=False)
class PendingWrite:
    """One queued write. ``text`` is private: it is never logged."""

    seq: int
    kind: WriteKind
    user_id: str
    character_id: str
    session_id: str | None
    role: str | None
    text: str
    queued_at: float


class LostWrites:
    """Writes that were never stored: a warning each time (kinds, counts, ids), and counts."""

    def __init__(self, on_lost: Callable[[str, str, int], None] | None) -> None:
        self._on_lost = on_lost
        #: Writes lost so far, by (kind, reason).
        self.counts: Counter[tuple[str, str]] = Counter()

    def lose(self, writes: list[PendingWrite], reason: LossReason, detail: str = "") -> None:
        kinds = Counter(write.kind for write in writes)
        users = sorted({write.user_id for write in writes})
        sessions = sorted({write.session_id for write in writes if write.session_id})
        log.warning(
            "memory writes lost (%s%s): %s users=%s sessions=%s",
            reason,
            f": {detail}" if detail else "",
            " ".join(f"{kind}={count}" for kind, count in sorted(kinds.items())),
            ",".join(users),
            ",".join(sessions) or "-",
        )
        for kind, count in kinds.items():
            self._count(kind, reason, count)

    def one(self, kind: str, reason: LossReason, *, user_id: str, session_id: str | None) -> None:
        """A loss found outside the queue (a memory update that could not run)."""
        log.warning(
            "memory writes lost (%s): %s=1 user=%s session=%s", reason, kind, user_id, session_id
        )
        self._count(kind, reason, 1)

    def _count(self, kind: str, reason: str, count: int) -> None:
        self.counts[kind, reason] += count
        if self._on_lost is not None:
            self._on_lost(kind, reason, count)
