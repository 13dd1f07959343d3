"""Seaborn figures of a results folder. Every public function takes DataFrames and returns PNG bytes, or
None when there is nothing to draw; the figures with variants have a `<name>_figure` twin that returns the
matplotlib `Figure` (tests inspect it). Never imports torch or model code.

Figures are plain matplotlib `Figure`s saved by the Agg canvas, never pyplot: no display is needed and
the caller's backend (e.g. a notebook's) is left alone.

Colours and order (the same in every figure of a report):
- a variant label is a base and an *arm* ("ns+lens(sine K=1000)": base "ns", arm "lens(sine K=1000)";
  "ns": arm "no lens"). Where the variants have arms, the colour is the arm's (`arm_colors`: "no lens"
  dark grey, the lens arms in natural sort order from the colour-blind palette) and figures with lines
  get one panel per base (facets), so no palette cycles over two dozen variants; variants are listed
  base by base, "no lens" first, then the lens arms in that order (`ordered`).
- without arms (zoo, ED variants) every variant of a figure gets a colour of its own
  (`variant_colors`: colour-blind palette up to 10, tab20 up to 20, husl beyond).
Scales: a metric that is non-negative and unbounded above (or strictly positive) whose positive values in a
figure span more than 30x gets a log axis (`metric_scale`); a swept weight spanning >= 10x, all positive, a
log x axis (`log_x`); the axis label says "(log)"."""

from __future__ import annotations

import contextlib
import io
import math
import re
import textwrap
import warnings

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import LogNorm, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch
from matplotlib.ticker import MaxNLocator

from bench.metrics import BOUNDS, INFO
from bench.report.fmt import show_value

DATASET = "dataset.name"
REAL, GENERATED, LENSED = "#bbbbbb", sns.color_palette("colorblind")[0], sns.color_palette("colorblind")[1]
MODE_RING = "black"  # the toy modes' 3-sigma acceptance circles
CONFIG_PREFIXES = ("dataset.", "model.", "train.", "variant.")
SPAN = 30        # positive metric values spanning more than this factor: log axis
WEIGHT_SPAN = 10  # positive weights spanning at least this factor: log x axis
MAX_COLS = 6     # line figures: at most this many panels per row


@contextlib.contextmanager
def themed():
    """The report's one style, undone afterwards so a caller's matplotlib settings survive."""
    with matplotlib.rc_context():
        sns.set_theme(style="whitegrid", palette="colorblind", context="notebook")
        yield


# ---------------------------------------------------------------- arms, colours, order

NO_LENS = "no lens"
NO_LENS_COLOUR = "#4d4d4d"
# the colour-blind palette without its grey (index 7: too close to "no lens"), pink before vermillion (the
# fourth arm's colour then differs from the second's orange at a glance)
_ARM_PALETTE = [sns.color_palette("colorblind", 10)[i] for i in (0, 1, 2, 4, 3, 5, 6, 8, 9)]


def arm_of(variant: str) -> tuple[str, str]:
    """(base, arm) of a variant label: 'ns+lens(sine K=1000)' -> ('ns', 'lens(sine K=1000)'); 'ns' ->
    ('ns', 'no lens'); a study prefix stays with the base ('lens_toy: ns+lens(const 1)' ->
    ('lens_toy: ns', 'lens(const 1)')). Labels without a lens ('ed+gan', 'cgan') are their own base."""
    v = str(variant)
    i = v.find("+lens")
    return (v, NO_LENS) if i < 0 else (v[:i], v[i + 1:])


def arm_name(text: str) -> str:
    """An arm as the paired tables write it ('lens (sine K=1000)') in the variant label's form."""
    return re.sub(r"^lens \(", "lens(", str(text).strip())


def _natural(s: str) -> list:
    """Sort key with numbers compared as numbers ('K=500' before 'K=2000')."""
    return [(0, float(t), "") if re.fullmatch(r"\d+(\.\d+)?", t) else (1, 0.0, t)
            for t in re.split(r"(\d+(?:\.\d+)?)", s) if t]


def arm_order(arms) -> list[str]:
    """'no lens' first, then the lens arms in natural sort order: one order in every figure."""
    arms = set(arms)
    return ([NO_LENS] if NO_LENS in arms else []) + sorted(arms - {NO_LENS}, key=_natural)


def has_arms(variants) -> bool:
    return any(arm_of(v)[1] != NO_LENS for v in variants)


def arm_colors(variants) -> dict:
    """One colour per arm of `variants` (arm -> RGB): 'no lens' dark grey, the lens arms in `arm_order`
    from the colour-blind palette (husl when there are more than 9). The same arm gets the same colour for
    every base (objective) and in every figure given the same variants."""
    lens = [a for a in arm_order(arm_of(v)[1] for v in variants) if a != NO_LENS]
    pal = _ARM_PALETTE if len(lens) <= len(_ARM_PALETTE) else sns.color_palette("husl", len(lens))
    out = {NO_LENS: to_rgb(NO_LENS_COLOUR)}
    out.update({a: tuple(pal[i]) for i, a in enumerate(lens)})
    return out


def distinct_colors(n: int) -> list:
    """n colours no two alike: colour-blind palette up to 10, tab20 up to 20, husl beyond."""
    if n <= 10:
        return sns.color_palette("colorblind", n)
    return sns.color_palette("tab20", n) if n <= 20 else sns.color_palette("husl", n)


def variant_colors(variants: list[str]) -> dict:
    """variant -> colour: its arm's (`arm_colors`) where the variants have arms, else one distinct colour
    per variant, given in sorted order (the same set of variants, e.g. the ED structures, gets the same
    colours in every report whatever order the study ran them in)."""
    variants = list(dict.fromkeys(variants))
    if has_arms(variants):
        arms = arm_colors(variants)
        return {v: arms[arm_of(v)[1]] for v in variants}
    return dict(zip(sorted(variants, key=_natural), distinct_colors(len(variants))))


