"""Seaborn figures of a results folder. Every function takes DataFrames and returns PNG bytes, or None
when there is nothing to draw. Never imports torch or model code.

Figures are plain matplotlib `Figure`s saved by the Agg canvas, never pyplot: no display is needed and
the caller's backend (e.g. a notebook's) is left alone."""

from __future__ import annotations

import contextlib
import io
import math
import warnings

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from bench.metrics import INFO
from bench.report.fmt import show_value

DATASET = "dataset.name"
REAL, GENERATED, LENSED = "#bbbbbb", sns.color_palette("colorblind")[0], sns.color_palette("colorblind")[1]


@contextlib.contextmanager
def themed():
    """The report's one style, undone afterwards so a caller's matplotlib settings survive."""
    with matplotlib.rc_context():
        sns.set_theme(style="whitegrid", palette="colorblind", context="notebook")
        yield


def palette(variants: list[str]) -> dict:
    """One colour per variant, the same in every figure."""
    return dict(zip(variants, sns.color_palette("colorblind", len(variants))))


def axis_label(metric: str) -> str:
    higher, label = INFO[metric]
    return f"{label}\n({'higher' if higher else 'lower'} is better)"


def wide(values) -> bool:
    """Positive values spanning more than two decades get a log axis, so one bad seed does not
    flatten the others."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return len(v) > 1 and bool((v > 0).all()) and v.max() > 100 * v.min()


def png(fig) -> bytes:
    """The figure as a 256-colour PNG: a quarter of the RGBA file for plots, half for image grids (a
    report and its published folder stay small), no visible change."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    out = io.BytesIO()
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, "PNG", optimize=True)
    return out.getvalue()


def _facets(n: int, width: float, height: float, **kw):
    fig = Figure(figsize=(width * n, height))
    axes = fig.subplots(1, n, squeeze=False, **kw)
    return fig, list(axes[0])


