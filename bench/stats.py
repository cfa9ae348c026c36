"""Medians, spreads and percentiles, and the result of a fixed-duration load."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted values, nearest rank."""
    if not sorted_values:
        return math.nan
    rank = max(math.ceil(q / 100 * len(sorted_values)), 1)
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True)
class Summary:
    """A figure over rounds: its median, extremes and relative spread."""

    median: float
    low: float
    high: float
    values: tuple[float, ...]

    @property
    def spread(self) -> float:
        """(max - min) / median: 0.10 means the rounds varied by 10% of the median."""
        if not self.values or self.median == 0 or math.isnan(self.median):
            return math.nan
        return (self.high - self.low) / abs(self.median)

    def to_json(self) -> dict[str, object]:
        return {
            "median": _clean(self.median),
            "min": _clean(self.low),
            "max": _clean(self.high),
            "spread": _clean(self.spread),
            "rounds": [_clean(v) for v in self.values],
        }


def _clean(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def summarize(values: Sequence[float]) -> Summary:
    """The :class:`Summary` of one figure's per-round values (NaN when there are none)."""
    real = [v for v in values if not math.isnan(v)]
    if not real:
        return Summary(math.nan, math.nan, math.nan, ())
    return Summary(statistics.median(real), min(real), max(real), tuple(real))


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Requests answered in a fixed-duration load, and their latency distribution."""

    tool: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else math.nan

    @classmethod
    def from_latencies(
        cls, tool: str, latencies: list[float], errors: int, seconds: float
    ) -> LoadResult:
        """From per-request latencies in seconds."""
        latencies.sort()
        return cls(
            tool,
            len(latencies),
            errors,
            seconds,
            percentile(latencies, 50) * 1000,
            percentile(latencies, 99) * 1000,
        )