palette = variant_colors  # the name callers used before


def bases(variants, study_of: dict | None = None) -> dict[str, str]:
    """variant -> its base (`arm_of`). Comparing studies, a label several studies share is prefixed by its study
    ("lens_toy: ns") while a lens variant only one study has is not ("ns+lens(sine K=500)"): given each
    variant's study, the lens variant joins its own study's prefixed base."""
    out = {v: arm_of(v)[0] for v in variants}
    if study_of:
        known = set(out.values())
        for v, b in out.items():
            s = study_of.get(v)
            if s is not None and f"{s}: {b}" in known:
                out[v] = f"{s}: {b}"
    return out


def study_map(trials: pd.DataFrame) -> dict | None:
    """variant -> study where a report compares several studies, else None."""
    if "study" not in trials or "variant" not in trials or trials["study"].nunique() < 2:
        return None
    return dict(zip(trials["variant"].astype(str), trials["study"].astype(str)))


def ordered(variants, study_of: dict | None = None) -> list[str]:
    """Variants base by base (bases in first-appearance order), each base's arms in `arm_order`."""
    variants = list(dict.fromkeys(variants))
    base = bases(variants, study_of)
    first = list(dict.fromkeys(base[v] for v in variants))
    rank = {a: i for i, a in enumerate(arm_order(arm_of(v)[1] for v in variants))}
    return sorted(variants, key=lambda v: (first.index(base[v]), rank[arm_of(v)[1]]))


