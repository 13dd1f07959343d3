"""The seed paper's Table 2 for ED+GAN vs ED//GAN studies: NRDS per structure (rows) and adversarial
weight w (columns), mean over seeds with t intervals, the std across w of the per-w means
(the paper's robustness measure), the spread across w with the seed noise taken out and its confidence
interval (bench.stats.true_spread), the ED//GAN vs ED+GAN spread ratio with a Brown-Forsythe test,
and the NRDS curves. Reads nrds.parquet and trials.parquet only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench import results, stats
from bench.report import analysis, plots
from bench.report.fmt import fmt, interval, mean_ci, p_is, show_value

STRUCTURES = analysis.ED_STRUCTURES
GROUP = ("dataset.name", "variant.task", "train.optimizer")


def nrds_trials(results_dirs) -> pd.DataFrame:
    """One row per scored trial: its config columns, seed, and `final.nrds` (NaN when it diverged)."""
    dirs = [Path(results_dirs)] if isinstance(results_dirs, (str, Path)) else [Path(d) for d in results_dirs]
    parts = []
    for d in dirs:
        nr = results.load_nrds(d)
        if nr.empty:
            continue
        trials = results.read_parquet(d / results.TRIALS)  # the curves are not needed here
        cols = ["trial_id", "seed", *GROUP, "variant.structure", "variant.w"]
        m = nr[["trial_id", "group", "score", "curve", "real_curve", "status"]].merge(
            trials[[c for c in cols if c in trials]], on="trial_id", how="left")
        parts.append(m.rename(columns={"score": "final.nrds"}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _cell(g: pd.DataFrame) -> str:
    """Mean NRDS over the seeds that did not diverge [CI], and how many diverged (they have no score)."""
    text = mean_ci(g["final.nrds"].astype(float))
    n_div = int((g["status"] == "diverged").sum())
    return text + (f" ({n_div} of {len(g)} diverged)" if n_div else "")


def blocks(results_dirs) -> tuple[list[str], list[tuple]]:
    """(headline sentences, report blocks) for the studies' NRDS results; ([], []) when there are none."""
    df = nrds_trials(results_dirs)
    if df.empty:
        return [], []
    headlines: list[str] = []
    out: list[tuple] = [("h2", "ED+GAN vs ED//GAN: NRDS across the adversarial weight w (seed Table 2)")]
    out.append(("p", "NRDS is relative: scores are normalised within a comparison group (all structures and "
                     "weights of one dataset, task, optimizer and seed), so each sums to 1 over its group. "
                     "Cells: mean over seeds [95 % t interval over seeds]; 'std across w': the std of "
                     "the per-w means (the seed paper's robustness measure, which seed noise alone raises to about "
                     "its noise floor); 'spread across w': the spread of the true per-w means with the seed noise "
                     "taken out [95 % confidence interval, noncentral F, normal seed noise: "
                     "bench.stats.true_spread]. Higher NRDS = the samples fooled the classifier for longer. A diverged trial has no "
                     "outputs and no score; cells say how many of their seeds diverged, and the spread uses the "
                     "seeds that did not."))
    for key, sub in df.groupby(list(GROUP), dropna=False):
        ws = sorted(sub["variant.w"].dropna().unique())
        header = ["structure", *[f"w={show_value(w)}" for w in ws], "std across w", "spread across w [95 % CI]"]
        spread = stats.axis_spread(sub.assign(status="ok").dropna(subset=["final.nrds"]), "final.nrds",
                                   axis="variant.w", by=("variant.structure",), higher_is_better=True)
        rows, std_cell, table2 = [], {}, {}
        for s in [s for s in STRUCTURES if s in set(sub["variant.structure"])]:
            g = sub[sub["variant.structure"] == s]
            sp = spread[spread["variant.structure"] == s]
            if sp.empty or not np.isfinite(sp["std"].iloc[0]):
                std_cell[s] = table2[s] = "n/a"
            else:
                r = sp.iloc[0]
                std_cell[s] = interval(r["std"], r["std_lo"], r["std_hi"], "< 2 seeds")
                table2[s] = fmt(r["std_means"])
            rows.append([s] + [_cell(g[g["variant.w"] == w]) for w in ws] + [table2[s], std_cell[s]])
        out.append(("h3", " / ".join(map(str, key))))
        out.append(("table", header, rows))
        if {"ed//gan", "ed+gan"} <= set(sub["variant.structure"]):
            cmp = stats.spread_comparison(sub.assign(status="ok").dropna(subset=["final.nrds"]), "final.nrds",
                                          axis="variant.w", compare="variant.structure", a="ed//gan", b="ed+gan",
                                          by=("dataset.name",))
            if not cmp.empty:
                c = cmp.iloc[0]
                p = f", Brown-Forsythe {p_is(c['p_value'])}" if np.isfinite(c["p_value"]) else ""
                sentence = (f"On {' / '.join(map(str, key))}, across w in [{fmt(ws[0])}, {fmt(ws[-1])}], the spread "
                            f"of ED//GAN's NRDS, seed noise taken out, is {std_cell['ed//gan']} against {std_cell['ed+gan']} "
                            f"for ED+GAN (ratio {interval(c['ratio'], c['ratio_lo'], c['ratio_hi'])}{p}; < 1 means "
                            "ED//GAN is less sensitive to w)" + (f". Note: {c['reason']}" if c["reason"] else "") + ".")
                headlines.append(sentence)
                out.append(("p", sentence))
    img = curves_plot(df)
    if img:
        out.append(("img", "nrds_curves", img, "NRDS curves of the lowest seed's comparison group per dataset / "
                                               "task / optimizer: mean classifier output per epoch on each model's "
                                               "samples; dashed: real"))
    return headlines, out


