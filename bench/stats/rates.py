"""How often training succeeds: `success_rate` per group, with Wilson intervals (`wilson_interval`); the difference of
two rates with Newcombe's interval (`newcombe_interval`)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from bench.stats.common import DEFAULT_BY, LEVEL, _as_tuple, _check_columns, _groups, _join, _values


_OPS: dict[str, Callable] = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
                             "==": operator.eq, "!=": operator.ne}


def wilson_interval(successes: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927), from scipy's
    `binomtest(...).proportion_ci(method="wilson")`: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n).
    Unlike the normal approximation it stays inside [0, 1] and is not zero-width at 0 or n successes
    (0 successes give a lower bound of exactly 0, n an upper bound of exactly 1).
    NaN bounds when n < 2 (see the package doc)."""
    if n < 2:
        return math.nan, math.nan
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def newcombe_interval(s1: int, n1: int, s2: int, n2: int, level: float = LEVEL) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 - p2 (method 10 of Newcombe 1998), from the two Wilson intervals.
    Exact coverage over a grid of true rates at 12 vs 12 and 12 vs 6 trials: mean >= 94.5 %, about 90 % at worst near
    the corners (tests/test_replicate.py)."""
    p1, p2 = s1 / n1, s2 / n2
    l1, u1 = wilson_interval(s1, n1, level)
    l2, u2 = wilson_interval(s2, n2, level)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


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


def tolerance_success(values: dict, higher_is_better: bool, tolerance: float = 0.1, level: float = LEVEL) -> pd.DataFrame:
    """Lucic et al.'s question "how often does a variant reach good quality", per variant: the share of its sampled
    points whose final value is within `tolerance` (a fraction) of the best value ANY variant reached, |v - best| <=
    tolerance * |best| on the good side, with its Wilson interval. `values`: {variant: final values of its points};
    a non-finite value (a diverged or failed point) is a failure, never left out.

    The interval is conditional on the threshold: it is for the share of the variant's configurations that reach
    the threshold this study observed (the best value reached here, less the tolerance), treated as fixed. It is not
    an interval for the share within `tolerance` of the best the space allows: the observed best falls short of
    that, so the threshold is easier. Coverage (tests/test_budget_coverage.py): with a fixed threshold, Wilson's
    binomial coverage over n = 10..100 is 89.8-98.2 % (mean 95.7 / 95.3 / 95.0 % at p = 0.05 / 0.2 / 0.5); with the
    threshold estimated (two variants, uniform values, tolerance p) 94.7-95.7 % of the conditional share, but only
    77 / 88 / 95 % (n = 10 / 30 / 100) of the share within 5 % of the space's best. A variant that usually holds
    the best counts the point that set the threshold, a success by construction: when its share is small (2-12 %,
    lognormal FIDs within 10 %) its interval covers 87-88 %, a weaker variant's 91-92 % (leaving that one point out
    of the holder's count would give 95-97 %).
    Columns: `variant`, `n`, `successes`, `rate`, `lo`, `hi`, `failed`, `best`, `threshold`."""
    finite = np.concatenate([np.asarray(v, dtype=float) for v in values.values()]) if values else np.array([])
    finite = finite[np.isfinite(finite)]
    best = (finite.max() if higher_is_better else finite.min()) if len(finite) else np.nan
    threshold = best - tolerance * abs(best) if higher_is_better else best + tolerance * abs(best)
    rows = []
    for name, v in values.items():
        v = np.asarray(v, dtype=float)
        ok = np.isfinite(v) & ((v >= threshold) if higher_is_better else (v <= threshold))
        lo, hi = wilson_interval(int(ok.sum()), len(v), level)
        rows.append({"variant": name, "n": len(v), "successes": int(ok.sum()), "rate": ok.mean() if len(v) else np.nan,
                     "lo": lo, "hi": hi, "failed": int((~np.isfinite(v)).sum()), "best": best, "threshold": threshold})
    return pd.DataFrame(rows, columns=["variant", "n", "successes", "rate", "lo", "hi", "failed", "best", "threshold"])
