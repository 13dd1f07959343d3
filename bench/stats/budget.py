"""Lucic et al. (2018)'s budget curve: the expected best metric of k configurations drawn at random
from a random search, exact over the order statistics (`expected_best`), with a bootstrap band
(`budget_curve`); a failed configuration is an outcome, the worst one, never dropped.

The band's bootstrap is written out: the statistic is the whole curve, and every resample's curve is
one product with the weights computed once (`_budget_weights`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special

from bench.stats.common import DEGENERATE, LEVEL, _degenerate, _percentile_ci


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
                 level: float = LEVEL, replace: bool = False, nan_policy: str = "fail",
                 failure_value: float | None = None) -> pd.DataFrame:
    """Lucic et al. (2018): the expected best metric reachable with a budget of k random
    configurations, k = 1..N, where the N `values` are the results of N random-search trials.

    `expected_best` is exact: E[best of k drawn without replacement from the N values] (or with
    replacement if `replace`), from the order statistics — no Monte Carlo. k = 1 gives the mean,
    k = N (without replacement) the best value. The band (`lo`, `hi`) is a percentile bootstrap
    over the N values (resampled with replacement, the curve recomputed exactly on each resample):
    the uncertainty due to having observed only N configurations.

    Failures are outcomes (`nan_policy="fail"`, the default): a non-finite value (a diverged or failed trial
    has NaN `final.*`) is a failed configuration, worse than every finished one. It enters the curve at
    `failure_value` (default: the worst finite value among `values`; pass the worst value of the whole
    comparison, or the metric's worst bound, so that variants are judged alike), and `p_all_failed` is the
    probability that all k draws failed (C(f, k) / C(N, k) without replacement, (f / N)^k with). So a variant
    that often diverges pays for it at small budgets instead of looking as good as a stable one.
    `nan_policy="drop"` leaves them out (the curve is then conditional on not failing: report
    `success_rate` next to it), `"raise"` refuses them. With N < 2 the band is NaN (`reason`).
    Columns: `k`, `expected_best`, `lo`, `hi`, `p_all_failed`, `n`, `n_failed`, `failure_value`, `reason`.
    """
    v = np.asarray(values, dtype=float)
    bad = ~np.isfinite(v)
    if nan_policy not in ("fail", "drop", "raise"):
        raise ValueError(f"nan_policy: 'fail', 'drop' or 'raise', not {nan_policy!r}")
    if bad.any() and nan_policy == "raise":
        raise ValueError(f"budget_curve: {int(bad.sum())} non-finite value(s)")
    cols = ["k", "expected_best", "lo", "hi", "p_all_failed", "n", "n_failed", "failure_value", "reason"]
    reason = None
    fail = np.nan
    if nan_policy == "drop" or not bad.any():
        v = v[~bad]
    else:
        finite = v[~bad]
        fail = failure_value if failure_value is not None else \
            ((finite.min() if higher_is_better else finite.max()) if len(finite) else np.nan)
        if not np.isfinite(fail):
            return pd.DataFrame([], columns=cols)  # every configuration failed and no value stands for a failure
        worse = (finite < fail) if higher_is_better else (finite > fail)
        if worse.any():
            raise ValueError("budget_curve: failure_value must be no better than every finished value")
        v = np.where(bad, fail, v)
    N = len(v)
    if N == 0:
        return pd.DataFrame([], columns=cols)
    n_failed = int(bad.sum()) if nan_policy == "fail" else 0
    e = expected_best(v, higher_is_better, replace)
    k = np.arange(1, N + 1)
    if replace:
        p_fail = (n_failed / N) ** k
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            p_fail = np.where(k <= n_failed, np.exp(special.gammaln(n_failed + 1) - special.gammaln(n_failed - k + 1)
                                                      - special.gammaln(N + 1) + special.gammaln(N - k + 1)), 0.0)
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
    if n_failed:
        reason = "; ".join(x for x in (reason, f"{n_failed} failed configuration(s) counted at {fail:.4g}") if x)
    return pd.DataFrame({"k": k, "expected_best": e, "lo": lo, "hi": hi, "p_all_failed": p_fail, "n": N,
                         "n_failed": n_failed, "failure_value": fail, "reason": reason}, columns=cols)


def overtaking_budget(a: pd.DataFrame, b: pd.DataFrame, higher_is_better: bool) -> int | None:
    """The smallest budget k from which variant a's expected best (`budget_curve`'s `expected_best`) is strictly
    better than variant b's at every larger k both curves reach; None when a never stays ahead. (Point estimates:
    read the bands beside it.)"""
    n = min(len(a), len(b))
    if n == 0:
        return None
    ea, eb = a["expected_best"].to_numpy()[:n], b["expected_best"].to_numpy()[:n]
    ahead = ea > eb if higher_is_better else ea < eb
    if not ahead[-1]:
        return None
    behind = np.flatnonzero(~ahead)
    return int(behind[-1] + 2) if len(behind) else 1  # k is 1-based