def curves_figure(df: pd.DataFrame):
    """NRDS curves of the lowest seed's group: one row of panels per dataset / task / optimizer, one panel per
    structure, one line per w (colour: w, dark = small, the same in every panel); dashed = the classifier's
    mean output on the real images."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    ok = df.dropna(subset=["final.nrds"])
    if ok.empty:
        return None
    keys = [k for k in GROUP if k in ok]
    firsts = list(ok.sort_values(["seed", "group"]).groupby(keys, dropna=False, sort=True)["group"].first())
    structures = [s for s in STRUCTURES if s in set(ok["variant.structure"])] + \
        sorted(set(ok["variant.structure"]) - set(STRUCTURES))
    ws = sorted(ok["variant.w"].dropna().unique())
    wcol = dict(zip(ws, plots.sns.color_palette("viridis", len(ws))))
    ncol = len(structures)
    fig = Figure(figsize=(3.6 * ncol, 2.9 * len(firsts) + 0.8), layout="constrained")
    axes = fig.subplots(len(firsts), ncol, squeeze=False, sharey=True)
    for row, group in zip(axes, firsts):
        g = ok[ok["group"] == group]
        for ax, s in zip(row, structures):
            gs = g[g["variant.structure"] == s].sort_values("variant.w")
            for _, r in gs.iterrows():
                ax.plot(range(1, len(r["curve"]) + 1), list(r["curve"]), color=wcol.get(r["variant.w"], "grey"), lw=1.4)
            real = g["real_curve"].iloc[0]
            ax.plot(range(1, len(real) + 1), list(real), "k--", lw=1.2)
            ax.set(xlabel="epoch", ylim=(-0.02, 1.02))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("mean classifier output" if ax is row[0] else "")
            ax.set_title(f"{s}: {group.rsplit('/', 1)[0]}" + ("" if not gs.empty else " (no run)"), fontsize=9)
    handles = [Line2D([], [], color=wcol[w], lw=2, label=f"w = {show_value(w)}") for w in ws]
    handles.append(Line2D([], [], color="black", ls="--", label="real"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=9)
    fig.suptitle("NRDS curves, lowest seed's comparison group: one panel per structure, colour = w", fontsize=10)
    return fig


def curves_plot(df: pd.DataFrame) -> bytes | None:
    """NRDS curves of the lowest seed's group (see curves_figure)."""
    with plots.themed():
        fig = curves_figure(df)
        return None if fig is None else plots.png(fig)
