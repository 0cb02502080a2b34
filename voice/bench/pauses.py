"""The pause benchmark: how often the server answers a user who only paused, and how fast
it answers one who finished (``voice bench --pauses``).

For each turn-detection setting, every clip is said whole (the latency of complete
utterances), then with each inserted pause length (see :mod:`voice.bench.pause_clips`),
and clips whose reader paused are said as they are (natural pauses). Each is a fresh
session, as in the plain bench.

A **false cut-off** is a reply to an utterance that had not ended: audio of a response
created after the pause began and before the utterance's last speech sample was sent
(the bot spoke into the pause or over the rest, or answered half the sentence). A
**split** turn is one the server ended more than once (it committed the first part at
the pause) without answering it aloud. Latency is end of user speech → first reply
audio, over the utterances that were not cut off, as in the plain bench. **Kept** is the
share of the words after an inserted pause that reached the user's transcripts: a user
who went on over the bot's first words must not lose them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from voice.bench.client import WEBSOCKET, fetch_health
from voice.bench.clips import BenchClip
from voice.bench.machine import load_average, machine_info
from voice.bench.pause_clips import PausedUtterance, Word, as_spoken, with_pause
from voice.bench.progress import Progress
from voice.bench.stats import summarize
from voice.bench.timeline import (
    AUDIO_DELTA,
    RESPONSE_CREATED,
    TRANSCRIBED,
    Observation,
    turn_from_observations,
)
from voice.bench.transport import Clock, Target
from voice.bench.turns import say_turn, turn_audio
from voice.bench.wer import words

DEFAULT_PAUSES_MS = (300, 500, 700, 1000)


class DetectionError(ValueError):
    """A ``--pause-detection`` entry that is not a setting."""


@dataclass(frozen=True)
class Detection:
    """A turn-detection setting to measure; ``session`` is None for the server's own."""

    name: str
    session: dict[str, Any] | None


def parse_detection(text: str) -> Detection:
    """``server`` (the server's default), ``server_vad:MS`` (silence_duration_ms) or
    ``semantic_vad:EAGERNESS`` (low, medium, high, auto)."""
    kind, _, value = text.partition(":")
    if kind == "server" and not value:
        return Detection("server default", None)
    if kind == "server_vad" and value.isdigit():
        return Detection(text, {"type": "server_vad", "silence_duration_ms": int(value)})
    if kind == "semantic_vad" and value in ("low", "medium", "high", "auto"):
        return Detection(text, {"type": "semantic_vad", "eagerness": value})
    raise DetectionError(
        f"{text!r}: expected server, server_vad:MS or semantic_vad:low|medium|high|auto"
    )


@dataclass
class PauseTurn:
    """One utterance of the pause benchmark, measured."""

    detection: str
    clip: str
    #: Inserted pause in ms; 0: the clip whole; None: the clip's natural pauses.
    pause_ms: int | None
    cut_off: bool
    split: bool
    #: End of user speech → first reply audio (ms), for utterances not cut off.
    first_audio_ms: float | None
    errors: list[str] = field(default_factory=list)
    #: Share of the words after the inserted pause found in the user's transcripts (None:
    #: no inserted pause).
    kept: float | None = None


def kept_share(observations: Sequence[Observation], after: str) -> float | None:
    """How many of the words ``after`` the pause the user's transcripts hold (0..1)."""
    wanted = words(after)
    if not wanted:
        return None
    heard = {w for o in observations if o.type == TRANSCRIBED for w in words(o.text or "")}
    return sum(w in heard for w in wanted) / len(wanted)


def cut_off(observations: Sequence[Observation], t0: float, pause_start: float) -> bool:
    """Whether a response created after ``pause_start`` but before ``t0`` (the last speech
    sample) sent audio: it answered the utterance before it ended."""
    early = {
        o.response_id
        for o in observations
        if o.type == RESPONSE_CREATED and pause_start <= o.at < t0
    }
    return any(o.type == AUDIO_DELTA and o.response_id in early for o in observations)


@dataclass(frozen=True)
class _Case:
    clip: BenchClip
    pause_ms: int | None
    spoken: PausedUtterance | None  # None: the clip whole, no pause


def cases(
    clips: Sequence[BenchClip], words: dict[str, list[Word]], pauses_ms: Sequence[int]
) -> list[_Case]:
    """Every clip whole; clips whose reader paused, as they are (natural pauses); the
    others with each pause inserted where they have a mid-sentence cut (a natural pause
    would be counted as the inserted one)."""
    found = [_Case(clip, 0, None) for clip in clips]
    natural = {clip.name: as_spoken(clip) for clip in clips}
    for pause in pauses_ms:
        for clip in clips:
            if natural[clip.name] is None:
                paused = with_pause(clip, words.get(clip.name, []), pause)
                if paused is not None:
                    found.append(_Case(clip, pause, paused))
    found += [_Case(clip, None, natural[clip.name]) for clip in clips if natural[clip.name]]
    return found


async def _measure(
    target: Target, case: _Case, detection: Detection, timeout: float, clock: Clock
) -> PauseTurn:
    utterance = case.spoken.utterance if case.spoken is not None else turn_audio(case.clip)
    said = await say_turn(
        WEBSOCKET, target, WEBSOCKET.plan(utterance), timeout=timeout, clock=clock,
        turn_detection=detection.session,
    )  # fmt: skip
    turn = turn_from_observations(case.clip.name, 0, said.t0, said.observations)
    is_cut = case.spoken is not None and cut_off(
        said.observations, said.t0, said.t0 - case.spoken.first_pause_s
    )
    replied = turn.first_audio is not None
    first_audio = turn.stages_ms()["first_audio"] if replied and not is_cut else None
    kept = None
    if case.spoken is not None and case.pause_ms:
        kept = kept_share(said.observations, case.spoken.after)
    return PauseTurn(
        detection.name, case.clip.name, case.pause_ms, is_cut,
        split=turn.user_turns > 1 and not is_cut, first_audio_ms=first_audio,
        errors=said.errors + turn.errors, kept=kept,
    )  # fmt: skip


