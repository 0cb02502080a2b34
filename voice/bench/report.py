"""A bench run's results: the JSON document, and the tables printed from it (no network).

The JSON holds every raw per-turn timeline (client-clock seconds), the derived stage
durations and summaries, the machine and the server's ``/health``. It holds no text of
the conversation: word counts and the transcription's word error rate only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self

from voice.bench.stats import Comparison, Summary, compare_medians, summarize
from voice.bench.timeline import BARGE_IN_STAGES, STAGES, BargeInTimeline, TurnTimeline

SCHEMA = "voice-bench/1"
#: The figure that sums up responsiveness: end of user speech to the first reply audio.
HEADLINE_STAGE = "first_audio"
#: Barge-in rows: milliseconds after the onset, then milliseconds of audio queued at it.
BARGE_IN_FIGURES: tuple[str, ...] = (*BARGE_IN_STAGES, "queued_audio")


class ReportError(Exception):
    """A results file that cannot be read as a bench report."""


@dataclass
class LevelResult:
    """All turns and barge-ins run with ``concurrency`` simultaneous calls."""

    concurrency: int
    turns: list[TurnTimeline] = field(default_factory=list)
    barge_ins: list[BargeInTimeline] = field(default_factory=list)
    wall_s: float = 0.0

    def stage_summaries(self) -> dict[str, Summary | None]:
        stages = [turn.stages_ms() for turn in self.turns]
        return {stage: summarize(s[stage] for s in stages) for stage in STAGES}

    def barge_in_summaries(self) -> dict[str, Summary | None]:
        stages = [barge_in.stages_ms() for barge_in in self.barge_ins]
        summaries = {stage: summarize(s[stage] for s in stages) for stage in BARGE_IN_STAGES}
        summaries["queued_audio"] = summarize(b.queued_ms for b in self.barge_ins)
        return summaries

    def barge_in_outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for barge_in in self.barge_ins:
            counts[barge_in.outcome] = counts.get(barge_in.outcome, 0) + 1
        return counts

    def wer(self) -> Summary | None:
        """Transcription word error rate (as a fraction) over turns with a reference."""
        return summarize(turn.wer for turn in self.turns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "wall_s": self.wall_s,
            "summary": {
                "stages_ms": _summaries_dict(self.stage_summaries()),
                "barge_in_ms": _summaries_dict(self.barge_in_summaries()),
                "barge_in_outcomes": self.barge_in_outcomes(),
                "wer": None if (wer := self.wer()) is None else wer.to_dict(),
                "turns": len(self.turns),
                "complete_turns": sum(turn.complete for turn in self.turns),
                "inconsistent_turns": sum(bool(turn.inconsistencies()) for turn in self.turns),
            },
            "turns": [turn.to_dict() for turn in self.turns],
            "barge_ins": [barge_in.to_dict() for barge_in in self.barge_ins],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            concurrency=int(data["concurrency"]),
            turns=[TurnTimeline.from_dict(turn) for turn in data["turns"]],
            barge_ins=[BargeInTimeline.from_dict(b) for b in data["barge_ins"]],
            wall_s=float(data["wall_s"]),
        )


def _summaries_dict(summaries: Mapping[str, Summary | None]) -> dict[str, Any]:
    return {name: None if s is None else s.to_dict() for name, s in summaries.items()}


@dataclass
class BenchReport:
    """Everything one ``voice bench`` run measured, and under which conditions."""

    created: str
    url: str
    options: dict[str, Any]
    machine: dict[str, Any]
    server_health: dict[str, Any] | None
    clips: list[dict[str, Any]]
    levels: list[LevelResult]

    @property
    def transport(self) -> str:
        """``websocket`` or ``webrtc`` (reports written before WebRTC existed: websocket)."""
        return str(self.options.get("transport", "websocket"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "created": self.created,
            "url": self.url,
            "options": self.options,
            "machine": self.machine,
            "server_health": self.server_health,
            "clips": self.clips,
            "levels": [level.to_dict() for level in self.levels],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        if data.get("schema") != SCHEMA:
            raise ReportError(f"not a {SCHEMA} report (schema: {data.get('schema')!r})")
        try:
            return cls(
                created=data["created"],
                url=data["url"],
                options=data["options"],
                machine=data["machine"],
                server_health=data["server_health"],
                clips=data["clips"],
                levels=[LevelResult.from_dict(level) for level in data["levels"]],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportError(f"malformed report: {exc!r}") from None

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def read_json(cls, path: Path) -> Self:
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ReportError(f"{path} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ReportError(f"{path} is not a bench report")
        return cls.from_dict(data)


# --- text tables ---------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned first column, right-aligned others."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells).rstrip()

    return "\n".join([line(header), *(line(row) for row in rows)])


def _summary_rows(summaries: Mapping[str, Summary | None]) -> list[list[str]]:
    rows = []
    for name, s in summaries.items():
        if s is None:
            rows.append([name, "-", "-", "-", "0"])
        else:
            rows.append([name, _fmt(s.median), _fmt(s.p90), _fmt(s.max), str(s.n)])
    return rows


def format_level(level: LevelResult) -> str:
    """The tables of one concurrency level."""
    complete = sum(turn.complete for turn in level.turns)
    inconsistent = sum(bool(turn.inconsistencies()) for turn in level.turns)
    lines = [
        f"concurrency {level.concurrency}: {len(level.turns)} turns ({complete} complete, "
        f"{inconsistent} out of order), {len(level.barge_ins)} barge-ins, {level.wall_s:.0f} s",
        "",
        table(
            ["ms after end of speech", "median", "p90", "max", "n"],
            _summary_rows(level.stage_summaries()),
        ),
    ]
    wer = level.wer()
    if wer is not None:
        lines.append(f"transcription WER: median {wer.median:.3f}, max {wer.max:.3f} (n={wer.n})")
    if level.barge_ins:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(level.barge_in_outcomes().items()))
        lines += [
            "",
            table(
                ["barge-in (ms)", "median", "p90", "max", "n"],
                _summary_rows(level.barge_in_summaries()),
            ),
            f"barge-in outcomes: {outcomes}",
        ]
    runs: list[TurnTimeline | BargeInTimeline] = [*level.turns, *level.barge_ins]
    problems = [f"  {r.clip} (call {r.call}): {'; '.join(r.errors)}" for r in runs if r.errors]
    if problems:
        lines += ["", "problems:", *problems]
    return "\n".join(lines)


def format_degradation(levels: Sequence[LevelResult]) -> str:
    """How the median end of speech to first audio grows with concurrency."""
    rows = []
    base: float | None = None
    for level in levels:
        summary = level.stage_summaries()[HEADLINE_STAGE]
        median = None if summary is None else summary.median
        if base is None:
            base = median
        ratio = None if median is None or not base else median / base
        rows.append([str(level.concurrency), _fmt(median), _fmt(ratio, 2)])
    header = ["concurrency", "median first audio (ms)", f"vs {levels[0].concurrency}"]
    return table(header, rows)


def format_report(report: BenchReport) -> str:
    parts = [f"{report.url} over {report.transport}"]
    parts += [format_level(level) for level in report.levels]
    if len(report.levels) > 1:
        parts.append(format_degradation(report.levels))
    return "\n\n".join(parts)


def compare_reports(a: BenchReport, b: BenchReport) -> dict[int, list[Comparison]]:
    """Per concurrency level present in both: medians of A and B per stage, and B / A."""
    b_levels = {level.concurrency: level for level in b.levels}
    result: dict[int, list[Comparison]] = {}
    for level_a in a.levels:
        level_b = b_levels.get(level_a.concurrency)
        if level_b is None:
            continue
        barge_ins = compare_medians(
            level_a.barge_in_summaries(), level_b.barge_in_summaries(), BARGE_IN_FIGURES
        )
        result[level_a.concurrency] = [
            *compare_medians(level_a.stage_summaries(), level_b.stage_summaries(), STAGES),
            *(replace(row, stage=f"barge-in {row.stage}") for row in barge_ins),
        ]
    return result


def format_comparison(a: BenchReport, b: BenchReport, a_name: str, b_name: str) -> str:
    compared = compare_reports(a, b)
    if not compared:
        return "the two reports have no concurrency level in common"
    parts = [f"A = {a_name} ({a.transport})\nB = {b_name} ({b.transport})"]
    if a.transport != b.transport:
        parts[0] += (
            "\nA and B used different transports: audio stages are measured differently "
            "(see BENCHMARKS.md, 'Over WebRTC')"
        )
    for concurrency, rows in compared.items():
        parts.append(
            f"concurrency {concurrency} (medians, ms)\n"
            + table(
                ["stage", "A", "B", "B/A"],
                [[c.stage, _fmt(c.a), _fmt(c.b), _fmt(c.ratio, 2)] for c in rows],
            )
        )
    return "\n\n".join(parts)
