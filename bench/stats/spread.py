"""Sensitivity to an axis: how much the per-point mean moves across the axis values (`axis_spread`),
and whether one arm moves less than another (`spread_ratio`, `spread_comparison`: ratio of spreads
and a Brown-Forsythe test).

The bootstraps here resample the seeds within every axis point at once, keeping the axis points fixed
(they are the design, not a sample), and take std, IQR and range (or both arms' spreads) from the same
resampled point means; `_boot_point_means` does that directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bench.stats.common import (DEFAULT_BY, DEGENERATE, LEVEL, _as_tuple, _check_columns, _degenerate, _groups,
                                _is_null, _join, _percentile_ci, _rng, _select, _values, is_higher_better,
                                metric_column)


def brown_forsythe(xa, xb) -> tuple[float, float, str | None]:
    """(statistic, p, reason): Brown-Forsythe (Levene with the median) of two samples' spreads; NaN with
    a reason when neither varies or the statistic is undefined (the absolute deviations from the median
    do not vary within a side, e.g. 2 values a side)."""
    if np.ptp(xa) == 0 and np.ptp(xb) == 0:
        return math.nan, math.nan, "neither side varies: no Brown-Forsythe test"
    with np.errstate(divide="ignore", invalid="ignore"):
        res = stats.levene(xa, xb, center="median")
    if not np.isfinite(res.statistic):
        return math.nan, math.nan, "Brown-Forsythe undefined: the absolute deviations do not vary within a side"
    return float(res.statistic), float(res.pvalue), None


def _boot_point_means(points: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, P) bootstrap means: each point's seeds resampled with replacement, independently."""
    out = np.empty((n_boot, len(points)))
    for j, v in enumerate(points):
        idx = rng.integers(0, len(v), size=(n_boot, len(v)))
        out[:, j] = v[idx].mean(axis=1)
    return out


def _spreads(m: np.ndarray) -> dict[str, np.ndarray]:
    """std (ddof=1), IQR (numpy's linear percentiles) and range of point means along the last axis."""
    q75, q25 = np.percentile(m, [75, 25], axis=-1)
    return {"std": np.std(m, axis=-1, ddof=1) if m.shape[-1] > 1 else np.full(m.shape[:-1], np.nan),
            "iqr": q75 - q25,
            "range": np.ptp(m, axis=-1)}


def axis_spread(trials: pd.DataFrame, metric: str, axis: str | Sequence[str], by: str | Sequence[str] = DEFAULT_BY,
                n_boot: int = 2000, seed: int = 0, level: float = LEVEL, status: str | Sequence[str] | None = ("ok",),
                higher_is_better: bool | None = None) -> pd.DataFrame:
    """How much the per-point mean moves across the axis, per group — the sensitivity to the axis.

    For each group: the per-point means (mean over seeds at each axis value), then across the axis
    points: `std` (ddof=1, the measure of the seed paper's Table 2), `iqr` (75th - 25th percentile,
    numpy's linear interpolation) and `range` (max - min). Each has a percentile bootstrap interval
    (`<stat>_lo`, `<stat>_hi`) that resamples SEEDS within each axis point (n_boot times), recomputes
    the point means and then the spread; the axis points themselves are fixed (they are the design,
    not a sample). Also `worst` / `best` per-point mean and the axis value where it occurs
    (`worst_at`, `best_at`; a tuple for several axis columns), using the metric's direction
    (worst = max for lower-is-better).

    Axis points with no finite value (e.g. every seed diverged) are left out of the spread and
    counted in `n_points_empty`. Intervals are NaN (with `reason`) when there are fewer than 2 axis
    points or when any point has fewer than 2 seeds (a point with one seed cannot be resampled).
    Columns: by..., `n_points`, `n_points_empty`, `min_seeds`, `higher_is_better`, `std`, `std_lo`,
    `std_hi`, `iqr`, `iqr_lo`, `iqr_hi`, `range`, `range_lo`, `range_hi`, `worst`, `worst_at`, `best`,
    `best_at`, `reason`.
    """
    by, axis = _as_tuple(by), _as_tuple(axis)
    col = metric_column(trials, metric)
    hib = is_higher_better(col, higher_is_better)
    _check_columns(trials, by + axis, "axis_spread")
    rows = []
    for key, sub in _groups(trials, by):
        points, labels, empty = [], [], 0
        for akey, psub in _groups(sub, axis):
            v = _values(_select(psub, status), col)
            v = v[np.isfinite(v)]
            if len(v) == 0:
                empty += 1
                continue
            points.append(v)
            labels.append(akey[0] if len(axis) == 1 else akey)
        rows.append({**dict(zip(by, key)), **_spread_row(points, labels, empty, hib, n_boot, _rng(seed, key), level)})
    cols = [*by, "n_points", "n_points_empty", "min_seeds", "higher_is_better"]
    for s in ("std", "iqr", "range"):
        cols += [s, f"{s}_lo", f"{s}_hi"]
    return pd.DataFrame(rows, columns=cols + ["worst", "worst_at", "best", "best_at", "reason"])


