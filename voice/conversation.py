"""A session's conversation: its items, the prompt built from them, and what was heard.

No I/O. Items keep plain text; the session turns them into wire items when it reports them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["user", "assistant", "system"]


@dataclass
class SpokenSegment:
    """A piece of reply text and where its audio lies in the response's output stream."""

    text: str
    start_ms: float
    end_ms: float


@dataclass
class Item:
    """One conversation item (a message)."""

    id: str
    role: Role
    text: str = ""
    status: Literal["completed", "incomplete", "in_progress"] = "completed"
    #: For assistant audio: the text of each chunk with its place in the audio.
    segments: list[SpokenSegment] = field(default_factory=list)
    #: Whether the text is a transcript of audio (user speech, or a spoken reply).
    from_audio: bool = False

    @property
    def audio_ms(self) -> float:
        return self.segments[-1].end_ms if self.segments else 0.0


def text_heard(segments: list[SpokenSegment], played_ms: float) -> str:
    """The words whose audio lies before ``played_ms``.

    Whole segments that finished playing are kept. Within the segment being played, words
    are kept in proportion to the share of its audio that was played (a word counts as
    heard once its estimated end has been played).
    """
    words: list[str] = []
    for segment in segments:
        if played_ms >= segment.end_ms:
            words.extend(segment.text.split())
            continue
        duration = segment.end_ms - segment.start_ms
        if played_ms > segment.start_ms and duration > 0:
            segment_words = segment.text.split()
            share = (played_ms - segment.start_ms) / duration
            # Weight words by length: long words take longer to say.
            total = sum(len(word) + 1 for word in segment_words)
            elapsed = 0
            for word in segment_words:
                elapsed += len(word) + 1
                if elapsed / total > share:
                    break
                words.append(word)
        break
    return " ".join(words)


class Conversation:
    """The ordered items of one session."""

    def __init__(self) -> None:
        self._items: list[Item] = []

    def __iter__(self) -> Iterator[Item]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def last_id(self) -> str | None:
        return self._items[-1].id if self._items else None

    def add(self, item: Item) -> str | None:
        """Append ``item``; return the id of the item before it (``previous_item_id``)."""
        previous = self.last_id
        self._items.append(item)
        return previous

    def get(self, item_id: str) -> Item | None:
        return next((item for item in self._items if item.id == item_id), None)

    def delete(self, item_id: str) -> bool:
        item = self.get(item_id)
        if item is None:
            return False
        self._items.remove(item)
        return True

    def messages(
        self, instructions: str, max_items: int, pending: Sequence[Item] = ()
    ) -> list[dict[str, str]]:
        """Chat messages for the LLM: the instructions, then the most recent items with text.

        ``pending`` items count as if they had been added (a turn not yet committed).
        """
        items = [*self._items, *pending]
        recent = [item for item in items if item.text.strip()][-max_items:]
        messages = [{"role": "system", "content": instructions}] if instructions else []
        messages.extend({"role": item.role, "content": item.text} for item in recent)
        return messages
