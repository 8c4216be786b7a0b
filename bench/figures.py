"""Summaries of measured values: percentiles and a few derived figures. Plain functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def distribution(values: Iterable[float | None], digits: int = 4) -> dict[str, Any]:
    """{"n", "min", "p50", "p95", "p99", "max", "mean"} of the non-None values."""
    data = np.array([v for v in values if v is not None], dtype=np.float64)
    if data.size == 0:
        return {"n": 0}
    p50, p95, p99 = np.percentile(data, [50, 95, 99])
    return {"n": int(data.size), "min": round(float(data.min()), digits),
            "p50": round(float(p50), digits), "p95": round(float(p95), digits),
            "p99": round(float(p99), digits), "max": round(float(data.max()), digits),
            "mean": round(float(data.mean()), digits)}


def cdf_points(values: Sequence[float], points: int = 200) -> list[tuple[float, float]]:
    """(value, fraction <= value) at up to `points` quantiles, for plots."""
    if not values:
        return []
    data = np.sort(np.asarray(values, dtype=np.float64))
    idx = np.unique(np.linspace(0, data.size - 1, min(points, data.size)).astype(int))
    return [(float(data[i]), (i + 1) / data.size) for i in idx]


def ratio(part: float, whole: float) -> float | None:
    return None if not whole else part / whole
