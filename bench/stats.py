"""Percentiles as the table prints them, and Prometheus' histogram_quantile for the frontend's own
histograms."""

from __future__ import annotations

import statistics


def percentile(values: list[float], q: float) -> float:
    """The sample nearest to the q-th percentile (q in 0-100)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def quantile_inclusive(values: list[float], q: int) -> float:
    """The q-th percentile (1-99), as `statistics.quantiles` cuts the sample (interpolated)."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def bucket_quantile(q: float, cumulative: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket that holds the q-th observation."""
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower
