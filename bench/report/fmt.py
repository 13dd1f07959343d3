"""How the report writes numbers, intervals, p-values, config values and durations: one place, so a
table and a headline sentence print the same quantity the same way."""

from __future__ import annotations

import math

import numpy as np

from bench.stats.common import t_interval

N_BOOT = 2000  # resamples of the `bench.stats` bootstraps the report calls


def fmt(x) -> str:
    """3 significant digits; NaN reads 'n/a' (a missing value, not a number); a non-number is shown as it is."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3g}"


def fmt_p(p) -> str:
    p = float(p)
    if math.isnan(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def p_is(p) -> str:
    """'p = 0.25' / 'p < 0.001' / 'p = n/a'."""
    t = fmt_p(p)
    return f"p {t}" if t.startswith("<") else f"p = {t}"


def interval(est, lo, hi, why: str = "") -> str:
    """'est [lo, hi]', or 'est (no interval: why)' when the bounds are NaN — never a zero-width band made up."""
    if np.isfinite(lo) and hi == np.inf:  # a bound that the data cannot give (a ratio whose denominator may be 0)
        return f"{fmt(est)} [{fmt(lo)}, no upper bound]"
    if lo == -np.inf and np.isfinite(hi):  # one-sided (e.g. a budget band past N // 4, lower is better)
        return f"{fmt(est)} [no lower bound, {fmt(hi)}]"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{fmt(est)} (no interval: {why})" if why else f"{fmt(est)} (no interval)"
    return f"{fmt(est)} [{fmt(lo)}, {fmt(hi)}]"


def mean_ci(values, lo: float = -math.inf, hi: float = math.inf) -> str:
    """Mean over seeds with its 95 % Student t interval (bench.stats.common.t_interval: a percentile
    bootstrap over a few seeds under-covers), kept inside the metric's range [lo, hi] (bench.metrics.bounds:
    a proportion's interval never leaves [0, 1], a count of modes never [0, modes]; the true mean lies in the
    range, so intersecting costs no coverage); non-finite values are left out."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return "no value"
    if len(v) == 1:
        return f"{fmt(v[0])}, no CI (n=1)"
    if np.all(v == v[0]):
        return f"{fmt(v[0])} (all {len(v)} equal)"
    a, b = t_interval(v)
    return interval(v.mean(), max(a, lo), min(b, hi))


def show_value(v) -> str:
    """A config value as a reader writes it: 1000.0 -> 1000, 0.001 -> 0.001, None / NaN -> null, tuples in ()."""
    if v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)):
        return "null"
    if isinstance(v, tuple):
        return "(" + ", ".join(show_value(x) for x in v) + ")"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    return str(v)


def hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
