"""Figures of a random-search study's page (bench.report.protocol): the distribution of the final metric over the
sampled space per variant, the paired differences per base, fANOVA importance, partial dependence, and the seed
share of the variance. Same conventions as bench.report.plots (arm colours, base-by-base order, PNG bytes or None;
`<name>_figure` twins return the Figure). Never imports torch."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.report import plots
from bench.report.plots import DATASET, axis_label, metric_scale, themed

FAILED = "#d55e00"  # a failed point, drawn at the value it counts at


def _rows(n: int) -> float:
    return 0.32 * n + 1.4


def distribution_figure(out: pd.DataFrame, metric: str, variants: list[str]) -> Figure | None:
    """Box + one point per sampled point, variants on the y axis base by base; failed points as crosses."""
    if out.empty:
        return None
    order = [v for v in plots.ordered(variants) if v in set(out["variant"])]
    colors = plots.variant_colors(variants)
    datasets = sorted(out[DATASET].unique())
    fig, axes = plots._facets(len(datasets), 6.0, _rows(len(order)), sharey=True)
    rng = np.random.default_rng(0)  # fixed jitter: a rebuild draws the same figure
    for ax, ds in zip(axes, datasets):
        d = out[out[DATASET] == ds]
        data = [d.loc[d["variant"] == v, "value"].to_numpy(dtype=float) for v in order]
        bp = ax.boxplot(data, orientation="horizontal", positions=range(len(order)), widths=0.6, showfliers=False,
                        patch_artist=True, medianprops={"color": "black"})
        for patch, v in zip(bp["boxes"], order):
            patch.set(facecolor=(*colors[v], 0.45), edgecolor="black")
        for i, v in enumerate(order):
            g = d[d["variant"] == v]
            y = i + rng.uniform(-0.15, 0.15, len(g))
            ok = ~g["failed"].to_numpy()
            ax.scatter(g["value"][ok], y[ok], s=10, color="black", zorder=3)
            ax.scatter(g["value"][~ok], y[~ok], s=22, marker="x", color=FAILED, zorder=3)
        log, _ = metric_scale(metric, d["value"])
        if log:
            ax.set_xscale("log")
        ax.set(xlabel=axis_label(metric, log), title=str(ds) if len(datasets) > 1 else "")
        ax.set_yticks(range(len(order)), [plots.wrap(v) for v in order])
        ax.set_ylim(len(order) - 0.5, -0.5)
    fig.legend(handles=[Line2D([], [], ls="", marker="o", color="black", ms=4, label="a sampled point"),
                        Line2D([], [], ls="", marker="x", color=FAILED, ms=6, label="diverged / failed (at the worst "
                                                                                      "value)")],
               loc="outside lower center", ncol=2, frameon=False, fontsize=9)
    plots._title(fig, f"final {metric} over the sampled space: one point per sampled configuration (stage 1, one "
                      "seed), box = quartiles", 6.0 * len(datasets))
    return fig


def paired_figure(p: pd.DataFrame, summary: pd.DataFrame, metric: str, wb: str, wa: str) -> Figure | None:
    """Per base: the per-point differences treated - control, their mean and 95 % t interval; zero marked."""
    if p.empty:
        return None
    datasets = sorted(p[DATASET].unique())
    keys = list(dict.fromkeys(zip(p["base"], p["variant_b"])))
    rng = np.random.default_rng(0)
    labels = [vb for _b, vb in keys] + (["all (per-point mean over the bases)"] if (summary["base"] == "all").any()
                                        else [])
    fig, axes = plots._facets(len(datasets), 6.0, _rows(len(labels)), sharey=True)
    for ax, ds in zip(axes, datasets):
        for i, (base, vb) in enumerate(keys):
            d = p[(p[DATASET] == ds) & (p["base"] == base) & (p["variant_b"] == vb)]
            ax.scatter(d["diff"], i + rng.uniform(-0.15, 0.15, len(d)), s=10, color="black", alpha=0.6)
        if len(labels) > len(keys):  # the per-point means over the bases: the units of the averaged test
            g = p[p[DATASET] == ds].groupby(["sample", "seed"])["diff"]
            m = g.mean()[g.count() == len(keys)]
            ax.scatter(m, len(keys) + rng.uniform(-0.15, 0.15, len(m)), s=10, color="black", alpha=0.6)
        s = summary[summary[DATASET] == ds]
        for _, r in s.iterrows():
            i = len(keys) if r["base"] == "all" else keys.index((r["base"], r["variant_b"]))
            if np.isfinite(r["lo"]):
                ax.plot([r["lo"], r["hi"]], [i, i], color=plots.GENERATED, lw=3, zorder=4)
            ax.plot([r["mean_diff"]], [i], marker="D", color=plots.GENERATED, ms=6, zorder=5)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(labels)), [plots.wrap(x) for x in labels])
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set(xlabel=f"{metric}: {wb} minus {wa}", title=str(ds) if len(datasets) > 1 else "")
    plots._title(fig, f"final {metric}, paired on the sampled point: one dot per point, diamond and bar = mean and "
                      "95 % t interval", 6.0 * len(datasets))
    return fig


def importance_figure(imp: dict, variants: list[str]) -> Figure | None:
    """Variants x knobs heatmap of the fANOVA share (blank: the knob is not sampled for that variant)."""
    tabs = {v: t for (_ds, v), t in imp.items() if isinstance(t, pd.DataFrame) and not t.empty}
    if not tabs:
        return None
    order = [v for v in plots.ordered(variants) if v in tabs]
    knobs = list(dict.fromkeys(k for v in order for k in tabs[v]["knob"]))
    m = np.full((len(order), len(knobs)), np.nan)
    for i, v in enumerate(order):
        for _, r in tabs[v].iterrows():
            m[i, knobs.index(r["knob"])] = r["importance"]
    fig = Figure(figsize=(1.1 * len(knobs) + 3.0, max(3.0, _rows(len(order)))), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(np.ma.masked_invalid(m), cmap="viridis", vmin=0, vmax=max(0.01, np.nanmax(m)), aspect="auto")
    for i in range(len(order)):
        for j in range(len(knobs)):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if m[i, j] < 0.6 * np.nanmax(m) else "black")
    ax.set_xticks(range(len(knobs)), [plots.wrap(k, 14) for k in knobs], rotation=30, ha="right")
    ax.set_yticks(range(len(order)), order)
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="fANOVA share of variance", shrink=0.8)
    plots._title(fig, "which knobs matter: fANOVA share of the final metric's variance over the sampled space, mean "
                      "of 5 forests (blank: not sampled for that variant)", fig.get_figwidth())
    return fig


def seed_share_figure(t2: pd.DataFrame, variants: list[str]) -> Figure | None:
    per = t2.drop_duplicates([DATASET, "variant"]) if not t2.empty else t2
    if per.empty or not np.isfinite(per["share"]).any():
        return None
    per = per[np.isfinite(per["share"])]
    order = [v for v in plots.ordered(variants) if v in set(per["variant"])]
    colors = plots.variant_colors(variants)
    fig = Figure(figsize=(6.5, _rows(len(order))), layout="constrained")
    ax = fig.subplots()
    for i, v in enumerate(order):
        r = per[per["variant"] == v].iloc[0]
        ax.plot([r["share_lo"], r["share_hi"]], [i, i], color=colors[v], lw=3)
        ax.plot([r["share"]], [i], marker="o", color=colors[v], ms=7, mec="black")
    ax.axvline(1, color="black", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yticks(range(len(order)), order)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set(xlabel="seed variance at the best points / variance over the space (log)")
    plots._title(fig, "how much of the outcome is the seed: ratio with its 95 % F interval (1: the sampled space "
                      "matters no more than the seed)", 6.5)
    return fig


def partial_dependence_figure(pd_by: dict, metric: str, variants: list[str], knobs: list[str],
                              log: set[str] = frozenset()) -> Figure | None:
    """Rows = bases, columns = knobs; one line per variant of the base (its arm's colour) with the min..max band
    over forests. `pd_by`: {(variant, knob): partial_dependence DataFrame}; `log`: knobs drawn log-uniform (log x)."""
    if not pd_by or not knobs:
        return None
    base = plots.bases(variants)
    rows = list(dict.fromkeys(base[v] for v in plots.ordered(variants) if any((v, k) in pd_by for k in knobs)))
    colors = plots.variant_colors(variants)
    fig, axes = plots._panel_grid(len(rows) * len(knobs), len(knobs), 2.8, 2.2, layout="constrained")
    for i, b in enumerate(rows):
        for j, k in enumerate(knobs):
            ax = axes[i, j]
            for v in [v for v in variants if base[v] == b and (v, k) in pd_by]:
                c = pd_by[(v, k)]
                num = pd.to_numeric(c["value"], errors="coerce")
                x = num if num.notna().all() else np.arange(len(c))
                ax.plot(x, c["mean"], color=colors[v], marker="o" if num.isna().any() else None, ms=3)
                ax.fill_between(x, c["lo"], c["hi"], color=colors[v], alpha=0.2, lw=0)
                if num.isna().any():
                    ax.set_xticks(range(len(c)), c["value"].astype(str))
                elif k in log or (num.gt(0).all() and num.max() > 100 * num.min()):
                    ax.set_xscale("log")
            ax.set_title(f"{b}" if j == 0 else "", fontsize=9, loc="left")
            ax.set_xlabel(k if i == len(rows) - 1 else "", fontsize=8)
            ax.set_ylabel(metric if j == 0 else "", fontsize=8)
            ax.tick_params(labelsize=7)
    arms = plots.arm_colors(variants)
    fig.legend(handles=[Line2D([], [], color=c, label=a) for a, c in arms.items()], loc="outside lower center",
               ncol=min(4, len(arms)), frameon=False, fontsize=9)
    plots._title(fig, f"partial dependence of the final {metric} on the most important knobs (random-forest "
                      "surrogate, other knobs averaged over their sampled values; band: min..max over forests)",
                 fig.get_figwidth())
    return fig


def png(figure_fn, *args) -> bytes | None:
    with themed():
        return plots._png(figure_fn(*args))
