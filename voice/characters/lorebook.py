"""Which lorebook entries the recent conversation brings into the prompt. No I/O.

An entry is active when it is enabled and

* it is ``constant`` (or carries the ``@@activate`` decorator), or
* one of its ``keys`` occurs in the last ``scan_depth`` texts: as a substring,
  case-insensitively unless ``case_sensitive`` is true, or as a regular expression when
  ``use_regex`` is true (``/pattern/flags`` is understood; an invalid pattern never
  matches), and, for a ``selective`` entry with ``secondary_keys`` (and no regex), one of
  those occurs too.

``@@dont_activate`` keeps an entry out unless ``@@activate`` is also present; other
decorators are ignored, as is ``recursive_scanning``. Active entries come back in
``insertion_order``, cut to a token budget by dropping the lowest ``priority`` first
(``insertion_order`` where there is no priority).

Regular expressions come from the card: cards are installed by the server's operator, who
is trusted not to ship catastrophic patterns.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Final

from voice.characters.card import CharacterBook, LoreEntry
from voice.characters.tokens import TokenCounter, estimate_tokens

#: Messages scanned for keys when neither the caller nor the lorebook says.
DEFAULT_SCAN_DEPTH: Final = 4
#: Tokens of lore allowed when the caller does not say; a lorebook may ask for fewer.
DEFAULT_LORE_TOKEN_BUDGET: Final = 256

_SLASHED = re.compile(r"/(?P<pattern>.*)/(?P<flags>[a-z]*)", re.DOTALL)
_FLAGS: Final = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


def active_entries(
    book: CharacterBook | None,
    recent_texts: Sequence[str],
    scan_depth: int | None = None,
    *,
    token_budget: int | None = None,
    count_tokens: TokenCounter = estimate_tokens,
) -> list[LoreEntry]:
    """The entries of ``book`` that the last ``scan_depth`` of ``recent_texts`` activate.

    ``recent_texts`` is oldest first. ``scan_depth`` defaults to the book's, then to
    :data:`DEFAULT_SCAN_DEPTH`. The budget is ``token_budget`` (default
    :data:`DEFAULT_LORE_TOKEN_BUDGET`), lowered to the book's ``token_budget`` if smaller.
    """
    if book is None:
        return []
    depth = scan_depth if scan_depth is not None else book.scan_depth
    depth = DEFAULT_SCAN_DEPTH if depth is None else depth
    window = "\n".join(recent_texts[-depth:]) if depth > 0 else ""
    matched = [entry for entry in book.entries if _is_active(entry, window)]
    budget = DEFAULT_LORE_TOKEN_BUDGET if token_budget is None else token_budget
    if book.token_budget is not None:
        budget = min(budget, book.token_budget)
    return _within_budget(matched, budget, count_tokens)


def _is_active(entry: LoreEntry, text: str) -> bool:
    if not entry.enabled or not entry.content.strip():
        return False
    if "activate" in entry.decorators or entry.constant:
        return True
    if "dont_activate" in entry.decorators:
        return False
    if entry.use_regex:
        flags = 0 if entry.case_sensitive else re.IGNORECASE
        return any(_regex_matches(key, flags, text) for key in entry.keys)
    if not _contains_any(entry.keys, text, entry.case_sensitive is True):
        return False
    if entry.selective and entry.secondary_keys:
        return _contains_any(entry.secondary_keys, text, entry.case_sensitive is True)
    return True


def _contains_any(keys: Sequence[str], text: str, case_sensitive: bool) -> bool:
    if not case_sensitive:
        text = text.casefold()
    return any(key.strip() and (key if case_sensitive else key.casefold()) in text for key in keys)


def _regex_matches(key: str, flags: int, text: str) -> bool:
    pattern = _compile(key, flags)
    return pattern is not None and pattern.search(text) is not None


@functools.lru_cache(maxsize=256)
def _compile(key: str, flags: int) -> re.Pattern[str] | None:
    """``key`` as a regular expression (``/pattern/flags`` too); ``None`` if invalid."""
    slashed = _SLASHED.fullmatch(key)
    if slashed:
        key = slashed["pattern"]
        flags &= ~re.IGNORECASE  # the slashed form states its own flags
        for letter in slashed["flags"]:
            flags |= _FLAGS.get(letter, 0)
    if not key:
        return None
    try:
        return re.compile(key, flags)
    except re.error:
        return None


def _within_budget(
    entries: list[LoreEntry], budget: int, count_tokens: TokenCounter
) -> list[LoreEntry]:
    """``entries`` in insertion order, least important dropped until they fit ``budget``."""
    order = sorted(range(len(entries)), key=lambda i: (entries[i].insertion_order, i))
    by_importance = sorted(order, key=lambda i: -_importance(entries[i]))  # stable
    kept: set[int] = set()
    used = 0
    for index in by_importance:
        cost = count_tokens(entries[index].content)
        if used + cost <= budget:
            kept.add(index)
            used += cost
    return [entries[i] for i in order if i in kept]


def _importance(entry: LoreEntry) -> float:
    return entry.priority if entry.priority is not None else entry.insertion_order