def _spread_row(points, labels, empty, hib, n_boot, rng, level) -> dict:
    P = len(points)
    means = np.array([v.mean() for v in points])
    min_seeds = min((len(v) for v in points), default=0)
    row = {"n_points": P, "n_points_empty": empty, "min_seeds": min_seeds, "higher_is_better": hib}
    reasons = [f"{empty} axis point(s) without a finite value left out" if empty else None]
    if P == 0:
        reasons.append("no axis point has a finite value")
    elif P < 2:
        reasons.append("fewer than 2 axis points: no spread")
    est = _spreads(means[None, :]) if P else {s: np.array([np.nan]) for s in ("std", "iqr", "range")}
    can_boot = P >= 2 and min_seeds >= 2
    if P >= 2 and min_seeds < 2:
        short = [str(l) for l, v in zip(labels, points) if len(v) < 2]
        reasons.append(f"fewer than 2 seeds at axis point(s) {', '.join(short)}: no interval")
    boot = _spreads(_boot_point_means(points, n_boot, rng)) if can_boot else None
    degenerate = False
    for s in ("std", "iqr", "range"):
        row[s] = float(est[s][0]) if P >= 2 else np.nan
        lo, hi = _percentile_ci(boot[s], level) if can_boot else (np.nan, np.nan)
        row[f"{s}_lo"], row[f"{s}_hi"] = float(lo), float(hi)
        degenerate |= can_boot and _degenerate(lo, hi, row[s])
    if degenerate:
        reasons.append(DEGENERATE)
    if P:
        iw = int(np.argmin(means) if hib else np.argmax(means))
        ib = int(np.argmax(means) if hib else np.argmin(means))
        row.update(worst=means[iw], worst_at=labels[iw], best=means[ib], best_at=labels[ib])
    else:
        row.update(worst=np.nan, worst_at=None, best=np.nan, best_at=None)
    row["reason"] = _join(*reasons)
    return row


@dataclass
class SpreadComparison:
    """Spread across axis points of per-point means, a vs b (e.g. ED//GAN vs ED+GAN across w)."""
    n_points_a: int
    n_points_b: int
    std_a: float
    std_b: float
    ratio: float          # std_a / std_b
    ratio_lo: float
    ratio_hi: float
    levene_stat: float    # Brown-Forsythe (Levene with median centring)
    p_value: float
    test_on: str          # "point_means" or "trials"
    reason: str | None


def _points(values_by_point) -> list[np.ndarray]:
    items = values_by_point.values() if isinstance(values_by_point, Mapping) else values_by_point
    pts = [np.asarray(v, dtype=float).ravel() for v in items]
    pts = [v[np.isfinite(v)] for v in pts]
    return [v for v in pts if len(v)]


