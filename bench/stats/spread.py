"""Sensitivity to an axis: how much the per-point mean moves across the axis values (`axis_spread`),
and whether one arm moves less than another (`spread_ratio`, `spread_comparison`: ratio of spreads
and a Brown-Forsythe test).

The spread that counts is that of the TRUE per-point means, with the seed noise taken out, and its
confidence interval (`true_spread`: noncentral F; seeds paired across points when every point has the same
seeds). The IQR and range of the per-point means keep bootstraps that resample the seeds within every axis
point, the axis points fixed (they are the design, not a sample): descriptive, `_boot_point_means`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

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
    points: `std`, the spread of the true per-point means with the seed noise taken out, and its
    confidence interval (`std_lo`, `std_hi`; `true_spread`: noncentral F, normal seed noise);
    `std_means`, the std (ddof=1) of the noisy per-point means (the measure of the seed paper's Table 2,
    which even with no axis effect is about `noise_floor`); `iqr` (75th - 25th percentile, numpy's
    linear interpolation) and `range` (max - min) of the per-point means, with percentile bootstrap
    intervals that resample SEEDS within each axis point (n_boot times): descriptive resampling
    intervals of the noisy means, not confidence intervals of the true spread. The axis points
    themselves are fixed (they are the design, not a sample). Also `worst` / `best` per-point mean and the axis value where it occurs
    (`worst_at`, `best_at`; a tuple for several axis columns), using the metric's direction
    (worst = max for lower-is-better).

    Axis points with no finite value (e.g. every seed diverged) are left out of the spread and
    counted in `n_points_empty`. Intervals are NaN (with `reason`) when there are fewer than 2 axis
    points or when any point has fewer than 2 seeds (a point with one seed cannot be resampled).
    Columns: by..., `n_points`, `n_points_empty`, `min_seeds`, `higher_is_better`, `std`, `std_lo`,
    `std_hi`, `iqr`, `iqr_lo`, `iqr_hi`, `range`, `range_lo`, `range_hi`, `std_means`, `noise_floor`,
    `worst`, `worst_at`, `best`, `best_at`, `reason`.
    """
    by, axis = _as_tuple(by), _as_tuple(axis)
    col = metric_column(trials, metric)
    hib = is_higher_better(col, higher_is_better)
    _check_columns(trials, by + axis, "axis_spread")
    rows = []
    for key, sub in _groups(trials, by):
        points, labels, empty = [], [], 0
        for akey, psub in _groups(sub, axis):
            sd, v = _seeded(_select(psub, status), col)
            if len(v) == 0:
                empty += 1
                continue
            points.append((sd, v))
            labels.append(akey[0] if len(axis) == 1 else akey)
        blocks = _blocks(points)
        rows.append({**dict(zip(by, key)), **_spread_row([v for _, v in points], labels, empty, hib, n_boot,
                                                         _rng(seed, key), level, blocks)})
    cols = [*by, "n_points", "n_points_empty", "min_seeds", "higher_is_better"]
    for s in ("std", "iqr", "range"):
        cols += [s, f"{s}_lo", f"{s}_hi"]
    return pd.DataFrame(rows, columns=cols + ["std_means", "noise_floor", "paired", "worst", "worst_at", "best",
                                              "best_at", "reason"])


