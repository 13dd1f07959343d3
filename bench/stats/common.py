"""What every statistic in `bench.stats` shares: metric and config columns, grouping, the trial
filter, per-group generators, the degenerate-interval check and the `reason` texts. The conventions
are in the package docstring (`bench/stats/__init__.py`)."""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bench.metrics import INFO

LEVEL = 0.95
DEFAULT_BY = ("variant", "dataset.name")
METRIC_PREFIXES = ("final.", "best.")
NULL = "<null>"  # how a missing config value reads in pairing keys and arm labels
DEGENERATE = "degenerate: every bootstrap resample gives the same value (no variation in the data)"


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


def _rng(seed: int, key: Any = ()) -> np.random.Generator:
    """A generator seeded from `seed` and a stable (process-independent) hash of a group key."""
    h = zlib.crc32(repr(tuple(_canon(k) for k in _as_key(key))).encode())
    return np.random.default_rng(np.random.SeedSequence([int(seed), h]))


def _as_key(key: Any) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def _values(df: pd.DataFrame, col: str) -> np.ndarray:
    return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


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


def t_interval(values, level: float = LEVEL) -> tuple[float, float]:
    """Student t interval of the mean: mean -+ t(level, n - 1) * sd / sqrt(n); NaN below 2 values.
    Why not a percentile bootstrap: with the few seeds of a GAN study a bootstrap's resamples repeat
    seeds and its interval is too narrow; simulated with normal values its nominal 95 % covers the mean
    51 % of the time with 2 seeds, 73 % with 3, 83 % with 5, 92 % with 12; this one 94-96 %
    (tests/test_stats.py). Normal values are the assumption; with 12+ seeds the mean is close to normal
    anyway."""
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n < 2:
        return math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return float(v.mean()) - half, float(v.mean()) + half


def bounded_t_interval(values, lo: float = -math.inf, hi: float = math.inf, level: float = LEVEL) -> tuple[float, float]:
    """`t_interval` clipped to the metric's range [lo, hi] (`bench.metrics.bounds`): a proportion's interval
    never reaches below 0 nor a mode count above the dataset's modes. The true mean lies in the range, so
    clipping keeps every interval that held it: coverage is t's, study by study (simulated, 3 / 5 seeds,
    tests/test_scales.py: a recall near 0.01, 94.9 / 93.8 %, where t's interval went below 0 in 76 / 32 % of
    studies; a precision near 0.98, 94.9 / 94.8 %). A metric that often sits on its bound (every seed covers
    all 8 modes) gets zero-width intervals from t and so from this (7 or 8 modes: 62 / 83 %). An interval
    wholly outside the range (an estimate can leave it: an unbiased energy distance below 0) shrinks to the
    nearest bound. NaN below 2 values. Differences (`paired_difference`) are signed and not clipped."""
    a, b = t_interval(values, level)
    return (float(min(max(a, lo), hi)), float(max(min(b, hi), lo))) if not math.isnan(a) else (a, b)


def _degenerate(lo: float, hi: float, scale: float = 1.0) -> bool:
    return bool(np.isfinite(lo) and np.isfinite(hi) and abs(hi - lo) <= 1e-9 * max(1.0, abs(scale)))


def _join(*reasons: str | None) -> str | None:
    r = [x for x in reasons if x]
    return "; ".join(dict.fromkeys(r)) if r else None