def _color_legend(fig, labels: list[str], colors: dict, marker: str | None = "o", title: str | None = None) -> None:
    if not labels:
        return
    handles = [Line2D([], [], color=colors[k], marker=marker, label=k) if marker else Patch(color=colors[k], label=k)
               for k in labels]
    # as many columns as fit the figure's width (a wider legend would widen the saved PNG)
    per = 5.5 * max(len(k) for k in labels) + 45  # pixels at dpi 100, fontsize 9
    ncol = max(1, min(4, len(labels), int(fig.get_figwidth() * 100 // per)))
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, frameon=False,
               title=title, fontsize=9, title_fontsize=9)


# ---------------------------------------------------------------- scales and labels

def axis_label(metric: str, log: bool = False) -> str:
    higher, label = INFO[metric]
    return f"{label}{' (log)' if log else ''}\n({'higher' if higher else 'lower'} is better)"


def _finite(values) -> np.ndarray:
    v = np.asarray(pd.to_numeric(pd.Series(np.ravel(np.asarray(values, dtype=object))), errors="coerce"), dtype=float)
    return v[np.isfinite(v)]


def log_eligible(metric: str | None) -> bool:
    """A log axis is meaningful: strictly positive metrics, and non-negative ones without an upper bound
    (distances, divergences); not proportions, counts of modes or dB."""
    if metric is None or metric not in BOUNDS:
        return True
    lo, hi, positive = BOUNDS[metric]
    return positive or (lo == 0 and hi is None)


def wide(values, span: float = SPAN) -> bool:
    """Positive values spanning more than `span`x (non-positive ones are left aside: see metric_scale)."""
    v = _finite(values)
    v = v[v > 0]
    return len(v) > 1 and v.max() > span * v.min()


def metric_scale(metric: str | None, values) -> tuple[bool, int]:
    """(log axis?, how many finite values are <= 0 and so fall off a log axis). Log when the metric can take
    a log axis (`log_eligible`), its positive values span more than 30x, and at most 5 % are <= 0 (an
    unbiased squared distance can dip just below 0)."""
    v = _finite(values)
    bad = int((v <= 0).sum())
    log = log_eligible(metric) and wide(v) and bad <= 0.05 * len(v)
    return log, (bad if log else 0)


def log_x(values) -> bool:
    """A swept weight gets a log axis when numeric, all positive and spanning at least 10x."""
    try:
        v = np.asarray([float(x) for x in values if x is not None and x == x], dtype=float)
    except (TypeError, ValueError):
        return False
    return len(v) > 1 and bool((v > 0).all()) and v.max() >= WEIGHT_SPAN * v.min()


def wrap(label: str, width: int = 28) -> str:
    """A long tick label over several lines, broken before '+lens' or ' [' and after ', '."""
    if len(label) <= width:
        return label
    lines, cur = [], ""
    for p in re.split(r"(?=\+lens)|(?= \[)|(?<=, )", label):
        if cur and len(cur) + len(p) > width:
            lines.append(cur.rstrip())
            cur = p.lstrip()
        else:
            cur += p
    return "\n".join([*lines, cur.rstrip()])


def _tidy_log(fig) -> None:
    """Log axes labelled in plain numbers (0.01, 0.02, 0.05 within two decades; powers of 10 beyond) and no
    labelled minor ticks (matplotlib labels them when a range is short, and they run into each other)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    for ax in fig.axes:
        for axis, lim in ((ax.xaxis, ax.get_xlim), (ax.yaxis, ax.get_ylim)):
            if axis.get_scale() != "log":
                continue
            axis.set_minor_formatter(NullFormatter())
            if isinstance(axis.get_major_locator(), FixedLocator):  # ticks set on purpose (the swept weights)
                continue
            lo, hi = sorted(lim())
            decades = math.log10(hi / lo) if lo > 0 else 10
            axis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5) if decades < 2.5 else (1,), numticks=12))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())


def png(fig) -> bytes:
    """The figure as a 256-colour PNG: a quarter of the RGBA file for plots, half for image grids (a
    report and its published folder stay small), no visible change."""
    from PIL import Image

    _tidy_log(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    out = io.BytesIO()
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, "PNG", optimize=True)
    return out.getvalue()


def _png(fig) -> bytes | None:
    return None if fig is None else png(fig)


# ---------------------------------------------------------------- what a point / box pools

def _canon(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "NULL"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, float, np.integer, np.floating)):
        return repr(float(v))
    return str(v)


def swept_within(sub: pd.DataFrame) -> list[list[str]]:
    """Config columns (not the seed, not the dataset name) with several values in `sub`, columns that change
    together grouped (e.g. an optimizer and its learning rate)."""
    cols = [c for c in sub.columns if c.startswith(CONFIG_PREFIXES) and c != DATASET]
    keys = {c: sub[c].map(_canon) for c in cols}
    groups: list[list[str]] = []
    for c in [c for c in cols if keys[c].nunique() > 1]:
        for g in groups:
            a = keys[g[0]]
            if a.groupby(keys[c]).nunique().max() == 1 and keys[c].groupby(a).nunique().max() == 1:
                g.append(c)
                break
        else:
            groups.append([c])
    return groups


def _short(col: str) -> str:
    return col.split(".", 1)[-1]


def pooling(trials: pd.DataFrame, variants: list[str]) -> dict[str, str | None]:
    """variant -> what one of its boxes / lines pools beyond seeds ('4 lambda_cls x 3 seeds'), or None when
    it is one setting (per dataset; the dataset is always a panel of its own)."""
    out: dict[str, str | None] = {}
    if "variant" not in trials:
        return out
    for v in variants:
        sub = trials[trials["variant"] == v]
        if sub.empty:
            out[v] = None
            continue
        desc = None
        by = [sub[DATASET]] if DATASET in sub else [np.zeros(len(sub))]
        for _, g in sub.groupby(by, sort=True):
            groups = swept_within(g)
            if groups:
                seeds = g["seed"].nunique() if "seed" in g else 1
                d = " x ".join(f"{g[cols[0]].map(_canon).nunique()} {_short(cols[0])}" for cols in groups)
                desc = f"{d} x {seeds} seed{'s' if seeds != 1 else ''}"
                break
        out[v] = desc
    return out


def pooling_phrase(pools: dict[str, str | None], unit: str = "box") -> str:
    """The title's words for what a box (line) pools."""
    descs = {d for d in pools.values()}
    if descs <= {None}:
        return "one point per seed" if unit == "box" else "mean over seeds"
    if len(descs) == 1:
        d = next(iter(descs))
        return f"one point per trial, {d} pooled" if unit == "box" else f"mean over {d} pooled"
    return ("one point per trial; a box pools its variant's settings and seeds (counts under its name)"
            if unit == "box" else "mean over each variant's settings and seeds pooled (counts in the legend)")


# ---------------------------------------------------------------- layout helpers

def _facets(n: int, width: float, height: float, **kw):
    fig = Figure(figsize=(width * n, height), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False, **kw)
    return fig, list(axes[0])


def _panel_grid(n: int, max_cols: int, width: float, height: float, layout: str | None = None):
    """n panels wrapped into rows of at most max_cols; returns the figure and the [rows, cols] axes,
    the cells after the n-th blank."""
    ncol = min(max_cols, n)
    nrow = math.ceil(n / ncol)
    fig = Figure(figsize=(width * ncol, height * nrow), layout=layout)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, axes


def _title(fig, text: str, width_in: float, fontsize: float = 11) -> None:
    """A suptitle wrapped to the figure's width (a long one would widen the saved PNG)."""
    fig.suptitle(textwrap.fill(text, max(40, int(width_in * 72 / (0.55 * fontsize)))), fontsize=fontsize)


def _lines_figure(lines: list[dict], variants: list[str], *, xlabel: str, metric: str | None, ylabel: str,
                  markersize: int = 4, logx: bool = False, xticks: tuple | None = None,
                  legend_extra: dict | None = None, value_ticks: bool = False,
                  study_of: dict | None = None) -> Figure | None:
    """Lines y vs x with a band. `lines`: dicts with row (a panel key: dataset, dataset + split), share (panels
    with the same share key share the y axis and its scale: the dataset), variant, x, y, lo, hi (lo/hi may
    be None). With arms: one panel per (row, base), one line per arm, each row's panels on grid rows of
    their own; without: one panel per row, one line per variant. Log y per share key (`metric_scale`)."""
    if not lines:
        return None
    arms = has_arms(ln["variant"] for ln in lines)  # the drawn variants: ED structures among lens studies get colours
    study_of = study_of or {ln["variant"]: ln["study"] for ln in lines if ln.get("study") is not None} or None
    order = ordered([*variants, *[ln["variant"] for ln in lines]], study_of)
    colors = _line_colors(lines, order, arms)
    base_of = bases(order, study_of)
    cells, ncol = _line_cells(lines, order, base_of, arms)
    nrow = len(cells) // ncol
    w, h = (3.4, 2.8) if arms and ncol >= 3 else (5.0, 3.6)  # small multiples only where there are many
    fig = Figure(figsize=(w * ncol, h * nrow + 0.6), layout="constrained")
    share_of = {ln["row"]: ln.get("share", ln["row"]) for ln in lines}
    panels, first = _shared_panels(fig.subplots(nrow, ncol, squeeze=False).flat, cells, share_of)
    values: dict = {}
    xs = sorted({float(v) for ln in lines for v in np.ravel(ln["x"])})
    for ax, (r, b) in panels:
        here = [ln for ln in lines if ln["row"] == r and (b is None or base_of[ln["variant"]] == b)]
        here.sort(key=lambda ln: order.index(ln["variant"]))
        _draw_lines(ax, here, colors, markersize, values, share_of[r])
        title = ", ".join(str(t) for t in ((b, r) if b is not None else (r,)) if str(t))
        ax.set_title(title if (len(panels) > 1 or b is not None) else "", fontsize=10)
        _x_axis(ax, xs, logx, xticks, value_ticks)
    notes = {}
    for key, vals in values.items():
        log, bad = metric_scale(metric, np.concatenate([np.ravel(v) for v in vals]))
        notes[key] = (log, bad)
        if log:
            first[key].set_yscale("log")
    for ax, (r, b) in panels:
        _label_panel(ax, *notes.get(share_of[r], (False, 0)), xlabel=xlabel, ylabel=ylabel, logx=logx, height=h)
    _lines_legend(fig, lines, order, colors, arms, legend_extra)
    return fig


def _line_colors(lines: list[dict], order: list[str], arms: bool) -> dict:
    # without arms among the drawn lines: the colours the report's variants without a lens get everywhere (a zoo
    # variant keeps its colour when drawn alone), unless they are too many for distinct colours (every study
    # compared): then distinct colours among the drawn ones
    plain = [v for v in order if arm_of(v)[1] == NO_LENS]
    drawn = {ln["variant"] for ln in lines}
    return variant_colors(order if arms else plain if len(plain) <= 20 else [v for v in order if v in drawn])


def _line_cells(lines: list[dict], order: list[str], base_of: dict, arms: bool) -> tuple[list[tuple | None], int]:
    """The panels (row, base) in grid order, None for a blank cell, and the number of grid columns: with arms
    each row's panels start a grid row of their own; without, the panels (row, None) simply wrap."""
    rows = list(dict.fromkeys(sorted({ln["row"] for ln in lines}, key=str)))
    groups: list[list[tuple]] = []  # grid rows: panels (row, base)
    for r in rows:
        here = [ln for ln in lines if ln["row"] == r]
        if arms:
            here_bases = list(dict.fromkeys(base_of[v] for v in order if any(ln["variant"] == v for ln in here)))
            groups.append([(r, b) for b in here_bases])
        else:
            groups.append([(r, None)])
    if not arms:
        groups = [[p for g in groups for p in g]]
    ncol = min(MAX_COLS if arms else 4, max(len(g) for g in groups))
    cells: list[tuple | None] = []
    for g in groups:
        for i in range(0, len(g), ncol):
            chunk = g[i:i + ncol]
            cells += chunk + [None] * (ncol - len(chunk))
    return cells, ncol


def _shared_panels(axes, cells: list[tuple | None], share_of: dict) -> tuple[list[tuple], dict]:
    """The used (axes, cell) pairs, blank cells turned off, and per share key its first axes, whose y axis the
    key's other panels share."""
    first: dict = {}
    panels = []
    for ax, cell in zip(axes, cells):
        if cell is None:
            ax.axis("off")
            continue
        r, b = cell
        key = share_of[r]
        if key in first:
            ax.sharey(first[key])
        else:
            first[key] = ax
        panels.append((ax, cell))
    return panels, first


def _draw_lines(ax, here: list[dict], colors: dict, markersize: int, values: dict, key) -> None:
    """One panel's lines and bands; what they span is collected in values[key] for the y scale."""
    for ln in here:
        x = np.asarray(ln["x"])
        y = np.asarray(ln["y"], dtype=float)
        c = colors[ln["variant"]]
        ax.plot(x, y, marker="o", markersize=markersize, color=c, linewidth=1.5)
        values.setdefault(key, []).append(y)
        if ln.get("lo") is not None:
            lo, hi = np.asarray(ln["lo"], dtype=float), np.asarray(ln["hi"], dtype=float)
            ok = np.isfinite(lo) & np.isfinite(hi)
            if ok.any():
                ax.fill_between(x[ok], lo[ok], hi[ok], color=c, alpha=0.18, linewidth=0)
                values[key] += [lo[ok], hi[ok]]


def _x_axis(ax, xs: list[float], logx: bool, xticks: tuple | None, value_ticks: bool) -> None:
    if logx:
        ax.set_xscale("log")
    if value_ticks and len(xs) <= 8 and xticks is None:  # a few swept values: a tick at each
        ax.set_xticks(xs, [show_value(v) for v in xs])
    elif xticks is not None:
        ax.set_xticks(*xticks)
    elif not logx:
        ax.xaxis.set_major_locator(MaxNLocator(5))


def _label_panel(ax, log: bool, bad: int, *, xlabel: str, ylabel: str, logx: bool, height: float) -> None:
    """Axis labels (the y label on the grid's first column only) and a note of the values <= 0 off a log axis."""
    left = ax.get_subplotspec().colspan.start == 0
    text = ylabel.replace("\n", " (log)\n", 1) if log and "\n" in ylabel else ylabel + (" (log)" if log else "")
    # wrapped to the panel's height, so a long label does not run into the next row's
    ax.set_ylabel("\n".join(textwrap.fill(t, int(height * 72 / 7.5)) for t in text.split("\n")) if left else "")
    ax.set_xlabel(xlabel + (" (log)" if logx else ""))
    if bad and left:
        ax.annotate(f"{bad} value{'s' if bad > 1 else ''} <= 0 below the axis", (0.01, 0.01),
                    xycoords="axes fraction", fontsize=7, color="0.4")


def _lines_legend(fig, lines: list[dict], order: list[str], colors: dict, arms: bool,
                  legend_extra: dict | None) -> None:
    if arms:
        shown = arm_order(arm_of(ln["variant"])[1] for ln in lines)
        _color_legend(fig, shown, arm_colors(order), title="arm")
    else:
        shown = [v for v in order if any(ln["variant"] == v for ln in lines)]
        extra = legend_extra or {}
        labels = {v: v + (f" ({extra[v]})" if extra.get(v) else "") for v in shown}
        _color_legend(fig, [labels[v] for v in shown], {labels[v]: colors[v] for v in shown})


def _arm_legend_and_separators(fig, ax_list, order: list[str], variants: list[str], study_of=None) -> None:
    """Final-metric boxes: thin lines between bases, an arm legend below (arms only)."""
    if not has_arms(variants):
        return
    base = bases(order, study_of)
    for ax in ax_list:
        for i in range(1, len(order)):
            if base[order[i]] != base[order[i - 1]]:
                ax.axhline(i - 0.5, color="0.75", linewidth=0.8, zorder=0)
    shown = arm_order(arm_of(v)[1] for v in order)
    _color_legend(fig, shown, arm_colors(variants), marker=None, title="arm (colour)")


def final_metric_figure(trials: pd.DataFrame, metric: str, variants: list[str]) -> Figure | None:
    col = f"final.{metric}"
    if col not in trials or not np.isfinite(trials[col].astype(float)).any():
        return None
    # a variant that never measured the metric (an own metric of another zoo variant) gets no empty row
    has = set(trials.loc[np.isfinite(trials[col].astype(float)), "variant"])
    study_of = study_map(trials)
    order = [v for v in ordered(variants, study_of) if v in has]
    missing = [v for v in ordered(variants) if v not in has and v in set(trials["variant"])]
    pal = variant_colors(variants)
    pools = pooling(trials, order)
    mixed = len(set(pools.values())) > 1  # the same pooling for all: said once, in the title
    ticks = [wrap(v) + (f"\n({pools[v] or 'one setting'})" if mixed else "") for v in order]
    lines_per = max(t.count("\n") + 1 for t in ticks)
    finite = np.isfinite(trials[col].astype(float))
    datasets = sorted(trials.loc[finite, DATASET].unique())  # a dataset without the metric gets no empty panel
    fig, axes = _facets(len(datasets), 5.5, (0.3 + 0.17 * lines_per) * len(order) + 1.6, sharey=True)
    notes = []
    for ax, ds in zip(axes, datasets):
        d = trials[(trials[DATASET] == ds) & np.isfinite(trials[col].astype(float))]
        if d.empty:
            ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        else:
            with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib 3.11's deprecated `vert`
                warnings.simplefilter("ignore", matplotlib.MatplotlibDeprecationWarning)
                sns.boxplot(data=d, x=col, y="variant", order=order, hue="variant", hue_order=order,
                            palette=pal, legend=False, ax=ax, fliersize=0, width=0.6, boxprops={"alpha": 0.5})
            state = np.random.get_state()  # seaborn jitters with numpy's global RNG: a fixed jitter, the same
            np.random.seed(0)              # figure at every rebuild (published folders do not churn)
            try:
                sns.stripplot(data=d, x=col, y="variant", order=order, color="black", size=4, jitter=0.15, ax=ax)
            finally:
                np.random.set_state(state)
        ax.set_yticks(range(len(order)), ticks)
        ax.set_ylim(len(order) - 0.5, -0.5)  # first variant on top
        log, bad = metric_scale(metric, d[col]) if not d.empty else (False, 0)
        ax.set(xlabel=axis_label(metric, log), ylabel="", title=str(ds) if len(datasets) > 1 else "")
        if log:
            ax.set_xscale("log")
            if bad:
                notes.append(f"{bad} on {ds}" if len(datasets) > 1 else str(bad))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(5, integer=metric == "modes_covered"))
    _arm_legend_and_separators(fig, axes, order, variants, study_of)
    note = f" ({', '.join(notes)} values <= 0 off the log axis)" if notes else ""
    gone = (f"; no value: {', '.join(missing)}" if len(missing) <= 6 else f"; {len(missing)} variants without a value"
            ) if missing else ""
    _title(fig, f"final {metric}: {pooling_phrase(pools)}{note}{gone}", 5.5 * len(datasets))
    return fig


def final_metric(trials: pd.DataFrame, metric: str, variants: list[str]) -> bytes | None:
    """Box + one point per trial of final.<metric>, variants on the y axis (long labels wrapped) base by base;
    the title (and, where a variant pools several settings, its label) says what a box pools."""
    with themed():
        return _png(final_metric_figure(trials, metric, variants))


def learning_curves_figure(trials: pd.DataFrame, curves: pd.DataFrame, metric: str, variants: list[str]) -> Figure | None:
    if curves.empty or metric not in curves:
        return None
    d = curves[["trial_id", "step", metric]].merge(trials[["trial_id", "variant", DATASET]], on="trial_id")
    d = d[np.isfinite(d[metric].astype(float))]
    if d.empty:
        return None
    lines = []
    for (ds, v), g in d.groupby([DATASET, "variant"], sort=True):
        a = g.groupby("step")[metric].agg(["mean", "min", "max"])
        lines.append({"row": ds, "share": ds, "variant": v, "x": a.index.to_numpy(), "y": a["mean"].to_numpy(),
                      "lo": a["min"].to_numpy(), "hi": a["max"].to_numpy()})
    pools = pooling(trials, variants)
    fig = _lines_figure(lines, variants, xlabel="step", metric=metric, ylabel=axis_label(metric), markersize=3,
                        legend_extra=pools if len(set(pools.values())) > 1 else None, study_of=study_map(trials))
    _title(fig, f"{metric} during training (line: {pooling_phrase(pools, 'line')}; band: min..max)",
           fig.get_figwidth())
    return fig


def learning_curves(trials: pd.DataFrame, curves: pd.DataFrame, metric: str, variants: list[str]) -> bytes | None:
    """Mean over seeds of metric vs step (one panel per dataset and base, one line per arm; no arms: one
    line per variant); the band spans the seeds' min..max."""
    with themed():
        return _png(learning_curves_figure(trials, curves, metric, variants))


def _toy_modes(name: str, scale: float) -> np.ndarray | None:
    """The mode centres of bench.data.toy (recomputed here: the report never imports torch)."""
    if name == "ring8":
        a = np.arange(8) * (2 * np.pi / 8)
        return scale * np.stack([np.cos(a), np.sin(a)], axis=1)
    if name == "grid25":
        t = (np.arange(5) - 2) * scale
        return np.array([(x, y) for x in t for y in t])
    return None


def _num(t, col: str, default: float) -> float:
    try:
        v = float(t.get(col, default))
    except (TypeError, ValueError):
        return default
    return v if np.isfinite(v) and v > 0 else default


def scatter_figure(trials: pd.DataFrame, samples: pd.DataFrame, variants: list[str]) -> Figure | None:
    if samples.empty:
        return None
    have = set(samples["trial_id"])
    panels = []
    for ds in sorted(trials[DATASET].unique()):
        for v in ordered(variants, study_map(trials)):
            t = trials[(trials[DATASET] == ds) & (trials["variant"] == v) & trials["trial_id"].isin(have)]
            if not t.empty:
                panels.append(t.sort_values(["seed", "trial_id"]).iloc[0])
    if not panels:
        return None
    fig, axes = _panel_grid(len(panels), 4, 3.3, 3.75)
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
        # a generated point counts for a mode when within 3 std of its centre (bench.metrics.toy): draw
        # those acceptance circles, so "modes covered" can be read off the panel
        std = _num(t, "dataset.std", 0.02)
        modes = _toy_modes(str(t[DATASET]), _num(t, "dataset.scale", 2.0))
        for m in modes if modes is not None else []:
            ax.add_patch(Circle(tuple(m), 3 * std, fill=False, edgecolor=MODE_RING, linewidth=0.7, zorder=5))
        ax.set(xlim=(-r, r), ylim=(-r, r), xticks=[], yticks=[])
        ax.set_aspect("equal")
        mc, hq = t.get("final.modes_covered"), t.get("final.hq_fraction")
        n_modes = f" of {len(modes)}" if modes is not None else ""
        if t["status"] == "ok" and mc is not None and np.isfinite(mc):
            what = f"step {s['step'].iloc[0]}: modes covered {mc:g}{n_modes}"
            if hq is not None and np.isfinite(hq):
                what += f",\n{100 * hq:.0f} % of points within 3 std (circles)"
        else:  # a diverged run stores the samples of its last evaluation before the divergence
            what = f"{t['status']} at step {s['step'].iloc[0]} (last evaluated samples)"
        title = f"{t['variant']}\n{t[DATASET]}, seed {t['seed']}, {what}"
        ax.set_title(title + (f"\n({off} points off-panel)" if off else ""), fontsize=8)
    kinds = set(samples["kind"])
    handles = [Line2D([], [], ls="", marker="o", color=c, label=k)
               for k, c in (("real", REAL), ("generated", GENERATED), ("lensed real", LENSED))
               if k.split()[0] in kinds]
    handles.append(Line2D([], [], ls="", marker="o", markerfacecolor="none", markeredgecolor=MODE_RING, markersize=9,
                          label="mode +- 3 std (a point inside counts for the mode)"))
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0), ncol=len(handles), frameon=False)
    fig.tight_layout()
    return fig