def _panel_grid(n: int, max_cols: int, width: float, height: float):
    """n panels wrapped into rows of at most max_cols; returns the figure and the [rows, cols] axes,
    the cells after the n-th blank."""
    ncol = min(max_cols, n)
    nrow = math.ceil(n / ncol)
    fig = Figure(figsize=(width * ncol, height * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, axes


def final_metric(trials: pd.DataFrame, metric: str, variants: list[str]) -> bytes | None:
    """Box + one point per seed of final.<metric>, variants on the y axis (long labels stay readable)."""
    col = f"final.{metric}"
    if col not in trials or not np.isfinite(trials[col].astype(float)).any():
        return None
    datasets = sorted(trials[DATASET].unique())
    fig, axes = _facets(len(datasets), 5.5, 0.45 * len(variants) + 1.4, sharey=True)
    pal = palette(variants)
    for ax, ds in zip(axes, datasets):
        d = trials[(trials[DATASET] == ds) & np.isfinite(trials[col].astype(float))]
        if d.empty:
            ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
            ax.set_yticks(range(len(variants)), variants)
            ax.set_ylim(len(variants) - 0.5, -0.5)  # first variant on top, as seaborn draws it
        else:
            with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib 3.11's deprecated `vert`
                warnings.simplefilter("ignore", matplotlib.MatplotlibDeprecationWarning)
                sns.boxplot(data=d, x=col, y="variant", order=variants, hue="variant", hue_order=variants,
                            palette=pal, legend=False, ax=ax, fliersize=0, width=0.6, boxprops={"alpha": 0.5})
            state = np.random.get_state()  # seaborn jitters with numpy's global RNG: a fixed jitter, the same
            np.random.seed(0)              # figure at every rebuild (published folders do not churn)
            try:
                sns.stripplot(data=d, x=col, y="variant", order=variants, color="black", size=5, jitter=0.15, ax=ax)
            finally:
                np.random.set_state(state)
        ax.set(xlabel=axis_label(metric), ylabel="", title=ds if len(datasets) > 1 else "")
        if wide(d[col]):
            ax.set_xscale("log")
        else:
            ax.xaxis.set_major_locator(MaxNLocator(5))
    fig.suptitle(f"final {metric} per seed", y=1.02)
    return png(fig)


def learning_curves(trials: pd.DataFrame, curves: pd.DataFrame, metric: str, variants: list[str]) -> bytes | None:
    """Mean over seeds of metric vs step, one line per variant; the band spans the seeds' min..max."""
    if curves.empty or metric not in curves:
        return None
    d = curves[["trial_id", "step", metric]].merge(trials[["trial_id", "variant", DATASET]], on="trial_id")
    d = d[np.isfinite(d[metric].astype(float))]
    if d.empty:
        return None
    fig = _variant_lines(d, "step", metric, variants, xlabel="step", ylabel=axis_label(metric), markersize=4)
    fig.suptitle(f"{metric} during training (line: mean over seeds, band: min..max)", y=1.02)
    return png(fig)


def scatter(trials: pd.DataFrame, samples: pd.DataFrame, variants: list[str]) -> bytes | None:
    """Real vs generated (and lensed real) points of the lowest seed with samples, per dataset x variant."""
    if samples.empty:
        return None
    have = set(samples["trial_id"])
    panels = []
    for ds in sorted(trials[DATASET].unique()):
        for v in variants:
            t = trials[(trials[DATASET] == ds) & (trials["variant"] == v) & trials["trial_id"].isin(have)]
            if not t.empty:
                panels.append(t.sort_values(["seed", "trial_id"]).iloc[0])
    if not panels:
        return None
    fig, axes = _panel_grid(len(panels), 4, 3.3, 3.6)
    by_trial = dict(tuple(samples.groupby("trial_id")))
    for ax, t in zip(axes.flat, panels):
        s = by_trial[t["trial_id"]]
        real = s[s["kind"] == "real"]
        # Limits from the real data (at most 4x its extent), so a collapsed or exploded generator
        # does not shrink the target to a dot; points outside are counted in the title.
        r = float(np.abs(real[["x", "y"]].to_numpy()).max()) * 1.3 if not real.empty else 1.0
        pts = s[["x", "y"]].to_numpy(dtype=float)
        r = min(max(r, float(np.nanmax(np.abs(pts), initial=0)) * 1.05), 4 * r)
        off = int((~(np.abs(pts) <= r).all(axis=1)).sum())
        for kind, colour, size in (("real", REAL, 10), ("lensed", LENSED, 4), ("generated", GENERATED, 3)):
            k = s[s["kind"] == kind]
            if not k.empty:
                ax.scatter(k["x"], k["y"], s=size, c=[colour], alpha=0.7, linewidths=0, rasterized=True)
        ax.set(xlim=(-r, r), ylim=(-r, r), xticks=[], yticks=[])
        ax.set_aspect("equal")
        mc = t.get("final.modes_covered")
        if t["status"] == "ok" and mc is not None and np.isfinite(mc):
            what = f"step {s['step'].iloc[0]}: modes covered {mc:g}"
        else:  # a diverged run stores the samples of its last evaluation before the divergence
            what = f"{t['status']} at step {s['step'].iloc[0]} (last evaluated samples)"
        title = f"{t['variant']}\n{t[DATASET]}, seed {t['seed']}, {what}"
        ax.set_title(title + (f"\n({off} points off-panel)" if off else ""), fontsize=9)
    kinds = set(samples["kind"])
    handles = [Line2D([], [], ls="", marker="o", color=c, label=k)
               for k, c in (("real", REAL), ("generated", GENERATED), ("lensed real", LENSED))
               if k.split()[0] in kinds]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0), ncol=len(handles), frameon=False)
    fig.tight_layout()
    return png(fig)


def _lowest_seed_trials(trials: pd.DataFrame, curves: pd.DataFrame, variants: list[str]) -> list[pd.Series]:
    """Per dataset and variant, the lowest-seed trial that saved sample grids."""
    if "grid_generated" not in curves:
        return []
    with_grids = set(curves.loc[curves["grid_generated"].notna(), "trial_id"])
    out = []
    for ds in sorted(trials[DATASET].unique()):
        for v in variants:
            g = trials[(trials[DATASET] == ds) & (trials["variant"] == v) & trials["trial_id"].isin(with_grids)]
            if not g.empty:
                out.append(g.sort_values("seed").iloc[0])
    return out


