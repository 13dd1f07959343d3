"""A section per variant of the conditional and encoder GANs (CGAN, ACGAN, InfoGAN, AGE, ALI, SGAN, and
any structure added after them): what it is, each of its own weights named in words (the config
schema's description), its own metrics per weight value with t intervals over seeds, the spread
across the weight (`bench.stats.axis_spread`: the spread with the seed noise taken out and its
confidence interval, the range of the per-value means, best and worst value), the
success rate per weight value, a figure of every own metric against the weight, and its own images
(class grids, latent traversals, reconstructions) at each weight.

A variant's *own* metrics are the ones its trials measured beyond sample quality (the structure's
Evaluate reports them: class accuracy, code agreement, reconstruction error, ...); they come first,
then FID / KID / precision / recall. Reads trials and curves only; never imports model code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench import catalog, stats
from bench.metrics import DIAGNOSTIC, INFO, bounds
from bench.report import analysis, plots
from bench.report.fmt import N_BOOT, fmt, interval, mean_ci, show_value
from bench.schema import TrialConfig

DATASET = analysis.DATASET
# the name a reader knows each structure by and one line (its DECLARE's title and doc: bench.catalog)
NAMES = {name: (s.title, s.doc) for name, s in catalog.catalog().items()}
# sample-quality metrics: shown after a variant's own ones (the rest of INFO that it measured is "own")
SAMPLE = ("fid", "kid_mean", "precision", "recall")
TOY_SAMPLE = ("modes_covered", "hq_fraction", "energy_distance")  # a toy run's sample quality (no image metrics)
GENERIC = (*SAMPLE, "kid_std", "density", "coverage", "modes_covered", "hq_fraction", "mode_kl", "energy_distance",
           "inception_fid", "inception_kid_mean", "inception_kid_std")
MAX_WEIGHT_IMAGES = 6  # image rows per variant (one per weight value)


def describe(column: str) -> str:
    """A config column in words, from the schema: 'variant.lambda_cls' -> its Field description."""
    section, _, name = column.partition(".")
    model = TrialConfig.model_fields.get(section)
    field = model.annotation.model_fields.get(name) if model is not None and hasattr(model.annotation, "model_fields") \
        else None
    text = (field.description or "") if field is not None else ""
    return text.split(": ", 1)[1] if ": " in text and text.split(": ", 1)[0].isidentifier() else text


def own_metrics(sub: pd.DataFrame, structure: str | None = None) -> tuple[list[str], list[str]]:
    """(the variant's own metrics, the sample-quality metrics: images' FID / KID / precision / recall, the toys'
    modes / quality / energy distance) that have a finite final value in its trials. Its own: what its
    declaration lists (bench.catalog), else every metric that is not a sample metric."""
    def has(m):
        return analysis.has_finite(sub, f"final.{m}")
    spec = catalog.catalog().get(structure) if structure else None
    own = [*spec.metrics, *spec.new_metrics] if spec is not None else [m for m in INFO if m not in GENERIC]
    return [m for m in dict.fromkeys(own) if has(m)], [m for m in SAMPLE if has(m)] or [m for m in TOY_SAMPLE if has(m)]


def _sectioned(structure: str) -> bool:
    """Does this structure get the own-weights section here (declared `own_weights`, and no section of its own such
    as the encoder-decoders' `edgan`)? A structure the catalog no longer knows (an old folder) does."""
    spec = catalog.catalog().get(structure)
    return spec is None or ("own_weights" in spec.sections and "edgan" not in spec.sections)


def variants(trials: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(variant, structure, its trials) for every variant whose structure declares the own-weights section."""
    if "variant.structure" not in trials:
        return []
    out = []
    for v in dict.fromkeys(trials["variant"]):
        sub = trials[trials["variant"] == v]
        s = str(sub["variant.structure"].iloc[0])
        if _sectioned(s):
            out.append((v, s, sub))
    return out


def per_value_table(sub: pd.DataFrame, axis: analysis.Axis, others: list[str], metrics: list[str]):
    """Rows: one value of the weight (and of the other swept axes), in the axis' order; cells: ok / trials,
    success rate [Wilson] (`stats.success_rate` with the report's rule) and each metric's mean over seeds
    [t interval]."""
    mask, _ = analysis.success_rule(sub)
    keys = [axis.column, *others]
    arrow = {m: "" if m in DIAGNOSTIC else " ↑" if INFO[m][0] else " ↓" for m in metrics}  # a diagnostic has no better
    header = [*keys, "ok / trials", "success [95 % Wilson]", *[f"{m}{arrow[m]}" for m in metrics]]
    order = {analysis._key(v): i for i, v in enumerate(axis.values)}
    groups = sub.groupby([sub[k].map(analysis._key) for k in keys], sort=False, dropna=False)
    rows = []
    for _, g in sorted(groups, key=lambda kg: order.get(kg[0][0], len(order))):
        first = g.iloc[0]
        r = stats.success_rate(g, lambda t: mask.loc[t.index], by=(), count_failed=True).iloc[0]
        rows.append([*[show_value(first[k]) for k in keys], f"{int((g['status'] == 'ok').sum())} / {len(g)}",
                     interval(r["rate"], r["lo"], r["hi"]), *[mean_ci(g[f"final.{m}"].astype(float), *bounds(m, g[analysis.DATASET].iloc[0] if analysis.DATASET in g else None)) for m in metrics]])
    return header, rows


def spread_table(sub: pd.DataFrame, axis: analysis.Axis, others: list[str], metrics: list[str]):
    """Per metric (not the diagnostics: they have no better or worse) and setting of the other axes that holds two or
    more values of the weight: the spread across the weight, with intervals."""
    header = ["metric", *others, "points (empty)", "spread across the weight [95 % CI]", "range [resampled]", "best (at)",
              "worst (at)", "note"]
    rows, first = [], {}
    for m in [m for m in metrics if m not in DIAGNOSTIC]:
        t = stats.axis_spread(sub, m, axis.column, by=["variant", DATASET, *others], n_boot=N_BOOT, seed=analysis.SEED)
        for _, r in t[t["n_points"] >= 2].iterrows():  # a setting with one value of the weight has no spread
            first.setdefault(m, r)
            rows.append([f"{m} ({analysis.direction(m)})", *[show_value(r[c]) for c in others],
                         f"{int(r['n_points'])} ({int(r['n_points_empty'])})",
                         interval(r["std"], r["std_lo"], r["std_hi"]), interval(r["range"], r["range_lo"], r["range_hi"]),
                         f"{fmt(r['best'])} ({show_value(r['best_at'])})", f"{fmt(r['worst'])} ({show_value(r['worst_at'])})",
                         analysis.note(r)])
    return header, rows, first


def metrics_vs_weight_figure(sub: pd.DataFrame, axis: analysis.Axis, metrics: list[str], title: str) -> Figure | None:
    if not metrics or not axis.numeric:
        return None
    fig, axes = plots._panel_grid(len(metrics), 4, 3.6, 3.0, layout="constrained")
    logx = plots.log_x(axis.values)  # weights spanning >= 10x (all positive)
    # what one dot is: one seed at one weight value, unless other config fields vary too (then pooled)
    others = [g for g in plots.swept_within(sub) if axis.column not in g]
    pooled = f", pooled over {', '.join(plots._short(g[0]) for g in others)}" if others else ""
    for ax, m in zip(axes.flat, metrics):
        d = sub[[axis.column, f"final.{m}"]].astype(float).dropna()
        d = d[np.isfinite(d[f"final.{m}"])]
        if d.empty:
            ax.set_title(f"{m}: no value", fontsize=9)
            continue
        ax.scatter(d[axis.column], d[f"final.{m}"], s=14, alpha=0.6, color=plots.GENERATED, label="seed")
        mean = d.groupby(axis.column)[f"final.{m}"].mean()
        ax.plot(mean.index, mean.values, marker="o", color="black", lw=1.2, label="mean over seeds")
        log, _ = plots.metric_scale(m, d[f"final.{m}"])
        if log:
            ax.set_yscale("log")
        if logx:
            ax.set_xscale("log")
            ax.set_xticks(list(mean.index), [show_value(v) for v in mean.index])
            ax.minorticks_off()
        ax.set_xlabel(axis.column.split(".", 1)[-1] + (" (log)" if logx else ""))
        ax.set_title(m + ("" if m in DIAGNOSTIC else f" ({'↑' if INFO[m][0] else '↓'})") + (" (log)" if log else ""),
                     fontsize=9)
    fig.suptitle(f"{title}\n(dots: one per seed at each value{pooled}; line: mean over seeds)", fontsize=10)
    return fig


def metrics_vs_weight(sub: pd.DataFrame, axis: analysis.Axis, metrics: list[str], title: str) -> bytes | None:
    """One panel per metric: final value vs the weight, one point per seed, the mean over seeds as a line."""
    with plots.themed():
        fig = metrics_vs_weight_figure(sub, axis, metrics, title)
        return None if fig is None else plots.png(fig)


def weight_images(sub: pd.DataFrame, curves: pd.DataFrame, axis: analysis.Axis | None, title: str) -> bytes | None:
    """The variant's own images at the last evaluation of its lowest seed, one column per weight value:
    every grid kind it saved except the real images (generated class grids, latent traversals, inputs
    and reconstructions)."""
    if curves.empty or "trial_id" not in curves:
        return None
    kinds = [c for c in curves.columns if c.startswith("grid_") and c != "grid_real"
             and curves.loc[curves["trial_id"].isin(sub["trial_id"]), c].notna().any()]
    if not kinds:
        return None
    picks = []
    groups = sub.groupby(sub[axis.column].map(analysis._key), sort=False) if axis else [("", sub)]
    for _, g in groups:
        t = g.sort_values("seed").iloc[0]
        c = curves[(curves["trial_id"] == t["trial_id"]) & curves[kinds[0]].notna()]
        if not c.empty:
            picks.append((t, c.sort_values("step").iloc[-1]))
    if axis is not None and axis.numeric:
        picks.sort(key=lambda p: float(p[0][axis.column]))
    picks = picks[:MAX_WEIGHT_IMAGES]
    if not picks:
        return None
    # one column per weight value, one row per kind of image
    fig = Figure(figsize=(len(picks) * 2.6, len(kinds) * 2.9))
    root = Path("/")  # grid paths are absolute (bench.report.load)
    for j, (t, c) in enumerate(picks):
        for i, kind in enumerate(kinds):
            ax = fig.add_subplot(len(kinds), len(picks), i * len(picks) + j + 1)
            ax.set_axis_off()
            img = plots._imread(root, c.get(kind))
            if img is None:
                ax.text(0.5, 0.5, "not saved", ha="center", va="center")
                continue
            plots._show(ax, img)
            weight = f"{axis.column.split('.', 1)[-1]} = {show_value(t[axis.column])}, " if axis else ""
            ax.set_title(f"{weight}seed {t['seed']}\n{kind[5:]}, step {int(c['step'])}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return plots.png(fig)


def blocks(trials: pd.DataFrame, curves: pd.DataFrame) -> tuple[list[str], list[tuple]]:
    """(headline sentences, report blocks): one section per zoo variant; ([], []) when there is none."""
    heads: list[str] = []
    out: list[tuple] = []
    for v, structure, sub in variants(trials):
        name, line = NAMES.get(structure, (structure, ""))
        own, sample = own_metrics(sub, structure)
        metrics = own + sample
        axes = analysis.swept_axes(sub)
        title = f"{name} ({v})" if name.lower() != v else name
        out.append(("h2", f"{title}: sensitivity to its own weights"))
        words = "; ".join(f"`{a.column}` {a.span()}: {describe(a.column) or 'no description'}" for a in axes)
        out.append(("p", (line + ". " if line else "") + (f"Swept: {words}." if axes else
                    "No weight of its own is swept in this study (one setting): the table is per setting.")
                    + (f" Judged by its own metrics ({', '.join(own)}) and by sample quality "
                       f"({', '.join(sample)})." if own else "")
                    + f" Seeds: {sub['seed'].nunique()}."))
        if not metrics:
            out.append(("p", "No finite final metric in its trials."))
            continue
        if not axes:
            out.append(("table", *per_value_table(sub.assign(setting="the study's"),
                                                  analysis.Axis("setting", ["setting"], ["the study's"]), [], metrics)))
            img = weight_images(sub, curves, None, f"{title}: its own images")
            if img:
                out.append(("img", f"zoo_{structure}_images", img, f"{title}: the images it saved at its last "
                                                                   "evaluation, lowest seed"))
            continue
        for i, ax in enumerate(axes):
            others = [a.column for a in axes if a is not ax]
            out.append(("h3", f"{title} across {ax.name}: " + "; ".join(describe(c) or c for c in ax.columns)))
            out.append(("p", f"Per value of {ax.name}: trials that finished ok, success rate (rule as in 'Success "
                             f"rate'), and each metric's final value as the mean over seeds [95 % Student t interval "
                             "over seeds]."))
            out.append(("table", *per_value_table(sub, ax, others, metrics)))
            header, rows, first = spread_table(sub, ax, others, metrics)
            out.append(("p", f"Spread across {ax.name}: std = the spread of the true per-value means with the seed "
                             "noise taken out [95 % confidence interval, noncentral F: bench.stats.true_spread]; "
                             "range of the per-value means [resampling interval over seeds]; best and worst per the "
                             "metric's direction (bench.stats.axis_spread)."))
            out.append(("table", header, rows) if rows else
                        ("p", f"No setting of the other axes holds two values of {ax.name}: no spread to give."))
            lead = next((m for m in own if m in first), next(iter(first), None))
            # the structure's declared headline metric already has the report's own line per swept axis
            if lead is not None and lead != getattr(catalog.catalog().get(structure), "headline", None):
                r = first[lead]
                heads.append(f"{title}: across {ax.name} {ax.span()} ({describe(ax.column) or ax.name}), its final "
                             f"{analysis.metric_name(lead)} has a spread (of the true per-value means, seed noise taken out) of "
                             + interval(r["std"], r["std_lo"], r["std_hi"], analysis.note(r))
                             + f"; best {fmt(r['best'])} at {show_value(r['best_at'])}, worst {fmt(r['worst'])} at "
                             f"{show_value(r['worst_at'])} ({analysis.direction(lead)}).")
            img = metrics_vs_weight(sub, ax, metrics, f"{title}: final metrics vs {ax.name}")
            if img:
                out.append(("img", f"zoo_{structure}_{i}_metrics", img, f"{title}: final metrics vs {ax.name}, one "
                                                                        "point per seed, line: mean over seeds"))
            img = weight_images(sub, curves, ax, f"{title}: its own images per {ax.name}")
            if img:
                out.append(("img", f"zoo_{structure}_{i}_images", img, f"{title}: its images at the last evaluation "
                                                                       f"of the lowest seed, one column per {ax.name}"))
    return heads, out
