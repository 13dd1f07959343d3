"""The robustness leaderboard: every variant of every study given, ranked by a criterion that a variant failing
every seed cannot win.

Groups: variants are ranked only against variants that answer the same task on the same data and metric:
(dataset, task, headline metric), where the task is generation from noise, or an encoder-decoder task
(inpainting, CAAE: outputs conditioned on test inputs, whose FID is not a generator's FID).
Per variant (labelled "variant [study]" everywhere):
- **success rate** with its Wilson interval: status ok and not collapsed (analysis.success_rule) over every
  trial, diverged and failed ones included (a failed trial is a failure here, not left out);
- **seed spread** on the metric's scale (bench.metrics.default_scale: relative, std / mean, for non-negative
  unbounded metrics such as FID and energy distance; absolute for bounded ones), pooled over the variant's
  settings with its confidence interval (bench.stats.spread_interval), from the finished runs;
- **weight spread**: the largest spread across one of the variant's own swept axes of the true per-point means,
  seed noise taken out (bench.stats.axis_spread / true_spread, absolute), with its axis;
- **worst**: the worst final value over every finished run.
Rank: success rate first (highest first), then the seed spread (smallest first); a variant with no successful
run is not ranked (listed last, rank "-"). Pure pandas / numpy through bench.stats; never imports torch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench import stats
from bench.metrics import default_scale
from bench.report import analysis
from bench.report.fmt import N_BOOT, fmt, interval
from bench.stats.common import _canon

DS = analysis.DATASET
TEXT = ("Robustness leaderboard: per dataset, task and headline metric (variants that answer different tasks, such "
        "as inpainting and generation from noise, are never ranked together), every variant of every study ranked by "
        "its success rate first (status ok and not collapsed, over every trial: a diverged or failed trial is a "
        "failure; Wilson 95 % interval), then by its seed spread (pooled over the variant's settings, on the metric's "
        "scale: relative, std / mean, for unbounded non-negative metrics such as FID and energy distance, absolute "
        "for bounded ones; 95 % confidence interval, normal seed noise), smallest first. A variant without a "
        "successful run is not ranked. Weight spread: the largest spread across one of the variant's own swept axes "
        "of the per-point means, seed noise taken out (bench.stats.true_spread, absolute, 95 % confidence interval). "
        "Worst: the worst final value over every finished run of the variant.")


def task_of(v: pd.DataFrame) -> str:
    structure = str(v["variant.structure"].iloc[0]) if "variant.structure" in v else "gan"
    if structure in analysis.ED_STRUCTURES:
        task = v["variant.task"].dropna().astype(str).iloc[0] if "variant.task" in v and v["variant.task"].notna().any() \
            else "?"
        return f"encoder-decoder {task}"
    return "generation"


def _plain(variant: str, study: str) -> str:
    """The variant's own label (the report prefixes a label that several studies share with the study's name)."""
    return variant.removeprefix(f"{study}: ")


def leaderboard(trials: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    ok_mask, _ = analysis.success_rule(trials)
    rows = []
    for ds, dsub in trials.groupby(DS, sort=True):
        metric = analysis.primary_metric(dsub, metrics)
        if metric is None:
            continue
        col = f"final.{metric}"
        scale = default_scale(metric)
        for (study, variant), v in dsub.groupby(["study", "variant"], sort=True):
            axes = [a for a in analysis.swept_axes(v) if a.column != DS]
            settings = [c for a in axes for c in a.columns]
            fin = v[(v["status"] == "ok") & np.isfinite(v[col].astype(float))]
            cells = [g[col].astype(float).to_numpy() for _, g in fin.groupby([fin[c].map(_canon) for c in settings])] \
                if settings else [fin[col].astype(float).to_numpy()]
            s, s_lo, s_hi = stats.spread_interval(cells, scale)
            best_axis, w, w_lo, w_hi = None, np.nan, np.nan, np.nan
            for a in axes:
                others = [c for b in axes if b is not a for c in b.columns]
                sp = stats.axis_spread(v.assign(**{c: v[c].map(_canon) for c in others}), metric, a.columns,
                                       by=["variant", *others], n_boot=N_BOOT, seed=analysis.SEED)
                sp = sp[np.isfinite(sp["std"])]
                if not sp.empty and not sp["std"].max() <= (w if np.isfinite(w) else -1):
                    r = sp.loc[sp["std"].idxmax()]
                    best_axis, w, w_lo, w_hi = a.name, float(r["std"]), float(r["std_lo"]), float(r["std_hi"])
            succ = int(((v["status"] == "ok") & ok_mask.loc[v.index]).sum())
            lo, hi = stats.wilson_interval(succ, len(v))
            vals = fin[col].astype(float)
            rows.append({"dataset": ds, "task": task_of(v), "metric": metric, "scale": scale, "study": study,
                         "variant": _plain(variant, study), "trials": len(v),
                         "settings": len([c for c in cells if len(c) >= 2]),
                         "seeds": int(v["seed"].nunique()), "seed_std": s, "seed_std_lo": s_lo, "seed_std_hi": s_hi,
                         "weight": best_axis, "weight_std": w, "weight_std_lo": w_lo, "weight_std_hi": w_hi,
                         "success": succ, "n": len(v), "success_rate": succ / len(v) if len(v) else np.nan,
                         "success_lo": lo, "success_hi": hi, "diverged": int((v["status"] == "diverged").sum()),
                         "failed": int((v["status"] == "failed").sum()),
                         "worst": (vals.min() if stats.is_higher_better(col) else vals.max()) if len(vals) else np.nan})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["label"] = df["variant"] + " [" + df["study"] + "]"
    key = ["dataset", "task", "metric"]
    df = df.assign(_spread=df["seed_std"].fillna(np.inf), _rate=-df["success_rate"].fillna(0))
    df = df.sort_values([*key, "_rate", "_spread", "label"]).drop(columns=["_spread", "_rate"]).reset_index(drop=True)
    ranked = df["success"] > 0
    df["rank"] = pd.array([pd.NA] * len(df), dtype="Int64")
    df.loc[ranked, "rank"] = df[ranked].groupby(key).cumcount() + 1
    return df


def _rank(r) -> str:
    return "-" if pd.isna(r["rank"]) else str(int(r["rank"]))


def _spread_word(scale: str) -> str:
    return {"relative": "relative seed spread (std / mean)", "absolute": "seed spread (std)",
            "log": "seed spread (std of logs)"}[scale]


def table(lb: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    head = ["dataset, task (metric)", "rank", "variant [study]", "success [Wilson]", "seed spread [95 % CI] (scale)",
            "most sensitive weight: spread [CI]", "worst", "seeds x settings"]
    rows = []
    for _, r in lb.iterrows():
        wcell = f"{r['weight']}: {interval(r['weight_std'], r['weight_std_lo'], r['weight_std_hi'])}" \
            if isinstance(r["weight"], str) else "no swept weight"
        rows.append([f"{r['dataset']}, {r['task']} ({r['metric']})", _rank(r), r["label"],
                     f"{r['success']}/{r['n']} = " + interval(r["success_rate"], r["success_lo"], r["success_hi"]) +
                     (f" ({r['diverged']} diverged)" if r["diverged"] else "") +
                     (f" ({r['failed']} failed)" if r["failed"] else ""),
                     interval(r["seed_std"], r["seed_std_lo"], r["seed_std_hi"], "fewer than 2 seeds per setting") +
                     f" ({r['scale']})", wcell, fmt(r["worst"]), f"{r['seeds']} x {r['settings']}"])
    return head, rows


def lines(results_dirs) -> list[str]:
    """The leaderboard of several results folders as terminal lines (`ganbench report` prints them)."""
    from bench.report import load, present_metrics

    data = load(results_dirs)
    lb = leaderboard(data.trials, present_metrics(data.trials, data.curves))
    out = ["Robustness leaderboard (rank: success rate, then seed spread; no successful run: not ranked)"]
    for (ds, task, m), g in lb.groupby(["dataset", "task", "metric"], sort=False):
        out.append(f"{ds}, {task}, final {m} ({analysis.direction(m)}): success rate, then "
                   f"{_spread_word(g['scale'].iloc[0])}, most robust first")
        for _, r in g.iterrows():
            w = f"; {r['weight']} spread {fmt(r['weight_std'])}" if isinstance(r["weight"], str) else ""
            out.append(f"  {_rank(r):>2}. {r['label']}: success {r['success']}/{r['n']}; spread "
                       f"{interval(r['seed_std'], r['seed_std_lo'], r['seed_std_hi'])}{w}")
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