def _imread(results_dir, rel) -> np.ndarray | None:
    import matplotlib.image as mpimg

    path = results_dir / str(rel)
    return mpimg.imread(path) if isinstance(rel, str) and path.exists() else None


def _show(ax, img: np.ndarray) -> None:
    """Grey PNGs (one channel) in grey, not in the default colour map."""
    ax.imshow(img, cmap="gray", vmin=0, vmax=1) if img.ndim == 2 else ax.imshow(img)


def sample_grids(trials: pd.DataFrame, curves: pd.DataFrame, variants: list[str], results_dir) -> bytes | None:
    """Image studies: one row per dataset x variant (lowest seed, last evaluation): generated samples,
    lensed real samples (lens variants) and real samples."""
    rows = _lowest_seed_trials(trials, curves, variants)
    if not rows:
        return None
    kinds = ["generated", "lensed", "real"]
    fig = Figure(figsize=(3 * 2.6, len(rows) * 2.9))
    for i, t in enumerate(rows):
        c = curves[(curves["trial_id"] == t["trial_id"]) & curves["grid_generated"].notna()].sort_values("step").iloc[-1]
        for j, kind in enumerate(kinds):
            ax = fig.add_subplot(len(rows), 3, i * 3 + j + 1)
            ax.set_axis_off()
            img = _imread(results_dir, c.get(f"grid_{kind}"))
            if img is None:
                ax.text(0.5, 0.5, "no lens" if kind == "lensed" else "not saved", ha="center", va="center")
                continue
            _show(ax, img)
            ax.set_title(f"{t['variant']}\n{kind}, seed {t['seed']}, step {int(c['step'])}" if j == 0 else
                         f"{kind}, step {int(c['step'])}", fontsize=8)
    fig.tight_layout()
    return png(fig)


def lens_progress(trials: pd.DataFrame, curves: pd.DataFrame, variants: list[str], results_dir) -> bytes | None:
    """What the lens does over training: for the lowest-seed trial of the first lens variant, its generated
    and lensed grids at every evaluation (the lens should scramble early and become the identity)."""
    lens_variants = [v for v in variants if "+lens" in v]
    rows = _lowest_seed_trials(trials, curves, lens_variants)
    if not rows or "grid_lensed" not in curves:
        return None
    t = rows[0]
    c = curves[(curves["trial_id"] == t["trial_id"]) & curves["grid_lensed"].notna()].sort_values("step")
    if c.empty:
        return None
    steps = c.to_dict("records")[-6:] if len(c) > 6 else c.to_dict("records")
    fig = Figure(figsize=(len(steps) * 2.4, 2 * 2.6))
    for j, r in enumerate(steps):
        for i, kind in enumerate(("generated", "lensed")):
            ax = fig.add_subplot(2, len(steps), i * len(steps) + j + 1)
            ax.set_axis_off()
            img = _imread(results_dir, r.get(f"grid_{kind}"))
            if img is not None:
                _show(ax, img)
            lam = r.get("lambda")
            ax.set_title(f"{kind}, step {int(r['step'])}" + (f"\nlambda {lam:.2f}" if kind == "lensed" and lam == lam else ""),
                         fontsize=8)
    fig.suptitle(f"{t['variant']} ({t[DATASET]}, seed {t['seed']}): generated (top) and lensed real (bottom)",
                 fontsize=9)
    fig.tight_layout()
    return png(fig)


def _band_errorbar(x):
    return (x.min(), x.max())


