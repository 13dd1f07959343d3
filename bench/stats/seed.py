"""Sensitivity to the seed: how much the final metric moves across seeds with everything else fixed
(`seed_spread`), whether a treatment (the lens) makes that spread smaller (`seed_spread_comparison`:
ratio of spreads with a bootstrap interval and a Brown-Forsythe test, setting by setting), and how many
seeds such a test needs (`seed_spread_power`).

Seeds are the sample here: the bootstraps resample seeds (within each setting), the settings are fixed
(they are the design), as in `bench.stats.spread`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from bench.stats.common import (DEGENERATE, LEVEL, _as_tuple, _canon, _check_columns, _degenerate, _groups, _join,
                                _percentile_ci, _rng, _select, _values, config_columns, is_higher_better,
                                metric_column)
from bench.stats.paired import _default_treatment_columns, _show, _spec_mask
from bench.stats.scales import _check, _pooled, _pooled_var, spread_interval, std_interval
from bench.stats.spread import _spreads, brown_forsythe

SEED = "seed"


def setting_columns(trials: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Config columns other than the seed (and `exclude`) that take more than one value in the table:
    what, besides the seed, tells two trials apart."""
    cols = [c for c in config_columns(trials) if c != SEED and c not in exclude]
    return [c for c in cols if trials[c].map(_canon).nunique() > 1]


def seed_spread(trials: pd.DataFrame, metric: str, by: str | Sequence[str] | None = None, n_boot: int = 2000,
                seed: int = 0, level: float = LEVEL, status: str | Sequence[str] | None = ("ok",),
                higher_is_better: bool | None = None) -> pd.DataFrame:
    """Spread of the final metric across seeds, per group of trials that differ only in their seed.

    `by` defaults to `variant` plus every config column (but the seed) that varies in the table, so each
    group is one setting run with several seeds. Per group, over the seeds with a finite value: `std`
    (ddof=1), `iqr` (75th - 25th percentile, numpy's linear interpolation), `range` (max - min) and
    `worst` (the worst seed's value in the metric's direction: the max for lower-is-better) with
    `worst_seed` (its seed), `median` and `mean`. The std has a confidence interval (`std_lo`, `std_hi`;
    `std_interval`: chi-square, normal seed noise); so have the spread on the other scales
    (`bench.stats.scales.spread_interval`): `cv` (std / mean, `cv_lo`, `cv_hi`; noncentral t; NaN where the
    mean is <= 0) and `log_std` (the std of the log values, `log_std_lo`, `log_std_hi`; NaN where a value is
    <= 0), each NaN with the `reason` saying why. iqr / range / worst have percentile bootstrap
    intervals resampling the seeds, which are descriptive, not confidence intervals: a resample's range
    cannot exceed the observed range nor its worst the observed worst, so those bounds are the observed
    values; read them as "how much the statistic depends on one unlucky seed". NaN intervals (with
    `reason`) with fewer than 2 seeds. Columns: by..., `n_seeds`, `n_trials`, `higher_is_better`, `median`, `mean`,
    `std`, `std_lo`, `std_hi`, `cv`, ..., `log_std`, ..., `iqr`, ..., `range`, ..., `worst`, `worst_lo`,
    `worst_hi`, `worst_seed`, `reason`.
    """
    by = ("variant", *setting_columns(trials)) if by is None else _as_tuple(by)
    col = metric_column(trials, metric)
    hib = is_higher_better(col, higher_is_better)
    _check_columns(trials, by + (SEED,), "seed_spread")
    worst = np.min if hib else np.max
    rows = []
    for key, sub in _groups(trials, by):
        sel = _select(sub, status)
        v = _values(sel, col)
        ok = np.isfinite(v)
        v, seeds = v[ok], sel[SEED].to_numpy()[ok]
        row = {**dict(zip(by, key)), "n_seeds": len(v), "n_trials": len(sub), "higher_is_better": hib,
               "median": float(np.median(v)) if len(v) else np.nan}
        reasons = [f"{len(sub) - len(v)} trial(s) without a finite value left out" if len(sub) > len(v) else None]
        est = {**_spreads(v[None, :]), "worst": np.array([worst(v)])} if len(v) else {}
        boot = None
        if len(v) >= 2:
            b = v[_rng(seed, key).integers(0, len(v), size=(n_boot, len(v)))]
            boot = {**_spreads(b), "worst": worst(b, axis=1)}
        else:
            reasons.append("fewer than 2 seeds: no spread, no interval")
        for s in ("std", "iqr", "range", "worst"):
            row[s] = float(est[s][0]) if len(v) >= 2 or (s == "worst" and len(v)) else np.nan
            if s == "std":
                _, lo, hi, _ = std_interval([v], level)
                if boot and _degenerate(lo, hi, row[s]):
                    reasons.append("degenerate: every seed gives the same value")
            else:
                lo, hi = _percentile_ci(boot[s], level) if boot else (np.nan, np.nan)
            row[f"{s}_lo"], row[f"{s}_hi"] = float(lo), float(hi)
        row["mean"] = float(v.mean()) if len(v) else np.nan
        for s, scale, why in (("cv", "relative", "the mean is <= 0: no CV"),
                              ("log_std", "log", "a value is <= 0: no log std")):
            row[s], row[f"{s}_lo"], row[f"{s}_hi"] = spread_interval([v], scale, level)
            if len(v) >= 2 and math.isnan(row[s]):
                reasons.append(why)
        row["worst_seed"] = seeds[int(np.argmin(v) if hib else np.argmax(v))] if len(v) else None
        row["reason"] = _join(*reasons)
        rows.append(row)
    cols = [*by, "n_seeds", "n_trials", "higher_is_better", "median", "mean"]
    for s in ("std", "cv", "log_std", "iqr", "range", "worst"):
        cols += [s, f"{s}_lo", f"{s}_hi"]
    return pd.DataFrame(rows, columns=cols + ["worst_seed", "reason"])


