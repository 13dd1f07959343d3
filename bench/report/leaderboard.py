"""The robustness leaderboard: every variant of every study given, ranked by how sensitive it is.

Per (dataset, headline metric) group (variants on different data or judged by different metrics are
never ranked against each other) and per variant (a study's variant label):
- **seed spread**: the pooled std across seeds of the final metric over the variant's settings (each
  setting = one point of its own swept weights, run with >= 2 seeds), with its chi-square interval
  (bench.stats.std_interval);
- **weight spread**: for each of the variant's own swept axes, the spread across the axis of the true
  per-point means, seed noise taken out (bench.stats.axis_spread / true_spread, with its confidence
  interval); the largest is shown with
  its axis (the weight the variant is most sensitive to), and, per group, the other axes held fixed;
- **success rate** with its Wilson interval (analysis.success_rule), and the **worst case**: the worst
  final value over every finished seed and setting (diverged runs count in the success rate).
Rank: by seed spread, smallest first (ties and variants without a seed spread last). Pure pandas /
numpy through bench.stats; never imports torch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench import stats
from bench.report import analysis
from bench.report.fmt import N_BOOT, fmt, interval
from bench.stats.common import _canon

DS = analysis.DATASET
TEXT = ("Robustness leaderboard: per dataset and headline metric, every variant of every study ranked by its "
        "seed spread (pooled std across seeds of the final metric over the variant's settings, 95 % chi-square "
        "interval, normal seed noise), smallest first. Weight spread: the "
        "largest spread across one of the variant's own swept axes of the per-point means, seed noise taken out "
        "(bench.stats.true_spread, 95 % confidence interval). Success: status ok and not collapsed, Wilson 95 % interval. Worst: the worst "
        "final value over every finished run of the variant. Variants on different datasets or metrics are "
        "not ranked against each other.")


def leaderboard(trials: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    ok_mask, _ = analysis.success_rule(trials)
    rows = []
    for ds, dsub in trials.groupby(DS, sort=True):
        metric = analysis.primary_metric(dsub, metrics)
        if metric is None:
            continue
        col = f"final.{metric}"
        hib = stats.is_higher_better(col)
        for (study, variant), v in dsub.groupby(["study", "variant"], sort=True):
            axes = [a for a in analysis.swept_axes(v) if a.column != DS]
            settings = [c for a in axes for c in a.columns]
            fin = v[(v["status"] == "ok") & np.isfinite(v[col].astype(float))]
            cells = [g[col].astype(float).to_numpy() for _, g in fin.groupby([fin[c].map(_canon) for c in settings])] \
                if settings else [fin[col].astype(float).to_numpy()]
            s, s_lo, s_hi, _ = stats.std_interval(cells)
            best_axis, w, w_lo, w_hi = None, np.nan, np.nan, np.nan
            for a in axes:
                others = [c for b in axes if b is not a for c in b.columns]
                sp = stats.axis_spread(v.assign(**{c: v[c].map(_canon) for c in others}), metric, a.columns,
                                       by=["variant", *others], n_boot=N_BOOT, seed=analysis.SEED)
                sp = sp[np.isfinite(sp["std"])]
                if not sp.empty and not sp["std"].max() <= (w if np.isfinite(w) else -1):
                    r = sp.loc[sp["std"].idxmax()]
                    best_axis, w, w_lo, w_hi = a.name, float(r["std"]), float(r["std_lo"]), float(r["std_hi"])
            counted = v[v["status"] != "failed"]
            succ = int(((counted["status"] == "ok") & ok_mask.loc[counted.index]).sum())
            lo, hi = stats.wilson_interval(succ, len(counted))
            vals = fin[col].astype(float)
            rows.append({"dataset": ds, "metric": metric, "study": study, "variant": variant, "trials": len(v),
                         "settings": len([c for c in cells if len(c) >= 2]),
                         "seeds": int(v["seed"].nunique()), "seed_std": s, "seed_std_lo": s_lo, "seed_std_hi": s_hi,
                         "weight": best_axis, "weight_std": w, "weight_std_lo": w_lo, "weight_std_hi": w_hi,
                         "success": succ, "n": len(counted), "success_lo": lo, "success_hi": hi,
                         "worst": (vals.min() if hib else vals.max()) if len(vals) else np.nan})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["rank"] = df.groupby(["dataset", "metric"])["seed_std"].rank(method="min", na_option="bottom").astype(int)
    return df.sort_values(["dataset", "metric", "rank", "variant"]).reset_index(drop=True)


def table(lb: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    head = ["dataset (metric)", "rank", "variant", "study", "seed spread [95 % CI]", "most sensitive weight: spread [CI]",
            "success [Wilson]", "worst", "seeds x settings"]
    rows = []
    for _, r in lb.iterrows():
        wcell = f"{r['weight']}: {interval(r['weight_std'], r['weight_std_lo'], r['weight_std_hi'])}" \
            if isinstance(r["weight"], str) else "no swept weight"
        rows.append([f"{r['dataset']} ({r['metric']})", str(r["rank"]), r["variant"], r["study"],
                     interval(r["seed_std"], r["seed_std_lo"], r["seed_std_hi"], "fewer than 2 seeds per setting"), wcell,
                     f"{r['success']}/{r['n']} = " + interval(r["success"] / r["n"] if r["n"] else np.nan, r["success_lo"], r["success_hi"]),
                     fmt(r["worst"]),
                     f"{r['seeds']} x {r['settings']}"])
    return head, rows


def lines(results_dirs) -> list[str]:
    """The leaderboard of several results folders as terminal lines (`ganbench report` prints them)."""
    from bench.report import load, present_metrics

    data = load(results_dirs)
    lb = leaderboard(data.trials, present_metrics(data.trials, data.curves))
    out = ["Robustness leaderboard"]
    for (ds, m), g in lb.groupby(["dataset", "metric"], sort=False):
        out.append(f"{ds}, final {m} ({analysis.direction(m)}): seed spread, most robust first")
        for _, r in g.iterrows():
            w = f"; {r['weight']} spread {fmt(r['weight_std'])}" if isinstance(r["weight"], str) else ""
            out.append(f"  {r['rank']:>2}. {r['variant']} [{r['study']}]: "
                       f"{interval(r['seed_std'], r['seed_std_lo'], r['seed_std_hi'])}{w}; success {r['success']}/{r['n']}")
    return out


def figure(lb: pd.DataFrame) -> bytes | None:
    """One panel per (dataset, metric): each variant's seed spread with its interval, most robust on top."""
    from matplotlib.figure import Figure

    from bench.report.plots import png

    groups = [(k, g) for k, g in lb.groupby(["dataset", "metric"], sort=False) if np.isfinite(g["seed_std"]).any()]
    if not groups:
        return None
    fig = Figure(figsize=(7 * len(groups), 0.45 * max(len(g) for _, g in groups) + 1.5))
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, ((ds, m), g) in zip(axes, groups):
        g = g[np.isfinite(g["seed_std"])].iloc[::-1]
        y = np.arange(len(g))
        # each interval drawn from its ends, the estimate as a point: no assumption that one sits inside the other
        ok = np.isfinite(g["seed_std_lo"]) & np.isfinite(g["seed_std_hi"])
        ax.hlines(y[ok], g["seed_std_lo"][ok], g["seed_std_hi"][ok], color="C0")
        ax.plot(g["seed_std"], y, "o", color="C0")
        ax.set_yticks(y, [f"{v} [{s}]" for v, s in zip(g["variant"], g["study"])])
        ax.set_xlabel(f"std across seeds of the final {m}")
        ax.set_title(f"{ds}: most robust at the top")
    return png(fig)