def _variant_lines(d: pd.DataFrame, x: str, y: str, variants: list[str], xlabel: str, ylabel: str,
                   markersize: int, sort: bool = True, logx: bool = False, panel: str = DATASET):
    """y vs x, one line per variant (mean over rows, band min..max), one panel per value of `panel`
    (the dataset by default), a shared legend below; log y when the values span > 30x. Returns the
    figure for the caller's title."""
    panels = list(dict.fromkeys(sorted(d[panel].unique(), key=str)))
    fig, axes = _facets(len(panels), 5.5, 3.8, sharey=panel != DATASET)
    pal = palette(variants)
    for ax, ds in zip(axes, panels):
        sub = d[d[panel] == ds]
        order = [v for v in variants if v in set(sub["variant"])]
        sns.lineplot(data=sub, x=x, y=y, hue="variant", hue_order=order, palette=pal, estimator="mean",
                     errorbar=_band_errorbar, marker="o", markersize=markersize, ax=ax, legend=False, sort=sort)
        ax.set(xlabel=xlabel, ylabel=ylabel if ax is axes[0] else "", title=str(ds) if len(panels) > 1 else "")
        if logx:
            ax.set_xscale("log")
        if wide(sub[y]):
            ax.set_yscale("log")
    shown = [v for v in variants if v in set(d["variant"])]
    handles = [Line2D([], [], color=pal[v], marker="o", label=v) for v in shown]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0), ncol=min(3, len(shown)), frameon=False)
    return fig


MAX_SPLIT = 4  # metric_vs_axis: at most this many panels for another swept axis


def metric_vs_axis(trials: pd.DataFrame, metric: str, axis: str, variants: list[str], log: bool,
                   others: list[str] = ()) -> bytes | None:
    """Final metric vs one swept axis: mean over seeds, band from min to max over seeds, one line per
    variant, one panel per dataset and per value of the first other swept axis with at most MAX_SPLIT
    values; any further swept axes are pooled (named in the title)."""
    col = f"final.{metric}"
    if col not in trials:
        return None
    d = trials[np.isfinite(trials[col].astype(float))].copy()
    if d.empty or axis not in d:
        return None
    numeric = pd.api.types.is_numeric_dtype(d[axis])
    if not numeric:
        d[axis] = d[axis].map(show_value)
    # another swept axis with a few values (e.g. the optimizer) gets its own panels instead of being
    # pooled: pooling two optimizers would hide that w matters under one and not the other
    split = next((c for c in others if c in d and 1 < d[c].map(str).nunique() <= MAX_SPLIT), None)
    d["_panel"] = d[DATASET].astype(str) if d[DATASET].nunique() > 1 else ""
    if split:
        d["_panel"] = d["_panel"] + np.where(d["_panel"] != "", ", ", "") + f"{split} = " + d[split].map(str)
    fig = _variant_lines(d, axis, col, variants, xlabel=axis, ylabel=axis_label(metric), markersize=5,
                         sort=numeric, logx=log and numeric, panel="_panel")
    pooled_over = [c for c in others if c != split]
    pooled = f"; pooled over {', '.join(pooled_over)}" if pooled_over else ""
    fig.suptitle(f"final {metric} vs {axis} (line: mean over seeds{pooled}, band: min..max)", y=1.02)
    return png(fig)


def heatmap(trials: pd.DataFrame, metric: str, x: str, y: str, variants: list[str]) -> bytes | None:
    """Mean final metric over seeds on the grid of two swept axes, one panel per variant (and dataset)."""
    col = f"final.{metric}"
    if col not in trials:
        return None
    d = trials[np.isfinite(trials[col].astype(float))].copy()
    if d.empty:
        return None
    for c in (x, y):
        d[c] = d[c].map(show_value)
    panels = [(ds, v) for ds in sorted(d[DATASET].unique()) for v in variants
              if not d[(d[DATASET] == ds) & (d["variant"] == v)].empty]
    if not panels:
        return None
    fig, axes = _panel_grid(len(panels), 3, 4.6, 3.8)
    cmap = "viridis" if INFO.get(metric, (True,))[0] else "viridis_r"  # bright = better
    lo, hi = float(d[col].min()), float(d[col].max())

    def _order(vals):
        try:
            return sorted(set(vals), key=float)
        except ValueError:
            return sorted(set(vals))

    xs, ys = _order(d[x]), _order(d[y])
    for ax, (ds, v) in zip(axes.flat, panels):
        sub = d[(d[DATASET] == ds) & (d["variant"] == v)]
        grid = sub.pivot_table(index=y, columns=x, values=col, aggfunc="mean").reindex(index=ys, columns=xs)
        sns.heatmap(grid, ax=ax, cmap=cmap, vmin=lo, vmax=hi, annot=True, fmt=".3g", cbar=False,
                    annot_kws={"fontsize": 8})
        ax.set_title(f"{v}" + (f" ({ds})" if d[DATASET].nunique() > 1 else ""), fontsize=9)
        ax.set(xlabel=x, ylabel=y)
    fig.suptitle(f"mean final {metric} over seeds ({'brighter is better'}); blank: no finite value", y=1.02)
    fig.tight_layout()
    return png(fig)


