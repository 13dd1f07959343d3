"""Sensitivity statistics: pure functions over the trials table (pandas, numpy, scipy only).

Every function takes a trials DataFrame (one row per trial, as `bench.results.load` returns it) or
plain arrays, and returns a DataFrame or a dataclass. Conventions shared by all of them:

- **Metric names.** `metric` is a column (`"final.fid"`, `"best.recall"`) or a bare metric name
  (`"fid"`, which means `final.fid`). Its direction comes from `bench.metrics.INFO`
  (`higher_is_better`); pass `higher_is_better=` for a column INFO does not know.
- **Intervals.** Every interval is a two-sided 95 % interval unless `level` is given. Bootstrap
  intervals are percentile intervals. Bounds are called `<stat>_lo` / `<stat>_hi` (or `lo` / `hi`).
- **Reproducible bootstraps.** Every bootstrap takes `seed`. Within a grouped table each group
  draws from its own generator, seeded from `seed` and a stable hash of the group's key, so a
  group's interval does not change when other groups are added or removed.
- **Honest intervals.** An interval is never computed from fewer data than it claims to describe:
  when a quantity has fewer than 2 independent values to resample (a single seed, a single pair, a
  single axis point, ...) its bounds are NaN and the `reason` column says why; it is never reported
  as a zero-width band. A zero-width band that *is* supported by the data (e.g. a constant metric
  over several seeds) is reported with bounds equal to the estimate and a `reason` beginning
  `"degenerate:"`. `reason` is None when nothing needs saying.
- **Which trials count.** Statistics of a metric use trials whose `status` is in `status`
  (default `("ok",)`; `None` = every status) and whose metric value is finite. A diverged trial has
  NaN `final.*` metrics; how often that happens is `success_rate`'s business, so the metric
  statistics report how many trials they left out (`n_trials` vs `n`) instead of inventing values.
- **Config columns.** The trials table stores every config field as a dotted column
  (`train.lr`, `variant.lens.K`) plus `seed`. `config_columns()` returns exactly those: the dotted
  columns other than the `final.*` / `best.*` metrics, and `seed`. The `variant` column (a label) is
  not a config column.

This module never imports torch or model code.
"""

from __future__ import annotations

import math
import operator
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from bench.metrics import INFO

LEVEL = 0.95
DEFAULT_BY = ("variant", "dataset.name")
METRIC_PREFIXES = ("final.", "best.")
NULL = "<null>"  # how a missing config value reads in pairing keys and arm labels

__all__ = [
    "LEVEL",
    "PairedResult",
    "SpreadComparison",
    "axis_spread",
    "budget_curve",
    "config_columns",
    "expected_best",
    "holm",
    "is_higher_better",
    "metric_column",
    "paired_difference",
    "point_summary",
    "spread_comparison",
    "spread_ratio",
    "success_rate",
    "wilson_interval",
]


# ----------------------------------------------------------------------------- helpers


def metric_column(trials: pd.DataFrame, metric: str) -> str:
    """The column holding `metric`: the name itself if it is a column, else `final.<metric>`."""
    if metric in trials.columns:
        return metric
    if f"final.{metric}" in trials.columns:
        return f"final.{metric}"
    raise KeyError(f"no column {metric!r} or 'final.{metric}' in the trials table")


def is_higher_better(metric: str, override: bool | None = None) -> bool:
    """Direction of a metric (`fid`, `final.fid`, `best.fid`) from INFO, unless `override` is given."""
    if override is not None:
        return bool(override)
    name = metric
    for p in METRIC_PREFIXES:
        name = name.removeprefix(p)
    if name not in INFO:
        raise KeyError(f"metric {metric!r} is not in bench.metrics.INFO: pass higher_is_better=")
    return INFO[name][0]


