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

Convergence speed (issue 23): a derived convergence metric that a study's question names (`auc:<m>`, the normalised
area under the learning curve; `steps_to_within:<m>`, the steps to come within 10 % of the run's own best, on the
evaluation grid: bench.metrics.derived), attached by the report's load() as `final.<name>`, gets a group of its own
per dataset and task, ranked the same way on its own direction and scale (steps: relative).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench import stats
from bench.metrics import default_scale, derived
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
        "Worst: the worst final value over every finished run of the variant. A convergence metric that a study's "
        "question names (auc:<metric>, the normalised area under the learning curve; steps_to_within:<metric>, the "
        "steps to come within 10 % of the run's own best, measured on the evaluation grid) is ranked in a group of its "
        "own, the same way; a diverged or failed run has no value for it (a failure, never fast).")


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


def derived_metrics(trials: pd.DataFrame) -> list[str]:
    """The derived convergence metrics (auc:<m>, steps_to_within:<m>; bench.metrics.derived) the trials table has a
    final.<name> column for: the report's load() attaches those a study's question names (bench.results.with_derived)."""
    return [c.removeprefix("final.") for c in trials.columns
            if c.startswith("final.") and derived(c.removeprefix("final.")) is not None]


def leaderboard(trials: pd.DataFrame, metrics: list[str], derived_: list[str] | None = None) -> pd.DataFrame:
    """One row per (dataset, task, metric, study, variant), ranked within (dataset, task, metric). The metrics: each
    dataset's headline metric among `metrics` (analysis.primary_metric), then every derived convergence metric in
    `derived_` (default: those with a final.<name> column, derived_metrics) with a finite value on the dataset."""
    ok_mask, _ = analysis.success_rule(trials)
    extra = derived_metrics(trials) if derived_ is None else list(derived_)
    rows = []
    for ds, dsub in trials.groupby(DS, sort=True):
        primary = analysis.primary_metric(dsub, metrics)
        ranked_on = ([primary] if primary is not None else []) + \
            [m for m in extra if m != primary and analysis.has_finite(dsub, f"final.{m}")]
        for metric in ranked_on:
            rows += _rows(ds, dsub, metric, ok_mask)
    return _ranked(pd.DataFrame(rows))


def _rows(ds, dsub: pd.DataFrame, metric: str, ok_mask: pd.Series) -> list[dict]:
    """The leaderboard rows of one dataset's variants on one metric."""
    col = f"final.{metric}"
    scale = default_scale(metric)
    rows = []
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
    return rows


def _ranked(df: pd.DataFrame) -> pd.DataFrame:
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


def _what(metric: str) -> str:
    """'final <m>' for a recorded metric; a derived convergence metric (a value of the whole curve) by its name."""
    return metric if derived(metric) is not None else f"final {metric}"


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
        out.append(f"{ds}, {task}, {_what(m)} ({analysis.direction(m)}): success rate, then "
                   f"{_spread_word(g['scale'].iloc[0])}, most robust first")
        for _, r in g.iterrows():
            w = f"; {r['weight']} spread {fmt(r['weight_std'])}" if isinstance(r["weight"], str) else ""
            out.append(f"  {_rank(r):>2}. {r['label']}: success {r['success']}/{r['n']}; spread "
                       f"{interval(r['seed_std'], r['seed_std_lo'], r['seed_std_hi'])}{w}")
    return out


def figure_object(lb: pd.DataFrame):
    """The leaderboard figure as a matplotlib Figure (tests inspect its panels): per (dataset, task, metric)
    group a block of two panels sharing the rows, in rank order (most robust on top): the success rate with
    its Wilson interval, and the seed spread on the metric's scale with its interval. Points coloured by arm
    (bench.report.plots.arm_colors); log x where the spreads span more than 30x; constrained layout with
    each block in a subfigure of its own, so one block's long labels never run into its neighbour."""
    from bench.report import plots

    if lb.empty:
        return None
    keys = [k for k in ("dataset", "task", "metric") if k in lb]
    groups = [(k if isinstance(k, tuple) else (k,), g) for k, g in lb.groupby(keys, sort=False)
              if np.isfinite(g["seed_std"].astype(float)).any()]
    if not groups:
        return None
    variants = list(lb["variant"])
    colors = plots.variant_colors(variants)
    label_of = lambda r: r["label"] if isinstance(r.get("label"), str) else f"{r['variant']} [{r['study']}]"  # noqa: E731
    labels = {k: [plots.wrap(label_of(r), 34) for _, r in g.iterrows()] for k, g in groups}
    fig, subs, n_of = _blocks(groups, labels)
    for sf, (key, g) in zip(subs, groups):
        d = dict(zip(keys, key))
        m = d.get("metric", "")
        rate_ax, spread_ax = sf.subplots(1, 2, sharey=True, width_ratios=[1, 2])
        y = np.arange(len(g))
        c = [colors[v] for v in g["variant"]]
        _rate_panel(rate_ax, g, y, c, labels[key], n_of[key])
        _spread_panel(spread_ax, g, y, c, m)
        sf.suptitle(", ".join(str(d[k]) for k in keys if k != "metric") + f", {_what(m)}: rank 1 (most robust) on top",
                    fontsize=10)
    if plots.has_arms(variants):
        shown = plots.arm_order(plots.arm_of(v)[1] for v in variants)
        plots._color_legend(fig, shown, plots.arm_colors(variants), title="arm (colour)")
    return fig