def scatter(trials: pd.DataFrame, samples: pd.DataFrame, variants: list[str]) -> bytes | None:
    """Real vs generated (and lensed real) points of the lowest seed with samples, per dataset x variant, with
    each mode's 3-std acceptance circle."""
    with themed():
        return _png(scatter_figure(trials, samples, variants))


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
    rows = _lowest_seed_trials(trials, curves, ordered(variants))
    if not rows:
        return None
    # no lens anywhere (the zoo, the ED studies): no column of "no lens" cells
    kinds = ["generated", "lensed", "real"] if has_arms(variants) else ["generated", "real"]
    fig = Figure(figsize=(len(kinds) * 2.6, len(rows) * 2.9))
    for i, t in enumerate(rows):
        c = curves[(curves["trial_id"] == t["trial_id"]) & curves["grid_generated"].notna()].sort_values("step").iloc[-1]
        for j, kind in enumerate(kinds):
            ax = fig.add_subplot(len(rows), len(kinds), i * len(kinds) + j + 1)
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


MAX_SPLIT = 4  # metric_vs_axis: at most this many panels for another swept axis


def metric_vs_axis_figure(trials: pd.DataFrame, metric: str, axis: str, variants: list[str], log: bool,
                          others: list[str] = ()) -> Figure | None:
    col = f"final.{metric}"
    if col not in trials:
        return None
    d = trials[np.isfinite(trials[col].astype(float))].copy()
    if d.empty or axis not in d:
        return None
    # only the variants that sweep this axis (the zoo's variants each sweep a weight of their own: the
    # others would be single points at their default)
    sweeps = [v for v in dict.fromkeys(d["variant"]) if d.loc[d["variant"] == v, axis].dropna().map(_canon).nunique() > 1]
    if not sweeps:  # no variant with a value of this metric sweeps the axis (several studies compared)
        return None
    left_out = [v for v in ordered(variants) if v in set(d["variant"]) and v not in sweeps]
    d = d[d["variant"].isin(sweeps)]
    numeric = pd.api.types.is_numeric_dtype(d[axis])
    if not numeric:
        d[axis] = d[axis].map(show_value)
    # another swept axis with a few values (e.g. the optimizer) gets its own panels instead of being
    # pooled: pooling two optimizers would hide that w matters under one and not the other
    # (an axis counts where it varies within a variant, not only between studies' variants, and independently of
    # this one: a column that changes with it, e.g. the learning rate with the optimizer, is the same axis)
    def varies(col, by):
        return (d.groupby(["variant", *by])[col].agg(lambda x: x.map(_canon).nunique()) > 1).any()

    within = [c for c in others if c in d and varies(c, []) and varies(axis, [c])]
    split = next((c for c in within if 1 < d[c].map(str).nunique() <= MAX_SPLIT), None)
    d["_panel"] = d[DATASET].astype(str) if d[DATASET].nunique() > 1 else ""
    if split:
        d["_panel"] = d["_panel"] + np.where(d["_panel"] != "", ", ", "") + f"{_short(split)} = " + d[split].map(show_value)
    if numeric:
        d["_x"] = d[axis].astype(float)
        xticks = None
    else:
        cats = list(dict.fromkeys(d[axis]))
        d["_x"] = d[axis].map({c: i for i, c in enumerate(cats)})
        xticks = (list(range(len(cats))), cats)
    lines = []
    for (p, v), g in d.groupby(["_panel", "variant"], sort=True):
        a = g.groupby("_x")[col].agg(["mean", "min", "max"]).sort_index()
        lines.append({"row": p, "share": str(g[DATASET].iloc[0]), "variant": v, "x": a.index.to_numpy(),
                      "y": a["mean"].to_numpy(), "lo": a["min"].to_numpy(), "hi": a["max"].to_numpy()})
    logx = numeric and (log or log_x(d[axis]))
    fig = _lines_figure(lines, variants, xlabel=axis, metric=metric, ylabel=axis_label(metric), markersize=5,
                        logx=logx, xticks=xticks, value_ticks=numeric, study_of=study_map(d))
    pooled_over = [c for c in within if c != split and not (split and not varies(c, [split]) and not varies(split, [c]))]
    pooled = f"{', '.join(map(_short, pooled_over))} and seeds" if pooled_over else "seeds"
    drop = (f"; not drawn (axis not swept): {', '.join(left_out)}" if len(left_out) <= 6 else
            f"; {len(left_out)} variants that do not sweep it not drawn") if left_out else ""
    _title(fig, f"final {metric} vs {axis} (line: mean over {pooled}, band: min..max{drop})", fig.get_figwidth())
    return fig


