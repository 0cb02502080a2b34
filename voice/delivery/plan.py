"""Plan how one text chunk of a reply is spoken: words with prosody, and pauses.

No I/O and no model: text in, a list of :class:`Speak` and :class:`Pause` out. A
:class:`DeliveryState` lives for one response and carries what spans chunks: a stage
direction whose effect has not run out, silence owed before the next words, and the start
of a direction that the chunker cut in two (``*leans in close,`` | ``whispering*``).

Stage directions (``*laughs softly*``, ``[sighs]``, ``(whispering)``) are never spoken.
Their prosody applies to the words that follow, up to the end of that sentence or the next
direction. ``*asterisks*`` and ``[brackets]`` are always directions (a single
``*emphasis*`` word from the rules' list excepted); ``(parentheses)`` are directions when
a rule knows them and they are short, else a spoken aside.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from typing import Final

from voice.delivery.normalize import speakable, strip_markup, tidy
from voice.delivery.prosody import DeliveryRules, Prosody, ProsodyChange, default_rules

log = logging.getLogger(__name__)

#: A direction longer than this is not one (and an unclosed one is not held for longer).
MAX_DIRECTION_CHARS: Final = 120
#: Parentheses with more words than this are an aside, even when a rule matches.
MAX_PAREN_DIRECTION_WORDS: Final = 5


@dataclass(frozen=True)
class Speak:
    """Words to synthesize with ``prosody``.

    ``text`` is the spoken form ("two dollars and fifty cents"); ``transcript`` is the
    same words as written ("$2.50"), with surrounding whitespace, for the transcript.
    """

    text: str
    prosody: Prosody
    transcript: str = ""


@dataclass(frozen=True)
class Pause:
    """Silence; ``transcript`` is what stood for it in the text ("...", " — "), if anything."""

    ms: int
    transcript: str = ""


Segment = Speak | Pause


@dataclass
class DeliveryState:
    """How one response is spoken so far; create one per response, pass it every chunk."""

    #: The voice's own prosody; directions scale it.
    base: Prosody = field(default_factory=Prosody)
    #: Extra silence between sentences (the voice preset's ``sentence_pause_ms``).
    sentence_pause_ms: int = 0
    rules: DeliveryRules = field(default_factory=default_rules)
    #: The direction in effect, until its sentence ends.
    active: ProsodyChange | None = None
    #: Silence owed before the next words (a direction's pause, the sentence pause).
    pause_ms: int = 0
    #: The start of a direction left open at the end of the previous chunk.
    held: str = ""


_DIRECTION: Final = re.compile(
    # "*laughs*", also sloppy "* laughs *" (but not "2 * 3 * 4")
    rf"\*[ \t]*(?P<star>[^\W\d_][^*\n]{{0,{MAX_DIRECTION_CHARS}}}?)[ \t]*\*"
    rf"|\[(?P<bracket>[^\[\]\n]{{1,{MAX_DIRECTION_CHARS}}})\]"
    rf"|(?<!\w)\((?P<paren>[^()\n]{{1,{MAX_DIRECTION_CHARS}}})\)"  # not "friend(s)"
    r"|(?P<ellipsis>\s*(?:\.{3,}|\u2026+)\s*)"
    r"|(?P<dash>\s*(?:(?:(?<=\s)|^)(?:--?|\u2013)(?=\s|$)|\u2014+)\s*)"
)
# The start of a direction with no end yet, at the end of the text.
_OPEN_TAIL: Final = re.compile(r"(?:(?<![^\s(\[\"'])\*(?=[^\s*])[^*\n]*|\[[^\]\n]*|\([^)\n]*)$")
_SENTENCE_END: Final = re.compile(r"[.!?]+[\"')\]\u2019\u201d]*(?=\s|$)")
_NOT_SENTENCE_ENDS: Final = frozenset(
    "mr mrs ms dr prof sr jr st vs etc no approx e.g i.e a.m p.m".split()
)
_INITIALS: Final = re.compile(r"(?:[A-Za-z]\.)*[A-Za-z]")
_SPEAKABLE: Final = re.compile(r"\w")


def plan_speech(chunk: str, state: DeliveryState) -> list[Segment]:
    """How to speak ``chunk`` (one piece of a streamed reply); updates ``state``.

    Directions are removed, ellipses and dashes become pauses, the words become their
    spoken forms. A direction the chunk leaves open is held for the next chunk; one that
    never closes is dropped.
    """
    text = strip_markup(f"{state.held} {chunk}" if state.held else chunk)
    state.held = ""
    tail = _OPEN_TAIL.search(text)
    if tail is not None and len(tail.group()) <= MAX_DIRECTION_CHARS:
        state.held, text = tail.group(), text[: tail.start()]
    plan = _Planner(state)
    position = 0
    for match in _DIRECTION.finditer(text):
        plan.text(text[position : match.start()])
        position = match.end()
        kind = match.lastgroup
        if kind == "ellipsis":
            plan.pause(state.rules.ellipsis_ms, match.group())
        elif kind == "dash":
            plan.pause(state.rules.dash_ms, match.group())
        else:
            plan.direction(match.group(), match.group(kind or ""), kind)
    plan.text(text[position:])
    return plan.finish()


def plan_transcript(plan: list[Segment]) -> str:
    """What the listener hears, as written: the transcript text of a planned chunk."""
    return tidy("".join(segment.transcript for segment in plan))


def spoken_text(chunk: str, rules: DeliveryRules | None = None) -> str:
    """The transcript of a whole text: stage directions and markup removed, the words
    as written (numbers, money, abbreviations and URLs are not spelled out)."""
    state = DeliveryState(rules=rules or default_rules())
    return plan_transcript(plan_speech(chunk, state))


class _Planner:
    """Builds one chunk's segments, merging neighbours that can be merged."""

    def __init__(self, state: DeliveryState) -> None:
        self.state = state
        self.segments: list[Segment] = []
        self.loose = ""  # transcript text with nothing to speak (". " after a direction)

    def direction(self, written: str, content: str, kind: str | None) -> None:
        rules = self.state.rules
        change = rules.match(content)
        words = content.split()
        if kind == "star" and change is None and len(words) == 1:
            if words[0].strip(".,!?").lower() in rules.emphasis_words:
                self.text(content)  # *really*: emphasis, spoken
                return
        if kind == "paren" and (change is None or len(words) > MAX_PAREN_DIRECTION_WORDS):
            self.text(written)  # an aside, spoken
            return
        if change is None:
            log.debug("unknown stage direction dropped: %r", content)
        self.state.active = change
        if change is not None and change.pause_ms:
            self.state.pause_ms = max(self.state.pause_ms, change.pause_ms)

    def pause(self, ms: int, written: str) -> None:
        self._add(Pause(ms, self.loose + written))
        self.loose = ""

    def text(self, written: str) -> None:
        """Plain text: split at sentence ends, where a direction's effect runs out."""
        start = 0
        for end in _sentence_ends(written):
            self._speak(written[start:end], ends_sentence=True)
            start = end
        self._speak(written[start:], ends_sentence=False)

    def _speak(self, written: str, ends_sentence: bool) -> None:
        aside = re.sub(r"(?:^|(?<=\s))\(([^()]*)\)", r", \1, ", written)
        spoken = tidy(re.sub(r"[*()]", "", speakable(aside)))
        state = self.state
        if not _SPEAKABLE.search(spoken):
            self.loose += written
            if ends_sentence:  # "That's great *laughs*." ends the laugh's sentence
                state.active = None
            return
        if state.pause_ms:
            self._add(Pause(state.pause_ms))
            state.pause_ms = 0
        self._add(Speak(spoken, state.base.apply(state.active), self.loose + written))
        self.loose = ""
        if ends_sentence:
            state.active = None
            state.pause_ms = state.sentence_pause_ms

    def _add(self, segment: Segment) -> None:
        last = self.segments[-1] if self.segments else None
        if isinstance(segment, Pause) and isinstance(last, Pause):
            merged: Segment = Pause(max(last.ms, segment.ms), last.transcript + segment.transcript)
        elif isinstance(segment, Speak) and isinstance(last, Speak):
            if last.prosody != segment.prosody:
                self.segments.append(segment)
                return
            merged = replace(
                last,
                text=tidy(f"{last.text} {segment.text}"),
                transcript=last.transcript + segment.transcript,
            )
        else:
            self.segments.append(segment)
            return
        self.segments[-1] = merged

    def finish(self) -> list[Segment]:
        if self.loose and self.segments:
            last = self.segments[-1]
            self.segments[-1] = replace(last, transcript=last.transcript + self.loose)
        return self.segments


def _sentence_ends(text: str) -> list[int]:
    """Offsets just past each sentence end in ``text`` ("Dr." and "e.g." are not ends)."""
    ends: list[int] = []
    for match in _SENTENCE_END.finditer(text):
        if match.group().startswith(".") and match.group().rstrip("\"')]\u2019\u201d") == ".":
            before = text[: match.start()].split()
            word = before[-1].lstrip("\"'([\u201c\u2018") if before else ""
            if word.lower() in _NOT_SENTENCE_ENDS or _INITIALS.fullmatch(word):
                continue
        ends.append(match.end())
    return ends
