"""Summary statistics of stage durations and comparisons between runs (no I/O).

Percentiles use the nearest-rank method: the p-th percentile of n sorted values is the
value at rank ``ceil(p / 100 * n)`` (1-based), so it is always one of the measured values.
The median is the usual one (the mean of the two middle values when n is even).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self


@dataclass(frozen=True)
class Summary:
    """Milliseconds: median, 90th percentile (nearest rank), min, max, and the count."""

    n: int
    median: float
    p90: float
    min: float
    max: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "median": self.median,
            "p90": self.p90,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            n=int(data["n"]),
            median=float(data["median"]),
            p90=float(data["p90"]),
            min=float(data["min"]),
            max=float(data["max"]),
        )


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0 < p <= 100) by the nearest-rank method."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    ordered = sorted(values)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def summarize(values: Iterable[float | None]) -> Summary | None:
    """Summary of the present values; ``None`` when there are none."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return Summary(
        n=len(present),
        median=round(statistics.median(present), 3),
        p90=percentile(present, 90),
        min=min(present),
        max=max(present),
    )


@dataclass(frozen=True)
class Comparison:
    """One stage's medians in two runs, and B / A (``None`` when it has no meaning)."""

    stage: str
    a: float | None
    b: float | None

    @property
    def ratio(self) -> float | None:
        if self.a is None or self.b is None or self.a <= 0:
            return None
        return self.b / self.a


def compare_medians(
    a: Mapping[str, Summary | None], b: Mapping[str, Summary | None], stages: Sequence[str]
) -> list[Comparison]:
    """Per stage, the median of run A, the median of run B and their ratio."""

    def median(summaries: Mapping[str, Summary | None], stage: str) -> float | None:
        summary = summaries.get(stage)
        return None if summary is None else summary.median

    return [Comparison(stage, median(a, stage), median(b, stage)) for stage in stages]