def metric_vs_axis(trials: pd.DataFrame, metric: str, axis: str, variants: list[str], log: bool,
                   others: list[str] = ()) -> bytes | None:
    """Final metric vs one swept axis: mean over seeds, band from min to max over seeds, one line per
    variant (per arm, one panel per base, where the variants have arms), one panel per dataset and per
    value of the first other swept axis with at most MAX_SPLIT values; any further swept axes are pooled
    (named in the title). Variants that do not sweep the axis are left out (named in the title). Log x when
    the caller says so or the values span >= 10x (`log_x`)."""
    with themed():
        return _png(metric_vs_axis_figure(trials, metric, axis, variants, log, others))


def heatmap(trials: pd.DataFrame, metric: str, x: str, y: str, variants: list[str]) -> bytes | None:
    """Mean final metric over seeds on the grid of two swept axes, one panel per variant (and dataset)."""
    col = f"final.{metric}"
    if col not in trials:
        return None
    d = trials[np.isfinite(trials[col].astype(float))].copy()
    if d.empty:
        return None
    pooled = sorted({_short(g[0]) for v in ordered(variants) for g in swept_within(d[d["variant"] == v])
                     if x not in g and y not in g})
    for c in (x, y):
        d[c] = d[c].map(show_value)
    panels = [(ds, v) for ds in sorted(d[DATASET].unique()) for v in ordered(variants)
              if not d[(d[DATASET] == ds) & (d["variant"] == v)].empty]
    if not panels:
        return None
    fig, axes = _panel_grid(len(panels), 3, 4.6, 3.8)
    cmap = "viridis" if INFO.get(metric, (True,))[0] else "viridis_r"  # bright = better
    lo, hi = float(d[col].min()), float(d[col].max())
    log, _ = metric_scale(metric, d[col])
    log = log and lo > 0  # a colour scale cannot put a value <= 0 anywhere
    norm = LogNorm(vmin=lo, vmax=hi) if log else None

    def _order(vals):
        try:
            return sorted(set(vals), key=float)
        except ValueError:
            return sorted(set(vals))

    xs, ys = _order(d[x]), _order(d[y])
    for ax, (ds, v) in zip(axes.flat, panels):
        sub = d[(d[DATASET] == ds) & (d["variant"] == v)]
        grid = sub.pivot_table(index=y, columns=x, values=col, aggfunc="mean").reindex(index=ys, columns=xs)
        sns.heatmap(grid, ax=ax, cmap=cmap, vmin=None if log else lo, vmax=None if log else hi, norm=norm,
                    annot=True, fmt=".3g", cbar=False, annot_kws={"fontsize": 8})
        ax.set_title(f"{v}" + (f" ({ds})" if d[DATASET].nunique() > 1 else ""), fontsize=9)
        ax.set(xlabel=x, ylabel=y)
    over = f"seeds and {', '.join(pooled)}" if pooled else "seeds"
    fig.suptitle(f"mean final {metric} over {over} (brighter is better{'; colour on a log scale' if log else ''}); "
                 "blank: no finite value", y=1.02)
    fig.tight_layout()
    return png(fig)