def _blocks(groups: list[tuple], labels: dict) -> tuple:
    """The figure, a subfigure per group (in the groups' order) and per group key the row count of its grid row
    (the panels of a grid row share their height, so a shorter block's rows are spaced like its neighbour's)."""
    from matplotlib.figure import Figure

    # blocks two to a row (five side by side would be too wide to read); a row as tall as its longest block
    ncol = min(2, len(groups))
    rows = [groups[i:i + ncol] for i in range(0, len(groups), ncol)]
    row_n = [max(len(g) for _, g in r) for r in rows]
    per_row = lambda r: (0.42 if any("\n" in t for k, _ in r for t in labels[k]) else 0.3)  # noqa: E731
    heights = [per_row(r) * m + 2.0 for r, m in zip(rows, row_n)]
    fig = Figure(figsize=(9.5 * ncol, sum(heights) + 0.6), layout="constrained")
    fig.get_layout_engine().set(wspace=0.05)  # room between a block's two panels for their end tick labels
    grid = np.array(fig.subfigures(len(rows), ncol, wspace=0.04, hspace=0.02, height_ratios=heights,
                                   squeeze=False))
    subs, n_of = [], {}
    for i, r in enumerate(rows):
        for j in range(ncol):
            if j < len(r):
                subs.append(grid[i, j])
                n_of[r[j][0]] = row_n[i]
    return fig, subs, n_of


def _rate_panel(ax, g: pd.DataFrame, y: np.ndarray, c: list, labels: list[str], n_rows: int) -> None:
    """The success rates with their Wilson intervals; the y tick labels are the ranked variants."""
    from matplotlib.ticker import MaxNLocator

    rate = g["success_rate"].astype(float) if "success_rate" in g else g["success"] / g["n"]
    ax.hlines(y, g["success_lo"].astype(float), g["success_hi"].astype(float), colors=c, linewidth=2)
    ax.scatter(rate, y, color=c, edgecolor="black", linewidth=0.5, zorder=3, s=30)
    ax.set(xlim=(-0.03, 1.03), xlabel="success rate\n[Wilson 95 %]")
    ax.xaxis.set_major_locator(MaxNLocator(3))
    ranks = [None if pd.isna(r) else int(r) for r in g["rank"]] if "rank" in g else [i + 1 for i in y]
    ax.set_yticks(y, [f"{rk}. {lab}" if rk is not None else f"(not ranked) {lab}"
                      for rk, lab in zip(ranks, labels)], fontsize=9)
    ax.set_ylim(n_rows - 0.5, -0.7)  # rank 1 on top


def _spread_panel(ax, g: pd.DataFrame, y: np.ndarray, c: list, m: str) -> None:
    """The seed spreads with their intervals on the metric's scale."""
    from matplotlib.ticker import MaxNLocator

    from bench.report import plots

    # each interval drawn from its ends, the estimate as a point: no assumption that one sits inside the other
    s_, lo, hi = (g[c_].astype(float).to_numpy() for c_ in ("seed_std", "seed_std_lo", "seed_std_hi"))
    ok = np.isfinite(lo) & np.isfinite(hi)
    ax.hlines(y[ok], lo[ok], hi[ok], colors=[c[i] for i in np.flatnonzero(ok)], linewidth=2)
    fin = np.isfinite(s_)
    ax.scatter(s_[fin], y[fin], color=[c[i] for i in np.flatnonzero(fin)], edgecolor="black",
               linewidth=0.5, zorder=3, s=30)
    for i in np.flatnonzero(~fin):
        ax.annotate("no spread (fewer than 2 finished seeds)", (0.01, y[i]), xycoords=("axes fraction", "data"),
                    va="center", fontsize=8, color="0.4")
    # an interval without an upper bound (few seeds on the relative scale): from its lower end to the
    # panel's edge, an arrow head there
    open_ = np.isfinite(lo) & np.isposinf(hi)
    log, bad = plots.metric_scale(None, np.concatenate([s_[fin], lo[ok | open_], hi[ok]]))
    if log:
        ax.set_xscale("log")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(5))
    if open_.any():
        x0, x1 = ax.get_xlim()
        idx = np.flatnonzero(open_)
        ax.hlines(y[idx], lo[idx], x1, colors=[c[i] for i in idx], linewidth=2)
        ax.scatter([x1] * len(idx), y[idx], marker=">", color=[c[i] for i in idx], s=40, clip_on=False, zorder=3)
        ax.set_xlim(x0, x1)
    scale = str(g["scale"].iloc[0]) if "scale" in g else "absolute"
    word = {"relative": "relative seed spread (std / mean)", "log": "seed spread (std of logs)"}.get(
        scale, "seed spread (std)")
    ax.set_xlabel(f"{word} [95 % CI]\nof the {_what(m)}" + (" (log)" if log else "")
                  + (f"\n({bad} at 0 off the log axis)" if bad else "")
                  + ("\n(arrow head: no upper bound)" if open_.any() else ""))
    ax.tick_params(labelleft=False)


def figure(lb: pd.DataFrame) -> bytes | None:
    """Per (dataset, task, metric): each variant's success rate and seed spread with their intervals, in rank
    order."""
    from bench.report import plots

    with plots.themed():
        fig = figure_object(lb)
        return None if fig is None else plots.png(fig)