def budget_curves(curves_by_variant: dict, metric: str, variants: list[str]) -> bytes | None:
    """bench.stats.budget_curve per (dataset, variant): expected best final metric of k trials drawn at
    random from the variant's trials, band = bootstrap 95 % interval. `curves_by_variant`:
    {(dataset, variant): DataFrame}."""
    items = {k: c for k, c in curves_by_variant.items() if c is not None and not c.empty}
    if not items:
        return None
    datasets = sorted({ds for ds, _ in items})
    fig, axes = _facets(len(datasets), 5.5, 3.8)
    pal = palette(variants)
    for ax, ds in zip(axes, datasets):
        for v in variants:
            c = items.get((ds, v))
            if c is None:
                continue
            ax.plot(c["k"], c["expected_best"], marker="o", markersize=4, color=pal[v])
            if np.isfinite(c["lo"]).all():
                ax.fill_between(c["k"], c["lo"], c["hi"], color=pal[v], alpha=0.2, linewidth=0)
        ax.set(xlabel="budget k (trials drawn at random)", ylabel=axis_label(metric) if ax is axes[0] else "",
               title=ds if len(datasets) > 1 else "")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    shown = [v for v in variants if any(k[1] == v for k in items)]
    handles = [Line2D([], [], color=pal[v], marker="o", label=v) for v in shown]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0), ncol=min(3, len(shown)), frameon=False)
    fig.suptitle(f"expected best final {metric} with a budget of k trials (band: 95 % bootstrap)", y=1.02)
    return png(fig)


def paired_differences(summary: pd.DataFrame, pairs: pd.DataFrame, metric: str, labels: list[str]) -> bytes | None:
    """Per comparison (one row per label, in summary order): each pair's difference (dots), the mean
    (diamond) and its 95 % t interval (bar); the dashed line is no difference."""
    s = summary[summary["metric"] == metric].reset_index(drop=True)
    if s.empty:
        return None
    fig = Figure(figsize=(6.5, 0.55 * len(s) + 1.6))
    ax = fig.subplots()
    colour = sns.color_palette("colorblind")[0]
    rng = np.random.default_rng(0)
    for i, r in s.iterrows():
        p = pairs[(pairs["metric"] == metric) & pairs["used"] & (pairs["arm"] == r["arm"])]
        for b in [c for c in ("study", "variant.objective", DATASET) if c in s.columns]:
            p = p[p[b].astype(str) == str(r[b])]
        d = p["diff"].to_numpy(dtype=float)
        ax.scatter(d, i + rng.uniform(-0.12, 0.12, len(d)), s=18, color="black", alpha=0.7, zorder=3)
        if np.isfinite(r["lo"]) and np.isfinite(r["hi"]):
            ax.plot([r["lo"], r["hi"]], [i, i], color=colour, linewidth=3, alpha=0.8, zorder=2)
        if np.isfinite(r["mean_diff"]):
            ax.scatter([r["mean_diff"]], [i], marker="D", s=50, color=colour, zorder=4)
    ax.axvline(0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(s)), labels[:len(s)])
    ax.set_ylim(len(s) - 0.5, -0.5)
    higher = INFO.get(metric, (True,))[0]
    ax.set_xlabel(f"lens - no lens, final {metric}\n({'right' if higher else 'left'} of 0: the lens helps)")
    fig.suptitle(f"paired differences in final {metric}: dots = pairs, diamond = mean, bar = 95 % CI", y=1.02,
                 fontsize=10)
    return png(fig)
