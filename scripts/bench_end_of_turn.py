"""End-of-turn judges offline: how well the words and Smart Turn tell a finished sentence
from a mid-sentence pause, and what end-of-turn policies would make of it.

    nice -n 19 .venv/bin/python scripts/bench_end_of_turn.py --limit 2 --json eot.json

Every clip of ../shared/speech (up to ``--max-seconds`` long) gets its words and their
times from the bundled Whisper tiny.en. The words are split into sentences after each
word that ends one ("." "?" "!", not a title's or an initial's full stop: "Mr.", "J."),
and every word boundary is a candidate end of turn: the turn runs from its sentence's first
word to that word. A boundary is *final* when the word ends a sentence, else *mid*. (No
boundary is taken before a word Whisper wrote in pieces, "ill" "-disposed": that is inside
a word.)

Each boundary's audio, from ``LEAD_MS`` before its sentence to ``TAIL_MS`` after the word
(for the clip's last word: to the clip's Silero end of speech), is judged as the server
judges a pause. Whisper's word times leave no gap between words, so at a mid boundary that
tail is the start of the next word; ``--server-tail`` puts ``TAIL_MS`` of silence there
instead (and the ``TAIL_MS`` after the end of speech after the last word), as the server
hears a real pause. Two judges hear it: the words, done when the speculative guess does
not trail off (``trails_off(..., unpunctuated=True)``), the guess transcribed as the server
makes it (``WhisperSTT.transcribe``: a greedy decode, no timestamps, no previous text, no
VAD filter); and Smart Turn v3.2.

Printed: the ROC points of "words done and Smart Turn >= t" (TPR over final boundaries,
FPR over mid ones), and for each policy the silence it needs after a final boundary
(median, p90) and the share of mid boundaries it would cut off at a pause of 300 to
1000 ms. Progress goes to stderr, the tables to stdout; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voice.audio import Float32Array
from voice.bench.clips import ClipsError, default_clips_dir, load_clips
from voice.bench.pause_clips import Word
from voice.bench.report import table
from voice.bench.stats import percentile
from voice.turns import SENTENCE_ENDS, trails_off

if TYPE_CHECKING:
    from voice.bench.clips import BenchClip
    from voice.stt import WhisperSTT
    from voice.turn_model import SmartTurn

SAMPLE_RATE = 16000
#: Audio kept before a sentence's first word, and after a boundary's word.
LEAD_MS, TAIL_MS = 200, 100
DEFAULT_MAX_SECONDS = 60.0
THRESHOLDS = (0.5, 0.7, 0.9, 0.95, 0.98)
PAUSES_MS = (300, 500, 700, 1000)
#: Closing and opening marks around a word ('man."', '"Mr.').
CLOSERS, OPENERS = "\"'\u201d\u2019)]", "\"'\u201c\u2018(["
#: Words whose full stop ends no sentence ("Mr. John Dashwood"), besides initials ("J.").
NOT_SENTENCE_ENDS = frozenset("mr mrs ms dr prof st jr sr".split())


# --- boundaries: words in, candidate ends of turn out ---------------------------------------


def ends_sentence(text: str) -> bool:
    """Whether Whisper's word ``text`` ends a sentence: ".", "?" or "!" (also before a
    closing quote), but not the full stop of a title or an initial ("Mr.", "J.")."""
    stripped = text.rstrip(CLOSERS)
    if not stripped.endswith(SENTENCE_ENDS):
        return False
    if stripped.endswith(".") and not stripped.endswith(".."):
        word = stripped[:-1].lstrip(OPENERS).lower()
        if word in NOT_SENTENCE_ENDS or (len(word) == 1 and word.isalpha()):
            return False
    return True


@dataclass(frozen=True)
class Boundary:
    """A candidate end of turn after word ``index`` of a clip (times in clip seconds)."""

    clip: str
    index: int
    #: Start of the sentence's first word, and end of this word.
    start_s: float
    end_s: float
    #: The word ends a sentence (a true end of turn) rather than falling inside one.
    final: bool
    #: The clip's last word: its audio runs to the clip's end of speech.
    last: bool
    #: Start of the next word (None for the last): a tail past it hears the next word.
    next_start_s: float | None
    #: The sentence's words up to here, as Whisper wrote them over the whole clip.
    words: str

    def span_s(self, speech_end_s: float) -> tuple[float, float]:
        """The audio a judge hears: from ``LEAD_MS`` before the sentence to ``TAIL_MS``
        after the word, or to ``speech_end_s`` (the clip's end of speech) for the last."""
        end = speech_end_s if self.last else self.end_s + TAIL_MS / 1000
        return max(0.0, self.start_s - LEAD_MS / 1000), end

    @property
    def tail_hears_next(self) -> bool:
        """The ``TAIL_MS`` after the word reaches into the next word."""
        return self.next_start_s is not None and self.end_s + TAIL_MS / 1000 > self.next_start_s


def boundaries(clip: str, words: Sequence[Word]) -> list[Boundary]:
    """Every word boundary of ``words`` as a candidate end of turn, sentence by sentence."""
    found: list[Boundary] = []
    first = 0  # index of the current sentence's first word
    for k, word in enumerate(words):
        following = words[k + 1] if k + 1 < len(words) else None
        if following is None or not following.text.startswith("-"):
            found.append(
                Boundary(
                    clip, k, words[first].start_s, word.end_s, ends_sentence(word.text),
                    last=following is None,
                    next_start_s=None if following is None else following.start_s,
                    words=" ".join(w.text for w in words[first : k + 1]),
                )
            )  # fmt: skip
        if ends_sentence(word.text):
            first = k + 1
    return found


# --- judges' verdicts and what they add up to -----------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What the judges made of one boundary."""

    boundary: Boundary
    #: The speculative guess's transcript of the boundary's audio.
    guess: str
    #: The guess does not trail off (``trails_off(guess, unpunctuated=True)`` is false).
    words_done: bool
    #: Smart Turn's probability that the turn is complete.
    smart: float


def judged(boundary: Boundary, guess: str, smart: float) -> Verdict:
    return Verdict(boundary, guess, not trails_off(guess, unpunctuated=True), smart)


def says_finished(verdict: Verdict, threshold: float) -> bool:
    return verdict.words_done and verdict.smart >= threshold


@dataclass(frozen=True)
class RocPoint:
    """The rule *words done and Smart Turn >= threshold* over final and mid boundaries."""

    threshold: float
    true_positives: int
    finals: int
    false_positives: int
    mids: int

    @property
    def tpr(self) -> float | None:
        return self.true_positives / self.finals if self.finals else None

    @property
    def fpr(self) -> float | None:
        return self.false_positives / self.mids if self.mids else None


def roc_point(verdicts: Sequence[Verdict], threshold: float) -> RocPoint:
    finals = [v for v in verdicts if v.boundary.final]
    mids = [v for v in verdicts if not v.boundary.final]
    return RocPoint(
        threshold,
        sum(says_finished(v, threshold) for v in finals), len(finals),
        sum(says_finished(v, threshold) for v in mids), len(mids),
    )  # fmt: skip


@dataclass(frozen=True)
class Policy:
    """An end-of-turn policy, as the server's turn-taking applies it to one pause."""

    name: str
    silence_ms: int
    #: Added once when the words trail off or Smart Turn is below ``hold_threshold``.
    hold_ms: int
    hold_threshold: float
    #: Silence that ends a pause both judges call finished (Smart Turn at least
    #: ``early_threshold``); None: no early end.
    early_ms: int | None = None
    early_threshold: float | None = None

    def needed_ms(self, words_done: bool, smart: float) -> int:
        """The silence after which this policy ends the turn."""
        if self.early_ms is not None and self.early_threshold is not None:
            if words_done and smart >= self.early_threshold:
                return self.early_ms
        held = not words_done or smart < self.hold_threshold
        return self.silence_ms + (self.hold_ms if held else 0)


BUILT_IN_POLICIES = (
    Policy("old auto", 500, 600, 0.5),
    Policy("new auto", 800, 600, 0.5, 240, 0.95),
    Policy("high", 480, 360, 0.5, 240, 0.5),
    Policy("low", 1440, 1080, 0.5),
)


def parse_policy(spec: str) -> Policy:
    """``silence,hold,hold_thr,early,early_thr``; ``early`` "none" or "-" for no early end
    (``early_thr`` is then ignored and may be "-")."""
    parts = [part.strip() for part in spec.split(",")]
    if len(parts) != 5:
        raise argparse.ArgumentTypeError(
            f"{spec!r}: want silence,hold,hold_thr,early,early_thr (early: none or -)"
        )
    try:
        silence, hold, hold_threshold = int(parts[0]), int(parts[1]), float(parts[2])
        no_early = parts[3].lower() in ("none", "-", "")
        early = None if no_early else int(parts[3])
        early_threshold = None if no_early else float(parts[4])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{spec!r}: {exc}") from None
    thresholds = [hold_threshold] + ([] if early_threshold is None else [early_threshold])
    if silence < 0 or hold < 0 or (early is not None and early < 0):
        raise argparse.ArgumentTypeError(f"{spec!r}: silences must be >= 0 ms")
    if not all(0.0 <= t <= 1.0 for t in thresholds):
        raise argparse.ArgumentTypeError(f"{spec!r}: thresholds must be within 0..1")
    return Policy(spec, silence, hold, hold_threshold, early, early_threshold)


def cut_off_count(needed_ms: Sequence[int], pause_ms: int) -> int:
    """How many of the pauses (needing ``needed_ms`` each) a pause of ``pause_ms`` cuts off."""
    return sum(needed < pause_ms for needed in needed_ms)


@dataclass(frozen=True)
class PolicyResult:
    policy: Policy
    finals: int
    #: Silence needed after a final boundary: median and p90 (nearest rank); None: no finals.
    median_ms: float | None
    p90_ms: float | None
    mids: int
    #: Pause (ms) -> mid boundaries it would cut off.
    cut_off: dict[int, int]

    def share(self, pause_ms: int) -> float | None:
        return self.cut_off[pause_ms] / self.mids if self.mids else None


def simulate(
    policy: Policy, verdicts: Sequence[Verdict], pauses_ms: Sequence[int] = PAUSES_MS
) -> PolicyResult:
    finals = [policy.needed_ms(v.words_done, v.smart) for v in verdicts if v.boundary.final]
    mids = [policy.needed_ms(v.words_done, v.smart) for v in verdicts if not v.boundary.final]
    return PolicyResult(
        policy,
        len(finals),
        statistics.median(finals) if finals else None,
        percentile(finals, 90) if finals else None,
        len(mids),
        {pause: cut_off_count(mids, pause) for pause in pauses_ms},
    )


# --- report ----------------------------------------------------------------------------------


def _share(count: int, total: int) -> str:
    return f"{count / total:.0%} ({count}/{total})" if total else "-"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def format_roc(points: Sequence[RocPoint]) -> str:
    header = ["words done and smart >=", "TPR (final)", "FPR (mid)"]
    rows = [
        [f"{p.threshold:g}", _share(p.true_positives, p.finals), _share(p.false_positives, p.mids)]
        for p in points
    ]
    return table(header, rows)


def format_policies(results: Sequence[PolicyResult]) -> str:
    header = ["policy", "silence", "hold", "hold thr", "early", "early thr"]
    header += ["final median ms", "final p90 ms"]
    header += [f"cut off @{pause}" for pause in PAUSES_MS]
    rows = []
    for r in results:
        p = r.policy
        early = "-" if p.early_ms is None else str(p.early_ms)
        early_threshold = "-" if p.early_threshold is None else f"{p.early_threshold:g}"
        row = [p.name, str(p.silence_ms), str(p.hold_ms), f"{p.hold_threshold:g}", early]
        row += [early_threshold, _ms(r.median_ms), _ms(r.p90_ms)]
        row += [_share(r.cut_off[pause], r.mids) for pause in PAUSES_MS]
        rows.append(row)
    return table(header, rows)


def report_dict(
    verdicts: Sequence[Verdict],
    points: Sequence[RocPoint],
    results: Sequence[PolicyResult],
    *,
    server_tail: bool,
) -> dict[str, Any]:
    return {
        "lead_ms": LEAD_MS,
        "tail_ms": TAIL_MS,
        "server_tail": server_tail,
        "boundaries": [
            {**asdict(v.boundary), "guess": v.guess, "words_done": v.words_done, "smart": v.smart}
            for v in verdicts
        ],
        "roc": [{**asdict(p), "tpr": p.tpr, "fpr": p.fpr} for p in points],
        "policies": [
            {
                **asdict(r.policy),
                "finals": r.finals,
                "final_median_ms": r.median_ms,
                "final_p90_ms": r.p90_ms,
                "mids": r.mids,
                "cut_off": {str(pause): count for pause, count in r.cut_off.items()},
            }
            for r in results
        ],
    }


# --- the run: clips and models ---------------------------------------------------------------


def boundary_audio(
    clip: BenchClip, boundary: Boundary, *, server_tail: bool = False
) -> Float32Array:
    """What the judges hear of ``boundary`` (:meth:`Boundary.span_s`).

    ``server_tail``: instead, the audio ends at the word followed by ``TAIL_MS`` of silence
    (a pause as the server hears it, not the next word's start), and the clip's last word
    by the ``TAIL_MS`` after the clip's end of speech (zeros past the clip's end).
    """
    start_s, end_s = boundary.span_s(clip.speech_end_s)
    start = round(start_s * SAMPLE_RATE)
    if not server_tail:
        return clip.samples[start : round(end_s * SAMPLE_RATE)]
    tail = TAIL_MS * SAMPLE_RATE // 1000
    if boundary.last:
        end = clip.speech_end + tail
        heard = clip.samples[start:end]
        return np.pad(heard, (0, end - start - heard.size))
    spoken = clip.samples[start : round(boundary.end_s * SAMPLE_RATE)]
    return np.concatenate([spoken, np.zeros(tail, dtype=np.float32)])


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def judge_clip(
    clip: BenchClip, stt: WhisperSTT, smart_turn: SmartTurn, *, server_tail: bool
) -> list[Verdict]:
    """Word times of ``clip``, then both judges on each of its boundaries."""
    timed = await stt.transcribe_timed(clip.samples, words=True)
    words = [Word(w.word.strip(), w.start, w.end) for w in timed.words if w.word.strip()]
    verdicts = []
    for boundary in boundaries(clip.name, words):
        audio = boundary_audio(clip, boundary, server_tail=server_tail)
        guess = (await stt.transcribe(audio)).text
        verdicts.append(judged(boundary, guess, smart_turn.probability(audio)))
    return verdicts


async def judge_all(
    clips: Sequence[BenchClip], *, threads: int, server_tail: bool
) -> list[Verdict]:
    from voice.stt import WhisperSTT, default_whisper_path
    from voice.turn_model import SmartTurn, default_turn_model_path

    progress(f"loading Whisper tiny.en and Smart Turn ({threads} thread(s) each)")
    stt = WhisperSTT(default_whisper_path(), threads=threads)
    smart_turn = SmartTurn(default_turn_model_path(), threads=threads)
    verdicts: list[Verdict] = []
    try:
        for n, clip in enumerate(clips, 1):
            started = time.perf_counter()
            progress(f"clip {n}/{len(clips)} {clip.name} ({clip.seconds:.1f} s)")
            found = await judge_clip(clip, stt, smart_turn, server_tail=server_tail)
            finals = sum(v.boundary.final for v in found)
            progress(
                f"  {len(found)} boundaries ({finals} final) in "
                f"{time.perf_counter() - started:.1f} s"
            )
            verdicts += found
    finally:
        close_models(stt, smart_turn)
    return verdicts


def close_models(*models: WhisperSTT | SmartTurn) -> None:
    """Close the models and wait for their worker threads to end (exit aborts otherwise)."""
    for model in models:
        model.close()
    for model in models:
        model.worker.join(timeout=10)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--clips", type=Path, default=default_clips_dir(),
        help="folder of 16 kHz mono WAV clips with manifest.tsv (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
        help="skip clips longer than this (default: %(default)g)",
    )  # fmt: skip
    parser.add_argument("--limit", type=int, default=None, help="judge only the first N clips")
    parser.add_argument(
        "--policy", type=parse_policy, action="append", default=[],
        metavar="SILENCE,HOLD,HOLD_THR,EARLY,EARLY_THR",
        help="another policy to simulate (EARLY: none or -); may be repeated",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=1, help="threads of each model (default: %(default)s)"
    )
    parser.add_argument(
        "--server-tail", action="store_true",
        help=f"end each boundary's audio with {TAIL_MS} ms of silence after the word (a "
        "pause as the server hears it) instead of the clip's audio there (the next word's "
        f"start), and the last word's with the {TAIL_MS} ms after the clip's end of speech",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write a report")
    args = parser.parse_args(argv)

    if not args.clips.is_dir():
        progress(f"error: clips folder not found: {args.clips} (give --clips FOLDER)")
        return 2
    try:
        clip_set = load_clips(args.clips, max_seconds=args.max_seconds, limit=args.limit)
    except ClipsError as exc:
        progress(f"error: {exc}")
        return 2
    for name, reason in clip_set.skipped:
        progress(f"skipped {name}: {reason}")

    verdicts = asyncio.run(
        judge_all(clip_set.clips, threads=args.threads, server_tail=args.server_tail)
    )
    points = [roc_point(verdicts, threshold) for threshold in THRESHOLDS]
    results = [simulate(policy, verdicts) for policy in [*BUILT_IN_POLICIES, *args.policy]]

    finals = sum(v.boundary.final for v in verdicts)
    mids = len(verdicts) - finals
    into_next = sum(v.boundary.tail_hears_next for v in verdicts if not v.boundary.final)
    tail = (
        f"tail: {TAIL_MS} ms of silence (--server-tail)"
        if args.server_tail
        else f"tail: {TAIL_MS} ms of the clip, reaching into the next word at {into_next} mid"
    )
    print(
        f"{len(clip_set.clips)} clips, {len(verdicts)} boundaries: {finals} final, {mids} mid; "
        + tail
    )
    print()
    print(format_roc(points))
    print()
    print(format_policies(results))
    if args.json is not None:
        report = report_dict(verdicts, points, results, server_tail=args.server_tail)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nreport written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