def true_spread(points: Sequence[np.ndarray], level: float = LEVEL,
                paired: bool = False) -> tuple[float, float, float, float]:
    """The spread across axis points of the TRUE per-point means, with the seed noise taken out:
    (estimate, lo, hi, noise floor). Every point needs >= 2 seeds (else NaNs).

    Model: value = mu_point (+ seed effect) + noise, normal. The std of the per-point means over-states
    the spread of the mu's: even with no axis effect it is about the noise floor sqrt(MSE / n), the noise
    of a point mean. `paired=False`: seeds independent across points; MSE = pooled within-point variance
    (df sum(n - 1)), n = harmonic mean of the seeds per point. `paired=True`: `points` are aligned, value k
    of every point from the same seed, as in a ganbench study (the same seed = the same initial weights and
    data order at every axis value: a block); the seed effect cancels in the differences between points,
    so MSE = the seed x point interaction mean square (df (P - 1)(S - 1)), n = S. Estimate:
    sqrt(max(0, var(means) - MSE / n)), unbiased for the variance. Interval: n var(means) / MSE is
    noncentral F(P - 1, df, lambda) with lambda = n (P - 1) tau^2 / sigma^2; the lambda bounds at which it
    sits at the 97.5th / 2.5th percentile, times MSE / (n (P - 1)), bound tau^2 (0 where even lambda = 0
    puts it there: the means agree more closely than the noise predicts). Simulated with 5 points and 2-12
    seeds it covers the true spread in 95-100 % of studies (also with unequal seeds per point and t(3)
    noise); with only 2 points and 2-3 seeds, 90-92 %. The seed-resampling bootstrap of the std of means it
    replaces covered 0-88 % (tests/test_stats.py). Converting lambda to tau uses the noisy MSE as if it were
    sigma^2: where the axis effect is far above the seed noise the interval does not shrink with the noise
    (about a factor 0.5-1.5 around the estimate with 5 points and 2 seeds). An empty interval (the means
    agree more closely than the noise predicts: 2.5 % of studies with no axis effect, always when every
    mean ties) comes out as [0, 0]; axis_spread says so in its reason."""
    points = [np.asarray(v, dtype=float) for v in points]
    if paired and (len({len(v) for v in points}) > 1 or not all(np.isfinite(v).all() for v in points)):
        raise ValueError("true_spread(paired=True): every point needs the same seeds, all finite values")
    points = [v[np.isfinite(v)] for v in points]
    P = len(points)
    if P < 2 or min(len(v) for v in points) < 2:
        return math.nan, math.nan, math.nan, math.nan
    means = np.array([v.mean() for v in points])
    if paired:
        Y = np.column_stack(points)  # seeds x points
        S = Y.shape[0]
        resid = Y - Y.mean(axis=1, keepdims=True) - means[None, :] + means.mean()
        dfe, n = float((P - 1) * (S - 1)), float(S)
        mse = float((resid ** 2).sum() / dfe)
    else:
        k = np.array([len(v) for v in points], dtype=float)
        dfe, n = float((k - 1).sum()), P / float((1 / k).sum())
        mse = float(sum(((v - v.mean()) ** 2).sum() for v in points) / dfe)
    s2m = float(np.var(means, ddof=1))
    if mse <= 1e-24 * max(s2m, 1e-300):  # no noise (but rounding): the means are the mu's
        return math.sqrt(s2m), math.sqrt(s2m), math.sqrt(s2m), 0.0
    F, d1 = n * s2m / mse, P - 1

    def lam(p: float) -> float:  # lambda at which P(F' <= F) = p (the cdf falls as lambda grows)
        def gap(x):
            return _ncf_cdf(F, d1, dfe, x) - p
        if gap(0.0) <= 0:
            return 0.0
        hi = max(1.0, 2 * F * d1)
        while gap(hi) > 0:
            hi *= 2
        return float(optimize.brentq(gap, 0.0, hi, xtol=1e-12 * hi, rtol=1e-10))

    a = (1 - level) / 2
    to_tau = mse / (n * d1)
    return (math.sqrt(max(0.0, s2m - mse / n)), math.sqrt(lam(1 - a) * to_tau), math.sqrt(lam(a) * to_tau),
            math.sqrt(mse / n))


_Q = (np.arange(400) + 0.5) / 400  # quantile grid of the denominator, for large noncentralities


def _ncf_cdf(x: float, d1: float, d2: float, lam: float) -> float:
    """P(noncentral F(d1, d2, lam) <= x). scipy's series, which turns NaN at very large lam (an axis effect
    far above the seed noise); there the numerator's normal approximation (noncentral chi-square: mean d1 +
    lam, variance 2 (d1 + 2 lam)) averaged over the chi-square(d2) denominator's quantiles."""
    if lam <= 0:
        return float(stats.f.cdf(x, d1, d2))
    v = float(stats.ncf.cdf(x, d1, d2, lam)) if lam < 1e5 else math.nan
    if math.isfinite(v):
        return v
    y = stats.chi2.ppf(_Q, d2)
    return float(stats.norm.cdf((x * d1 * y / d2 - d1 - lam) / math.sqrt(2 * (d1 + 2 * lam))).mean())


def _blocks(seeded: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray] | None:
    """Per point (seeds, finite values) -> the values of the seeds that every point has, aligned by seed
    (a seed x point block design: a seed that diverged at one point is left out of all), or None when
    fewer than 2 seeds are common, a seed is unknown (NaN) or repeats within a point."""
    if not seeded or any(np.isnan(sd).any() or len(set(sd.tolist())) < len(sd) for sd, _ in seeded):
        return None
    common = sorted(set.intersection(*(set(sd.tolist()) for sd, _ in seeded)))
    if len(common) < 2:
        return None
    return [v[np.isin(sd, common)][np.argsort(sd[np.isin(sd, common)], kind="stable")] for sd, v in seeded]


