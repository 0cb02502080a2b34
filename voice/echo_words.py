"""Whether words heard over the bot are the bot's own: its echo, left after the echo guard.

The echo guard (:mod:`voice.echo`) takes most of the bot's voice out of a client's
microphone signal, but not all of it: a late syllable or a changed echo path leaves a
residue that the VAD can hear as speech and Whisper can transcribe, as the bot's own words.
Counted as the user's, they would interrupt the reply. The server knows what it just said,
so words that are mostly those are its echo. No I/O.
"""

from __future__ import annotations

import re

from voice.conversation import SpokenSegment, word_spans

#: Words heard over the bot are its echo when at least this share of them was among the
#: words the bot played just before it paused.
ECHO_WORD_SHARE = 0.6
#: How far before the pause the bot's words count (its echo reaches the microphone up to
#: about 0.5 s late, and the speech checked starts some 0.3 s before its onset).
RECENT_MS = 2000.0
#: And how far after: where a word ends within a chunk is an estimate.
LOOKAHEAD_MS = 300.0

_WORD = re.compile(r"[\w']+")


def words_of(text: str) -> list[str]:
    """Lower-case words without punctuation ("It's", "it's," -> "it's"; any script)."""
    return _WORD.findall(text.lower())


def words_played(segments: list[SpokenSegment], from_ms: float, to_ms: float) -> str:
    """The words whose estimated audio (:func:`~voice.conversation.word_spans`) overlaps
    ``[from_ms, to_ms]`` of a reply."""
    return " ".join(
        word
        for segment in segments
        if segment.end_ms > from_ms and segment.start_ms < to_ms
        for word, start, end in word_spans(segment)
        if end > from_ms and start < to_ms
    )


def is_own_echo(heard: str, played: str) -> bool:
    """Whether ``heard`` (words over the bot) is mostly ``played`` (the bot's last words)."""
    heard_words, own = words_of(heard), set(words_of(played))
    if not heard_words or not own:
        return False
    matched = sum(word in own for word in heard_words)
    return matched >= ECHO_WORD_SHARE * len(heard_words)