def budget_curves_figure(curves_by_variant: dict, metric: str, variants: list[str],
                         study_of: dict | None = None) -> Figure | None:
    items = {k: c for k, c in curves_by_variant.items() if c is not None and not c.empty}
    if not items:
        return None
    lines = [{"row": ds, "share": ds, "variant": v, "x": c["k"].to_numpy(), "y": c["expected_best"].to_numpy(dtype=float),
              "lo": c["lo"].to_numpy(dtype=float), "hi": c["hi"].to_numpy(dtype=float)}
             for (ds, v), c in sorted(items.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1])))]
    fig = _lines_figure(lines, variants, xlabel="budget k (trials drawn at random)", metric=metric,
                        ylabel=axis_label(metric), markersize=3, study_of=study_of)
    for ax in fig.axes:
        if ax.axison:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _title(fig, f"expected best final {metric} with a budget of k trials drawn at random from a variant's trials "
                "(all its settings and seeds pooled; band: 95 % bootstrap)", fig.get_figwidth())
    return fig


def budget_curves(curves_by_variant: dict, metric: str, variants: list[str],
                  study_of: dict | None = None) -> bytes | None:
    """bench.stats.budget_curve per (dataset, variant): expected best final metric of k trials drawn at
    random from the variant's trials, band = bootstrap 95 % interval. `curves_by_variant`:
    {(dataset, variant): DataFrame}. One panel per dataset and base, one line per arm. `study_of`
    (variant -> study, `study_map(trials)`) where several studies are compared: see `bases`."""
    with themed():
        return _png(budget_curves_figure(curves_by_variant, metric, variants, study_of))


