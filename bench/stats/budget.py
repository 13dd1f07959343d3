"""Lucic et al. (2018)'s budget curve: the expected best metric of k configurations drawn at random
from a random search, exact over the order statistics (`expected_best`), with a band whose coverage is simulated
(`budget_curve`); a failed configuration is an outcome, the worst one, never dropped.

The band is written out and vectorised over simulated studies (`_band`), so that tests/test_budget_coverage.py
measures the coverage of exactly the numbers `budget_curve` reports. A resample is a vector of multiplicities
of the sorted values (`_resample_counts`); its curve and its jackknife standard error at one k are prefix and
suffix sums over the cumulative weights (`_curve_and_se`), O(N) per resample and k."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special, stats

from bench.stats.common import DEGENERATE, LEVEL, _degenerate, _percentile_ci

_COLUMNS = ["k", "expected_best", "lo", "hi", "p_all_failed", "n", "n_failed", "failure_value", "reason"]


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


def _cumulative(N: int, replace: bool) -> np.ndarray:
    """G[k-1, m] = P(the best of k draws is among the m smallest of N values), m = 0..N."""
    return np.concatenate([np.zeros((N, 1)), np.cumsum(_budget_weights(N, replace), axis=1)], axis=1)


def _resample_counts(rng: np.random.Generator, S: int, B: int, N: int) -> np.ndarray:
    """(S, B, N) multiplicities of N values in B bootstrap resamples (N draws with replacement) per study."""
    idx = rng.integers(0, N, size=(S * B, N)) + (np.arange(S * B) * N)[:, None]
    return np.bincount(idx.ravel(), minlength=S * B * N).reshape(S, B, N)


def _positions(c: np.ndarray) -> tuple[np.ndarray, ...]:
    """For multiplicities `c` (..., N): the cumulative counts C up to and below each value, and both less one
    (floored at 0), the indices `_curve_and_se` reads the cumulative weights at; the same for every k."""
    C = np.cumsum(c, axis=-1)
    Cp = C - c
    return C, Cp, np.maximum(C - 1, 0), np.maximum(Cp - 1, 0)


def _curve_and_se(x: np.ndarray, c: np.ndarray, pos: tuple, g: np.ndarray, gp: np.ndarray) -> tuple[np.ndarray, ...]:
    """The curve at one k and its jackknife standard error, for samples given as multiplicities `c` (S, B, N) of
    the ascending values `x` (S, 1, N), `pos` = `_positions(c)`; `g`, `gp`: `_cumulative` at this k for N and N - 1
    values (gp padded to N + 1). The best of k is the i-th value with probability g[C_i] - g[C_(i-1)]. Leaving out
    one copy of the j-th value lowers the cumulative counts from j on by one, so every leave-one-out value is a sum
    over the values below j, j's own term and a sum over those above: prefix and suffix sums, all j at once."""
    n = x.shape[-1]
    C, Cp, Cm, Cpm = pos
    theta = np.sum(x * (g[C] - g[Cp]), axis=-1)
    above = x * (gp[Cm] - gp[Cpm])  # value i's term when the left-out copy is below it
    step = x * (gp[C] - gp[Cp]) - above  # ... and the change when it is above it instead
    # sum_(i<j) below_i + own_j + sum_(i>j) above_i, with one cumulative sum
    loo = np.cumsum(step, axis=-1) - step + x * (gp[Cm] - gp[Cp]) - above + above.sum(axis=-1, keepdims=True)
    mean = np.sum(c * loo, axis=-1, keepdims=True) / n  # a value absent from the resample (c = 0) has no say
    return theta, np.sqrt((n - 1) / n * np.sum(c * (loo - mean) ** 2, axis=-1))


