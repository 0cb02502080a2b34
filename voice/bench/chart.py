"""A PNG of the stage durations: one box plot per stage, one panel per concurrency level.

matplotlib is an optional dependency (``pip install 'voice[bench]'``), imported only here
and only when a chart is asked for; it draws with the file-only Agg backend.
"""

from __future__ import annotations

from pathlib import Path

from voice.bench.report import BenchReport
from voice.bench.timeline import STAGES


class ChartUnavailable(Exception):
    """matplotlib is not installed."""


def write_chart(report: BenchReport, path: Path) -> None:
    """Box plots of milliseconds after end of speech, per stage, for each level."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ChartUnavailable("the chart needs matplotlib: pip install 'voice[bench]'") from None
    levels = report.levels
    figure, axes = plt.subplots(
        len(levels), 1, figsize=(9, 0.6 + 2.6 * len(levels)), squeeze=False, sharex=True
    )
    for ax, level in zip(axes[:, 0], levels, strict=True):
        per_turn = [turn.stages_ms() for turn in level.turns]
        data = [[v for stages in per_turn if (v := stages[stage]) is not None] for stage in STAGES]
        shown = [(stage, values) for stage, values in zip(STAGES, data, strict=True) if values]
        if shown:
            ax.boxplot(
                [values for _, values in shown],
                orientation="horizontal",
                tick_labels=[stage for stage, _ in shown],
                whis=(0, 100),
            )
        ax.invert_yaxis()
        ax.set_title(f"concurrency {level.concurrency} ({len(level.turns)} turns)", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("ms after end of user speech (box: quartiles, whiskers: min-max)")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)
