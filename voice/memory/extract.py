"""Ask the chat model what to remember: a running summary and durable facts about the user.

The embedded model (SmolLM2-135M) is weak, so prompts are short and few-shot, and its
output is parsed defensively: facts come from a JSON array or from bullet lines; facts
that are questions, speaker-labelled transcript lines, placeholders, too long, or not
grounded in what the user actually said are dropped, and their number is capped.

In addition to (never instead of) the model, a rule-based pre-pass stores names the user
states explicitly ("my name is Sam", "call me Sam"): the one fact a companion must not
forget, and the one a 135M model most often drops.

Everything here but :func:`update_memory` is pure and synchronous.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from voice.memory.store import normalize_text

Turn = dict[str, str]  # {"role": "user" | "assistant", "content": text}

#: Most facts stored from one update, longest fact and summary kept (characters).
MAX_FACTS_PER_UPDATE = 5
MAX_FACT_CHARS = 160
MAX_SUMMARY_CHARS = 600
#: Most conversation text shown to the model (the newest part is kept).
MAX_PROMPT_CHARS = 3000
SUMMARY_TOKENS = 120
FACTS_TOKENS = 120


class CompletionModel(Protocol):
    """What extraction needs of a chat model (``voice.llm.ChatLLM`` has it)."""

    async def complete(self, messages: list[dict[str, Any]], *, max_tokens: int) -> str: ...


@dataclass(frozen=True)
class MemoryUpdate:
    """What one :func:`update_memory` call found worth remembering."""

    #: The new summary; ``None`` when the model wrote nothing usable (keep the old one).
    summary: str | None = None
    #: Accepted facts, at most ``MAX_FACTS_PER_UPDATE``; the store skips the ones the user
    #: already has.
    facts: list[str] = field(default_factory=list)


async def update_memory(
    llm: CompletionModel,
    previous: str | None,
    turns: Sequence[Turn],
    *,
    user_name: str | None = None,
) -> MemoryUpdate:
    """What to remember of ``turns``: a new summary (from ``previous`` and the turns) and facts.

    Two model calls: the summary, then facts (from the user's own lines). Nothing is
    stored here: the caller queues the writes (:mod:`voice.memory.writer`), so a database
    outage never makes the model run twice. Model errors propagate. Cancelling it cancels
    the model request in flight.
    """
    user_lines = [turn["content"].strip() for turn in turns if turn.get("role") == "user"]
    user_lines = [line for line in user_lines if line]
    if not user_lines:
        return MemoryUpdate()
    transcript = transcript_text(turns, user_name=user_name)
    reply = await llm.complete(summary_messages(previous, transcript), max_tokens=SUMMARY_TOKENS)
    summary = clean_summary(reply, f"{previous or ''}\n{transcript}")

    said = tail("\n".join(user_lines), MAX_PROMPT_CHARS)
    reply = await llm.complete(facts_messages(said), max_tokens=FACTS_TOKENS)
    facts = unique(stated_facts(user_lines) + parse_facts(reply, said, user_name=user_name))
    return MemoryUpdate(summary=summary, facts=facts[:MAX_FACTS_PER_UPDATE])


# --- prompts ----------------------------------------------------------------------------

_SUMMARY_SYSTEM = (
    "You keep a short running summary of what a user told their companion. Write the "
    "updated summary in the third person, in at most three sentences. No other text."
)
_SUMMARY_EXAMPLE = (
    "Summary so far: none.\n\nNew conversation:\n"
    "User: I just moved to Oslo for a new job.\nCompanion: Exciting! How do you like it?\n"
    "User: It's cold, but I like my colleagues."
)
_SUMMARY_EXAMPLE_REPLY = (
    "The user just moved to Oslo for a new job; it is cold, but they like their colleagues."
)

_FACTS_SYSTEM = (
    "You list facts a person states about themselves. One fact per line, each starting "
    'with "- The user". No other text.'
)
_FACTS_EXAMPLE = "I live in Lisbon with my sister. What's the weather like?\nI really like jazz."
_FACTS_EXAMPLE_REPLY = (
    "- The user lives in Lisbon.\n- The user lives with their sister.\n- The user likes jazz."
)


def transcript_text(turns: Iterable[Turn], *, user_name: str | None = None) -> str:
    """``User: ...`` / ``Companion: ...`` lines, the newest ``MAX_PROMPT_CHARS`` of them."""
    labels = {"user": user_name or "User", "assistant": "Companion"}
    lines = [
        f"{labels[turn['role']]}: {' '.join(turn['content'].split())}"
        for turn in turns
        if turn.get("role") in labels and turn.get("content", "").strip()
    ]
    return tail("\n".join(lines), MAX_PROMPT_CHARS)


def summary_messages(previous: str | None, transcript: str) -> list[dict[str, Any]]:
    """Few-shot prompt for the updated running summary."""
    request = f"Summary so far: {previous or 'none.'}\n\nNew conversation:\n{transcript}"
    return [
        {"role": "system", "content": _SUMMARY_SYSTEM},
        {"role": "user", "content": _SUMMARY_EXAMPLE},
        {"role": "assistant", "content": _SUMMARY_EXAMPLE_REPLY},
        {"role": "user", "content": request},
    ]


def facts_messages(user_text: str) -> list[dict[str, Any]]:
    """Few-shot prompt for facts, shown only what the user said (not the companion)."""
    return [
        {"role": "system", "content": _FACTS_SYSTEM},
        {"role": "user", "content": _FACTS_EXAMPLE},
        {"role": "assistant", "content": _FACTS_EXAMPLE_REPLY},
        {"role": "user", "content": user_text},
    ]


# --- parsing ----------------------------------------------------------------------------

_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+(.*\S)\s*$")
_LABEL = re.compile(r"^\s*[\w' ]{1,20}:\s")  # "User: ...", "Sam: ..." (transcript echo)
_SUMMARY_PREFIX = re.compile(r"^\s*(?:updated\s+)?summary\s*(?:so far)?\s*:\s*", re.IGNORECASE)
_PLACEHOLDERS = {"none", "n a", "no facts", "nothing", "unknown", "the user"}
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_STOPWORDS = frozenset(
    """a an and are as at be been but by for from had has have he her his i in is it its
    me my of on or our she so than that the their them they this to us user user's users
    was we were who will with you your""".split()
)


def parse_facts(reply: str, user_text: str, *, user_name: str | None = None) -> list[str]:
    """Facts from a JSON array or ``- `` bullet lines, cleaned, filtered and grounded."""
    said = _stems(user_text)
    ignored = {user_name.casefold()} if user_name else set()
    facts = []
    for raw in _json_items(reply) or _bullet_items(reply):
        fact = _clean_fact(raw)
        if fact is not None and _grounded(fact, said, ignored):
            facts.append(fact)
    return unique(facts)[:MAX_FACTS_PER_UPDATE]


def clean_summary(reply: str, source: str) -> str | None:
    """The model's summary, cleaned and cut to whole sentences; ``None`` if unusable.

    Unusable: empty, a transcript echo, or not grounded in ``source`` (the previous
    summary and the conversation), as when a small model writes a generic platitude.
    """
    text = _SUMMARY_PREFIX.sub("", " ".join(reply.split())).strip().strip('"')
    if len(text) < 10 or _LABEL.match(text) or not _grounded(text, _stems(source), set()):
        return None
    if len(text) > MAX_SUMMARY_CHARS:
        cut = text[:MAX_SUMMARY_CHARS]
        end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
        text = cut[: end + 1] if end > 0 else cut.rsplit(" ", 1)[0]
    return text


def stated_facts(user_lines: Iterable[str]) -> list[str]:
    """Rule-based pre-pass: names stated outright ("my name is X", "call me X")."""
    facts = []
    for line in user_lines:
        for pattern in (_MY_NAME, _CALL_ME):
            for match in pattern.finditer(line):
                name = match.group("name")
                if name.casefold() not in _NOT_NAMES:
                    facts.append(f"The user's name is {name[0].upper()}{name[1:]}.")
    return unique(facts)


_NAME = r"(?P<name>[^\W\d_][\w'-]{0,30})"
_MY_NAME = re.compile(r"\b(?i:my name is|my name's)\s+" + _NAME)
_CALL_ME = re.compile(r"\b(?i:call me)\s+(?=[A-Z])" + _NAME)  # "call me back" is not a name
_NOT_NAMES = frozenset(
    "a an the not actually really just kind sort very so too also still back later now "
    "when if maybe tomorrow tonight soon again please".split()
)


def unique(facts: Iterable[str]) -> list[str]:
    """``facts`` without normalized duplicates, first occurrence kept."""
    seen: set[str] = set()
    kept = []
    for fact in facts:
        key = normalize_text(fact)
        if key and key not in seen:
            seen.add(key)
            kept.append(fact)
    return kept


def tail(text: str, limit: int) -> str:
    """The last ``limit`` characters of ``text``, starting at a line or word boundary."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    boundary = cut.find("\n")
    if boundary < 0:
        boundary = cut.find(" ")
    return cut[boundary + 1 :] if boundary >= 0 else cut


def _json_items(reply: str) -> list[str]:
    start, end = reply.find("["), reply.rfind("]")
    if start < 0 or end <= start:
        return []
    try:
        data = json.loads(reply[start : end + 1])
    except ValueError:
        return []
    if not isinstance(data, list):
        return []
    items = []
    for item in data:
        if isinstance(item, dict):
            item = item.get("fact") or item.get("text") or item.get("content")
        if isinstance(item, str):
            items.append(item)
    return items


def _bullet_items(reply: str) -> list[str]:
    return [match.group(1) for line in reply.splitlines() if (match := _BULLET.match(line))]


def _clean_fact(raw: str) -> str | None:
    fact = " ".join(raw.split()).strip("\"'` ")
    if not fact or fact.endswith("?") or _LABEL.match(fact) or len(fact) > MAX_FACT_CHARS:
        return None
    if normalize_text(fact) in _PLACEHOLDERS or len(_WORD.findall(fact)) < 3:
        return None
    fact = fact[0].upper() + fact[1:]
    return fact if fact[-1] in ".!" else fact + "."


def _stems(text: str) -> set[str]:
    return {word[:4] for word in _WORD.findall(text.casefold())}


def _grounded(text: str, said: set[str], ignored: set[str]) -> bool:
    """At least half of the content words of ``text`` (by 4-letter stem) are in ``said``."""
    words = [
        word
        for word in _WORD.findall(text.casefold())
        if word not in _STOPWORDS and word not in ignored and len(word) > 2
    ]
    if not words:
        return False
    matched = sum(word[:4] in said for word in words)
    return 2 * matched >= len(words)
