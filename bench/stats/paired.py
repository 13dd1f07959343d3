"""Treated vs control, pair by pair: `paired_difference` (the pairs share their seed and every other
setting, so the same initial weights) and `holm`, the family-wise correction over its tests."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bench.stats.common import (DEGENERATE, LEVEL, _as_tuple, _canon, _check_columns, _degenerate, _is_null, _join,
                                _rng, _values, config_columns, is_higher_better, metric_column, t_interval)


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


def _show(v: Any) -> str:
    """Short display form of a config value for labels (1000.0 -> 1000, 0.001 -> 0.001)."""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    return str(v)


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
    default, and the same seed means the same initial G and D (docs/statistics.md: lens vs no-lens is paired).

    Treatment arms: treated trials that differ in their treatment columns (say K = 500 and
    K = 2000) are separate arms, each paired with the same controls and summarised separately (one
    summary row per `by` group and arm; `arm` labels the arm's treatment-column values). A key
    matching more than one control, or more than one treated trial of the same arm, is ambiguous and
    raises ValueError (add the distinguishing column to `by`).

    A pair is used when both trials have a status in `status` and a finite metric; the others are
    counted in `n_dropped` (a diverged trial has no `final.*` metric: see `success_rate`).

    Summary columns: by..., `arm`, `n_pairs` (matched), `n` (used), `n_dropped`, `n_treated_unpaired`,
    `n_control_unpaired`, `higher_is_better`, `mean_diff` (treated - control) with its Student t
    interval `lo`, `hi` over pairs (`t_interval`; a percentile bootstrap over a few pairs under-covers), `median_diff`, `sd_diff` (ddof=1), `frac_better`, `frac_worse`
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
    tcols, pair_on = _pairing_columns(trials, treatment, treatment_columns, pair_on, by)
    t, c = trials[treated_mask], trials[control_mask]
    tkey, ckey = _keys(t, pair_on), _keys(c, pair_on)
    arm_of = _arm_labels(t, tcols)
    _check_unambiguous(pair_on, tkey, ckey, arm_of)
    pairs = _match_pairs(trials, col, status, by, tkey, dict(zip(ckey, c.index)), arm_of)
    summary = _summarise(trials, t, c, pairs, arm_of, by, hib, status, n_boot, seed, level)
    return PairedResult(summary=summary, pairs=pairs.drop(columns=["_t", "_c"]))


def _pairing_columns(trials: pd.DataFrame, treatment, treatment_columns, pair_on, by: tuple) -> tuple[list, list]:
    """The treatment columns and the pairing key (`by` first), checked (see `paired_difference`)."""
    tcols = list(treatment_columns) if treatment_columns is not None else _default_treatment_columns(trials, treatment)
    _check_columns(trials, tcols, "treatment_columns")
    if pair_on is None:
        pair_on = [c for c in config_columns(trials) if c not in tcols]
    pair_on = list(dict.fromkeys([*by, *pair_on]))
    _check_columns(trials, pair_on, "pair_on")
    if set(pair_on) & set(tcols):
        clash = sorted(set(pair_on) & set(tcols))
        raise ValueError(f"paired_difference: pair_on/by include treatment column(s) {clash}")
    return tcols, pair_on


def _keys(df: pd.DataFrame, cols: list[str]) -> pd.Series:
    """Per row, its canonical values in `cols` as a tuple (nulls match nulls)."""
    return pd.Series([tuple(_canon(v) for v in row) for row in df[cols].itertuples(index=False, name=None)],
                     index=df.index, dtype=object)


def _arm_labels(t: pd.DataFrame, tcols: list[str]) -> pd.Series:
    """Per treated row, its arm: the non-null treatment-column values, e.g. "K=500"."""
    return pd.Series([", ".join(f"{n.rsplit('.', 1)[-1]}={_show(v)}" for n, v in zip(tcols, row) if not _is_null(v))
                      or "(all null)" for row in t[tcols].itertuples(index=False, name=None)],
                     index=t.index, dtype=object)


def _check_unambiguous(pair_on: list[str], tkey: pd.Series, ckey: pd.Series, arm_of: pd.Series) -> None:
    dup_c = ckey[ckey.duplicated()]
    if len(dup_c):
        raise ValueError(f"paired_difference: {len(dup_c)} control key(s) match several control trials, e.g. "
                         f"{dict(zip(pair_on, dup_c.iloc[0]))}: add the distinguishing column to by= or pair_on=")
    dup_t = pd.Series(list(zip(arm_of, tkey)), index=tkey.index).duplicated()
    if dup_t.any():
        raise ValueError(f"paired_difference: several treated trials of arm {arm_of[dup_t].iloc[0]!r} share the key "
                         f"{dict(zip(pair_on, tkey[dup_t].iloc[0]))}: add the distinguishing column to by= or pair_on=")


def _match_pairs(trials: pd.DataFrame, col: str, status, by: tuple, tkey: pd.Series, control_index: dict,
                 arm_of: pd.Series) -> pd.DataFrame:
    """One row per treated trial whose key a control shares (`_t`, `_c`: the two rows' index)."""
    statuses = None if status is None else _as_tuple(status)
    value = pd.Series(_values(trials, col), index=trials.index)
    ident = trials["trial_id"] if "trial_id" in trials.columns else pd.Series(trials.index, index=trials.index)
    pair_rows = []
    for ti in tkey.index:
        ci = control_index.get(tkey[ti])
        if ci is None:
            continue
        x, y = value[ti], value[ci]
        ok_status = statuses is None or (trials.at[ti, "status"] in statuses and trials.at[ci, "status"] in statuses)
        pair_rows.append({**{k: trials.at[ti, k] for k in by}, "arm": arm_of[ti], "pair_key": tkey[ti],
                          "treated_id": ident[ti], "control_id": ident[ci], "treated": x, "control": y,
                          "diff": x - y, "used": bool(ok_status and np.isfinite(x) and np.isfinite(y)),
                          "_t": ti, "_c": ci})
    return pd.DataFrame(pair_rows, columns=[*by, "arm", "pair_key", "treated_id", "control_id", "treated", "control",
                                            "diff", "used", "_t", "_c"])


def _summarise(trials: pd.DataFrame, t: pd.DataFrame, c: pd.DataFrame, pairs: pd.DataFrame, arm_of: pd.Series,
               by: tuple, hib: bool, status, n_boot: int, seed: int, level: float) -> pd.DataFrame:
    """`paired_difference`'s summary: one row per `by` group and arm."""
    t_group = _keys(t, list(by)) if by else pd.Series([()] * len(t), index=t.index, dtype=object)
    c_group = _keys(c, list(by)) if by else pd.Series([()] * len(c), index=c.index, dtype=object)
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
    return pd.DataFrame(rows, columns=[*by, "arm", "n_pairs", "n", "n_dropped", "n_treated_unpaired",
                                       "n_control_unpaired", "higher_is_better", "mean_diff", "lo", "hi",
                                       "median_diff", "sd_diff", "frac_better", "frac_worse", "wilcoxon_stat",
                                       "p_value", "n_nonzero", "rank_biserial", "d_z", "reason"])


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
    out["lo"], out["hi"] = t_interval(d, level)
    reasons = [DEGENERATE if _degenerate(out["lo"], out["hi"], out["mean_diff"]) else None]
    sd = out["sd_diff"]
    if sd > 0:
        out["d_z"] = out["mean_diff"] / sd
    elif out["mean_diff"] != 0:
        out["d_z"] = math.copysign(math.inf, out["mean_diff"])
    if out["n_nonzero"] == 0:
        out["wilcoxon_stat"], out["p_value"] = 0.0, 1.0
        reasons.append("all differences are zero: p = 1 by convention")
    else:
        out["wilcoxon_stat"], out["p_value"] = wilcoxon(d)
        if out["n_nonzero"] < n:
            reasons.append(f"{n - out['n_nonzero']} zero difference(s) dropped by the Wilcoxon test")
    out["reason"] = _join(*reasons)
    return out


def wilcoxon(d: np.ndarray) -> tuple[float, float]:
    """scipy's two-sided Wilcoxon signed-rank test (zeros dropped): (min(R+, R-), p), the same numbers.
    Where scipy falls back to its permutation test (ties or zeros among at most 13 differences) it
    re-ranks each of the 2^n sign flips in Python (0.9 s a call; 40 s of a 12-seed report); the
    ranks of |d| do not change under sign flips, so the 2^m sums of the m non-zero ranks are the
    exact null here (the zeros' flips only repeat it), counted with scipy's tolerance."""
    d = np.asarray(d, dtype=float)
    nz = d[d != 0]
    ranks = stats.rankdata(np.abs(nz))
    tied = len(np.unique(np.abs(nz))) < len(nz)
    if not (tied or len(nz) < len(d)) or len(d) > 13:
        w = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        return float(w.statistic), float(w.pvalue)
    r_plus, r_minus = ranks[nz > 0].sum(), ranks[nz < 0].sum()
    flips = (np.arange(2 ** len(nz))[:, None] >> np.arange(len(nz))) & 1
    null = flips @ ranks  # R+ of every sign assignment (half-integers: exact in floats)
    gamma = abs(np.finfo(float).eps * 100 * r_plus)
    less, greater = (null <= r_plus + gamma).mean(), (null >= r_plus - gamma).mean()
    return float(min(r_plus, r_minus)), float(np.clip(2 * min(less, greater), 0, 1))


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
