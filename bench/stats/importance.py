"""Hyperparameter importance of a random search (issue 23): which sampled knobs a variant's final metric depends
on, by fANOVA (Hutter et al. 2014) through optuna's `FanovaImportanceEvaluator`, repeated over several random
forests so that each knob's variance share comes with its spread.

Input: one row per sampled point with the knob values (numeric or categorical) and the final metric. A diverged or
failed point (non-finite metric) is an outcome: it enters at `failure_value` (default: the worst finite value).
optuna is imported only here, lazily; no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MIN_POINTS = 8  # fewer points than this: no importance (a forest over a handful of points is noise)


def importance(points: pd.DataFrame, knobs: Sequence[str], metric: str, higher_is_better: bool,
               repeats: int = 5, seed: int = 0, failure_value: float | None = None,
               log: Sequence[str] | None = None) -> pd.DataFrame:
    """fANOVA variance share of each knob, averaged over `repeats` forests (seeds seed..seed+repeats-1), with the
    smallest and largest share over them. Numeric knobs are treated as continuous, log-scaled where `log` names them
    (the knobs sampled from log-uniform priors; default: every value positive and spanning more than 100x), others
    as categorical. Raises ValueError with fewer than MIN_POINTS
    points or fewer than 2 knobs that vary (the caller says so instead of showing a number).
    Columns: `knob`, `importance` (mean share; shares sum to 1 per forest), `lo`, `hi` (min / max over forests),
    `n_points`, `n_failed`, `log`."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    y = pd.to_numeric(points[metric], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(y)
    if len(y) < MIN_POINTS:
        raise ValueError(f"importance needs at least {MIN_POINTS} sampled points, not {len(y)}")
    if bad.all():
        raise ValueError("importance: every point failed")
    fail = failure_value if failure_value is not None else (np.nanmin(y) if higher_is_better else np.nanmax(y))
    y = np.where(bad, fail, y)
    dists, logs = {}, {}
    for k in knobs:
        col = points[k]
        if col.map(repr).nunique() < 2:
            continue
        num = pd.to_numeric(col, errors="coerce")
        if num.notna().all():
            v = num.to_numpy(dtype=float)
            logs[k] = (k in log) if log is not None else bool((v > 0).all() and v.max() > 100 * v.min())
            dists[k] = FloatDistribution(float(v.min()), float(v.max()) if v.max() > v.min() else float(v.min()) + 1,
                                         log=logs[k])
        else:
            logs[k] = False
            dists[k] = CategoricalDistribution(sorted(col.map(str).unique()))
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
                        "n_points": len(y), "n_failed": int(bad.sum()), "log": [logs[k] for k in dists]})
    return out.sort_values("importance", ascending=False).reset_index(drop=True)
