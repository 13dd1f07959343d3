"""Hyperparameter importance of a random search (issue 23): which sampled knobs a variant's final metric depends
on, by fANOVA (Hutter et al. 2014) through optuna's `FanovaImportanceEvaluator`, repeated over several random
forests so that each knob's variance share comes with its spread (`importance`); and how it depends on one of them,
by Friedman's (2001) partial dependence of a random-forest surrogate (`partial_dependence`).

Input: one row per sampled point with the knob values (numeric or categorical) and the final metric. A diverged or
failed point (non-finite metric) is an outcome: it enters at `failure_value` (default: the worst finite value).
optuna and scikit-learn are imported only here, lazily; no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MIN_POINTS = 8  # fewer points than this: no importance (a forest over a handful of points is noise)


def _outcomes(points: pd.DataFrame, metric: str, higher_is_better: bool, failure_value: float | None,
              what: str) -> tuple[np.ndarray, np.ndarray]:
    """The metric with failures at `failure_value` (default the worst finite value), and the failure mask."""
    y = pd.to_numeric(points[metric], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(y)
    if len(y) < MIN_POINTS:
        raise ValueError(f"{what} needs at least {MIN_POINTS} sampled points, not {len(y)}")
    if bad.all():
        raise ValueError(f"{what}: every point failed")
    fail = failure_value if failure_value is not None else (np.nanmin(y) if higher_is_better else np.nanmax(y))
    return np.where(bad, fail, y), bad


def _looks_log(v: np.ndarray) -> bool:
    """A sample of a log-uniform prior: positive, spanning more than 100x, and its median nearer (on a log scale) the
    geometric than the arithmetic midpoint of its range. A uniform prior from near 0 also spans 100x, but its median
    sits at the arithmetic midpoint."""
    if not ((v > 0).all() and v.max() > 100 * v.min()):
        return False
    med, geo, mid = np.log(np.median(v)), 0.5 * np.log(v.min() * v.max()), np.log(0.5 * (v.min() + v.max()))
    return bool(abs(med - geo) < abs(med - mid))


def _knob_kinds(points: pd.DataFrame, knobs: Sequence[str], log: Sequence[str] | None) -> dict:
    """{knob: "log" | "linear" | "categorical"} for the knobs that vary: numeric knobs are continuous, on a log
    scale where `log` names them (default: those that look log-uniform, `_looks_log`)."""
    kinds = {}
    for k in knobs:
        col = points[k]
        if col.map(repr).nunique() < 2:
            continue
        num = pd.to_numeric(col, errors="coerce")
        if num.notna().all():
            v = num.to_numpy(dtype=float)
            is_log = (k in log) if log is not None else _looks_log(v)
            kinds[k] = "log" if is_log else "linear"
        else:
            kinds[k] = "categorical"
    return kinds


def importance(points: pd.DataFrame, knobs: Sequence[str], metric: str, higher_is_better: bool,
               repeats: int = 5, seed: int = 0, failure_value: float | None = None,
               log: Sequence[str] | None = None) -> pd.DataFrame:
    """fANOVA variance share of each knob, averaged over `repeats` forests (seeds seed..seed+repeats-1), with the
    smallest and largest share over them. Numeric knobs are treated as continuous, log-scaled where `log` names them
    (the knobs sampled from log-uniform priors; default: those whose values are positive, span more than 100x and
    have their median nearer the geometric than the arithmetic midpoint), others as categorical. Raises ValueError
    with fewer than MIN_POINTS points or fewer than 2 knobs that vary (the caller says so instead of showing a
    number).
    Columns: `knob`, `importance` (mean share; shares sum to 1 per forest), `lo`, `hi` (min / max over forests),
    `n_points`, `n_failed`, `log`."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    y, bad = _outcomes(points, metric, higher_is_better, failure_value, "importance")
    kinds = _knob_kinds(points, knobs, log)
    dists = {}
    for k, kind in kinds.items():
        if kind == "categorical":
            dists[k] = CategoricalDistribution(sorted(points[k].map(str).unique()))
        else:
            v = pd.to_numeric(points[k]).to_numpy(dtype=float)
            hi = float(v.max()) if v.max() > v.min() else float(v.min()) + 1  # '1' and '1.0' differ, not their values
            dists[k] = FloatDistribution(float(v.min()), hi, log=kind == "log")
    if len(dists) < 2:
        raise ValueError(f"importance needs at least 2 sampled knobs that vary, not {len(dists)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if higher_is_better else "minimize")
    for i in range(len(points)):
        params = {k: (float(points[k].iloc[i]) if isinstance(d, FloatDistribution) else str(points[k].iloc[i]))
                  for k, d in dists.items()}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(y[i])))
    shares = []
    for r in range(repeats):
        imp = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed + r), normalize=True)
        shares.append([imp.get(k, 0.0) for k in dists])
    s = np.asarray(shares)
    out = pd.DataFrame({"knob": list(dists), "importance": s.mean(axis=0), "lo": s.min(axis=0), "hi": s.max(axis=0),
                        "n_points": len(y), "n_failed": int(bad.sum()), "log": [kinds[k] == "log" for k in dists]})
    return out.sort_values("importance", ascending=False).reset_index(drop=True)


