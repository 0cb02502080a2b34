"""Utterances with pauses inside them, for the pause benchmark (``voice bench --pauses``).

*Inserted* pauses: a clip is cut at a word boundary in the middle of its sentence and
silence is put there. The words and their times come from faster-whisper's word
timestamps on the clip; the cut is the boundary nearest the middle of the speech whose
word before it does not end a sentence, with two words or more on each side, moved to
the quietest 10 ms within 60 ms of the boundary, and never inside a word Whisper wrote
in pieces ("old" "-sposed") (word timestamps are approximate, and a
cut inside a word's tail would be heard). *Natural* pauses: a clip sent as it is, whose
reader paused inside it (a gap of ``NATURAL_MIN_MS`` or more between Silero speech
windows, the same VAD and threshold as the bench's end of speech).

Every utterance is lead silence, speech, tail silence, marked at its last speech sample
like a plain bench turn (:func:`voice.bench.turns.turn_audio`), with where its pauses are.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voice.audio import Float32Array
from voice.bench.clips import SPEECH_THRESHOLD, BenchClip
from voice.bench.transport import Utterance
from voice.bench.turns import LEAD_SILENCE_S, TAIL_SILENCE_S
from voice.turns import SENTENCE_ENDS
from voice.vad import VAD_SAMPLE_RATE, SileroVadStream

#: A gap this long between speech windows of a clip is a natural pause.
NATURAL_MIN_MS = 300
#: The cut moves to the quietest 10 ms frame within this distance of the word boundary.
SNAP_MS = 60
FRAME = VAD_SAMPLE_RATE // 100


@dataclass(frozen=True)
class Word:
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class PausedUtterance:
    """What the bench says, and where the user pauses inside it (utterance samples)."""

    clip: str
    utterance: Utterance
    #: ``(start, end)`` of each pause, in samples of ``utterance.samples``.
    pauses: tuple[tuple[int, int], ...]
    #: Inserted pause length in ms; ``None`` for a clip with natural pauses.
    pause_ms: int | None
    #: The words either side of the inserted pause ("" for natural pauses).
    before: str = ""
    after: str = ""

    @property
    def first_pause_s(self) -> float:
        """How long before the marked (last speech) sample the first pause starts."""
        start = self.pauses[0][0] if self.pauses else self.utterance.mark_sample
        return (self.utterance.mark_sample - start) / VAD_SAMPLE_RATE


def clip_words(model_path: Path, clips: Sequence[BenchClip]) -> dict[str, list[Word]]:
    """Each clip's words with their times, by faster-whisper on the CPU (local model)."""
    from faster_whisper import WhisperModel

    model = WhisperModel(str(model_path), device="cpu", compute_type="int8")
    words: dict[str, list[Word]] = {}
    for clip in clips:
        segments, _ = model.transcribe(
            clip.samples, language="en", beam_size=1, word_timestamps=True,
            condition_on_previous_text=False, vad_filter=False,
        )  # fmt: skip
        words[clip.name] = [
            Word(w.word.strip(), w.start, w.end) for s in segments for w in (s.words or [])
        ]
    return words


def cut_point(clip: BenchClip, words: Sequence[Word]) -> tuple[int, int] | None:
    """Where to insert a mid-sentence pause: (sample, index of the first word after), or
    ``None`` if the clip has too few words, or no boundary that is not a sentence end."""
    middle = (clip.speech_start + clip.speech_end) / 2 / VAD_SAMPLE_RATE
    candidates = [
        k
        for k in range(2, len(words) - 1)
        if not words[k - 1].text.endswith((*SENTENCE_ENDS, "-"))
        and not words[k].text.startswith(("-", ","))  # a word Whisper wrote in pieces
    ]
    if not candidates:
        return None
    k = min(candidates, key=lambda k: abs(words[k].start_s - middle))
    boundary = (words[k - 1].end_s + words[k].start_s) / 2
    return _quietest(clip.samples, round(boundary * VAD_SAMPLE_RATE)), k


def _quietest(samples: Float32Array, near: int) -> int:
    """The middle of the quietest 10 ms frame within ``SNAP_MS`` of sample ``near``."""
    reach = SNAP_MS * VAD_SAMPLE_RATE // 1000
    lo, hi = max(0, near - reach), min(len(samples) - FRAME, near + reach)
    if hi <= lo:
        return near
    starts = range(lo, hi, FRAME // 2)
    energy = [float(np.mean(samples[s : s + FRAME] ** 2)) for s in starts]
    return starts[int(np.argmin(energy))] + FRAME // 2


def _silence(seconds: float) -> Float32Array:
    return np.zeros(round(seconds * VAD_SAMPLE_RATE), dtype=np.float32)


def with_pause(clip: BenchClip, words: Sequence[Word], pause_ms: int) -> PausedUtterance | None:
    """``clip`` with ``pause_ms`` of silence at its mid-sentence cut (``None``: no cut)."""
    found = cut_point(clip, words)
    if found is None:
        return None
    at, k = found
    lead, pause = _silence(LEAD_SILENCE_S), _silence(pause_ms / 1000)
    samples = np.concatenate([lead, clip.samples[:at], pause, clip.samples[at:]])
    samples = np.concatenate([samples, _silence(TAIL_SILENCE_S)])
    start = lead.size + at
    mark = lead.size + pause.size + clip.speech_end - 1
    return PausedUtterance(
        clip.name, Utterance(samples, mark), ((start, start + pause.size),), pause_ms,
        before=" ".join(w.text for w in words[:k]), after=" ".join(w.text for w in words[k:]),
    )  # fmt: skip


def natural_pauses(clip: BenchClip, min_ms: int = NATURAL_MIN_MS) -> list[tuple[int, int]]:
    """The gaps of ``min_ms`` or more between the clip's speech windows (clip samples)."""
    vad = SileroVadStream()
    speech = [start for start, p in vad.process(clip.samples) if p >= SPEECH_THRESHOLD]
    gaps = []
    for before, after in itertools.pairwise(speech):
        gap_start = before + vad.window
        if (after - gap_start) * 1000 >= min_ms * VAD_SAMPLE_RATE:
            gaps.append((gap_start, after))
    return gaps


def as_spoken(clip: BenchClip, min_ms: int = NATURAL_MIN_MS) -> PausedUtterance | None:
    """``clip`` as it is, if its reader paused inside it (``None`` otherwise)."""
    gaps = natural_pauses(clip, min_ms)
    if not gaps:
        return None
    lead = _silence(LEAD_SILENCE_S)
    samples = np.concatenate([lead, clip.samples, _silence(TAIL_SILENCE_S)])
    shifted = tuple((lead.size + a, lead.size + b) for a, b in gaps)
    return PausedUtterance(clip.name, Utterance(samples, lead.size + clip.speech_end - 1),
                           shifted, None)  # fmt: skip
