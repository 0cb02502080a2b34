"""Cut streamed LLM text into speakable chunks (sentences, early clauses) for TTS.

Every cut decision looks only at text already received plus a bounded lookahead; when
the lookahead is missing the scanner waits for the next token. The chunks are therefore
the same however the stream was split into tokens.
"""

from __future__ import annotations

import re

_ENDS = ".!?\u2026"  # ... and the ellipsis character
_CLAUSES = ",;:"
_DASHES = "-\u2013\u2014"  # hyphen, en dash, em dash
_CLOSERS = "\"')]\u201d\u2019\u00bb"  # also curly quotes and guillemet
_OPENERS = "\"'([\u201c\u2018\u00ab"
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc"})
# Initials ("J."), dotted abbreviations ("e.g.", "i.e.", "a.m.", "U.S.").
_INITIALS = re.compile(r"[A-HJ-Z]|(?:[A-Za-z]\.)+[A-Za-z]")
#: Words that usually open a new phrase: a first chunk may end just before one.
PHRASE_STARTERS = frozenset(
    "and but or so because if when while though although unless until since after before "
    "that which who whom whose where in on at with without for of to from about into over "
    "under through than like as".split()
)
_WORD_CHARS = re.compile(r"[\w'\u2019-]")


def _run(text: str, i: int, chars: str) -> int:
    """Index just past the run of ``chars`` starting at ``i``."""
    while i < len(text) and text[i] in chars:
        i += 1
    return i


