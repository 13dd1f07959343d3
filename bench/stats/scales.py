"""The scale a spread across seeds is read on (issue 22): `absolute` (the std, in the metric's units),
`relative` (the coefficient of variation, std / mean: a std that falls with the mean is not more robust) or
`log` (the std of the log values). `spread_interval` gives the pooled spread of one or more settings on a
scale with its confidence interval; `bench.metrics.default_scale` / `scale_error` say which scale suits which
metric.

Normal seed noise (on the log scale: lognormal) is the assumption of every interval here, as of
`std_interval`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special, stats

from bench.metrics import SCALES
from bench.stats.common import LEVEL

NAN3 = (math.nan, math.nan, math.nan)
NOTES = {"absolute": "absolute: std across seeds, in the metric's units",
         "relative": "relative: std / mean (coefficient of variation)",
         "log": "log: std of the log values (strictly positive metrics; about the relative spread when small)"}
T_EXACT = 1e3  # above this sqrt(n) * mean / sd the noncentral t's inversion loses digits (and hangs near 1e6)


def _check(scale: str) -> None:
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r} (one of {', '.join(SCALES)})")


def transform(values, scale: str) -> np.ndarray:
    """Values as the spread on `scale` reads them: as is for "absolute" and "relative" (relative divides by
    each setting's mean, `spread_interval`), np.log for "log" (ValueError if a value is <= 0)."""
    _check(scale)
    v = np.asarray(values, dtype=float)
    if scale == "log":
        if (v <= 0).any():
            raise ValueError(f"scale 'log' needs values > 0; got {v[v <= 0].min():g}")
        return np.log(v)
    return v


def scale_note(scale: str) -> str:
    """One line saying what a spread on `scale` is, for report text."""
    _check(scale)
    return NOTES[scale]


def std_interval(cells: Sequence[np.ndarray], level: float = LEVEL) -> tuple[float, float, float, float]:
    """The pooled std across seeds of one or more settings and its confidence interval: (std, lo, hi, df).

    `cells`: each setting's values over its seeds (settings with fewer than 2 are left out). std =
    sqrt(sum over settings of the squared deviations from the setting's mean / sum(n_i - 1)). The interval
    is the normal-theory chi-square interval std * sqrt(df / chi2 quantile) with df = sum(n_i - 1), or
    Satterthwaite's effective df where the settings' variances differ (df <= sum(n_i - 1)). Not a
    bootstrap: resampling few seeds repeats them, so a percentile bootstrap of a std is too narrow and
    too low (simulated with normal seeds: its nominal 95 % interval covers the true std 44 % of the time
    with 3 seeds, 80 % with 12, 86 % with 24; this one 95 %; tests/test_seed_sensitivity.py). Normal seed
    noise is the assumption, as in `seed_spread_power`; heavy tails (an occasional collapsed seed) make
    it too narrow too. Satterthwaite's df from the settings' own 1-2 df variances runs low when the
    settings share one variance (conservative: 10 settings x 2 seeds covered 99.5 %) and high when one
    setting dominates (scales 1, 1, 1, 10 with 2-3 seeds: 90 %). NaN without 2 seeds in some setting."""
    cells = [np.asarray(c, dtype=float) for c in cells if len(c) >= 2]
    if not cells:
        return math.nan, math.nan, math.nan, math.nan
    dfs = np.array([len(c) - 1 for c in cells], dtype=float)
    var = np.array([np.var(c, ddof=1) for c in cells])
    pooled = float(_pooled_var(cells))
    w = dfs / dfs.sum() * var  # each setting's share of the pooled variance
    df = float(dfs.sum())
    if len(cells) > 1 and pooled > 0:
        df = min(df, float(pooled ** 2 / ((w ** 2) / dfs).sum()))
    a = (1 - level) / 2
    lo, hi = (math.sqrt(pooled * df / stats.chi2.ppf(q, df)) for q in (1 - a, a))
    return math.sqrt(pooled), lo, hi, df


def _pooled_var(cells: list[np.ndarray]) -> np.ndarray:
    """Pooled within-cell variance over the last axis: sum of squared deviations from each cell's mean
    over sum(n - 1). `cells`: arrays (..., n_i)."""
    ss = sum(((c - c.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1) for c in cells)
    return ss / sum(c.shape[-1] - 1 for c in cells)


def _pooled(cells: list[np.ndarray], mckay: bool = False):
    """A pooled spread over the last axis of arrays (..., n_i) and Satterthwaite's df: (U / sum df_i, h) with
    U = sum u_i. Plain: u_i = df_i var_i, so U / sum df_i is the pooled variance and h is `std_interval`'s df.
    `mckay`: McKay's chi-square approximation for coefficients of variation, u_i = df_i c_i^2 / (1 + df_i
    c_i^2 / n_i) (c_i the setting's sample CV): (1 + 1/CV^2) U is about chi2(sum df_i) under a common CV
    (Forkman 2009), so U / sum df_i estimates CV^2 / (1 + CV^2). h < sum df_i where the settings' u_i / df_i
    differ (Satterthwaite, as in `std_interval`)."""
    n = np.array([c.shape[-1] for c in cells], dtype=float)
    df = n - 1
    v = np.stack([c.var(axis=-1, ddof=1) / (c.mean(axis=-1) ** 2 if mckay else 1) for c in cells], axis=-1)
    u = df * v / (1 + df * v / n) if mckay else df * v
    U = u.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(U > 0, np.minimum(df.sum(), U ** 2 / (u ** 2 / df).sum(axis=-1)), df.sum())
    return U / df.sum(), h


def _cv_from_a(A):
    """CV from A = CV^2 / (1 + CV^2); inf where A >= 1 (the mean could be 0)."""
    A = np.asarray(A, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(A < 1, np.sqrt(A / (1 - A)), np.inf)


def _cv_interval(cells: list[np.ndarray], level: float = LEVEL):
    """(cv, lo, hi) over the last axis of arrays (..., n_i) with positive means (see `spread_interval`)."""
    n = np.array([c.shape[-1] for c in cells], dtype=float)
    cv = np.sqrt(sum(((c / c.mean(axis=-1, keepdims=True) - 1) ** 2).sum(axis=-1) for c in cells) / (n - 1).sum())
    a = (1 - level) / 2
    A, h = _pooled(cells, mckay=True)
    lo, hi = (_cv_from_a(A * h / stats.chi2.ppf(q, h)) for q in (1 - a, a))
    if len(cells) == 1:  # exact: sqrt(n) mean / sd ~ noncentral t(n - 1, sqrt(n) / CV)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.sqrt(n[0]) / cv
            exact = t <= T_EXACT
            tt = np.where(exact, t, 1.0)
            nc_hi, nc_lo = special.nctdtrinc(n[0] - 1, a, tt), special.nctdtrinc(n[0] - 1, 1 - a, tt)
            lo = np.where(exact, np.sqrt(n[0]) / nc_hi, lo)
            hi = np.where(exact, np.where(nc_lo > 0, np.sqrt(n[0]) / nc_lo, np.inf), hi)
    return cv, lo, hi


def spread_interval(cells: Sequence[np.ndarray], scale: str, level: float = LEVEL) -> tuple[float, float, float]:
    """The pooled spread across seeds of one or more settings on `scale` and its confidence interval:
    (spread, lo, hi).

    `cells`: each setting's values over its seeds (settings with fewer than 2 are left out; NaNs if none).
    - absolute: the pooled std and its chi-square interval, exactly `std_interval`.
    - log: `std_interval` of the log values; NaNs if a value is <= 0.
    - relative: the pooled coefficient of variation sqrt(sum_i sum_j (x_ij / mean_i - 1)^2 / sum_i (n_i - 1))
      (std / mean for one setting); NaNs if a setting's mean is <= 0. One setting: the exact normal-theory
      interval, inverting sqrt(n) mean / sd ~ noncentral t(n - 1, sqrt(n) / CV) (McKay's chi-square, which
      it approaches, where sqrt(n) mean / sd > 1000). Several: McKay's approximation pooled over the
      settings (`_pooled`) with Satterthwaite's df. The upper bound is inf when the data allow a mean near 0.
      Simulated coverage of the true (pooled) CV, normal seed noise, 20000 studies per case
      (tests/test_scales.py): one setting, 2-12 seeds, CV 0.02-0.5: 94.7-95.3 %; 2-10 settings sharing one
      CV: 95.6-99.5 % (conservative with 2-3 seeds, as Satterthwaite's df is in `std_interval`); settings with
      CVs 0.05 and 0.5: 92.9-98.3 %, lowest with 2 settings x 2-3 seeds.
    Normal seed noise (lognormal for log) is the assumption; heavy tails make every interval too narrow."""
    _check(scale)
    cells = [np.asarray(c, dtype=float) for c in cells if len(c) >= 2]
    if not cells:
        return NAN3
    if scale == "absolute":
        return std_interval(cells, level)[:3]
    if scale == "log":
        if any((c <= 0).any() for c in cells):
            return NAN3
        return std_interval([np.log(c) for c in cells], level)[:3]
    if any(c.mean() <= 0 for c in cells):
        return NAN3
    return tuple(float(x) for x in _cv_interval(cells, level))
