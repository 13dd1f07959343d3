"""What the report says: headline findings and tables computed with `bench.stats` from the trials table.

Pure pandas/numpy/scipy (through bench.stats); never imports torch or model code. Every number in a
headline sentence comes from a `bench.stats` call made here, so the tests can recompute it.

Detected automatically:
- **swept axes**: config columns (besides the seed and the dataset name) that take more than one value
  within one variant (so not what defines the variant: objective and lens are in the variant's name);
  columns that always change together (a `zip` group) form one axis;
- **lens pairs**: trials with a lens (`variant.lens.schedule` not null) vs trials without, paired on
  every other config field including the seed (same seed = same initial G and D);
- **success**: `SUCCESS_RULE` below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench import catalog, stats
from bench.metrics import INFO, bounds
from bench.report.fmt import N_BOOT, fmt, fmt_p, interval, p_is, show_value
from bench.stats.common import _canon, _is_null, _join

DATASET = "dataset.name"
SEED = 0
LENS = "variant.lens.schedule"
# the metric a headline talks about, by preference (toys first, then images)
PRIMARY = ("energy_distance", "fid", "kid_mean", "l1", "modes_covered", "recall")
# the metrics of the paired-difference table (Holm family = every test in that table)
# the metrics of the paired-difference table (Holm family = every test in that table): the co-primary metrics of
# the toys (energy distance, modes covered, hq_fraction, mode KL) and of images (FID, KID, precision, recall)
PAIRED = ("energy_distance", "modes_covered", "hq_fraction", "mode_kl", "fid", "kid_mean", "precision", "recall")
TOY_MODES = {"ring8": 8, "grid25": 25}
RECALL_MIN = 0.1
NO_PLOT_MAX = 8  # at most this many headline sentences per axis; the table has the rest
MAX_PAIRED_HEADLINES = 8  # more lens comparisons than this: a digest sentence instead of one each

ED_RULE = "encoder-decoder trials: status ok only"
ED_STRUCTURES = catalog.conditioned()  # conditioned on test inputs (the zoo's structures sample from noise)
SUCCESS_TEXT = (f"A trial succeeds when it finished without diverging (status ok) and did not collapse: on the toy "
                f"data at least half of the modes covered (ring8: >= 4 of 8, grid25: >= 13 of 25); on image data "
                f"recall >= {RECALL_MIN}. Encoder-decoder (ED+GAN, ED//GAN) trials only need status ok: their "
                f"outputs are conditioned on test inputs, so a low recall of blurry reconstructions is not a "
                f"collapse (their quality is in l1, psnr, fid and NRDS). Diverged and failed trials (a failed one raised an "
                f"error) count in the denominator as failures: never left out. Intervals are Wilson 95 % score "
                f"intervals.")
PAIRING_TEXT = ("Lens vs no lens is compared pair by pair: a trial with the lens is paired with the trial without "
                "it that has the same objective, dataset, seed and every other setting (the same seed gives the "
                "same initial generator and discriminator). The difference is lens minus no lens; its interval is "
                "a 95 % Student t interval over pairs; the test is a two-sided Wilcoxon "
                "signed-rank test; rank-biserial r > 0 means the lens gives larger values. p-values are "
                "Holm-adjusted over every test in the paired-difference table. Pairs where either trial diverged "
                "are dropped and counted.")


def note(r) -> str:
    x = r.get("reason")
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x)


def metric_name(metric: str) -> str:
    return INFO[metric][1] if metric in INFO else metric


def direction(metric: str) -> str:
    return "higher is better" if INFO.get(metric, (True,))[0] else "lower is better"


# ----------------------------------------------------------------------------- detection


@dataclass
class Axis:
    column: str                  # the representative column (used for grouping)
    columns: list[str]           # every column that changes with it (a zip group)
    values: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return " / ".join(self.columns)

    @property
    def numeric(self) -> bool:
        return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                   and np.isfinite(v) for v in self.values)

    @property
    def log(self) -> bool:
        """Values spanning more than 30x (all positive) get a log axis."""
        if not self.numeric or not self.values:
            return False
        v = np.asarray(self.values, dtype=float)
        return bool((v > 0).all() and v.max() > 30 * v.min())

    def span(self) -> str:
        if self.numeric and len(self.values) > 1:
            v = np.asarray(self.values, dtype=float)
            return f"in [{fmt(v.min())}, {fmt(v.max())}] ({len(v)} values)"
        return "over {" + ", ".join(show_value(v) for v in self.values) + "}"


def _key(v) -> str:
    return _canon(v)  # a text form stable across types; nulls are one value


def group_columns(trials: pd.DataFrame) -> list[str]:
    return ["study", "variant", DATASET] if trials["study"].nunique() > 1 else ["variant", DATASET]


def swept_axes(trials: pd.DataFrame) -> list[Axis]:
    """Config columns (not the seed, not the dataset name) with more than one value inside a variant,
    the axes with most values first."""
    by = group_columns(trials)
    cols = [c for c in stats.config_columns(trials) if c not in ("seed", DATASET)]
    keys = {c: trials[c].map(_key) for c in cols}
    swept = [c for c in cols if (keys[c].groupby([trials[b] for b in by], dropna=False).nunique() > 1).any()]
    axes: list[Axis] = []
    for c in swept:  # columns with the same partition of the trials change together: one axis
        for a in axes:
            ka = keys[a.column]
            if (pd.crosstab(ka, keys[c]) > 0).sum(axis=1).max() == 1 and (pd.crosstab(keys[c], ka) > 0).sum(axis=1).max() == 1:
                a.columns.append(c)
                break
        else:
            vals = list(dict.fromkeys(v for v in trials[c] if not _is_null(v)))
            try:
                vals = sorted(vals)
            except TypeError:
                pass
            if trials[c].isna().any():
                vals = [None, *vals]
            axes.append(Axis(c, [c], vals))
    # the most finely swept axis first: it is what the study is about (w in {1e-4 .. 1} rather than the
    # 2 optimizers); the headlines follow this order
    return sorted(axes, key=lambda a: -len(a.values))


def has_finite(df: pd.DataFrame, col: str) -> bool:
    """Whether column `col` exists and holds a finite number (every table has a column for every metric,
    typed null where it was not measured)."""
    return col in df.columns and bool(np.isfinite(pd.to_numeric(df[col], errors="coerce").astype(float)).any())


def failure_value(sub: pd.DataFrame, metric: str, dataset: str) -> float:
    """The value a diverged or failed trial counts at: the metric's bound on its bad side (e.g. 0 modes), else the
    worst finished value on the dataset, so every variant is judged alike."""
    vals = pd.to_numeric(sub.get(f"final.{metric}"), errors="coerce").astype(float)
    fin = vals[np.isfinite(vals)]
    lo, hi = bounds(metric, dataset)
    if INFO[metric][0]:
        return lo if np.isfinite(lo) else (fin.min() if len(fin) else np.nan)
    return hi if np.isfinite(hi) else (fin.max() if len(fin) else np.nan)


def primary_metric(trials: pd.DataFrame, metrics: list[str]) -> str | None:
    """The headline metric: the one the structures in the rows declare as their headline (bench.catalog; where they
    disagree, the one most rows' structure declares) where it has a value; else the first of PRIMARY with a value."""
    if "variant.structure" in trials:
        cat = catalog.catalog()
        # the structures' declared headlines, the one of most rows first (structures that disagree, e.g. DANN and
        # CycleGAN on one two-domain set: the majority's, where it has values)
        heads = trials["variant.structure"].dropna().astype(str).map(lambda s: cat[s].headline if s in cat else None)
        for h in heads.value_counts().index:
            if h in metrics and has_finite(trials, f"final.{h}"):
                return h
    for m in PRIMARY:
        if m in metrics and has_finite(trials, f"final.{m}"):
            return m
    return next((m for m in metrics if f"final.{m}" in trials), None)


# ----------------------------------------------------------------------------- success


def success_rule(trials: pd.DataFrame) -> tuple[pd.Series, dict[str, str]]:
    """(not-collapsed mask, {dataset: rule in words}) — see SUCCESS_TEXT."""
    mask = pd.Series(False, index=trials.index)
    words = {}
    # structures whose declared success rule is "finished" (status ok only: bench.catalog), e.g. the encoder-decoders
    finished_only = tuple(n for n, s in catalog.catalog().items() if s.success == "finished")
    ed = trials["variant.structure"].isin(finished_only) if "variant.structure" in trials else \
        pd.Series(False, index=trials.index)
    for ds, sub in trials.groupby(DATASET, dropna=False):
        if ed[sub.index].any():  # conditional outputs: no collapse measure that means the same thing
            mask[sub.index[ed[sub.index]]] = True
            kinds = set(sub.loc[ed[sub.index], "variant.structure"])
            words[ds] = ED_RULE if kinds <= set(ED_STRUCTURES) else \
                f"no collapse measure for {', '.join(catalog.structure(k).title for k in sorted(kinds))} trials"
            sub = sub[~ed[sub.index]]
            if sub.empty:
                continue
        if ds in TOY_MODES and "final.modes_covered" in sub:
            need = math.ceil(TOY_MODES[ds] / 2)
            mask[sub.index] = sub["final.modes_covered"].astype(float) >= need
            words[ds] = f"modes covered >= {need} of {TOY_MODES[ds]}"
        elif "final.recall" in sub:
            mask[sub.index] = sub["final.recall"].astype(float) >= RECALL_MIN
            words[ds] = f"recall >= {RECALL_MIN}" + (f" (GAN trials; {ED_RULE})" if ds in words else "")
        else:
            mask[sub.index] = True
            words[ds] = "no collapse measure: status ok only"
    return mask.fillna(False).astype(bool), words


def success(trials: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    mask, words = success_rule(trials)
    table = stats.success_rate(trials, lambda t: mask.loc[t.index], by=group_columns(trials), count_failed=True)
    return table, words


# ----------------------------------------------------------------------------- lens pairs


def has_lens_pairs(trials: pd.DataFrame) -> bool:
    return LENS in trials and trials[LENS].notna().any() and trials[LENS].isna().any()


def paired(trials: pd.DataFrame, metrics: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(summary over every metric with a `holm_p` column, pairs, notes) for the lens vs no lens comparison."""
    if not has_lens_pairs(trials):
        return pd.DataFrame(), pd.DataFrame(), []
    by = ["study", "variant.objective", DATASET] if trials["study"].nunique() > 1 else ["variant.objective", DATASET]
    summaries, pairs, notes = [], [], []
    for m in [m for m in PAIRED if m in metrics and f"final.{m}" in trials]:
        try:
            res = stats.paired_difference(trials, m, treatment=LENS, by=by, n_boot=N_BOOT, seed=SEED)
        except ValueError as e:
            notes.append(f"{m}: no paired comparison ({e})")
            continue
        s, p = res.summary.copy(), res.pairs.copy()
        s.insert(0, "metric", m)
        p.insert(0, "metric", m)
        summaries.append(s)
        pairs.append(p)
    if not summaries:
        return pd.DataFrame(), pd.DataFrame(), notes
    summary = pd.concat(summaries, ignore_index=True)
    pairs = pd.concat(pairs, ignore_index=True)
    summary["n_seeds"] = [_n_seeds(trials, pairs_of(pairs, r, by)) for _, r in summary.iterrows()]
    variant_of = dict(zip(trials["trial_id"], trials["variant"]))
    summary["lens"] = [_lens_name(pairs_of(pairs, r, by), variant_of, r["arm"]) for _, r in summary.iterrows()]
    # one seed: the pairs differ only in other settings, not in the seed -> no interval, no test (an
    # interval over seeds cannot be had from one seed, and a zero-width band would claim one)
    one = summary["n_seeds"] < 2
    summary.loc[one, ["lo", "hi", "p_value", "wilcoxon_stat"]] = np.nan
    summary.loc[one, "reason"] = [_join("fewer than 2 seeds: no interval, no test", note(r))
                                  for _, r in summary[one].iterrows()]
    summary["holm_p"] = stats.holm(summary["p_value"].to_numpy(dtype=float))
    return summary, pairs, notes


def pairs_of(pairs: pd.DataFrame, row: pd.Series, by: list[str]) -> pd.DataFrame:
    sel = (pairs["metric"] == row["metric"]) & (pairs["arm"] == row["arm"])
    for b in by:
        sel &= pairs[b].map(_key) == _key(row[b])
    return pairs[sel]


def _lens_name(p: pd.DataFrame, variant_of: dict, arm: str) -> str:
    """The lens part of the treated variant's label ('lens(sine K=1000)'), else the arm's settings."""
    names = {str(variant_of.get(t, "")) for t in p.get("treated_id", [])}
    parts = {n.split("+", 1)[1] for n in names if "+" in n}
    return parts.pop().replace("lens(", "lens (", 1) if len(parts) == 1 else f"lens ({arm})"


def _n_seeds(trials: pd.DataFrame, p: pd.DataFrame) -> int:
    used = p[p["used"]] if "used" in p else p
    if used.empty or "treated_id" not in used:  # no pair (e.g. lens and no lens in different studies)
        return 0
    return int(trials.loc[trials["trial_id"].isin(used["treated_id"]), "seed"].nunique())


def _excludes(r) -> int:
    """+1 when the t interval lies above 0 in the metric's better direction, -1 below, 0 otherwise."""
    if not (np.isfinite(r["lo"]) and np.isfinite(r["hi"])) or r["lo"] <= 0 <= r["hi"]:
        return 0
    higher = INFO.get(r["metric"], (False,))[0]
    return 1 if (r["lo"] > 0) == higher else -1


def agreement(row: pd.Series, summary: pd.DataFrame, by: list[str]) -> str:
    """What the other paired metrics of the same comparison say, where their interval excludes 0: a lens that
    lowers the energy distance while covering fewer modes is not simply 'better'."""
    same = summary[(summary["arm"] == row["arm"]) & (summary["metric"] != row["metric"])]
    for b in by:
        if b in summary:
            same = same[same[b].map(_key) == _key(row[b])]
    better = [r for _, r in same.iterrows() if _excludes(r) > 0]
    worse = [r for _, r in same.iterrows() if _excludes(r) < 0]
    parts = []
    for word, rows in (("better", better), ("worse", worse)):
        if rows:
            parts.append(f"{word} on " + ", ".join(f"{metric_name(r['metric'])} {interval(r['mean_diff'], r['lo'], r['hi'])}"
                                                   for r in rows))
    return ("; " + "; ".join(parts)) if parts else ""


def paired_sentence(row: pd.Series, label: str) -> str:
    m = row["metric"]
    n, seeds = int(row["n"]), int(row["n_seeds"])
    over = f"{n} seeds" if n == seeds else f"{n} pairs: {seeds} seeds x other settings"
    head = f"With the {row['lens']}, {label}'s final {metric_name(m)} changes by "
    if n < 2 or seeds < 2:
        why = "no usable pair" if n == 0 else ("one pair" if n == 1 else f"{n} pairs, all from one seed")
        text = head + f"{fmt(row['mean_diff'])} ({why}: no interval, no test)"
    else:
        text = (head + f"{interval(row['mean_diff'], row['lo'], row['hi'])} (paired over {over}, Wilcoxon "
                f"{p_is(row['p_value'])}, Holm-adjusted {p_is(row['holm_p'])}, rank-biserial r = "
                f"{row['rank_biserial']:.2f}; {direction(m)}, better in {int(round(row['frac_better'] * n))} of {n})")
    if row["n_dropped"]:
        text += f"; {int(row['n_dropped'])} pair(s) dropped (diverged or no value)"
    return text + "."


def paired_digest(prim: pd.DataFrame, names: list[str], summary: pd.DataFrame | None = None,
                  by: list[str] = ()) -> list[str]:
    """Many lens comparisons: one sentence with the counts, and the comparisons whose interval
    excludes 0 (better / worse), instead of one sentence each; the table lists them all."""
    tested = prim[np.isfinite(prim["lo"].astype(float))]
    sig = int((prim["holm_p"].astype(float) <= 0.05).sum())
    metric_words = " / ".join(dict.fromkeys(metric_name(m) for m in prim["metric"]))
    head = (f"{len(prim)} lens-vs-no-lens comparisons of the final {metric_words} (paired over seeds): {sig} "
            f"significant after Holm (adjusted p <= 0.05); {int(((tested['lo'] > 0) | (tested['hi'] < 0)).sum())} "
            f"of the {len(tested)} with an interval have a 95 % t interval that excludes 0. All are in the "
            "paired-difference table.")
    out = [head]
    for side, word in ((True, "better"), (False, "worse")):
        items = []
        for (_, r), name in zip(prim.iterrows(), names):
            if not np.isfinite(r["lo"]) or (r["lo"] <= 0 <= r["hi"]):
                continue
            higher = INFO.get(r["metric"], (False,))[0]
            if (r["lo"] > 0) == higher and side or (r["lo"] > 0) != higher and not side:
                other = agreement(r, summary, list(by)) if summary is not None else ""
                items.append((abs(r["mean_diff"]), f"{r['lens']} for {name}: {interval(r['mean_diff'], r['lo'], r['hi'])}"
                                                   + (f" ({other[2:]})" if other else "")))
        if items:
            items.sort(key=lambda x: -x[0])
            out.append(f"Interval excludes 0, lens {word} ({len(items)}): " + "; ".join(t for _, t in items) + ".")
    return out


def wilcoxon_floor_note(prim: pd.DataFrame, n_tests: int | None = None) -> str | None:
    """The exact two-sided Wilcoxon signed-rank p-value is at least 2 / 2^n with n pairs (0.0625 at n = 5),
    and after Holm over m tests at least m * 2 / 2^n: say so when no comparison can reach 0.05, with the
    number of pairs (seeds) that would let it."""
    n = prim.loc[np.isfinite(prim["p_value"].astype(float)), "n"].astype(int)
    if n.empty:
        return None
    m = int(n_tests or len(prim))
    floor, holm_floor = 2 / 2 ** n.max(), min(1.0, m * 2 / 2 ** n.max())
    need = math.floor(math.log2(2 * m / 0.05)) + 1  # smallest n with m * 2 / 2^n < 0.05
    if floor >= 0.05:
        return (f"With at most {n.max()} pairs per comparison the smallest two-sided Wilcoxon p-value possible is "
                f"2 / 2^{n.max()} = {fmt(floor)}: no comparison here can reach p < 0.05 whatever the effect (and "
                f"after Holm over {m} tests it takes at least {need} pairs); run more seeds for the test to decide.")
    if holm_floor >= 0.05:
        return (f"With at most {n.max()} pairs per comparison and Holm over {m} tests, the smallest adjusted p-value "
                f"possible is {m} x 2 / 2^{n.max()} = {fmt(holm_floor)}: no comparison can be significant after "
                f"Holm whatever the effect; that takes at least {need} pairs (seeds).")
    return None


def paired_table(summary: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    by = [c for c in ("study", DATASET, "variant.objective") if c in summary]
    header = [*[c.split(".")[-1] if c != DATASET else "dataset" for c in by], "lens", "metric", "pairs used / matched",
              "mean diff [95 % CI]", "median diff", "better / worse", "Wilcoxon p", "Holm p", "rank-biserial r",
              "d_z", "note"]
    rows = []
    for _, r in summary.iterrows():
        n = int(r["n"])
        rows.append([*[str(r[c]) for c in by], r["lens"], f"{r['metric']} {'↑' if INFO[r['metric']][0] else '↓'}",
                     f"{n} / {int(r['n_pairs'])}", interval(r["mean_diff"], r["lo"], r["hi"]), fmt(r["median_diff"]),
                     f"{int(round(r['frac_better'] * n))} / {int(round(r['frac_worse'] * n))}" if n else "n/a",
                     fmt_p(r["p_value"]), fmt_p(r["holm_p"]), fmt(r["rank_biserial"]), fmt(r["d_z"]),
                     note(r)])
    return header, rows


# ----------------------------------------------------------------------------- sensitivity


def sensitivity(trials: pd.DataFrame, axis: Axis, metric: str, axes: list[Axis]) -> pd.DataFrame:
    """bench.stats.axis_spread across `axis`, per variant and dataset (and per value of the other axes:
    the spread across one axis is taken with the others held fixed)."""
    others = [a.column for a in axes if a.column != axis.column]
    by = [*group_columns(trials), *others]
    t = stats.axis_spread(trials, metric, axis.column, by=by, n_boot=N_BOOT, seed=SEED)
    # groups where the axis is not swept at all (e.g. another study's variants) say nothing about it
    return t[t["n_points"] + t["n_points_empty"] >= 2].reset_index(drop=True)


def spread_sentence(row: pd.Series, axis: Axis, metric: str, others: list[str], show_dataset: bool = False,
                    of_n: int = 1) -> str:
    """One group's spread across `axis`; with other swept axes, `row` is the setting of the others with the
    largest spread (of `of_n` settings) and the sentence says so."""
    # (one setting: the other axes are not swept in this variant, e.g. another zoo variant's weight)
    where = (f" (the largest of its {of_n} settings of {', '.join(others)}, at " +
             ", ".join(f"{c} = {show_value(row[c])}" for c in others) + ")") if others and of_n > 1 else ""
    head = f"Across {axis.name} {axis.span()}, the spread (of the true per-point means, seed noise taken out) of " \
           f"{row['variant']}'s final " \
           f"{metric_name(metric)}"
    if show_dataset:
        head += f" on {row[DATASET]}"
    head += where
    if row["n_points"] < 2:
        return head + f" cannot be computed: only {int(row['n_points'])} axis point(s) with a finite value" + \
            (f" ({int(row['n_points_empty'])} without)" if row["n_points_empty"] else "") + "."
    why = note(row).replace(": no interval", "")
    text = head + " is " + interval(row["std"], row["std_lo"], row["std_hi"], why)
    text += (f"; best {fmt(row['best'])} at {show_value(row['best_at'])}, worst {fmt(row['worst'])} at "
             f"{show_value(row['worst_at'])} ({direction(metric)})")
    if row["n_points_empty"]:
        text += f"; {int(row['n_points_empty'])} axis point(s) had no finite value (diverged or failed)"
    return text + "."


def sensitivity_table(table: pd.DataFrame, others: list[str]) -> tuple[list[str], list[list[str]]]:
    by = [c for c in ("study", "variant", DATASET) if c in table]
    header = [*[("dataset" if c == DATASET else c) for c in by], *others, "points (empty)", "min seeds",
              "std [95 % CI]", "IQR [resampled]", "range [resampled]", "best (at)", "worst (at)", "note"]
    rows = []
    for _, r in table.iterrows():
        rows.append([*[str(r[c]) for c in by], *[show_value(r[c]) for c in others],
                     f"{int(r['n_points'])} ({int(r['n_points_empty'])})", int(r["min_seeds"]),
                     *[interval(r[s], r[f"{s}_lo"], r[f"{s}_hi"]) if r["n_points"] >= 2 else "n/a"
                       for s in ("std", "iqr", "range")],
                     f"{fmt(r['best'])} ({show_value(r['best_at'])})", f"{fmt(r['worst'])} ({show_value(r['worst_at'])})",
                     note(r)])
    return header, rows


# ----------------------------------------------------------------------------- success tables / sentences


def success_table(table: pd.DataFrame, words: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    by = [c for c in ("study", DATASET, "variant") if c in table]
    header = [*[("dataset" if c == DATASET else c) for c in by], "rule", "successes / n", "success rate [95 % Wilson]",
              "diverged", "diverged rate [95 % Wilson]", "failed (counted)", "note"]
    rows = []
    for _, r in table.iterrows():
        rows.append([*[str(r[c]) for c in by], words.get(r[DATASET], ""), f"{int(r['successes'])} / {int(r['n'])}",
                     interval(r["rate"], r["lo"], r["hi"]), int(r["diverged"]),
                     interval(r["diverged_rate"], r["diverged_lo"], r["diverged_hi"]), int(r["n_failed"]),
                     note(r)])
    return header, rows


def success_sentences(table: pd.DataFrame, words: dict[str, str]) -> list[str]:
    out = []
    for ds, sub in table.groupby(DATASET, sort=False):
        n, s, d = int(sub["n"].sum()), int(sub["successes"].sum()), int(sub["diverged"].sum())
        if n == 0:
            continue
        rule = words.get(ds, "")
        if s == n:
            out.append(f"On {ds}, all {n} trials succeeded (status ok and {rule}).")
            continue
        if s == 0:
            out.append(f"On {ds}, none of the {n} trials succeeded (status ok and {rule}; {d} diverged): "
                       f"no successes in any of its {len(sub)} variants (n = "
                       + (f"{int(sub['n'].min())}-" if sub["n"].min() != sub["n"].max() else "")
                       + f"{int(sub['n'].max())} each); the upper 95 % Wilson bounds reach at most "
                       f"{fmt(sub['hi'].astype(float).max())}.")
            continue
        parts = [f"{r['variant']} {int(r['successes'])}/{int(r['n'])} = {interval(r['rate'], r['lo'], r['hi'])}"
                 for _, r in sub.iterrows()]
        out.append(f"On {ds}, {s} of {n} trials succeeded (status ok and {rule}; {d} diverged); success rate per "
                   f"variant [95 % Wilson]: " + "; ".join(parts) + ".")
    return out


# ----------------------------------------------------------------------------- everything


@dataclass
class Findings:
    axes: list[Axis]
    headlines: list[str]
    tables: list[tuple]          # blocks: ("h3"-less) ("p", ...) / ("table", header, rows)
    paired_summary: pd.DataFrame
    paired_pairs: pd.DataFrame
    by_metric: dict = field(default_factory=dict)  # headline metric -> the datasets it is used for


def _lens_headlines(trials: pd.DataFrame, psum: pd.DataFrame, primary: dict, label) -> list[str]:
    """The lens-vs-no-lens headlines: one sentence per comparison of the headline metric (a digest when there are
    many), each naming what the other co-primary metrics say, the Wilcoxon floor, and the other significant tests."""
    heads = []
    is_primary = np.array([primary.get(ds) == m for ds, m in zip(psum[DATASET], psum["metric"])], dtype=bool)
    prim = psum[is_primary] if is_primary.any() else psum[psum["metric"] == psum["metric"].iloc[0]]
    names = []
    for _, r in prim.iterrows():
        name = label(r) if label else str(r["variant.objective"])
        if DATASET in r and trials[DATASET].nunique() > 1:
            name += f" on {r[DATASET]}"
        names.append(name)
    pby = ["study", "variant.objective", DATASET]
    if len(prim) <= MAX_PAIRED_HEADLINES:
        for (_, r), name in zip(prim.iterrows(), names):
            other = agreement(r, psum, pby)
            heads.append(paired_sentence(r, name)[:-1] +
                         (f"; other metrics whose interval excludes 0: {other[2:]}." if other else "."))
    else:
        heads += paired_digest(prim, names, psum, pby)
    floor = wilcoxon_floor_note(prim, int(np.isfinite(psum["p_value"].astype(float)).sum()))
    if floor:
        heads.append(floor)
    for _, r in psum[(psum["holm_p"] <= 0.05) & ~is_primary].iterrows():
        heads.append(f"Also significant after Holm: the {r['lens']} changes {r['variant.objective']}'s final "
                     f"{metric_name(r['metric'])}" + (f" on {r[DATASET]}" if trials[DATASET].nunique() > 1 else "") +
                     f" by {interval(r['mean_diff'], r['lo'], r['hi'])} (Holm-adjusted {p_is(r['holm_p'])}).")
    return heads


def findings(trials: pd.DataFrame, metrics: list[str], label=None) -> Findings:
    """Headline sentences and table blocks. `label(row)` names a paired row's variant (default: its objective)."""
    # the headline metric per dataset (a toy and an image study compared in one report differ)
    primary = {ds: primary_metric(sub, metrics) for ds, sub in trials.groupby(DATASET, sort=True)}
    by_metric: dict[str, list] = {}
    for ds, m in primary.items():
        if m is not None:
            by_metric.setdefault(m, []).append(ds)
    axes = swept_axes(trials)
    heads: list[str] = []
    tables: list[tuple] = []

    # lens pairs
    psum, ppairs, notes = paired(trials, metrics)
    if not psum.empty:
        heads += _lens_headlines(trials, psum, primary, label)
    heads += notes

    # swept axes
    for metric, datasets in by_metric.items():
        sub = trials[trials[DATASET].isin(datasets)]
        for ax in axes:
            others = [a.column for a in axes if a.column != ax.column]
            t = sensitivity(sub, ax, metric, axes)
            if t.empty:
                continue
            base = [c for c in group_columns(trials) if c in t]
            picked = []
            for _, g in t.groupby(base, sort=False, dropna=False):
                g2 = g[np.isfinite(g["std"].astype(float))]
                picked.append((g2.loc[g2["std"].astype(float).idxmax()] if not g2.empty else g.iloc[0], len(g)))
            for r, n in picked[:NO_PLOT_MAX]:
                heads.append(spread_sentence(r, ax, metric, others, trials[DATASET].nunique() > 1, n))
            if len(picked) > NO_PLOT_MAX:
                heads.append(f"({len(picked) - NO_PLOT_MAX} more variants' spreads across {ax.name} in the "
                             "sensitivity table.)")
            tables.append(("h3", f"Sensitivity to {ax.name} (final {metric}"
                               + (f"; {', '.join(datasets)})" if len(by_metric) > 1 else ")")))
            tables.append(("p", f"Per-point mean = mean over seeds at one value of {ax.name}. std: the spread of the "
                                f"true per-point means across the {len(ax.values)} values with the seed noise taken "
                                "out, with its 95 % confidence interval (noncentral F, normal seed noise: "
                                "bench.stats.true_spread; the std of the noisy means is higher by up to the noise "
                                "floor). IQR / range: of the per-point means, with resampling intervals "
                                f"({N_BOOT} resamples of the seeds within each point; descriptive). "
                                "No interval when a point has fewer than 2 seeds." +
                                (f" Other swept axes ({', '.join(others)}) are held fixed per row." if others else "")))
            tables.append(("table", *sensitivity_table(t, others)))

    # success
    st, words = success(trials)
    heads += success_sentences(st, words)
    tables.append(("h3", "Success rate"))
    tables.append(("p", SUCCESS_TEXT))
    tables.append(("table", *success_table(st, words)))

    if not psum.empty:
        tables.append(("h3", "Lens vs no lens, paired"))
        tables.append(("p", PAIRING_TEXT))
        tables.append(("table", *paired_table(psum)))
    if not heads:
        heads.append("No comparison to report: no lens pairs, no swept axis and no trials.")
    return Findings(axes, heads, tables, psum, ppairs, by_metric)