class SentenceChunker:
    """Cuts streamed LLM text into speakable chunks as tokens arrive.

    Chunks end at sentence ends followed by whitespace and at newlines. The first chunk
    of a response may end at a clause boundary (``,`` ``;`` ``:`` or a spaced dash) once
    it has ``first_chunk_min_chars`` characters, so speech starts early. With
    ``first_chunk_phrase_words`` > 0 it may also end at a phrase break: before a word that
    opens a phrase (:data:`PHRASE_STARTERS`: "and", "of", "with"...) once it has that many
    words and ``first_chunk_min_chars`` characters. A chunk that
    passes ``max_chars`` without a sentence end is cut at its last clause boundary (if
    that leaves at least ``min_chars``), else at its last whitespace; words are never split.
    """

    def __init__(
        self,
        *,
        first_chunk_min_chars: int = 12,
        first_chunk_phrase_words: int = 0,
        min_chars: int = 40,
        max_chars: int = 220,
    ) -> None:
        if not (0 < first_chunk_min_chars and 0 < min_chars <= max_chars):
            raise ValueError("need 0 < first_chunk_min_chars and 0 < min_chars <= max_chars")
        if first_chunk_phrase_words < 0:
            raise ValueError("need first_chunk_phrase_words >= 0 (0: no phrase breaks)")
        self._first_min = first_chunk_min_chars
        self._phrase_words = first_chunk_phrase_words
        self._min = min_chars
        self._max = max_chars
        self._reset()

    def _reset(self) -> None:
        self._buf = ""  # pending text; never starts with whitespace once scanned
        self._i = 0  # buf[:i] is scanned and holds no cut
        self._clause = -1  # end of the last clause boundary in buf[:i]
        self._space = -1  # index of the last whitespace in buf[:i]
        self._first = True

    def push(self, text: str) -> list[str]:
        """Add streamed text; return the chunks that are now complete (possibly none)."""
        self._buf += text
        return self._scan(final=False)

    def flush(self) -> list[str]:
        """End of stream: return what is left (stripped, non-empty) and reset."""
        out = self._scan(final=True)
        tail = self._buf.strip()
        if tail:
            out.append(tail)
        self._reset()
        return out

    def _scan(self, final: bool) -> list[str]:
        out: list[str] = []
        while True:
            if self._i >= self._max:
                self._force_cut(out)
            if self._i >= len(self._buf):
                return out
            end = self._step(final)
            if end is None:
                return out  # need more text to decide
            if end > 0:
                self._cut(end, out)

    def _step(self, final: bool) -> int | None:
        """Decide at ``buf[i]``: a cut position, -1 for no cut, None to wait for text."""
        buf, i = self._buf, self._i
        c = buf[i]
        if c.isspace():
            if i == 0:
                self._buf = buf.lstrip()
                return -1
            if c != "\n" and self._first and self._phrase_words:
                starts_phrase = self._phrase_break(i, final)
                if starts_phrase is None:
                    return None  # the next word is not complete yet
                if starts_phrase:
                    self._space, self._i = i, i + 1
                    return i + 1
            self._space, self._i = i, i + 1
            return i + 1 if c == "\n" else -1
        if c in _ENDS:
            j = _run(buf, _run(buf, i, _ENDS), _CLOSERS)
        elif c in _CLAUSES:
            j = _run(buf, i + 1, _CLOSERS)
        elif c in _DASHES and i > 0 and buf[i - 1] == " ":
            j = _run(buf, i, _DASHES)
        else:
            self._i = i + 1
            return -1
        if j == len(buf) and not final:
            return None
        if j < len(buf) and not buf[j].isspace():
            self._i = j
            return -1
        if c in _ENDS:
            end = self._sentence_end(i, j, final)
            if end is not None:
                self._i = j
            return end
        self._i = j
        if self._first and j >= self._first_min:
            return j
        self._clause = j
        return -1

    def _sentence_end(self, i: int, j: int, final: bool) -> int | None:
        """Whether the terminators in ``buf[i:j]`` (before whitespace or end) end a sentence."""
        buf = self._buf
        marks = buf[i:j].rstrip(_CLOSERS)
        if marks == ".":
            k = i
            while k > 0 and not buf[k - 1].isspace():
                k -= 1
            word = buf[k:i].lstrip(_OPENERS)
            if word.lower() in _ABBREVIATIONS or _INITIALS.fullmatch(word):
                return -1
            if k == 0 and word.isdigit():
                return -1  # list marker "1."
            if word.lower() == "no":
                nxt = self._next_visible(j, final)
                return None if nxt is None else -1 if nxt.isdigit() else j
        elif set(marks) <= {".", "\u2026"}:  # ellipsis: a pause unless a new sentence follows
            nxt = self._next_visible(j, final)
            return None if nxt is None else j if nxt == "" or nxt.isupper() else -1
        return j

    def _phrase_break(self, i: int, final: bool) -> bool | None:
        """Whether the first chunk ends at the whitespace ``buf[i]``: enough words before,
        and a phrase-opening word after. None while the next word is still being written."""
        before = self._buf[:i]
        if len(before) < self._first_min or len(before.split()) < self._phrase_words:
            return False
        if before[-1] in _ENDS + _CLAUSES + _DASHES:
            return False  # punctuation decides there
        j = i
        while j < len(self._buf) and self._buf[j].isspace():
            j += 1
        k = j
        while k < len(self._buf) and _WORD_CHARS.match(self._buf[k]):
            k += 1
        if k == len(self._buf) and not final:
            return None
        return self._buf[j:k].lower() in PHRASE_STARTERS

    def _next_visible(self, j: int, final: bool) -> str | None:
        """First non-whitespace char from ``j``; "" at end of stream, None if not yet known."""
        k = j
        while k < len(self._buf) and self._buf[k].isspace():
            k += 1
        if k < len(self._buf):
            return self._buf[k]
        return "" if final else None

    def _force_cut(self, out: list[str]) -> None:
        if self._min <= self._clause <= self._max:
            self._cut(self._clause, out)
        elif self._space > 0:
            self._cut(self._space, out)
        # else: one word longer than max_chars; wait for whitespace

    def _cut(self, end: int, out: list[str]) -> None:
        chunk = self._buf[:end].strip()
        if chunk:
            out.append(chunk)
            self._first = False
        rest = self._buf[end:]
        self._buf = rest.lstrip()
        shift = end + len(rest) - len(self._buf)
        self._i = max(0, self._i - shift)
        self._clause = self._clause - shift if self._clause > end else -1
        k = self._i - 1
        while k > 0 and not self._buf[k].isspace():
            k -= 1
        self._space = k if k > 0 else -1