def spread_ratio(values_a_by_point, values_b_by_point, n_boot: int = 2000, seed: int = 0, level: float = LEVEL,
                 test_on: str = "point_means") -> SpreadComparison:
    """Is a less sensitive to the axis than b? Ratio of spreads with a bootstrap CI, and a
    Brown-Forsythe test.

    `values_x_by_point`: one array of per-seed values per axis point (a list, or a dict keyed by
    the axis value; non-finite values and empty points are dropped). Spread = std (ddof=1) across
    axis points of the per-point means; `ratio` = spread_a / spread_b (< 1: a is more robust). CI:
    percentile bootstrap resampling seeds within each point of both a and b independently
    (n_boot times), recomputing both spreads and their ratio; NaN when a side has < 2 points or a
    point has < 2 seeds. A zero spread in b gives an infinite ratio (reason says so).

    Brown-Forsythe test (`scipy.stats.levene(center="median")`) of equal dispersion:
    - `test_on="point_means"` (default): on the per-point means of a vs those of b — the same
      quantity as the ratio (dispersion across the axis, with seed noise averaged out), but with as
      many observations as axis points (4 weights -> 4 vs 4: low power);
    - `test_on="trials"`: on every per-trial value of a vs b — more observations, but it mixes seed
      noise with the axis effect, so it tests "overall dispersion", not "sensitivity to the axis".
    p is NaN (with reason) when a side has fewer than 2 values, neither side varies, or the
    statistic is undefined (with 2 values a side the absolute deviations from the median are equal
    within each side: use at least 3 axis points).
    """
    a, b = _points(values_a_by_point), _points(values_b_by_point)
    ma, mb = np.array([v.mean() for v in a]), np.array([v.mean() for v in b])
    sa = float(ma.std(ddof=1)) if len(a) > 1 else math.nan
    sb = float(mb.std(ddof=1)) if len(b) > 1 else math.nan
    reasons = []
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.divide(sa, sb)) if len(a) > 1 and len(b) > 1 else math.nan
    if len(a) < 2 or len(b) < 2:
        reasons.append("fewer than 2 axis points on a side: no spread")
    elif sb == 0:
        reasons.append("b has zero spread: ratio infinite" if sa > 0 else "neither side varies: ratio undefined")
    lo = hi = math.nan
    min_seeds = min((len(v) for v in a + b), default=0)
    if len(a) > 1 and len(b) > 1:
        if min_seeds < 2:
            reasons.append("fewer than 2 seeds at some axis point: no interval")
        else:
            rng = np.random.default_rng(seed)
            ba = np.std(_boot_point_means(a, n_boot, rng), axis=1, ddof=1)
            bb = np.std(_boot_point_means(b, n_boot, rng), axis=1, ddof=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = ba / bb
            if np.isnan(r).any():
                reasons.append("some resamples have no spread on either side: interval undefined")
            else:
                lo, hi = map(float, _percentile_ci(r, level))
                if _degenerate(lo, hi, ratio):
                    reasons.append(DEGENERATE)
    if test_on == "point_means":
        xa, xb = ma, mb
    elif test_on == "trials":
        xa, xb = (np.concatenate(a) if a else np.array([])), (np.concatenate(b) if b else np.array([]))
    else:
        raise ValueError(f"test_on: 'point_means' or 'trials', not {test_on!r}")
    stat = p = math.nan
    if len(xa) < 2 or len(xb) < 2:
        reasons.append("fewer than 2 values on a side: no Brown-Forsythe test")
    elif len(xa) < 3 or len(xb) < 3:
        # with 2 values the absolute deviations from the median are equal within that side, so the
        # statistic is 0/0 in exact arithmetic; rounding turns it into an arbitrary (often huge) number
        reasons.append("Brown-Forsythe undefined: fewer than 3 values on a side (use at least 3 axis points)")
    else:
        stat, p, why = brown_forsythe(xa, xb)
        if why:
            reasons.append(why)
    return SpreadComparison(len(a), len(b), sa, sb, ratio, lo, hi, stat, p, test_on, _join(*reasons))


def spread_comparison(trials: pd.DataFrame, metric: str, axis: str | Sequence[str], compare: str, a: Any, b: Any,
                      by: str | Sequence[str] = ("dataset.name",), n_boot: int = 2000, seed: int = 0,
                      level: float = LEVEL, test_on: str = "point_means",
                      status: str | Sequence[str] | None = ("ok",)) -> pd.DataFrame:
    """`spread_ratio` over a trials table: within each `by` group, the trials with `compare == a`
    (e.g. `compare="variant", a="ED//GAN"`) vs those with `compare == b`, per-point values taken at
    each `axis` value (e.g. `variant.w`). One row per group with the `SpreadComparison` fields."""
    by, axis = _as_tuple(by), _as_tuple(axis)
    col = metric_column(trials, metric)
    _check_columns(trials, by + axis + (compare,), "spread_comparison")
    rows = []
    for key, sub in _groups(_select(trials, status), by):
        side = {}
        for name, val in (("a", a), ("b", b)):
            s = sub[sub[compare].isna()] if _is_null(val) else sub[sub[compare] == val]
            side[name] = [_values(p, col) for _, p in _groups(s, axis)]
        res = spread_ratio(side["a"], side["b"], n_boot=n_boot, seed=int(_rng(seed, key).integers(2**31)),
                           level=level, test_on=test_on)
        rows.append({**dict(zip(by, key)), compare + "_a": a, compare + "_b": b, **asdict(res)})
    fields = list(SpreadComparison.__dataclass_fields__)
    return pd.DataFrame(rows, columns=[*by, compare + "_a", compare + "_b", *fields])