def config_columns(trials: pd.DataFrame) -> list[str]:
    """The config columns of a trials table: every dotted column except `final.*` / `best.*`, and
    `seed`. (Columns are written by `bench.results.rows_from_reports` from `flat_config`.)"""
    cols = [c for c in trials.columns if "." in c and not c.startswith(METRIC_PREFIXES)]
    if "seed" in trials.columns:
        cols.append("seed")
    return cols


def _check_columns(trials: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in trials.columns]
    if missing:
        raise KeyError(f"{what}: no column(s) {missing} in the trials table")


def _as_tuple(cols: str | Sequence[str] | None) -> tuple[str, ...]:
    if cols is None:
        return ()
    return (cols,) if isinstance(cols, str) else tuple(cols)


def _groups(df: pd.DataFrame, cols: tuple[str, ...]):
    """(key tuple, sub-frame) per group, null keys kept, sorted where the keys can be sorted."""
    if not cols:
        yield (), df
        return
    try:
        grouped = list(df.groupby(list(cols), dropna=False, sort=True))
    except TypeError:  # mixed, unorderable key types
        grouped = list(df.groupby(list(cols), dropna=False, sort=False))
    for key, sub in grouped:
        yield (key if isinstance(key, tuple) else (key,)), sub


def _is_null(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _canon(v: Any) -> str:
    """A hashable, type-stable text form of a config value (floats by repr, nulls as NULL)."""
    if _is_null(v):
        return NULL
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return repr(float(v)) if abs(int(v)) < 2**53 else str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return str(v)


def _show(v: Any) -> str:
    """Short display form of a config value for labels (1000.0 -> 1000, 0.001 -> 0.001)."""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    return str(v)


def _rng(seed: int, key: Any = ()) -> np.random.Generator:
    """A generator seeded from `seed` and a stable (process-independent) hash of a group key."""
    h = zlib.crc32(repr(tuple(_canon(k) for k in _as_key(key))).encode())
    return np.random.default_rng(np.random.SeedSequence([int(seed), h]))


def _as_key(key: Any) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def _values(df: pd.DataFrame, col: str) -> np.ndarray:
    v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return v


def _select(trials: pd.DataFrame, status: str | Sequence[str] | None) -> pd.DataFrame:
    if status is None:
        return trials
    _check_columns(trials, ["status"], "status filter")
    return trials[trials["status"].isin(_as_tuple(status))]


def _percentile_ci(samples: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of bootstrap samples along axis 0 (returns arrays if samples are 2-D).
    Infinite samples (e.g. a ratio over a zero spread) are ordered, never interpolated."""
    a = (1.0 - level) / 2.0
    samples = np.asarray(samples, dtype=float)
    method = "linear" if np.all(np.isfinite(samples)) else "inverted_cdf"
    lo, hi = np.quantile(samples, [a, 1.0 - a], axis=0, method=method)
    return lo, hi


def _degenerate(lo: float, hi: float, scale: float = 1.0) -> bool:
    return bool(np.isfinite(lo) and np.isfinite(hi) and abs(hi - lo) <= 1e-9 * max(1.0, abs(scale)))


DEGENERATE = "degenerate: every bootstrap resample gives the same value (no variation in the data)"


def _join(*reasons: str | None) -> str | None:
    r = [x for x in reasons if x]
    return "; ".join(dict.fromkeys(r)) if r else None


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


# ----------------------------------------------------------------------------- 1. point summary


def point_summary(trials: pd.DataFrame, metric: str, axis: str | Sequence[str],
                  by: str | Sequence[str] = DEFAULT_BY, status: str | Sequence[str] | None = ("ok",)) -> pd.DataFrame:
    """Per group (`by`) and axis value: how the metric varies across seeds at that point.

    Columns: the `by` and `axis` columns, `n_trials` (rows at the point, any status), `n` (finite
    values used), `n_seeds` (distinct seeds among them), `mean`, `median`, `std` (ddof=1 across
    seeds), `min`, `max`, `reason` (why `std` is NaN, or why `n` < `n_trials`).
    """
    by, axis = _as_tuple(by), _as_tuple(axis)
    col = metric_column(trials, metric)
    _check_columns(trials, by + axis, "point_summary")
    rows = []
    for key, sub in _groups(trials, by + axis):
        used = _select(sub, status)
        v = _values(used, col)
        finite = np.isfinite(v)
        v = v[finite]
        n = len(v)
        seeds = used.loc[finite, "seed"].nunique() if "seed" in used.columns else n
        left_out = len(sub) - n
        reason = _join(f"{left_out} of {len(sub)} trials left out (status not in {status} or metric not finite)"
                       if left_out else None,
                       "no finite values" if n == 0 else ("fewer than 2 seeds: no std" if n < 2 else None))
        rows.append({**dict(zip(by + axis, key)), "n_trials": len(sub), "n": n, "n_seeds": int(seeds),
                     "mean": v.mean() if n else np.nan, "median": np.median(v) if n else np.nan,
                     "std": v.std(ddof=1) if n > 1 else np.nan,
                     "min": v.min() if n else np.nan, "max": v.max() if n else np.nan, "reason": reason})
    return pd.DataFrame(rows, columns=[*by, *axis, "n_trials", "n", "n_seeds", "mean", "median", "std",
                                       "min", "max", "reason"])


# ----------------------------------------------------------------------------- 2. axis spread


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


# ----------------------------------------------------------------------------- 3. success rate


_OPS: dict[str, Callable] = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
                             "==": operator.eq, "!=": operator.ne}


def wilson_interval(successes: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927):
    (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n). NaN bounds when n < 2 (see module doc)."""
    if n < 2:
        return math.nan, math.nan
    z = stats.norm.ppf(0.5 + level / 2.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _rule_mask(trials: pd.DataFrame, rule, dataset_col: str) -> pd.Series:
    """Boolean 'not collapsed' mask from a callable or a {dataset: (column, op, threshold)} dict."""
    if callable(rule):
        mask = pd.Series(rule(trials), index=trials.index)
        return mask.fillna(False).astype(bool)
    if not isinstance(rule, Mapping):
        raise TypeError("rule: a callable(trials) -> boolean mask, or {dataset: (column, op, threshold)}")
    _check_columns(trials, [dataset_col], "success_rate rule")
    mask = pd.Series(False, index=trials.index)
    for ds, sub in trials.groupby(dataset_col, dropna=False):
        spec = rule.get(ds, rule.get("*"))
        if spec is None:
            raise KeyError(f"success_rate: no rule for dataset {ds!r} (rules: {sorted(map(str, rule))}; "
                           f"a '*' entry applies to every other dataset)")
        column, op, threshold = spec
        if op not in _OPS:
            raise ValueError(f"success_rate: unknown operator {op!r} (one of {list(_OPS)})")
        _check_columns(trials, [column], f"success_rate rule for {ds!r}")
        v = _values(sub, column)
        with np.errstate(invalid="ignore"):
            ok = _OPS[op](v, float(threshold)) & np.isfinite(v)  # NaN never passes
        mask.loc[sub.index] = ok
    return mask


def success_rate(trials: pd.DataFrame, rule, by: str | Sequence[str] = DEFAULT_BY, level: float = LEVEL,
                 dataset_col: str = "dataset.name", count_failed: bool = False) -> pd.DataFrame:
    """Fraction of trials that trained successfully, with Wilson intervals, per group.

    success = `status == "ok"` AND not collapsed, where "not collapsed" is `rule`:
    - a callable `rule(trials) -> boolean mask` (aligned with the rows), or
    - a dict `{dataset: (column, op, threshold)}` keyed by the `dataset_col` value, op one of
      `>= > <= < == !=`, e.g. `{"ring8": ("final.modes_covered", ">=", 4),
      "grid25": ("final.modes_covered", ">=", 12.5), "*": ("final.recall", ">=", 0.1)}` — `"*"`
      applies to datasets not named. A NaN value never passes.
    The denominator `n` is the trials with status `ok` or `diverged` (and anything else except
    `failed`): a `failed` trial raised an error — a bug or a crash, not a training outcome, and
    the runner retries it — so it is left out and counted in `n_failed` unless `count_failed`.
    Columns: by..., `successes`, `n`, `rate`, `lo`, `hi` (Wilson), `diverged`, `diverged_rate`,
    `diverged_lo`, `diverged_hi` (Wilson), `n_failed`, `reason` (bounds are NaN when n < 2).
    """
    by = _as_tuple(by)
    _check_columns(trials, by + ("status",), "success_rate")
    ok_rule = _rule_mask(trials, rule, dataset_col)
    rows = []
    for key, sub in _groups(trials, by):
        failed = int((sub["status"] == "failed").sum())
        counted = sub if count_failed else sub[sub["status"] != "failed"]
        n = len(counted)
        succ = int(((counted["status"] == "ok") & ok_rule.loc[counted.index]).sum())
        div = int((counted["status"] == "diverged").sum())
        lo, hi = wilson_interval(succ, n, level)
        dlo, dhi = wilson_interval(div, n, level)
        rows.append({**dict(zip(by, key)), "successes": succ, "n": n, "rate": succ / n if n else np.nan,
                     "lo": lo, "hi": hi, "diverged": div, "diverged_rate": div / n if n else np.nan,
                     "diverged_lo": dlo, "diverged_hi": dhi, "n_failed": failed,
                     "reason": _join("no trials" if n == 0 else ("fewer than 2 trials: no interval" if n < 2 else None),
                                     f"{failed} failed trial(s) left out" if failed and not count_failed else None)})
    return pd.DataFrame(rows, columns=[*by, "successes", "n", "rate", "lo", "hi", "diverged", "diverged_rate",
                                       "diverged_lo", "diverged_hi", "n_failed", "reason"])


# ----------------------------------------------------------------------------- 4. budget curve


def _budget_weights(N: int, replace: bool) -> np.ndarray:
    """W[k-1, i-1] = P(the best of k draws is the i-th smallest of N values) with the value order
    broken by index, so E[max of k] = W @ sorted_ascending.
    Without replacement: C(i-1, k-1) / C(N, k) (the max is x_(i) when x_(i) is drawn and the other
    k-1 come from the i-1 below it). With replacement: (i/N)^k - ((i-1)/N)^k."""
    i = np.arange(1, N + 1)[None, :]
    k = np.arange(1, N + 1)[:, None]
    if replace:
        return (i / N) ** k - ((i - 1) / N) ** k
    with np.errstate(invalid="ignore"):
        logw = (special.gammaln(i) - special.gammaln(k) - special.gammaln(i - k + 1)
                - (special.gammaln(N + 1) - special.gammaln(k + 1) - special.gammaln(N - k + 1)))
    w = np.where(i >= k, np.exp(np.where(i >= k, logw, 0.0)), 0.0)
    return w / w.sum(axis=1, keepdims=True)  # exact rows sum to 1; removes the log-gamma rounding


def expected_best(values: Sequence[float], higher_is_better: bool, replace: bool = False) -> np.ndarray:
    """Exact E[best of k configurations drawn at random from `values`], for k = 1..N (closed form
    over order statistics, `_budget_weights`). best = max if higher_is_better else min."""
    x = np.sort(np.asarray(values, dtype=float))
    if not higher_is_better:
        x = -x[::-1]  # min of x = -max of -x
    e = _budget_weights(len(x), replace) @ x
    return e if higher_is_better else -e


def budget_curve(values: Sequence[float], higher_is_better: bool, n_boot: int = 1000, seed: int = 0,
                 level: float = LEVEL, replace: bool = False, nan_policy: str = "drop") -> pd.DataFrame:
    """Lucic et al. (2018): the expected best metric reachable with a budget of k random
    configurations, k = 1..N, where the N `values` are the results of N random-search trials.

    `expected_best` is exact: E[best of k drawn without replacement from the N values] (or with
    replacement if `replace`), from the order statistics — no Monte Carlo. k = 1 gives the mean,
    k = N (without replacement) the best value. The band (`lo`, `hi`) is a percentile bootstrap
    over the N values (resampled with replacement, the curve recomputed exactly on each resample):
    the uncertainty due to having observed only N configurations.
    NaN values (diverged trials have NaN `final.*`) are dropped (`nan_policy="drop"`, counted in
    `n_dropped`) — the curve is then conditional on not diverging, so report `success_rate` next to
    it — or `nan_policy="raise"`. With N < 2 the band is NaN (`reason`).
    Columns: `k`, `expected_best`, `lo`, `hi`, `n`, `n_dropped`, `reason`.
    """
    v = np.asarray(values, dtype=float)
    bad = ~np.isfinite(v)
    if bad.any():
        if nan_policy == "raise":
            raise ValueError(f"budget_curve: {int(bad.sum())} non-finite value(s)")
        if nan_policy != "drop":
            raise ValueError(f"nan_policy: 'drop' or 'raise', not {nan_policy!r}")
    v = v[~bad]
    N = len(v)
    cols = ["k", "expected_best", "lo", "hi", "n", "n_dropped", "reason"]
    if N == 0:
        return pd.DataFrame([], columns=cols)
    e = expected_best(v, higher_is_better, replace)
    reason = None
    if N < 2:
        lo = hi = np.full(N, np.nan)
        reason = "fewer than 2 values: no band"
    else:
        rng = np.random.default_rng(seed)
        boot = np.sort(v[rng.integers(0, N, size=(n_boot, N))], axis=1)
        W = _budget_weights(N, replace)
        curves = (boot @ W.T) if higher_is_better else -((-boot[:, ::-1]) @ W.T)
        lo, hi = _percentile_ci(curves, level)
        if all(_degenerate(a, b, c) for a, b, c in zip(lo, hi, e)):
            reason = DEGENERATE
    return pd.DataFrame({"k": np.arange(1, N + 1), "expected_best": e, "lo": lo, "hi": hi, "n": N,
                         "n_dropped": int(bad.sum()), "reason": reason}, columns=cols)


# ----------------------------------------------------------------------------- 5. paired difference


@dataclass
class PairedResult:
    """`summary`: one row per group (`by`) and treatment arm. `pairs`: one row per matched pair
    (by..., `arm`, `pair_key`, `treated_id`, `control_id`, `treated`, `control`, `diff`, `used`)."""
    summary: pd.DataFrame
    pairs: pd.DataFrame


def _spec_mask(trials: pd.DataFrame, spec) -> pd.Series:
    """Row mask from a treatment/control spec: a column name (the value is not null), a
    (column, value) pair (equal to value; value may be a callable(series) -> mask), or a callable
    (trials) -> mask."""
    if callable(spec):
        return pd.Series(spec(trials), index=trials.index).fillna(False).astype(bool)
    if isinstance(spec, str):
        _check_columns(trials, [spec], "treatment/control")
        return trials[spec].notna()
    column, value = spec
    _check_columns(trials, [column], "treatment/control")
    if callable(value):
        return pd.Series(value(trials[column]), index=trials.index).fillna(False).astype(bool)
    if _is_null(value):
        return trials[column].isna()
    return (trials[column] == value).fillna(False).astype(bool)


def _default_treatment_columns(trials: pd.DataFrame, spec) -> list[str]:
    """The columns that differ by design between treated and control: for a sub-model field
    (`variant.lens.schedule`, three or more parts) every column of that sub-model (`variant.lens.*`);
    for any other column just that column."""
    if callable(spec):
        raise TypeError("paired_difference: a callable treatment needs treatment_columns= (or pair_on=)")
    column = spec if isinstance(spec, str) else spec[0]
    parts = column.split(".")
    if len(parts) >= 3:
        prefix = ".".join(parts[:-1]) + "."
        return [c for c in trials.columns if c.startswith(prefix)]
    return [column]


def _rank_biserial(d: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation (Kerby 2014): (R+ - R-) / (R+ + R-), ranks of |d|
    (ties averaged) over the non-zero differences; in [-1, 1]."""
    d = d[d != 0]
    if len(d) == 0:
        return 0.0
    r = stats.rankdata(np.abs(d))
    return float((r[d > 0].sum() - r[d < 0].sum()) / r.sum())


def paired_difference(trials: pd.DataFrame, metric: str,
                      treatment: str | tuple | Callable = "variant.lens.schedule",
                      control: str | tuple | Callable | None = None,
                      pair_on: Sequence[str] | None = None, treatment_columns: Sequence[str] | None = None,
                      by: str | Sequence[str] = ("variant.objective", "dataset.name"),
                      status: str | Sequence[str] | None = ("ok",), n_boot: int = 2000, seed: int = 0,
                      level: float = LEVEL, higher_is_better: bool | None = None) -> PairedResult:
    """Treated vs control trials that share their initial weights, compared pair by pair.

    Which rows are treated: `treatment` — a column name (treated where it is not null; the default
    `"variant.lens.schedule"` = trials with a lens), a `(column, value)` pair (`value` may be a
    callable(series) -> mask), or a callable(trials) -> mask. Control: `control` in the same forms,
    default = every row that is not treated (e.g. the trials without a lens).

    Pairing: a treated and a control trial form a pair when they agree on every `pair_on` column.
    Default `pair_on` = every config column (`config_columns`, which includes `seed`) except the
    `treatment_columns` — by default the treatment column's sub-model (`variant.lens.*` for
    `variant.lens.schedule`), see `_default_treatment_columns`. Nulls match nulls. `by` columns
    are always added to the pairing key. So "same seed and every other config field equal" is the
    default, and the same seed means the same initial G and D (README: lens vs no-lens is paired).

    Treatment arms: treated trials that differ in their treatment columns (say K = 500 and
    K = 2000) are separate arms, each paired with the same controls and summarised separately (one
    summary row per `by` group and arm; `arm` labels the arm's treatment-column values). A key
    matching more than one control, or more than one treated trial of the same arm, is ambiguous and
    raises ValueError (add the distinguishing column to `by`).

    A pair is used when both trials have a status in `status` and a finite metric; the others are
    counted in `n_dropped` (a diverged trial has no `final.*` metric: see `success_rate`).

    Summary columns: by..., `arm`, `n_pairs` (matched), `n` (used), `n_dropped`, `n_treated_unpaired`,
    `n_control_unpaired`, `higher_is_better`, `mean_diff` (treated - control) with percentile
    bootstrap `lo`, `hi` over pairs, `median_diff`, `sd_diff` (ddof=1), `frac_better`, `frac_worse`
    (share of pairs where the treated trial is strictly better / worse in the metric's direction),
    `wilcoxon_stat`, `p_value` (two-sided Wilcoxon signed-rank, scipy's zero_method="wilcox": zero
    differences are dropped; all differences zero -> p = 1, stated in `reason`), `n_nonzero`,
    `rank_biserial` (matched-pairs rank-biserial correlation of the differences, positive = treated
    larger; 0 when all differences are zero), `d_z` (mean_diff / sd_diff; ±inf for a constant
    non-zero shift, NaN for all-zero differences), `reason`. Fewer than 2 used pairs: NaN interval
    and p-value, with `reason`.
    """
    by = _as_tuple(by)
    col = metric_column(trials, metric)
    hib = is_higher_better(col, higher_is_better)
    _check_columns(trials, by, "paired_difference by")
    if not trials.index.is_unique:
        trials = trials.reset_index(drop=True)
    treated_mask = _spec_mask(trials, treatment)
    control_mask = ~treated_mask if control is None else (_spec_mask(trials, control) & ~treated_mask)
    tcols = list(treatment_columns) if treatment_columns is not None else _default_treatment_columns(trials, treatment)
    _check_columns(trials, tcols, "treatment_columns")
    if pair_on is None:
        pair_on = [c for c in config_columns(trials) if c not in tcols]
    pair_on = list(dict.fromkeys([*by, *pair_on]))
    _check_columns(trials, pair_on, "pair_on")
    if set(pair_on) & set(tcols):
        clash = sorted(set(pair_on) & set(tcols))
        raise ValueError(f"paired_difference: pair_on/by include treatment column(s) {clash}")

    def keys(df: pd.DataFrame, cols: list[str]) -> pd.Series:
        return pd.Series([tuple(_canon(v) for v in row) for row in df[cols].itertuples(index=False, name=None)],
                         index=df.index, dtype=object)

    t, c = trials[treated_mask], trials[control_mask]
    tkey, ckey = keys(t, pair_on), keys(c, pair_on)
    arm_of = pd.Series([", ".join(f"{n.rsplit('.', 1)[-1]}={_show(v)}" for n, v in zip(tcols, row) if not _is_null(v))
                        or "(all null)" for row in t[tcols].itertuples(index=False, name=None)],
                       index=t.index, dtype=object)
    dup_c = ckey[ckey.duplicated()]
    if len(dup_c):
        raise ValueError(f"paired_difference: {len(dup_c)} control key(s) match several control trials, e.g. "
                         f"{dict(zip(pair_on, dup_c.iloc[0]))}: add the distinguishing column to by= or pair_on=")
    dup_t = pd.Series(list(zip(arm_of, tkey)), index=t.index).duplicated()
    if dup_t.any():
        raise ValueError(f"paired_difference: several treated trials of arm {arm_of[dup_t].iloc[0]!r} share the key "
                         f"{dict(zip(pair_on, tkey[dup_t].iloc[0]))}: add the distinguishing column to by= or pair_on=")
    control_index = dict(zip(ckey, c.index))
    statuses = None if status is None else _as_tuple(status)
    value = pd.Series(_values(trials, col), index=trials.index)
    ident = trials["trial_id"] if "trial_id" in trials.columns else pd.Series(trials.index, index=trials.index)
    pair_rows = []
    for ti in t.index:
        ci = control_index.get(tkey[ti])
        if ci is None:
            continue
        x, y = value[ti], value[ci]
        ok_status = statuses is None or (trials.at[ti, "status"] in statuses and trials.at[ci, "status"] in statuses)
        pair_rows.append({**{k: trials.at[ti, k] for k in by}, "arm": arm_of[ti], "pair_key": tkey[ti],
                          "treated_id": ident[ti], "control_id": ident[ci], "treated": x, "control": y,
                          "diff": x - y, "used": bool(ok_status and np.isfinite(x) and np.isfinite(y)),
                          "_t": ti, "_c": ci})
    pairs = pd.DataFrame(pair_rows, columns=[*by, "arm", "pair_key", "treated_id", "control_id", "treated", "control",
                                             "diff", "used", "_t", "_c"])
    t_group = keys(t, list(by)) if by else pd.Series([()] * len(t), index=t.index, dtype=object)
    c_group = keys(c, list(by)) if by else pd.Series([()] * len(c), index=c.index, dtype=object)
    rows = []
    for gkey, arm in dict.fromkeys(zip(t_group, arm_of)):
        in_group = np.array([k == gkey for k in t_group], dtype=bool)
        members = t.index[in_group & (arm_of == arm).to_numpy(dtype=bool)]
        n_controls = sum(k == gkey for k in c_group)
        psub = pairs[pairs["_t"].isin(members)]
        first = trials.loc[members[0]]
        d = psub.loc[psub["used"], "diff"].to_numpy(dtype=float)
        row = {**{b_: first[b_] for b_ in by}, "arm": arm, "n_pairs": len(psub), "n": len(d),
               "n_dropped": int((~psub["used"]).sum()), "n_treated_unpaired": len(members) - len(psub),
               "n_control_unpaired": n_controls - psub["_c"].nunique(), "higher_is_better": hib,
               **_paired_stats(d, hib, n_boot, _rng(seed, (*gkey, arm)), level)}
        if row["n_dropped"]:
            row["reason"] = _join(f"{row['n_dropped']} pair(s) dropped (status not in {status} or metric not finite)",
                                  row["reason"])
        rows.append(row)
    summary = pd.DataFrame(rows, columns=[*by, "arm", "n_pairs", "n", "n_dropped", "n_treated_unpaired",
                                          "n_control_unpaired", "higher_is_better", "mean_diff", "lo", "hi",
                                          "median_diff", "sd_diff", "frac_better", "frac_worse", "wilcoxon_stat",
                                          "p_value", "n_nonzero", "rank_biserial", "d_z", "reason"])
    return PairedResult(summary=summary, pairs=pairs.drop(columns=["_t", "_c"]))


def _paired_stats(d: np.ndarray, hib: bool, n_boot: int, rng: np.random.Generator, level: float) -> dict:
    n = len(d)
    nan = math.nan
    out = {"mean_diff": d.mean() if n else nan, "lo": nan, "hi": nan, "median_diff": np.median(d) if n else nan,
           "sd_diff": d.std(ddof=1) if n > 1 else nan,
           "frac_better": ((d > 0) if hib else (d < 0)).mean() if n else nan,
           "frac_worse": ((d < 0) if hib else (d > 0)).mean() if n else nan,
           "wilcoxon_stat": nan, "p_value": nan, "n_nonzero": int((d != 0).sum()),
           "rank_biserial": _rank_biserial(d) if n else nan, "d_z": nan, "reason": None}
    if n < 2:
        out["reason"] = "no usable pairs" if n == 0 else "fewer than 2 pairs: no interval, no test"
        return out
    boot = d[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    lo, hi = _percentile_ci(boot, level)
    out["lo"], out["hi"] = float(lo), float(hi)
    reasons = [DEGENERATE if _degenerate(lo, hi, out["mean_diff"]) else None]
    sd = out["sd_diff"]
    if sd > 0:
        out["d_z"] = out["mean_diff"] / sd
    elif out["mean_diff"] != 0:
        out["d_z"] = math.copysign(math.inf, out["mean_diff"])
    if out["n_nonzero"] == 0:
        out["wilcoxon_stat"], out["p_value"] = 0.0, 1.0
        reasons.append("all differences are zero: p = 1 by convention")
    else:
        w = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        out["wilcoxon_stat"], out["p_value"] = float(w.statistic), float(w.pvalue)
        if out["n_nonzero"] < n:
            reasons.append(f"{n - out['n_nonzero']} zero difference(s) dropped by the Wilcoxon test")
    out["reason"] = _join(*reasons)
    return out


# ----------------------------------------------------------------------------- 6. spread comparison


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
    elif np.ptp(xa) == 0 and np.ptp(xb) == 0:
        reasons.append("neither side varies: no Brown-Forsythe test")
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            res = stats.levene(xa, xb, center="median")
        if np.isfinite(res.statistic):
            stat, p = float(res.statistic), float(res.pvalue)
        else:  # e.g. 2 values a side: the absolute deviations from the median are equal within each side
            reasons.append("Brown-Forsythe undefined: no variation of the absolute deviations within a side")
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


# ----------------------------------------------------------------------------- 7. Holm


def holm(pvalues: Sequence[float]) -> np.ndarray | pd.Series:
    """Holm-Bonferroni adjusted p-values, in the input order (a Series keeps its index).
    Sorted ascending p_(1..m): adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)). NaN p-values are
    not counted in m and stay NaN. Reject H_i at family-wise level alpha iff adj_i <= alpha."""
    is_series = isinstance(pvalues, pd.Series)
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m:
        order = ok[np.argsort(p[ok], kind="stable")]
        adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
        out[order] = np.maximum.accumulate(adj)
    return pd.Series(out, index=pvalues.index, name=pvalues.name) if is_series else out