def _median_deviations(cells: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([c - np.median(c, axis=-1, keepdims=True) for c in cells], axis=-1)


def seed_spread_comparison(trials: pd.DataFrame, metric: str, treatment: str | tuple | Callable = "variant.lens.schedule",
                           control: str | tuple | Callable | None = None,
                           treatment_columns: Sequence[str] | None = None, settings: Sequence[str] | None = None,
                           by: str | Sequence[str] = (), standardize: bool = True, n_boot: int = 2000, seed: int = 0,
                           level: float = LEVEL, status: str | Sequence[str] | None = ("ok",),
                           scale: str = "absolute") -> pd.DataFrame:
    """Is the spread across seeds smaller with the treatment? `ratio` = seed spread of the treated (b)
    / that of the control (a), e.g. lens / no lens: < 1 means the treatment makes training less
    sensitive to the seed.

    Treated / control rows and treatment arms as in `paired_difference` (`treatment`: a column, not
    null = treated; a (column, value) pair; or a callable; treated trials that differ in their
    `treatment_columns`, by default the treatment's sub-model such as `variant.lens.*`, are separate
    arms, one row each). A *setting* is a value of the `settings` columns (default: every config column
    but the seed and the treatment columns that varies in the table: objective, lr, dataset, ...). Only
    settings that both sides ran with at least 2 finite seeds are used (matched by setting), so both
    sides cover the same settings; `n_settings_dropped` counts the others.

    Estimate: the spread of a side is the pooled within-setting std, sqrt(sum over settings of the
    squared deviations from the setting's mean / sum(n_seeds - 1)): the seed noise with the differences
    between settings taken out. With `standardize` (default) both sides' values in a setting are first
    divided by that setting's own scale (the pooled within-setting std of both sides together), so every
    setting weighs the same whatever its metric's scale (a WGAN's energy distance is not a hinge GAN's);
    a common divisor leaves the ratio within a setting unchanged. `std_a`, `std_b` are in those units
    (raw units without `standardize`).

    Interval: percentile bootstrap resampling the seeds within every (setting, side) cell independently
    (n_boot times; the scales are held fixed), recomputing both pooled spreads and their ratio. Resampling
    the two sides independently ignores that they share seeds (the same seed = the same initial weights),
    which can only widen the interval.

    Test: Brown-Forsythe (`scipy.stats.levene(center="median")`) of the pooled deviations of each value
    from its setting's median (standardized likewise), control vs treated: equal spread across seeds
    after the settings' centres are taken out. (With an odd number of seeds each setting gives one zero
    deviation, which costs a little power.)

    `scale` (`bench.stats.scales`): the above is "absolute". On the other scales `standardize`, `n_boot`
    and `seed` are not used:
    - "relative": each side's values in a setting are divided by that side's own mean there, so `std_a`,
      `std_b` are pooled coefficients of variation (`spread_interval(..., "relative")`) and `ratio` is
      CV treated / CV control; the test runs on the deviations of x / mean from their setting's median.
    - "log": the values' logs, then the spreads and test above without `standardize` (a log is already
      free of the metric's scale): `std_a`, `std_b` are pooled stds of the log values.
    Interval on both: F, (std_b / std_a)^2 / true ratio^2 ~ F(df_b, df_a), with each side's df from
    `std_interval` (log: Satterthwaite's) or, relative, McKay's pooled df (`scales._pooled`) shrunk by
    (1 + CV^2)^2 for the uncertainty of the setting means (delta method). Exact for lognormal seeds on the
    log scale with one log-variance per side. Why not the bootstrap: with 2 seeds (or 1 setting x 3 seeds)
    some resample has no spread on either side, so it gave no interval in 97-100 % of simulated studies, and
    covered 90-93 % with 1 setting x 12 seeds. Simulated coverage of the F interval (20000 studies per case,
    true ratio 0.5 or 1, 2-12 seeds, 1-4 settings; tests/test_scales.py): 94.4-99.2 % on both scales (log:
    lognormal seeds, exact with one setting; relative: normal seeds, CVs 0.02-0.5), conservative (up to 99 %)
    over 4 settings with 2-3 seeds (Satterthwaite's df); 93.2-94.6 % where a side's settings' spreads differ
    3x; relative with CVs 0.5 vs 0.25 in one setting: 91.9 % with 2 seeds, 93.3 % with 3. A value <= 0 (log)
    or a setting mean <= 0 (relative): NaNs with the `reason`, nothing raises.

    Columns: by..., `arm`, `scale`, `n_settings`, `n_settings_dropped`, `min_seeds`, `max_seeds`, `n_a`, `n_b`
    (values used), `std_a`, `std_b`, `ratio`, `ratio_lo`, `ratio_hi`, `levene_stat`, `p_value`, `reason`.
    """
    by = _as_tuple(by)
    col = metric_column(trials, metric)
    _check(scale)
    _check_columns(trials, by + (SEED,), "seed_spread_comparison")
    trials = _select(trials.reset_index(drop=True), status)
    treated = _spec_mask(trials, treatment)
    controls = ~treated if control is None else (_spec_mask(trials, control) & ~treated)
    tcols = list(treatment_columns) if treatment_columns is not None else _default_treatment_columns(trials, treatment)
    settings = setting_columns(trials, [*tcols, *by]) if settings is None else list(settings)
    _check_columns(trials, [*tcols, *settings], "seed_spread_comparison")
    rows = [row for key, sub in _groups(trials, by)
            for row in _arm_rows(sub, treated, controls, dict(zip(by, key)), key, tcols, settings, col, standardize,
                                 n_boot, seed, level, scale)]
    return pd.DataFrame(rows, columns=[*by, "arm", "scale", "n_settings", "n_settings_dropped", "min_seeds", "max_seeds", "n_a",
                                       "n_b", "std_a", "std_b", "ratio", "ratio_lo", "ratio_hi", "levene_stat",
                                       "p_value", "reason"])


def _seed_cells(df: pd.DataFrame, settings: list[str], col: str) -> dict[str, np.ndarray]:
    """Per setting with at least 2 finite values, those values (keyed by the setting's canonical values)."""
    out = {}
    for _, g in df.groupby(list(settings), dropna=False, sort=False) if settings else [((), df)]:
        v = _values(g, col)
        v = v[np.isfinite(v)]
        if len(v) >= 2:
            out[repr(tuple(_canon(x) for x in g[settings].iloc[0]))] = v
    return out


def _arm_rows(sub: pd.DataFrame, treated: pd.Series, controls: pd.Series, group: dict, key: tuple, tcols: list[str],
              settings: list[str], col: str, standardize: bool, n_boot: int, seed: int, level: float,
              scale: str) -> list[dict]:
    """`seed_spread_comparison`'s rows for one `by` group: each treatment arm against the group's controls."""
    ctrl = _seed_cells(sub[controls[sub.index]], settings, col)
    t = sub[treated[sub.index]]
    rows = []
    for akey, arm in (t.groupby(tcols, dropna=False, sort=True) if tcols else [((), t)]):
        akey = akey if isinstance(akey, tuple) else (akey,)
        label = ", ".join(f"{c.split('.')[-1]}={_show(v)}" for c, v in zip(tcols, akey) if not pd.isna(v))
        trt = _seed_cells(arm, settings, col)
        keys = sorted(set(ctrl) & set(trt))
        a, b = [ctrl[k] for k in keys], [trt[k] for k in keys]
        row = {**group, "arm": label, "scale": scale, "n_settings": len(keys),
               "n_settings_dropped": len(set(ctrl) ^ set(trt)),
               "min_seeds": min((len(v) for v in a + b), default=0),
               "max_seeds": max((len(v) for v in a + b), default=0),
               "n_a": sum(map(len, a)), "n_b": sum(map(len, b))}
        row.update(_compare_cells(a, b, standardize, n_boot, _rng(seed, (*key, *akey)), level, scale))
        rows.append(row)
    return rows


def _compare_cells(a: list[np.ndarray], b: list[np.ndarray], standardize: bool, n_boot: int,
                   rng: np.random.Generator, level: float, scale: str = "absolute") -> dict:
    nan = dict(std_a=np.nan, std_b=np.nan, ratio=np.nan, ratio_lo=np.nan, ratio_hi=np.nan, levene_stat=np.nan,
               p_value=np.nan)
    if not a:
        return {**nan, "reason": "no setting with at least 2 seeds on both sides"}
    reasons = []
    if scale == "log":
        if any((x <= 0).any() for x in a + b):
            return {**nan, "reason": "a value is <= 0: no log scale"}
        a, b = [np.log(x) for x in a], [np.log(y) for y in b]
    elif scale == "relative":
        if any(x.mean() <= 0 for x in a + b):
            return {**nan, "reason": "a setting's mean is <= 0: no relative scale (std / mean)"}
        a, b = [x / x.mean() for x in a], [y / y.mean() for y in b]
    elif standardize:
        unit = np.sqrt([_pooled_var([x, y]) for x, y in zip(a, b)])
        flat = unit == 0
        if flat.all():
            return {**nan, "reason": "no setting varies across seeds on either side"}
        if flat.any():
            reasons.append(f"{int(flat.sum())} setting(s) constant on both sides left out")
        a = [x / s for x, s, f in zip(a, unit, flat) if not f]
        b = [y / s for y, s, f in zip(b, unit, flat) if not f]
    sa, sb = math.sqrt(_pooled_var(a)), math.sqrt(_pooled_var(b))
    out = dict(nan, std_a=sa, std_b=sb)
    if scale == "absolute":
        reasons += _boot_interval(out, a, b, n_boot, rng, level)
    else:
        reasons += _f_interval(out, a, b, scale, level)
    da, db = _median_deviations(a), _median_deviations(b)
    stat, p, why = brown_forsythe(da, db)  # e.g. one setting with 2 seeds a side: undefined, with the reason
    if why:
        reasons.append(why)
    else:
        out["levene_stat"], out["p_value"] = stat, p
    return {**out, "reason": _join(*reasons)}


def _boot_interval(out: dict, a: list[np.ndarray], b: list[np.ndarray], n_boot: int, rng: np.random.Generator,
                   level: float) -> list[str]:
    """The absolute scale's ratio and percentile bootstrap interval into `out`; returns the reasons."""
    sa, sb, reasons = out["std_a"], out["std_b"], []
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = float(np.divide(sb, sa))
        if sa == 0:
            reasons.append("the control does not vary across seeds: ratio infinite")
        ba = np.sqrt(_pooled_var([x[rng.integers(0, len(x), size=(n_boot, len(x)))] for x in a]))
        bb = np.sqrt(_pooled_var([y[rng.integers(0, len(y), size=(n_boot, len(y)))] for y in b]))
        r = bb / ba
    if np.isnan(r).any():
        reasons.append("some resamples have no spread on either side: no interval")
    else:
        out["ratio_lo"], out["ratio_hi"] = map(float, _percentile_ci(r, level))
        if _degenerate(out["ratio_lo"], out["ratio_hi"], out["ratio"]):
            reasons.append(DEGENERATE)
    return reasons


def _f_interval(out: dict, a: list[np.ndarray], b: list[np.ndarray], scale: str, level: float) -> list[str]:
    """The log / relative scale's ratio and F interval into `out` (`a`, `b`: the transformed cells); returns
    the reasons."""
    sa, sb = out["std_a"], out["std_b"]
    if sa == 0:
        if sb == 0:
            return ["neither side varies across seeds: no ratio"]
        out["ratio"] = math.inf
        return ["the control does not vary across seeds: ratio infinite, no interval"]
    out["ratio"], out["ratio_lo"], out["ratio_hi"] = map(float, _ratio_interval(a, b, scale, level))
    return ["degenerate: the treated side does not vary across seeds"] if sb == 0 else []


def _ratio_interval(a: list[np.ndarray], b: list[np.ndarray], scale: str, level: float):
    """(ratio, lo, hi) of the pooled spreads b / a with the F interval, over the last axis of the transformed
    cells (..., n_i): log values, or (relative) values over their setting's mean."""
    sa, sb = np.sqrt(_pooled_var(a)), np.sqrt(_pooled_var(b))
    relative = scale == "relative"
    # relative: McKay's df, shrunk for the means' own noise: var(log CV estimate) ~ (1 + CV^2)^2 / (2 df)
    dfa, dfb = (_pooled(c, relative)[1] / ((1 + s ** 2) ** 2 if relative else 1) for c, s in ((a, sa), (b, sb)))
    q = (1 - level) / 2
    r = sb / sa
    return r, r / np.sqrt(stats.f.ppf(1 - q, dfb, dfa)), r / np.sqrt(stats.f.ppf(q, dfb, dfa))


def seed_spread_power(ratio: float, n_settings: int = 1, alpha: float = 0.05, power: float = 0.8,
                      n_sim: int = 1000, seed: int = 0, max_seeds: int = 200) -> tuple[int | None, float]:
    """How many seeds per setting (per side) `seed_spread_comparison`'s Brown-Forsythe test needs to
    detect a seed-spread ratio `ratio` (treated / control) with probability `power` at level `alpha`,
    over `n_settings` settings: (seeds, power reached), or (None, power at `max_seeds`).

    By simulation (n_sim draws per candidate number of seeds, a fixed generator): normal seed noise with
    std 1 (control) and `ratio` (treated) in every setting, deviations from each setting's median pooled
    and tested as `seed_spread_comparison` does. Normal noise is the assumption; heavy tails (occasional
    divergent seeds) need more seeds. The candidates are 2, 3, ..., 10, then steps of about 25 %."""
    if not np.isfinite(ratio) or ratio <= 0 or ratio == 1:
        return None, math.nan
    rng = np.random.default_rng(seed)
    cand = list(range(2, 11))
    while cand[-1] < max_seeds:
        cand.append(min(max_seeds, int(math.ceil(cand[-1] * 1.25))))
    reached = math.nan
    for n in cand:
        x = rng.standard_normal((2, n_sim, n_settings, n))
        x[1] *= ratio
        d = x - np.median(x, axis=-1, keepdims=True)
        d = d.reshape(2, n_sim, n_settings * n)
        with np.errstate(divide="ignore", invalid="ignore"):  # an undefined test (NaN p) counts as not rejecting
            p = stats.levene(d[0], d[1], center="median", axis=1).pvalue
        # two seeds in one setting deviate from their median by +-a: the absolute deviations are constant
        # within each side, the test's F is infinite and p = 0 whatever the spreads; such a degenerate test
        # detects nothing
        a = np.abs(d - np.median(d, axis=-1, keepdims=True))
        p = np.where((a.var(axis=-1) == 0).any(axis=0), 1.0, p)
        reached = float(np.mean(p < alpha))
        if reached >= power:
            return n, reached
    return None, reached


def seed_share(space: Sequence[float], retrain: Sequence[Sequence[float]], level: float = LEVEL) -> dict:
    """How much of a variant's outcome is the seed and how much its hyperparameters (issue 23's variance split).

    `space`: the final values of the stage-1 points (one seed each: their variance is hyperparameter + seed
    variance); `retrain`: per best point, its values over the stage-2 seeds (their pooled within-point variance is
    the seed variance at good settings). `share` = seed variance / stage-1 variance, with an F interval (the two
    are independent variance estimates with df sum(n_i - 1) and N - 1; normal values assumed); a share near 1
    means the sampled space barely matters beyond the seed. Non-finite values are left out (count failures with
    `success_rate`). Keys: `var_space`, `var_seed`, `share`, `lo`, `hi`, `df_space`, `df_seed`."""
    x = np.asarray(space, dtype=float)
    x = x[np.isfinite(x)]
    cells = [np.asarray(c, dtype=float) for c in retrain]
    cells = [c[np.isfinite(c)] for c in cells]
    cells = [c for c in cells if len(c) >= 2]
    out = dict(var_space=np.nan, var_seed=np.nan, share=np.nan, lo=np.nan, hi=np.nan, df_space=len(x) - 1,
               df_seed=sum(len(c) - 1 for c in cells))
    if len(x) < 2 or not cells:
        return out
    vs, vd = float(np.var(x, ddof=1)), float(_pooled_var(cells))
    d1, d2 = out["df_seed"], out["df_space"]
    out.update(var_space=vs, var_seed=vd)
    if vs > 0:
        a = (1 - level) / 2
        r = vd / vs  # (vd / s_seed^2) / (vs / s_space^2) ~ F(d1, d2) when the true ratio is s_seed^2 / s_space^2
        out.update(share=r, lo=r / stats.f.ppf(1 - a, d1, d2), hi=r / stats.f.ppf(a, d1, d2))
    return out
