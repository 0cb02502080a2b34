"""A session's conversation: its items, the prompt built from them, and what was heard.

No I/O. Items keep plain text; the session turns them into wire items when it reports them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from voice.characters.tokens import estimate_tokens

Role = Literal["user", "assistant", "system"]
ItemStatus = Literal["completed", "incomplete", "in_progress"]
ItemKind = Literal["message", "function_call", "function_call_output"]


@dataclass
class SpokenSegment:
    """A piece of reply text and where its audio lies in the response's output stream."""

    text: str
    start_ms: float
    end_ms: float


@dataclass
class Item:
    """One conversation item: a message, a function call of the bot's, or a call's result.

    A call (``kind="function_call"``, role assistant) has ``call_id``, ``name`` and its
    JSON ``arguments``; a result (``"function_call_output"``) the ``call_id`` it answers
    and its ``text`` (the output). Neither is ever spoken.
    """

    id: str
    role: Role
    text: str = ""
    status: ItemStatus = "completed"
    #: For assistant audio: the text of each chunk with its place in the audio.
    segments: list[SpokenSegment] = field(default_factory=list)
    #: Whether the text is a transcript of audio (user speech, or a spoken reply).
    from_audio: bool = False
    kind: ItemKind = "message"
    call_id: str = ""
    name: str = ""
    arguments: str = ""

    @property
    def is_message(self) -> bool:
        return self.kind == "message"

    @property
    def audio_ms(self) -> float:
        return self.segments[-1].end_ms if self.segments else 0.0


def word_spans(segment: SpokenSegment) -> Iterator[tuple[str, float, float]]:
    """Each word of ``segment`` with its estimated start and end (ms) in the audio.

    The bundled voice gives no word timings: words share the segment's audio in proportion
    to their length, as long words take longer to say.
    """
    segment_words = segment.text.split()
    total = sum(len(word) + 1 for word in segment_words)
    duration = segment.end_ms - segment.start_ms
    elapsed = 0
    for word in segment_words:
        start = segment.start_ms + duration * elapsed / total
        elapsed += len(word) + 1
        yield word, start, segment.start_ms + duration * elapsed / total


def text_heard(segments: list[SpokenSegment], played_ms: float) -> str:
    """The words whose audio lies before ``played_ms``.

    Whole segments that finished playing are kept. Within the segment being played, a word
    counts as heard once its estimated end (:func:`word_spans`) has been played.
    """
    words: list[str] = []
    for segment in segments:
        if played_ms >= segment.end_ms:
            words.extend(segment.text.split())
            continue
        if played_ms > segment.start_ms:
            for word, _, end in word_spans(segment):
                if end > played_ms:
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

    def insert(self, item: Item, after: str | None) -> None:
        """Put ``item`` right after the item ``after`` (``None``: first, before all others).

        Raises ``KeyError`` when there is no item ``after``.
        """
        if after is None:
            self._items.insert(0, item)
            return
        ids = [existing.id for existing in self._items]
        if after not in ids:
            raise KeyError(after)
        self._items.insert(ids.index(after) + 1, item)

    def previous_id(self, item_id: str) -> str | None:
        """The id of the item before ``item_id`` (``None`` for the first, or an unknown id)."""
        ids = [item.id for item in self._items]
        index = ids.index(item_id) if item_id in ids else 0
        return ids[index - 1] if index > 0 else None

    def get(self, item_id: str) -> Item | None:
        return next((item for item in self._items if item.id == item_id), None)

    def delete(self, item_id: str) -> bool:
        item = self.get(item_id)
        if item is None:
            return False
        self._items.remove(item)
        return True


def fit_turns(
    turns: list[dict[str, Any]],
    budget_tokens: int,
    system: list[dict[str, Any]],
    truncation: object,
) -> list[dict[str, Any]]:
    """The newest ``turns`` that fit ``budget_tokens`` next to ``system``, oldest dropped.

    ``truncation`` is the session's: ``"auto"`` drops just enough; a retention ratio drops
    down to that share of the budget at once, so the turns kept stay the same (and the
    model's prompt cache valid) for longer; ``"disabled"`` drops nothing. The newest turn
    is never dropped; if it alone is over the budget, its beginning is cut.
    """
    if truncation == "disabled" or not turns:
        return turns
    used = sum(estimate_tokens(message["content"]) for message in system)
    sizes = [estimate_tokens(turn["content"] + str(turn.get("tool_calls", ""))) for turn in turns]
    if used + sum(sizes) <= budget_tokens:
        return turns
    ratio = getattr(truncation, "retention_ratio", 1.0)
    target = max(0, round(budget_tokens * ratio) - used)
    kept, total = len(turns), 0
    while kept > 0 and total + sizes[kept - 1] <= target:
        kept -= 1
        total += sizes[kept]
    if kept == len(turns):  # the newest turn alone is too long: keep its end
        newest = dict(turns[-1])
        newest["content"] = newest["content"][-max(1, target) * 4 :]
        return [newest]
    while kept < len(turns) - 1 and turns[kept]["role"] == "tool":
        kept += 1  # a result whose call was cut goes too
    return turns[kept:]