def _seeded(df: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
    """(seeds, values) of the rows with a finite value (seeds NaN when the table has no seed column)."""
    v = _values(df, col)
    sd = df["seed"].to_numpy(dtype=float) if "seed" in df else np.full(len(v), np.nan)
    ok = np.isfinite(v)
    return sd[ok], v[ok]


def _spread_row(points, labels, empty, hib, n_boot, rng, level, blocks=None) -> dict:
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
        reasons.append(f"fewer than 2 seeds at axis point(s) {', '.join(short)}: no interval, and the std is that "
                       "of the per-point means (the seed noise cannot be estimated there)")
    boot = _spreads(_boot_point_means(points, n_boot, rng)) if can_boot else None
    degenerate = False
    for s in ("iqr", "range"):  # descriptive resampling intervals; the std's comes from true_spread below
        row[s] = float(est[s][0]) if P >= 2 else np.nan
        lo, hi = _percentile_ci(boot[s], level) if can_boot else (np.nan, np.nan)
        row[f"{s}_lo"], row[f"{s}_hi"] = float(lo), float(hi)
        degenerate |= can_boot and _degenerate(lo, hi, row[s])
    if degenerate:
        reasons.append(DEGENERATE)
    # the std: the spread of the true means (noise taken out) and its interval; the std of the noisy means
    # (the seed paper's Table 2 measure) stays as std_means
    row["std"] = row["std_means"] = float(est["std"][0]) if P >= 2 else np.nan
    row["std_lo"] = row["std_hi"] = row["noise_floor"] = np.nan
    if can_boot:
        row["std"], row["std_lo"], row["std_hi"], row["noise_floor"] = true_spread(
            points if blocks is None else blocks, level, paired=blocks is not None)
        left = sum(map(len, points)) - (sum(map(len, blocks)) if blocks is not None else 0)
        if blocks is not None and left:
            reasons.append(f"paired on the {len(blocks[0])} seeds every point has: {left} trial(s) of other seeds "
                           "left out of the spread")
        if row["std_hi"] == 0 < row["noise_floor"]:
            reasons.append("the per-point means agree more closely than the seed noise predicts: the interval is "
                           "empty, shown as [0, 0]")
    row["paired"] = blocks is not None
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
                 test_on: str = "point_means", paired: tuple[bool, bool] = (False, False)) -> SpreadComparison:
    """Is a less sensitive to the axis than b? Ratio of spreads with a confidence interval, and a
    Brown-Forsythe test.

    `values_x_by_point`: one array of per-seed values per axis point (a list, or a dict keyed by
    the axis value; non-finite values and empty points are dropped). Spread = the spread across axis
    points of the true per-point means, seed noise taken out (`true_spread`; with a single seed at some
    point, the std of the per-point means; `paired`: whether each side's values are aligned by seed, see
    `true_spread`); `ratio` = spread_a / spread_b (< 1: a is more robust). CI:
    [lo_a / hi_b, hi_a / lo_b] from each side's 97.5 % interval, which hold together with probability
    >= 95 % (Bonferroni): conservative, where a seed-resampling bootstrap of the ratio covered 26-93 %
    in simulation (tests/test_stats.py). NaN when a side has < 2 points or a point has < 2 seeds; no
    upper bound (inf) when b's 97.5 % interval reaches 0; a zero spread in b gives an infinite ratio. `n_boot`
    and `seed` are kept for callers and unused.

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
    min_seeds = min((len(v) for v in a + b), default=0)
    if len(a) > 1 and len(b) > 1 and min_seeds >= 2:  # the true spreads, seed noise taken out
        joint = 1 - (1 - level) / 2  # each side's interval at 97.5 %: both hold together with >= 95 %
        (sa, a_lo, a_hi, a_floor), (sb, b_lo, b_hi, b_floor) = (true_spread(a, joint, paired[0]),
                                                                true_spread(b, joint, paired[1]))
    reasons = []
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.divide(sa, sb)) if len(a) > 1 and len(b) > 1 else math.nan
    if len(a) < 2 or len(b) < 2:
        reasons.append("fewer than 2 axis points on a side: no spread")
    elif sb == 0:
        reasons.append("b's spread is 0 (within its seed noise): ratio infinite" if sa > 0 else
                       "both spreads are 0 (within seed noise): ratio undefined")
    lo = hi = math.nan
    if len(a) > 1 and len(b) > 1:
        if min_seeds < 2:
            reasons.append("fewer than 2 seeds at some axis point: no interval, and the spreads are the stds of "
                           "the per-point means (the seed noise cannot be estimated there)")
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                lo = float(np.divide(a_lo, b_hi)) if b_hi > 0 else math.nan
                hi = float(np.divide(a_hi, b_lo)) if b_lo > 0 else math.inf
            if b_lo == 0:
                reasons.append("b's 97.5 % interval reaches 0: no upper bound")
            if a_hi == 0 < a_floor or b_hi == 0 < b_floor:
                reasons.append("a side's per-point means agree more closely than its seed noise predicts (empty "
                               "interval)")
            elif _degenerate(lo, hi, ratio) and a_floor == 0 and b_floor == 0:
                reasons.append("degenerate: no seed noise on either side")
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
        side, paired = {}, {}
        for name, val in (("a", a), ("b", b)):
            s = sub[sub[compare].isna()] if _is_null(val) else sub[sub[compare] == val]
            seeded = [pt for pt in (_seeded(p, col) for _, p in _groups(s, axis)) if len(pt[1])]
            blocks = _blocks(seeded)
            side[name], paired[name] = ([v for _, v in seeded], False) if blocks is None else (blocks, True)
        res = spread_ratio(side["a"], side["b"], n_boot=n_boot, seed=int(_rng(seed, key).integers(2**31)),
                           level=level, test_on=test_on, paired=(paired["a"], paired["b"]))
        rows.append({**dict(zip(by, key)), compare + "_a": a, compare + "_b": b, **asdict(res)})
    fields = list(SpreadComparison.__dataclass_fields__)
    return pd.DataFrame(rows, columns=[*by, compare + "_a", compare + "_b", *fields])