def paired_differences_figure(summary: pd.DataFrame, pairs: pd.DataFrame, metric: str, labels: list[str],
                              variants: list[str] | None = None) -> Figure | None:
    s = summary[summary["metric"] == metric].reset_index(drop=True)
    if s.empty:
        return None
    s["_label"] = (list(labels) + [""] * len(s))[:len(s)]
    s["_arm"] = [arm_name(a) for a in s["lens"]] if "lens" in s else "lens"
    colors = arm_colors(variants if variants else [f"x+{a}" for a in s["_arm"]])
    # one arm order for every objective (the summary's order can differ from one to the next)
    base = s["variant.objective"].astype(str) if "variant.objective" in s else pd.Series("", index=s.index)
    if "study" in s:
        base = s["study"].astype(str) + ": " + base
    first = {b: i for i, b in enumerate(dict.fromkeys(base))}
    rank = {a: i for i, a in enumerate(arm_order(s["_arm"]))}
    s = s.assign(_o1=base.map(first), _o2=s["_arm"].map(rank)).sort_values(["_o1", "_o2"], kind="stable")
    datasets = list(dict.fromkeys(s[DATASET])) if DATASET in s else [None]
    per = [s[s[DATASET] == ds] if ds is not None else s for ds in datasets]
    n = max(len(p) for p in per)
    fig, axes = _facets(len(datasets), 6.0, 0.42 * n + 1.9)
    higher = INFO.get(metric, (True,))[0]
    rng = np.random.default_rng(0)
    for ax, ds, p in zip(axes, datasets, per):
        vals = []
        for i, (_, r) in enumerate(p.iterrows()):
            q = pairs[(pairs["metric"] == metric) & pairs["used"] & (pairs["arm"] == r["arm"])]
            for b in [c for c in ("study", "variant.objective", DATASET) if c in s.columns]:
                q = q[q[b].astype(str) == str(r[b])]
            d = q["diff"].to_numpy(dtype=float)
            vals += list(d)
            colour = colors.get(r["_arm"], GENERATED)
            ax.scatter(d, i + rng.uniform(-0.12, 0.12, len(d)), s=14, color="black", alpha=0.6, zorder=3)
            if np.isfinite(r["lo"]) and np.isfinite(r["hi"]):
                ax.plot([r["lo"], r["hi"]], [i, i], color=colour, linewidth=3, alpha=0.9, zorder=2)
                vals += [r["lo"], r["hi"]]
            if np.isfinite(r["mean_diff"]):
                ax.scatter([r["mean_diff"]], [i], marker="D", s=45, color=colour, edgecolor="black", linewidth=0.5,
                           zorder=4)
        ax.axvline(0, color="grey", linestyle="--", linewidth=1)
        labs = [lab.replace(f" {ds}", "") if ds is not None and len(datasets) > 1 else lab for lab in p["_label"]]
        ax.set_yticks(range(len(p)), labs, fontsize=9)
        ax.set_ylim(n - 0.5, -0.5)
        a = np.abs(_finite(vals))
        a = a[a > 0]
        sym = len(a) > 2 and a.max() > SPAN * np.median(a)
        if sym:  # a few large differences would flatten the rest: symmetric log, linear up to the typical size
            lin = float(10 ** np.floor(np.log10(np.median(a))))
            ax.set_xscale("symlog", linthresh=lin)
        scale = f" (symlog, linear within +-{lin:g})" if sym else ""
        ax.set_xlabel(f"lens - no lens, final {metric}{scale}\n({'right' if higher else 'left'} of 0: the lens helps)")
        if ds is not None and len(datasets) > 1:
            ax.set_title(str(ds))
        for i in range(1, len(p)):
            if p["_label"].iloc[i].split("\n")[0] != p["_label"].iloc[i - 1].split("\n")[0]:
                ax.axhline(i - 0.5, color="0.8", linewidth=0.8, zorder=0)
    shown = arm_order(s["_arm"])
    _color_legend(fig, shown, colors, marker="D", title="arm (colour)")
    _title(fig, f"paired differences in final {metric}: dots = pairs (same seed and settings), diamond = mean, "
                "bar = 95 % t interval", fig.get_figwidth(), fontsize=10)
    return fig


def paired_differences(summary: pd.DataFrame, pairs: pd.DataFrame, metric: str, labels: list[str],
                       variants: list[str] | None = None) -> bytes | None:
    """Per comparison (one row per label, in summary order; one panel per dataset): each pair's difference
    (dots), the mean (diamond) and its 95 % t interval (bar), coloured by arm; the dashed line is no
    difference."""
    with themed():
        return _png(paired_differences_figure(summary, pairs, metric, labels, variants))