async def run_pauses(
    target: Target,
    all_cases: Sequence[_Case],
    detections: Sequence[Detection],
    *,
    timeout: float,
    progress: Progress | None = None,
    clock: Clock = time.perf_counter,
) -> PauseReport:
    """Say every case under every detection setting, one session at a time."""
    health = await fetch_health(target)
    machine = {**machine_info(), "load_average_start": load_average()}
    turns = []
    for detection in detections:
        for case in all_cases:
            turns.append(await _measure(target, case, detection, timeout, clock))
            if progress:
                progress.advance()
    machine["load_average_end"] = load_average()
    return PauseReport(
        created=datetime.now(UTC).isoformat(timespec="seconds"), url=target.url,
        machine=machine, server_health=health, turns=turns,
        cuts=[
            {"clip": c.clip.name, "pause_ms": c.pause_ms, "before": c.spoken.before,
             "after": c.spoken.after}
            for c in all_cases if c.spoken is not None and c.pause_ms
        ],
    )  # fmt: skip


@dataclass
class PauseRow:
    detection: str
    pause: str
    utterances: int
    cut_off: int
    split: int
    median_ms: float | None
    p90_ms: float | None
    errors: int
    #: Mean share of the words after the pause that were kept (None: no inserted pause).
    kept: float | None = None

    @property
    def rate(self) -> float:
        return self.cut_off / self.utterances if self.utterances else 0.0


@dataclass
class PauseReport:
    created: str
    url: str
    machine: dict[str, Any]
    server_health: dict[str, Any] | None
    turns: list[PauseTurn]
    cuts: list[dict[str, Any]]

    def rows(self) -> list[PauseRow]:
        """One row per detection setting and pause length, in the order they were run."""
        keys: list[tuple[str, int | None]] = []
        for turn in self.turns:
            if (turn.detection, turn.pause_ms) not in keys:
                keys.append((turn.detection, turn.pause_ms))
        rows = []
        for detection, pause in keys:
            group = [t for t in self.turns if (t.detection, t.pause_ms) == (detection, pause)]
            latency = summarize(t.first_audio_ms for t in group)
            shares = [t.kept for t in group if t.kept is not None]
            label = "none" if pause == 0 else "natural" if pause is None else f"{pause} ms"
            rows.append(
                PauseRow(
                    detection, label, len(group), sum(t.cut_off for t in group),
                    sum(t.split for t in group),
                    latency.median if latency else None, latency.p90 if latency else None,
                    sum(bool(t.errors) for t in group),
                    sum(shares) / len(shares) if shares else None,
                )
            )  # fmt: skip
        return rows

    def write_json(self, path: Path) -> None:
        data = asdict(self)
        data["rows"] = [{**asdict(row), "rate": round(row.rate, 4)} for row in self.rows()]
        path.write_text(json.dumps(data, indent=1))


def format_pauses(report: PauseReport) -> str:
    """The trade-off table: false cut-offs per pause length next to the latency."""
    lines = [
        f"pause benchmark, {report.created}, {report.url}",
        "false cut-off: reply audio while the user paused mid-sentence or spoke again; "
        "latency: end of speech -> first audio (median; p90 by nearest rank), utterances "
        "not cut off",
        "",
        f"{'detection':<22} {'pause':>8} {'n':>4} {'cut off':>8} {'rate':>6} {'split':>6} "
        f"{'median ms':>10} {'p90 ms':>8} {'errors':>7} {'kept':>5}",
    ]
    for row in report.rows():
        median = "-" if row.median_ms is None else f"{row.median_ms:.0f}"
        p90 = "-" if row.p90_ms is None else f"{row.p90_ms:.0f}"
        kept = "-" if row.kept is None else f"{row.kept:.0%}"
        lines.append(
            f"{row.detection:<22} {row.pause:>8} {row.utterances:>4} {row.cut_off:>8} "
            f"{row.rate:>6.0%} {row.split:>6} {median:>10} {p90:>8} {row.errors:>7} {kept:>5}"
        )
    return "\n".join(lines)


def write_pause_chart(report: PauseReport, path: Path) -> None:
    """Cut-off rate and median latency against the inserted pause, a line per setting."""
    from voice.bench.chart import ChartUnavailable

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ChartUnavailable("the chart needs matplotlib: pip install 'voice[bench]'") from None
    figure, (rate_ax, latency_ax) = plt.subplots(1, 2, figsize=(11, 4))
    rows = report.rows()
    for detection in dict.fromkeys(row.detection for row in rows):
        inserted = [r for r in rows if r.detection == detection and r.pause.endswith(" ms")]
        pauses = [int(r.pause.split()[0]) for r in inserted]
        rate_ax.plot(pauses, [100 * r.rate for r in inserted], marker="o", label=detection)
        whole = next((r for r in rows if r.detection == detection and r.pause == "none"), None)
        if whole is not None and whole.median_ms is not None:
            latency_ax.bar(detection, whole.median_ms)
    rate_ax.set_xlabel("inserted mid-sentence pause (ms)")
    rate_ax.set_ylabel("false cut-offs (%)")
    rate_ax.legend(fontsize=8)
    rate_ax.grid(alpha=0.3)
    latency_ax.set_ylabel("median first audio after speech (ms)")
    latency_ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)
