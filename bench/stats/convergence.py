"""Convergence speed from the learning curves (issue 23): how many steps a run takes to reach a target, or to come
within a fraction of its own best, and the normalised area under its learning curve (the lens paper's claim is
about speed as much as about the end value).

Pure functions of the curves table (one row per trial and evaluation step: `trial_id`, `step`, metric columns),
as `bench.results.load` returns it. Never imports torch.

As per-trial metrics (`derived_columns`): `auc:<m>` and `steps_to_within:<m>[@<fraction>]` (bench.metrics.derived)
become `final.<name>` columns of the trials table, which the report's load() attaches for the names a study's
`question:` uses; the question (metric, co_primary, secondary), the statistics and the leaderboard then read them
like any final metric. Steps are those of the evaluation grid (train.eval_every): discrete, never finer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.stats.common import _as_tuple, _check_columns, is_higher_better


def convergence(curves: pd.DataFrame, metric: str, target: float | None = None, within: float = 0.1,
                by: str | Sequence[str] = ("trial_id",), higher_is_better: bool | None = None) -> pd.DataFrame:
    """Per run (`by`, default the trial): the convergence speed of `metric` along its curve.

    - `steps_to_target`: the first evaluated step whose value reaches `target` (<= for lower-is-better, >= for
      higher); NaN, with `reached_target` False, when the run never does (a diverged run's curve ends early:
      it counts as not reached, never as fast).
    - `steps_to_within`: the first step whose value is within `within` (a fraction) of the run's own best
      value, |v - best| <= within * |best| (with best = 0 only the best itself qualifies).
    - `auc`: the normalised area under the learning curve, trapezoidal over the evaluated steps divided by the
      span of steps: the run's mean level over training (same direction as the metric: lower is better for
      FID or energy distance). NaN with fewer than 2 finite evaluations.
    Columns: by..., `n_evals`, `first_step`, `last_step`, `best`, `best_step`, `steps_to_within`,
    `steps_to_target`, `reached_target`, `auc`. Non-finite values (a diverged evaluation) are left out."""
    by = _as_tuple(by)
    _check_columns(curves, [*by, "step", metric], "convergence")
    hib = is_higher_better(metric, higher_is_better)
    rows = []
    for key, g in curves.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        g = g.sort_values("step")
        s = g["step"].to_numpy(dtype=float)
        v = pd.to_numeric(g[metric], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(v)
        s, v = s[ok], v[ok]
        row = dict(zip(by, key), n_evals=len(v), first_step=np.nan, last_step=np.nan, best=np.nan, best_step=np.nan,
                   steps_to_within=np.nan, steps_to_target=np.nan, reached_target=False, auc=np.nan)
        if len(v):
            i = int(np.argmax(v) if hib else np.argmin(v))
            best = v[i]
            close = np.abs(v - best) <= within * abs(best)
            row.update(first_step=s[0], last_step=s[-1], best=best, best_step=s[i],
                       steps_to_within=s[int(np.argmax(close))])
            if target is not None:
                hit = v >= target if hib else v <= target
                row["reached_target"] = bool(hit.any())
                row["steps_to_target"] = s[int(np.argmax(hit))] if hit.any() else np.nan
            if len(v) >= 2 and s[-1] > s[0]:
                row["auc"] = float(np.sum((v[1:] + v[:-1]) / 2 * np.diff(s)) / (s[-1] - s[0]))
        rows.append(row)
    return pd.DataFrame(rows, columns=[*by, "n_evals", "first_step", "last_step", "best", "best_step",
                                       "steps_to_within", "steps_to_target", "reached_target", "auc"])


FAILED = ("diverged", "failed")  # statuses whose runs have no convergence value: a failure, never fast


def derived_columns(trials: pd.DataFrame, curves: pd.DataFrame, names) -> pd.DataFrame:
    """`trials` with a `final.<name>` column per derived convergence metric in `names` (bench.metrics.derived:
    `auc:<m>`, `steps_to_within:<m>[@<fraction>]`; other names are skipped), from each trial's curve of <m>
    (`convergence`, matched on `trial_id`), so that questions, statistics and the leaderboard read them like any
    final metric (direction, bounds and scale: bench.metrics.INFO / BOUNDS answer for the derived name).

    - `auc:<m>`: the normalised area under the curve (`convergence`'s `auc`; NaN with fewer than 2 finite
      evaluations).
    - `steps_to_within:<m>`: the first evaluated step within the fraction (default 0.1) of the run's own best
      (`steps_to_within`). A step on the evaluation grid: discrete, a multiple of train.eval_every. It says how
      soon a run settles, not how good it settles: read it beside the end value (e.g. as co-primary with <m>).
    A trial whose status is diverged or failed, or whose curve has no finite value of <m>, gets NaN (as its
    final.<m>): a failure, never fast (a diverged run's curve ends early and would otherwise look quick). A
    column already present is left as it is."""
    from bench.metrics import derived

    out = trials.copy()
    bad = out["status"].isin(FAILED) if "status" in out else pd.Series(False, index=out.index)
    cache: dict[tuple[str, float], pd.DataFrame] = {}
    for name in dict.fromkeys(names or ()):
        d = derived(name)
        col = f"final.{name}"
        if d is None or col in out:
            continue
        key = (d.base, d.within)
        if key not in cache:
            have = "trial_id" in curves and "step" in curves and d.base in curves
            cache[key] = (convergence(curves[curves[d.base].notna()], d.base, within=d.within).set_index("trial_id")
                          if have else pd.DataFrame(columns=["auc", "steps_to_within"]))
        per = cache[key]["auc" if d.kind == "auc" else "steps_to_within"]
        values = out["trial_id"].map(per).astype(float) if "trial_id" in out else pd.Series(np.nan, index=out.index)
        out[col] = values.where(~bad)
    return out
