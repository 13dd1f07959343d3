"""The study's question, answered first: the primary test of the report (alpha 0.05, not corrected with
the exploratory tests of the tables), with a power line, and for lens studies the spread across the
lens K (the lens paper's second claim: robust against K).

The question comes from the study file's `question:` block (bench.schema.QuestionCfg). A lens study
without one gets the lens paper's question: is the spread of the headline metric across seeds smaller
with the lens (statistic `seed_spread`, compare `variant.lens`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import ValidationError
from scipy import stats as sps

from bench import stats
from bench.metrics import SCALES, derived, scale_error
from bench.report.analysis import DATASET, LENS, SEED, has_finite, has_lens_pairs, metric_name, note
from bench.report.fmt import N_BOOT, fmt, fmt_p, interval, p_is, show_value
from bench.schema import QuestionCfg
from bench.stats.common import _canon
from bench.stats.seed import setting_columns

ALPHA, POWER = 0.05, 0.8
# a study without a question block is asked the lens question with these co-primary metrics (toys: distance and
# the mode metrics; images: FID, KID, precision and recall; encoder-decoders: L1 and FID)
CO_PRIMARY = {"energy_distance": ("modes_covered", "hq_fraction", "mode_kl"),
              "fid": ("kid_mean", "precision", "recall"), "l1": ("fid",)}
STATED_RATIO = 0.5  # the spread ratio the power line also reports when the study states no effect
POWER_TEXT = (f"Power lines: the seeds per setting the primary test needs for {POWER:.0%} power at alpha {ALPHA}; for "
              "a seed-spread ratio by simulation (normal seed noise, bench.stats.seed_spread_power), for a mean "
              "difference by the normal approximation of the paired test, n = ((z_0.975 + z_0.8) / d_z)^2 divided "
              "by 0.955 (the Wilcoxon test's asymptotic efficiency relative to the t-test).")


def resolve(trials: pd.DataFrame, raw: dict | None, metric: str | None) -> tuple[QuestionCfg | None, str | None]:
    """(the question to answer, a note when the study's block could not be used)."""
    if raw:
        try:
            return QuestionCfg.model_validate(raw), None
        except ValidationError as e:
            err = e.errors()[0]
            return None, f"The study's question block is not valid ({'.'.join(map(str, err['loc']))}: {err['msg']})."
    if metric and has_lens_pairs(trials):
        co = [m for m in CO_PRIMARY.get(metric, ()) if has_finite(trials, f"final.{m}")]
        return QuestionCfg(compare="variant.lens", metric=metric, statistic="seed_spread", co_primary=co), None
    return None, None


def _final(metric: str) -> str:
    """How a sentence names a trial's value of `metric`: 'final <label>' for a recorded metric; a derived
    convergence metric (auc:<m>, steps_to_within:<m>; bench.metrics.derived), a value of the whole curve, by its
    label, which names it."""
    return metric_name(metric) if derived(metric) is not None else f"final {metric_name(metric)}"


def _sides(trials: pd.DataFrame, q: QuestionCfg):
    """(control spec, treated spec, treatment columns, control word, treated word) for stats' treatment
    specs, or a string saying why the question cannot be asked of this table."""
    if q.compare in trials:
        col, cols = q.compare, [q.compare]
    else:
        cols = [c for c in trials.columns if c.startswith(q.compare + ".")]
        if not cols:
            return f"no column {q.compare} in the trials table"
        col = LENS if LENS in cols else cols[0]
    if q.levels:
        a, b = q.levels
        return (col, a), (col, b), [col], f"with {q.compare} = {show_value(a)}", f"with {q.compare} = {show_value(b)}"
    if trials[col].isna().any() and trials[col].notna().any():
        word = "the lens" if q.compare == "variant.lens" else q.compare
        return (col, None), col, cols, f"without {word}", f"with {word}"
    vals = sorted(trials[col].dropna().unique())
    if len(vals) != 2:
        return f"{q.compare} takes {len(vals)} values: name the two compared in question.levels"
    return (col, vals[0]), (col, vals[1]), [col], f"with {q.compare} = {show_value(vals[0])}", \
        f"with {q.compare} = {show_value(vals[1])}"


def _need(n, reached) -> str:
    return f"about {n} seeds per setting" if n else f"more than 200 seeds per setting (power {fmt(reached)} at 200)"


def answer(trials: pd.DataFrame, q: QuestionCfg) -> tuple[list[str], list[tuple]]:
    """(headline sentences, table blocks) answering `q`; the first sentence is the answer."""
    head = f'The study\'s question ("{q.text.strip()}")' if q.text.strip() else "The study's question"
    col = f"final.{q.metric}"
    if col not in trials or not np.isfinite(trials[col].astype(float)).any():
        what = f"a value of {q.metric} (from its curve)" if derived(q.metric) is not None else f"a final {q.metric}"
        return [f"{head} cannot be answered: no trial has {what}."], []
    sides = _sides(trials, q)
    if isinstance(sides, str):
        return [f"{head} cannot be answered: {sides}."], []
    ctrl, trt, tcols, wa, wb = sides
    name = _final(q.metric)
    if q.statistic == "seed_spread":
        return _seed_spread(trials, q, head, ctrl, trt, tcols, wa, wb, name)
    if q.statistic == "axis_spread":
        return _axis_spread(trials, q, head, ctrl, trt, wa, wb, name)
    return _mean_difference(trials, q, head, ctrl, trt, tcols, wa, wb, name)


def _verdict(p, ratio, smaller: str, larger: str) -> str:
    if not np.isfinite(p):
        return "not tested"
    if p > ALPHA:
        return f"no significant difference at alpha {ALPHA}"
    return smaller if ratio < 1 else larger


def _direction(p, effect, lower: bool) -> str:
    """'lower' / 'higher' (significant at ALPHA, by the sign of `effect`: a ratio's log or a difference),
    'ns' (tested, not significant) or 'untested'."""
    if p is None or not np.isfinite(p) or not np.isfinite(effect):
        return "untested"
    if p > ALPHA:
        return "ns"
    return "lower" if effect < 0 else "higher"


def decide(directions: dict[str, str], words: dict[str, str]) -> str:
    """The verdict over the co-primary metrics (an intersection-union test: each at alpha, no correction needed):
    `words[d]` when every metric went direction d, else a sentence naming which agree and which do not.
    `directions`: {metric label: 'lower' | 'higher' | 'ns' | 'untested'}; `words`: {'lower': ..., 'higher': ...}."""
    ds = set(directions.values())
    names = list(directions)
    if len(names) == 1:
        d = directions[names[0]]
        return words[d] if d in words else ("not tested" if d == "untested" else f"no significant difference at "
                                                                                  f"alpha {ALPHA}")
    if len(ds) == 1 and ds <= set(words):
        return f"{words[ds.pop()]} on every co-primary metric ({', '.join(names)})"
    if ds <= {"ns", "untested"}:
        return (f"no significant difference at alpha {ALPHA} on any co-primary metric" +
                (" (" + ", ".join(n for n, d in directions.items() if d == "untested") + " not tested)"
                 if "untested" in ds else ""))
    groups = [(words.get("lower"), "lower"), (words.get("higher"), "higher"),
              (f"no significant difference", "ns"), ("not tested", "untested")]
    parts = [f"{w}: {', '.join(n for n, d in directions.items() if d == key)}" for w, key in groups
             if any(d == key for d in directions.values())]
    return "no verdict, the co-primary metrics do not agree (" + "; ".join(parts) + ")"


def _scaled(word: str, scale: str) -> str:
    return {"absolute": f"{word} (std)", "relative": f"relative {word} (std / mean)",
            "log": f"log-scale {word} (std of log values)"}[scale]


def _seed_spread(trials, q, head, ctrl, trt, tcols, wa, wb, name):
    def compare(m, scale):
        if not has_finite(trials, f"final.{m}"):
            return None
        return stats.seed_spread_comparison(trials, m, treatment=trt, control=ctrl, treatment_columns=tcols,
                                            n_boot=N_BOOT, seed=SEED, scale=scale)

    scale = q.scale_of(q.metric)
    per = {m: compare(m, q.scale_of(m)) for m in q.metrics}
    cmp = per[q.metric]
    if cmp is None or cmp.empty:
        return [f"{head} cannot be answered: no treated trials."], []
    # the other scales beside the verdict, wherever the data allow them (a log scale needs every value > 0: shown
    # for energy distance when it holds, though a question may not declare it)
    beside = {s: compare(q.metric, s) for s in SCALES if s != scale and (s == "log" or scale_error(q.metric, s) is None)}
    beside = {s: t for s, t in beside.items() if t is not None and np.isfinite(t["ratio"].astype(float)).any()}
    smaller, larger = f"the spread is smaller {wb}", f"the spread is larger {wb}"
    lines = []
    for i, r in cmp.iterrows():
        arm = f" ({r['arm']})" if r["arm"] and len(cmp) > 1 else ""
        if not r["n_settings"]:
            lines.append(f"Seed sensitivity{arm}: the spread of the {name} across seeds {wb} vs {wa} cannot be "
                         f"compared: {note(r)}.")
            continue
        seeds = _seeds(r)
        text = (f"Seed sensitivity{arm}: {wb} the {_scaled('spread', scale)} of the {name} across seeds is "
                f"{_ratio(r)} that {wa} (Brown-Forsythe {p_is(r['p_value'])}, {seeds} seeds x {int(r['n_settings'])} "
                f"settings)")
        if note(r):
            text += f" [note: {note(r)}]"
        other = [f"{s} {_ratio(_arm_row(t, r['arm']))} ({p_is(_arm_row(t, r['arm'])['p_value'])})"
                 for s, t in beside.items() if t is not None and _arm_row(t, r["arm"]) is not None]
        if other:
            text += "; on the other scales: " + ", ".join(other)
        dirs = {}
        for m in q.deciding:
            rr = _arm_row(per[m], r["arm"]) if per[m] is not None else None
            label = f"{metric_name(m)} ({q.scale_of(m)})"
            dirs[label] = "untested" if rr is None else _direction(rr["p_value"], math.log(rr["ratio"])
                                                                    if rr["ratio"] > 0 else -math.inf, True)
            if m != q.metric:
                text += (f"; {label} {_ratio(rr)} ({p_is(rr['p_value'])})" if rr is not None else
                         f"; {label}: no value")
        for m in q.secondary:
            rr = _arm_row(per[m], r["arm"]) if per[m] is not None else None
            if rr is not None:
                text += f"; secondary {metric_name(m)} ({q.scale_of(m)}) {_ratio(rr)} ({p_is(rr['p_value'])})"
        lines.append(text + f": {decide(dirs, {'lower': smaller, 'higher': larger})}.")
    lines[0] = lines[0][:-1] + (f" ({head[0].lower() + head[1:]}; the primary test, alpha {ALPHA}, not Holm-adjusted "
                                f"with the tables; the verdict is on the {scale} scale" +
                                (", and holds only where every co-primary metric agrees" if q.co_primary else "") + ").")
    r = cmp.iloc[0]
    if r["n_settings"]:
        S = int(r["n_settings"])
        parts = []
        if np.isfinite(r["ratio"]) and r["ratio"] > 0 and abs(math.log(r["ratio"])) > 0.01:
            parts.append(f"the observed ratio {fmt(r['ratio'])} needs {_need(*stats.seed_spread_power(r['ratio'], S))}")
        stated = q.effect or STATED_RATIO
        parts.append(f"a ratio of {fmt(stated)} needs {_need(*stats.seed_spread_power(stated, S))}")
        lines.append(f"Power ({POWER:.0%} at alpha {ALPHA}, {S} settings, simulated): " + "; ".join(parts) +
                     f" (this study has {int(r['min_seeds'])}).")
    return lines, _seed_blocks(trials, q, per, beside, wa, wb)


def _seed_blocks(trials, q, per, beside, wa, wb) -> list[tuple]:
    """The seed-sensitivity tables: how the spreads are computed, each metric's comparison on its declared scale,
    the primary metric on the other scales, and every setting's spread across seeds."""
    blocks = [("h3", f"Seed sensitivity (final {', '.join(q.metrics)})"),
              ("p", "Spread across seeds per variant and setting, on three scales: absolute (std of the final value "
                    "over the seeds), relative (std / mean, the coefficient of variation) and log (std of the log "
                    "values, strictly positive metrics). A spread that falls only because the mean falls is smaller on "
                    "the absolute scale but not on the relative one: the verdict uses the question's declared scale "
                    f"(default: {', '.join(f'{m} {q.scale_of(m)}' for m in q.metrics)}), the others are shown beside "
                    "it. Intervals: the std's chi-square interval (bench.stats.std_interval), the CV's and the log "
                    "std's (bench.stats.spread_interval), all for normal seed noise on their scale; the IQR, range and "
                    f"worst seed have resampling intervals ({N_BOOT} resamples of the seeds): descriptive, not "
                    "confidence intervals, as no resample's range or worst can go beyond the observed one. The "
                    "comparison pools each side's deviations from every setting's own centre over the settings both "
                    "sides ran (absolute: each setting scaled by its own seed std, so settings weigh the same; relative: "
                    "each side's values divided by its own mean in the setting; log: log values); the ratio's interval "
                    "resamples seeds within settings; the test is Brown-Forsythe on the deviations from each setting's "
                    "median (bench.stats.seed_spread_comparison). With co-primary metrics a verdict ('smaller', "
                    "'larger') needs every one of them significant in that direction at alpha " + f"{ALPHA} "
                    "(an intersection-union test: no multiplicity correction needed, as all must reject). " + POWER_TEXT)]
    for m in q.metrics:
        if per[m] is not None:
            blocks.append(("table", *_comparison_table(per[m], wa, wb, m, q.scale_of(m))))
    for s, t in beside.items():
        if t is not None:
            blocks.append(("table", *_comparison_table(t, wa, wb, q.metric, s)))
    for m in q.metrics:
        if has_finite(trials, f"final.{m}"):
            blocks.append(("p", f"Per-setting spread across seeds of the final {m}:"))
            blocks.append(("table", *_spread_table(stats.seed_spread(trials, m, n_boot=N_BOOT, seed=SEED))))
    return blocks


def _arm_row(t: pd.DataFrame | None, arm: str):
    if t is None:
        return None
    rows = t[t["arm"] == arm]
    return rows.iloc[0] if len(rows) else None


def _ratio(r) -> str:
    if r is None:
        return "no value"
    if not np.isfinite(r["ratio"]):
        return f"no ratio ({note(r) or 'undefined'})"
    if not np.isfinite(r["ratio_lo"]):
        return f"{fmt(r['ratio'])}x (no interval)"
    hi = "no upper bound" if r["ratio_hi"] == np.inf else fmt(r["ratio_hi"])
    return f"{fmt(r['ratio'])}x (95 % CI {fmt(r['ratio_lo'])} to {hi})"


def _seeds(r) -> str:
    lo, hi = int(r["min_seeds"]), int(r["max_seeds"])
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _comparison_table(cmp, wa, wb, metric, scale):
    header = ["metric (scale)", "arm", "settings (dropped)", "seeds", f"spread {wa}", f"spread {wb}", "ratio [95 % CI]",
              "Brown-Forsythe p", "note"]
    rows = [[f"{metric} ({scale})", r["arm"], f"{int(r['n_settings'])} ({int(r['n_settings_dropped'])})",
             _seeds(r), fmt(r["std_a"]), fmt(r["std_b"]),
             interval(r["ratio"], r["ratio_lo"], r["ratio_hi"]), fmt_p(r["p_value"]), note(r)]
            for _, r in cmp.iterrows()]
    return header, rows


def _spread_table(t):
    keys = [c for c in t.columns[:list(t.columns).index("n_seeds")]]
    header = [("dataset" if c == DATASET else c) for c in keys] + ["seeds", "mean", "std [95 % CI]", "CV [95 % CI]",
                                                                    "log std [95 % CI]", "IQR [resampled]",
                                                                    "range [resampled]",
                                                                    "worst seed [resampled] (seed)", "note"]
    rows = [[show_value(r[c]) for c in keys] + [int(r["n_seeds"]), fmt(r["mean"])] +
            [interval(r[s], r[f"{s}_lo"], r[f"{s}_hi"]) for s in ("std", "cv", "log_std", "iqr", "range")] +
            [interval(r["worst"], r["worst_lo"], r["worst_hi"]) + f" ({show_value(r['worst_seed'])})", note(r)]
            for _, r in t.iterrows()]
    return header, rows


def _on_scale(trials: pd.DataFrame, m: str, scale: str, col: str, by: list[str]) -> pd.DataFrame:
    """The trials with final.<m> on `scale`: log values, or (relative) each side's values over its own mean in
    its group (a constant per side: the spread across the axis becomes a fraction of the side's level)."""
    c = f"final.{m}"
    t = trials.copy()
    v = pd.to_numeric(t[c], errors="coerce").astype(float)
    if scale == "log":
        t[c] = np.log(v.where(v > 0))
    elif scale == "relative":
        keys = [col, *by]
        t[c] = v / v.groupby([t[k].map(_canon) for k in keys]).transform("mean")
    return t


def _own_axis(trials: pd.DataFrame, q: QuestionCfg, col: str, a, b) -> tuple[pd.DataFrame, str, list[str]]:
    """(trials, the axis column, its source columns): q.axis itself; or, given one axis per level (control's
    first), a column holding each level's own axis value, named "<control axis> / <treated axis>"."""
    if isinstance(q.axis, str):
        return trials, q.axis, [q.axis]
    (ca, ta), name = q.axis, " / ".join(q.axis)
    if ca not in trials or ta not in trials:
        return trials, name, [ca, ta]
    own = trials[ca].where(trials[col] == a, trials[ta].where(trials[col] == b))
    return trials.assign(**{name: own}), name, [ca, ta]


def _axis_spread(trials, q, head, ctrl, trt, wa, wb, name):
    if not isinstance(trt, tuple):
        return [f"{head} cannot be answered: axis_spread compares two values of a column: give question.levels."], []
    col = ctrl[0]
    trials, axis, axis_cols = _own_axis(trials, q, col, ctrl[1], trt[1])
    missing = [a for a in axis_cols if a not in trials]
    if missing:
        return [f"{head} cannot be answered: no column {missing[0]} in the trials table."], []
    by = [c for c in setting_columns(trials, [col, axis, *axis_cols]) if not c.startswith(q.compare + ".")]
    # a = treated, b = control: spread_comparison's ratio a / b is then treated / control
    per = {}
    for m in q.metrics:
        if has_finite(trials, f"final.{m}"):
            cmp = stats.spread_comparison(_on_scale(trials, m, q.scale_of(m), col, by), m, axis, col, trt[1],
                                          ctrl[1], by=by, n_boot=N_BOOT, seed=SEED)
            # a group holding one level only (another structure in the study) has nothing to compare
            cmp = cmp[(cmp["n_points_a"] > 0) & (cmp["n_points_b"] > 0)].reset_index(drop=True)
            ps = cmp["p_value"].to_numpy(dtype=float)
            per[m] = (cmp, stats.holm(ps) if len(cmp) > 1 else ps)
    if q.metric not in per or per[q.metric][0].empty:
        return [f"{head} cannot be answered: no group has both levels."], []
    cmp, holm = per[q.metric]
    scale = q.scale_of(q.metric)
    less, more = f"less sensitive {wb}", f"more sensitive {wb}"
    lines = []
    for i, ((_, r), ph) in enumerate(zip(cmp.iterrows(), holm)):
        where = ", ".join(f"{c} = {show_value(r[c])}" for c in by)
        text = (f"Sensitivity to {axis}" + (f" ({where})" if where else "") + f": the {_scaled('spread', scale)} "
                f"across {axis} of the per-point mean {name} {wb} is {_ratio(r)} that {wa} (Brown-Forsythe on "
                f"{int(r['n_points_a'])} vs {int(r['n_points_b'])} point means, {p_is(r['p_value'])}" +
                (f", Holm over the {len(cmp)} settings {p_is(ph)}" if len(cmp) > 1 else "") + ")" +
                (f" [note: {note(r)}]" if note(r) else ""))
        dirs = {}
        for m in q.deciding:
            label = f"{metric_name(m)} ({q.scale_of(m)})"
            if m not in per or i >= len(per[m][0]):
                dirs[label] = "untested"
                continue
            rr, pp = per[m][0].iloc[i], per[m][1][i]
            dirs[label] = _direction(pp, math.log(rr["ratio"]) if rr["ratio"] > 0 else -math.inf, True)
            if m != q.metric:
                text += f"; {label} {_ratio(rr)} ({p_is(pp)})"
        for m in q.secondary:
            if m in per and i < len(per[m][0]):
                text += f"; secondary {metric_name(m)} ({q.scale_of(m)}) {_ratio(per[m][0].iloc[i])}"
        lines.append(text + f": {decide(dirs, {'lower': less, 'higher': more})}.")
    lines[0] = lines[0][:-1] + (f" ({head[0].lower() + head[1:]}; the primary test, alpha {ALPHA}; the verdict is on "
                                f"the {scale} scale" + (", and holds only where every co-primary metric agrees"
                                                        if q.co_primary else "") + ").")
    lines.append(f"Power: the test has one value per {axis} point ({int(cmp['n_points_a'].max())} a side); more "
                 "seeds narrow the interval but do not give it more observations, more axis points would.")
    return lines, []


def _mean_difference(trials, q, head, ctrl, trt, tcols, wa, wb, name):
    # never pool variants whose metric scales differ: one comparison per dataset and objective (and structure)
    by = [c for c in (DATASET, "variant.structure", "variant.objective")
          if c in trials and (c == DATASET or (c not in tcols and trials[c].map(_canon).nunique() > 1))]
    per = {}
    for m in q.metrics:
        if has_finite(trials, f"final.{m}"):
            per[m] = stats.paired_difference(trials, m, treatment=trt, control=ctrl, treatment_columns=tcols,
                                             by=by, n_boot=N_BOOT, seed=SEED).summary
    res = per.get(q.metric)
    if res is None or res.empty or not (res["n"] > 0).any():
        return [f"{head} cannot be answered: no pairs."], []
    key = lambda r: tuple(_canon(r[c]) for c in [*by, "arm"])
    index = {m: {key(r): r for _, r in t.iterrows()} for m, t in per.items()}
    lines = []
    for _, r in res.iterrows():
        where = ", ".join(show_value(r[c]) for c in by) + (f", {r['arm']}" if res["arm"].nunique() > 1 else "")
        text = (f"Mean difference ({where}): {wb} minus {wa}, the {name} changes by "
                f"{interval(r['mean_diff'], r['lo'], r['hi'])} (paired over {int(r['n'])} pairs, Wilcoxon "
                f"{p_is(r['p_value'])})")
        dirs = {}
        for m in q.deciding:
            rr = index.get(m, {}).get(key(r))
            hib = stats.is_higher_better(m)
            d = "untested" if rr is None else _direction(rr["p_value"], rr["mean_diff"] * (1 if hib else -1), False)
            dirs[metric_name(m)] = d  # 'higher' = better: the difference is oriented by the metric's direction
            if m != q.metric:
                text += (f"; {metric_name(m)} {interval(rr['mean_diff'], rr['lo'], rr['hi'])} ({p_is(rr['p_value'])})"
                         if rr is not None else f"; {metric_name(m)}: no value")
        lines.append(text + f": {decide(dirs, {'lower': f'worse {wb}', 'higher': f'better {wb}'})}.")
    lines[0] = lines[0][:-1] + (f" ({head[0].lower() + head[1:]}; the primary test, alpha {ALPHA}, not Holm-adjusted "
                                "with the tables; compared within each " + ", ".join(by) +
                                (", a verdict only where every co-primary metric agrees" if q.co_primary else "") + ").")
    r = res.iloc[0]
    d = (q.effect / r["sd_diff"]) if q.effect and r["sd_diff"] > 0 else r["d_z"]
    if np.isfinite(d) and d != 0:
        z = sps.norm.ppf(1 - ALPHA / 2) + sps.norm.ppf(POWER)
        n = math.ceil((z / abs(d)) ** 2 / 0.955)
        what = f"a difference of {fmt(q.effect)}" if q.effect else f"the observed d_z = {fmt(d)}"
        lines.append(f"Power ({POWER:.0%} at alpha {ALPHA}, normal approximation): {what} needs about {n} pairs "
                     f"(this study has {int(r['n'])}).")
    return lines, []


def k_spread(trials: pd.DataFrame, metric: str) -> list[str]:
    """The spread across the lens K, where K is swept within a schedule: the largest over the settings,
    against the median spread across seeds in the same lens trials (for scale)."""
    K = "variant.lens.K"
    if K not in trials or LENS not in trials or f"final.{metric}" not in trials:
        return []
    lens = trials[trials[LENS].notna()]
    out = []
    for sched, sub in lens.groupby(LENS):
        ks = sorted(sub[K].dropna().unique())
        if len(ks) < 2:
            continue
        by = [LENS, *[c for c in setting_columns(sub, [K]) if c != LENS and not c.startswith("variant.lens.")]]
        t = stats.axis_spread(sub, metric, K, by=by, n_boot=N_BOOT, seed=SEED)
        t = t[np.isfinite(t["std"].astype(float))]
        if t.empty:
            continue
        r = t.loc[t["std"].astype(float).idxmax()]
        where = ", ".join(f"{c} = {show_value(r[c])}" for c in by[1:])
        seed_std = stats.seed_spread(sub, metric, by=[*by, K], n_boot=200, seed=SEED)["std"].median()
        out.append(f"Across the lens K in {{{', '.join(show_value(k) for k in ks)}}} ({sched}), the spread (of the "
                   f"true per-K means, seed noise taken out) of the {_final(metric)} is at most "
                   f"{interval(r['std'], r['std_lo'], r['std_hi'], note(r))}" + (f" (at {where}" if where else " (")
                   + f"; {len(t)} setting(s), median {fmt(t['std'].median())}); for scale, the median std across "
                   f"seeds of these lens trials is {fmt(seed_std)}.")
    return out