def _design(points: pd.DataFrame, kinds: dict) -> pd.DataFrame:
    """The forest's inputs: numeric knobs as they are (log10 on a log scale), categorical ones one-hot."""
    cols = {}
    for k, kind in kinds.items():
        if kind == "categorical":
            s = points[k].map(str)
            for c in sorted(s.unique()):
                cols[f"{k}={c}"] = (s == c).to_numpy(dtype=float)
        else:
            v = pd.to_numeric(points[k]).to_numpy(dtype=float)
            cols[k] = np.log10(v) if kind == "log" else v
    return pd.DataFrame(cols)


def partial_dependence(points: pd.DataFrame, knob: str, metric: str, higher_is_better: bool,
                       knobs: Sequence[str], grid: int = 20, log: Sequence[str] | None = None,
                       failure_value: float | None = None, repeats: int = 5, seed: int = 0) -> pd.DataFrame:
    """Friedman's partial dependence of the metric on `knob`: a random forest (scikit-learn, fANOVA's settings: 64
    trees, depth 64) is fitted to the metric over `knobs`, and at each value of `knob` its prediction is averaged
    over the sampled points with `knob` set to that value, the other knobs at their sampled values. So the curve is
    the knob's marginal effect averaged over the rest of the space, not a slice through one point; where knobs
    interact it hides the interaction. Repeated over `repeats` forests (seeds seed..seed+repeats-1): `mean` is the
    mean curve, `lo` / `hi` the smallest and largest over forests (the surrogate's instability, not a confidence
    interval over points). A numeric knob gets `grid` values evenly spaced between its smallest and largest sampled
    value, on a log scale for log knobs (`log`, default as in `importance`), or its sampled values where they are
    no more than `grid`; a categorical knob one value per category. Knobs that do not vary are left out of the
    forest. Failures enter at `failure_value` (default: the worst finite value), as in `importance`. Raises
    ValueError with fewer than MIN_POINTS points or when `knob` is not among the `knobs` that vary.
    Columns: `knob`, `value` (in the knob's units; the category for a categorical knob), `mean`, `lo`, `hi`,
    `n_points`, `n_failed`."""
    from sklearn.ensemble import RandomForestRegressor

    y, bad = _outcomes(points, metric, higher_is_better, failure_value, "partial_dependence")
    kinds = _knob_kinds(points, knobs, log)
    if knob not in kinds:
        raise ValueError(f"partial_dependence: {knob!r} is not one of the knobs that vary ({sorted(kinds)})")
    X = _design(points, kinds)
    if kinds[knob] == "categorical":
        values = sorted(points[knob].map(str).unique())
        settings = [{f"{knob}={c}": float(c == v) for c in values} for v in values]
    else:
        v = pd.to_numeric(points[knob]).to_numpy(dtype=float)
        if len(np.unique(v)) <= grid:  # a knob sampled from a few values: those values
            values = list(np.unique(v))
            settings = [{knob: float(np.log10(g) if kinds[knob] == "log" else g)} for g in values]
        elif kinds[knob] == "log":
            values = list(np.logspace(np.log10(v.min()), np.log10(v.max()), grid))
            settings = [{knob: float(np.log10(g))} for g in values]
        else:
            values = list(np.linspace(v.min(), v.max(), grid))
            settings = [{knob: float(g)} for g in values]
    # every grid value's copy of the points in one matrix: one predict per forest
    block = pd.concat([X.assign(**s) for s in settings], ignore_index=True).to_numpy(dtype=float)
    curves = []
    for r in range(repeats):
        forest = RandomForestRegressor(n_estimators=64, max_depth=64, min_samples_split=2, min_samples_leaf=1,
                                       random_state=seed + r).fit(X.to_numpy(dtype=float), y)
        curves.append(forest.predict(block).reshape(len(settings), len(X)).mean(axis=1))
    c = np.asarray(curves)
    return pd.DataFrame({"knob": knob, "value": values, "mean": c.mean(axis=0), "lo": c.min(axis=0),
                         "hi": c.max(axis=0), "n_points": len(y), "n_failed": int(bad.sum())})