def _band(x: np.ndarray, ks: Sequence[int], n_boot: int, rng: np.random.Generator, level: float = LEVEL,
          replace: bool = False) -> np.ndarray:
    """`budget_curve`'s two-sided band, higher is better, for S studies at once: `x` (S, N) ascending, every k in
    `ks` at most N - 1. k = 1 (the mean): Student t with the jackknife standard error (= s / sqrt(N)). k >= 2: the
    hull of the studentized bootstrap, t* = (curve* - curve) / se* over `n_boot` resamples (se: jackknife),
    curve - t*_(1-a) se .. curve - t*_(a) se, and the percentile bootstrap's curve*_(a) .. curve*_(1-a). A resample
    without spread (se* = 0) gives t* = +-inf (0 if its curve is the estimate), so a band may be unbounded; where
    the sample's own se is 0 (more than half the values tie at the best) the studentized part is the estimate.
    Returns (4, S, K): curve, lo, hi, se."""
    S, N = x.shape
    G, Gp = _cumulative(N, replace), _cumulative(N - 1, replace)
    ones = np.ones((S, 1, N), dtype=np.int64)
    own = _positions(ones)
    counts = _resample_counts(rng, S, n_boot, N) if any(k > 1 for k in ks) else None
    pos = _positions(counts) if counts is not None else None
    xb = x[:, None, :]
    tol = 1e-12 * np.maximum(np.ptp(x, axis=1), 1e-300)[:, None]  # rounding, relative to the data's range
    out = np.full((4, S, len(ks)), np.nan)
    for j, k in enumerate(ks):
        g, gp = G[k - 1], np.r_[Gp[k - 1], 1.0]
        est, se = (v[:, 0] for v in _curve_and_se(xb, ones, own, g, gp))
        if k == 1:
            t_hi = stats.t.ppf(0.5 + level / 2, N - 1)
            t_lo = -t_hi
        else:
            theta, se_b = _curve_and_se(xb, counts, pos, g, gp)
            d = theta - est[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.where(se_b > tol, d / se_b, np.where(np.abs(d) > tol, np.sign(d) * np.inf, 0.0))
            t_lo, t_hi = _percentile_ci(t.T, level)
            p_lo, p_hi = _percentile_ci(theta.T, level)
        zero = se <= tol[:, 0]
        with np.errstate(invalid="ignore"):
            lo, hi = np.where(zero, est, est - t_hi * se), np.where(zero, est, est - t_lo * se)
        if k > 1:  # the hull: each covers where the other falls short (budget_curve)
            lo, hi = np.minimum(lo, p_lo), np.maximum(hi, p_hi)
        out[:, :, j] = est, lo, hi, se
    return out


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
                 failure_value: float | None = None, bounds: tuple[float, float] = (-np.inf, np.inf)) -> pd.DataFrame:
    """Lucic et al. (2018): the expected best metric reachable with a budget of k random
    configurations, k = 1..N, where the N `values` are the results of N random-search trials.

    `expected_best` is exact: E[best of k drawn without replacement from the N values] (or with
    replacement if `replace`), from the order statistics — no Monte Carlo. k = 1 gives the mean,
    k = N (without replacement) the best value. Without replacement it is the U-statistic of the best of k:
    an unbiased estimate of what a reader wants, E[best of k configurations drawn from the whole space].

    The band (`lo`, `hi`) is a 95 % interval for that, for k <= max(1, N // 4): at k = 1 (the mean) the Student t
    interval, as every mean in this package; from k = 2 the hull of a studentized bootstrap (t* = (curve* - curve)
    / se*, se the jackknife standard error) and the percentile bootstrap, over `n_boot` resamples of the N values
    (`_band`). Beyond N // 4 it is one-sided: the bound on the good side stays at k = N // 4's (more draws never do
    worse) and the other is +-inf (`reason` says so). The best of k draws for k near N is the sample's extreme,
    which depends on a tail the data have barely seen; no resample reaches beyond the sample's best.
    Simulated coverage of E[best of k from the space] (tests/test_budget_coverage.py; 2000 random searches of
    N = 10 / 30 / 100 points, 1000 resamples; a normal FID, a right-skewed lognormal FID, modes covered of 25 with
    30 % of points collapsed at 0, a lognormal FID with 20 % of points failed and counted at the worst value):
    k = 1: 94.6-95.6 % (normal), 90.5 / 92.5 / 93.4 % (lognormal), 94.5-95.0 % (modes), 88.6 / 93.8 / 94.8 %
    (failures); k = N // 4: 94.8-95.1 %, 95.2-95.8 %, 92.2 / 93.9 / 89.1 %, 92.4 / 96.0 / 95.4 %; the one-sided
    bound at k = N // 2 and N: >= 99.9 % everywhere. Its median width is 1.0-1.5x (mostly ~1.25x) the 3.92
    standard errors of an exact interval. The percentile bootstrap alone (this band before) covered 79-91 % at
    k = N // 4, 66-83 % at N // 2 and 23-52 % at N: its resamples repeat values, so their curves run low and
    narrow. Weak spots: N = 10 with a mass of failures (a sample with none of them misses); modes at N = 100,
    k = 25, 89.1 %: when no point reached the top counts (24 or 25 of 25, 2 % of points) no band reaches them; a
    heavy tail on the good side (a lognormal score, sigma 1, higher is better; 1000 searches): 86-91 % at k = 1,
    90-91 % at N // 4.
    Where more than half the values tie at the best the band can have zero width at that k (`reason`: degenerate).
    `bounds`: the metric's range (an accuracy's [0, 1]); the band's finite ends are kept inside it (the expected
    best lies there, so no coverage is lost; a bimodal sample's studentized band reached 9 for an accuracy).
    With `replace` the same band is computed around the with-replacement curve (not simulated).

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
    v, fail = _failures_counted(v, bad, higher_is_better, nan_policy, failure_value)
    N = len(v)
    if N == 0:
        return pd.DataFrame([], columns=_COLUMNS)
    n_failed = int(bad.sum()) if nan_policy == "fail" else 0
    e = expected_best(v, higher_is_better, replace)
    p_fail = _p_all_failed(N, n_failed, replace)
    lo, hi, reasons = _curve_band(v, e, higher_is_better, n_boot, seed, level, replace)
    lo, hi = (np.where(np.isfinite(b), np.clip(b, *bounds), b) for b in (lo, hi))
    if n_failed:
        note = f"{n_failed} failed configuration(s) counted at {fail:.4g}"
        reasons = ["; ".join(x for x in (r, note) if x) for r in reasons]
    return pd.DataFrame({"k": np.arange(1, N + 1), "expected_best": e, "lo": lo, "hi": hi, "p_all_failed": p_fail,
                         "n": N, "n_failed": n_failed, "failure_value": fail,
                         "reason": pd.Series(reasons, dtype=object)}, columns=_COLUMNS)


def _failures_counted(v: np.ndarray, bad: np.ndarray, higher: bool, nan_policy: str,
                      failure_value: float | None) -> tuple[np.ndarray, float]:
    """The values with the non-finite ones dropped or counted at the failure value, and that value (NaN when
    none is counted). No values at all when everything failed and no value stands for a failure."""
    if nan_policy == "drop" or not bad.any():
        return v[~bad], np.nan
    finite = v[~bad]
    fail = failure_value if failure_value is not None else \
        ((finite.min() if higher else finite.max()) if len(finite) else np.nan)
    if not np.isfinite(fail):
        return v[:0], fail
    worse = (finite < fail) if higher else (finite > fail)
    if worse.any():
        raise ValueError("budget_curve: failure_value must be no better than every finished value")
    return np.where(bad, fail, v), fail


def _p_all_failed(N: int, n_failed: int, replace: bool) -> np.ndarray:
    """P(all k draws failed), k = 1..N: C(f, k) / C(N, k) without replacement, (f / N)^k with."""
    k = np.arange(1, N + 1)
    if replace:
        return (n_failed / N) ** k
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(k <= n_failed, np.exp(special.gammaln(n_failed + 1) - special.gammaln(n_failed - k + 1)
                                              - special.gammaln(N + 1) + special.gammaln(N - k + 1)), 0.0)


def _curve_band(v: np.ndarray, e: np.ndarray, higher: bool, n_boot: int, seed: int, level: float,
                replace: bool) -> tuple[np.ndarray, np.ndarray, list]:
    """`budget_curve`'s lo, hi and per-row reason (see there)."""
    N = len(v)
    if N < 2:
        return np.full(N, np.nan), np.full(N, np.nan), ["fewer than 2 values: no band"] * N
    if np.ptp(v) == 0:
        return e.copy(), e.copy(), [DEGENERATE] * N
    x = np.sort(v) if higher else -np.sort(v)[::-1]  # the band is computed with higher = better
    kmax = max(1, N // 4)
    _, lo, hi, _ = _band(x[None, :], range(1, kmax + 1), n_boot, np.random.default_rng(seed), level, replace)[:, 0]
    if not higher:
        lo, hi = -hi, -lo
    reasons: list = [DEGENERATE if _degenerate(a, b, c) else None for a, b, c in zip(lo, hi, e)]
    good = lo[-1] if higher else hi[-1]
    side = "upper" if higher else "lower"
    lo = np.r_[lo, np.full(N - kmax, good if higher else -np.inf)]
    hi = np.r_[hi, np.full(N - kmax, np.inf if higher else good)]
    reasons += [f"one-sided beyond k = {kmax} (N // 4, at least 1): no {side} bound (the best of more draws "
                f"depends on a tail the data have barely seen); the bound kept is k = {kmax}'s"] * (N - kmax)
    return lo, hi, reasons


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
