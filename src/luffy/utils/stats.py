"""Mean, standard error and confidence interval: the one statistics helper of tables, claims and
evaluation summaries.

The standard error is the sample standard deviation (ddof = 1) over √n; the confidence interval is
Student's t interval ``mean ± t_{(1+level)/2, n-1} · SE`` (scipy's t quantile). Values that are None
or not finite are left out (a run without a metric is not a zero).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    """``mean`` (None without values), ``se`` and ``ci_low``/``ci_high`` (None with fewer than 2 values)."""

    n: int
    mean: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    level: float = 0.95


def finite(values: Iterable[float | None]) -> list[float]:
    """The values that are not None and are finite."""
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def mean_se(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    """(mean, standard error); (None, None) without values, SE None for one value."""
    e = estimate(values)
    return e.mean, e.se


def estimate(values: Iterable[float | None], level: float = 0.95) -> Estimate:
    """Mean, standard error and the two-sided ``level`` t confidence interval of the finite values."""
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    vals = finite(values)
    n = len(vals)
    if n == 0:
        return Estimate(0, None, None, None, None, level)
    mean = sum(vals) / n
    if n == 1:
        return Estimate(1, mean, None, None, None, level)
    se = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1) / n)
    from scipy.stats import t  # scipy is imported only when an interval is asked for

    half = float(t.ppf((1 + level) / 2, n - 1)) * se
    return Estimate(n, mean, se, mean - half, mean + half, level)
