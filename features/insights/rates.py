"""Rates with 95 % intervals: Wilson's score interval for a share, and a normal interval for
the difference of two shares (uplift)."""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def wilson(successes: np.ndarray, trials: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rate, low, high) per element: successes / trials and Wilson's 95 % score interval;
    NaN where there are no trials. Wilson's interval stays inside [0, 1] and is honest for
    small counts and rates near 0, which response rates are."""
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, k / n, np.nan)
        denom = 1 + Z95**2 / n
        centre = (p + Z95**2 / (2 * n)) / denom
        half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2)) / denom
    # exact at the edges: no successes has low 0, all successes high 1 (not 1e-17 off)
    low = np.where(n > 0, np.where(k == 0, 0.0, np.clip(centre - half, 0.0, 1.0)), np.nan)
    high = np.where(n > 0, np.where(k == n, 1.0, np.clip(centre + half, 0.0, 1.0)), np.nan)
    return p, low, high


def share(successes: int, trials: int) -> dict[str, float | int | None]:
    """One rate as ``{value, low, high, n}`` (None without trials), for JSON."""
    p, low, high = wilson(np.array([successes]), np.array([trials]))
    return {
        "value": _num(p[0]),
        "low": _num(low[0]),
        "high": _num(high[0]),
        "n": int(trials),
    }


def difference(
    k1: np.ndarray, n1: np.ndarray, k0: np.ndarray, n0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p1 - p0, low, high): the difference of two shares with a normal 95 % interval
    (unpooled standard errors); NaN where either side has no trials."""
    k1, n1, k0, n0 = (np.asarray(a, dtype=float) for a in (k1, n1, k0, n0))
    with np.errstate(divide="ignore", invalid="ignore"):
        p1 = k1 / n1
        p0 = k0 / n0
        diff = np.where((n1 > 0) & (n0 > 0), p1 - p0, np.nan)
        se = np.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    return diff, diff - Z95 * se, diff + Z95 * se


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)
