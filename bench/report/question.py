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
from bench.report.analysis import DATASET, LENS, SEED, has_lens_pairs, metric_name, note
from bench.report.fmt import N_BOOT, fmt, fmt_p, interval, p_is, show_value
from bench.schema import QuestionCfg
from bench.stats.seed import setting_columns

ALPHA, POWER = 0.05, 0.8
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
        return QuestionCfg(compare="variant.lens", metric=metric, statistic="seed_spread"), None
    return None, None


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
        return [f"{head} cannot be answered: no trial has a final {q.metric}."], []
    sides = _sides(trials, q)
    if isinstance(sides, str):
        return [f"{head} cannot be answered: {sides}."], []
    ctrl, trt, tcols, wa, wb = sides
    name = metric_name(q.metric)
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


def _seed_spread(trials, q, head, ctrl, trt, tcols, wa, wb, name):
    cmp = stats.seed_spread_comparison(trials, q.metric, treatment=trt, control=ctrl, treatment_columns=tcols,
                                       n_boot=N_BOOT, seed=SEED)
    if cmp.empty:
        return [f"{head} cannot be answered: no treated trials."], []
    lines = []
    for i, r in cmp.iterrows():
        arm = f" ({r['arm']})" if r["arm"] and len(cmp) > 1 else ""
        if not r["n_settings"]:
            lines.append(f"Seed sensitivity{arm}: the spread of the final {name} across seeds {wb} vs {wa} cannot be "
                         f"compared: {note(r)}.")
            continue
        seeds = _seeds(r)
        verdict = _verdict(r["p_value"], r["ratio"], f"the spread is smaller {wb}", f"the spread is larger {wb}")
        text = (f"Seed sensitivity{arm}: {wb} the spread of the final {name} across seeds is "
                f"{fmt(r['ratio'])}x" + (f" (95 % CI {fmt(r['ratio_lo'])}-{fmt(r['ratio_hi'])})"
                                         if np.isfinite(r["ratio_lo"]) else " (no interval)") +
                f" that {wa} (Brown-Forsythe {p_is(r['p_value'])}, {seeds} seeds x {int(r['n_settings'])} "
                f"settings): {verdict}")
        if note(r):
            text += f"; note: {note(r)}"
        lines.append(text + ".")
    lines[0] = lines[0][:-1] + f" ({head[0].lower() + head[1:]}; the primary test, alpha {ALPHA}, not Holm-adjusted with the tables)."
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
    spreads = stats.seed_spread(trials, q.metric, n_boot=N_BOOT, seed=SEED)
    blocks = [("h3", f"Seed sensitivity (final {q.metric})"),
              ("p", "Spread across seeds per variant and setting: std, IQR and range of the final value over the seeds, "
                    f"and the worst seed ({'higher' if stats.is_higher_better(q.metric) else 'lower'} is better). "
                    "The std has a 95 % confidence interval (chi-square, normal seed noise: bench.stats.std_interval; "
                    "a bootstrap of a std over few seeds is far too narrow). The IQR, range and worst seed have "
                    f"resampling intervals ({N_BOOT} resamples of the seeds): descriptive, not confidence intervals, "
                    "as no resample's range or worst can go beyond the observed one; they say how much the statistic "
                    "rests on one seed. The comparison pools each side's deviations from every "
                    "setting's own centre over the settings both sides ran (each setting scaled by its own seed std, "
                    "so settings weigh the same); the ratio's interval resamples seeds within settings; the test is "
                    "Brown-Forsythe on the deviations from each setting's median (bench.stats.seed_spread_comparison). "
                    + POWER_TEXT),
              ("table", *_comparison_table(cmp, wa, wb)),
              ("table", *_spread_table(spreads))]
    return lines, blocks


def _seeds(r) -> str:
    lo, hi = int(r["min_seeds"]), int(r["max_seeds"])
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _comparison_table(cmp, wa, wb):
    header = ["arm", "settings (dropped)", "seeds", f"spread {wa}", f"spread {wb}", "ratio [95 % CI]",
              "Brown-Forsythe p", "note"]
    rows = [[r["arm"], f"{int(r['n_settings'])} ({int(r['n_settings_dropped'])})",
             _seeds(r), fmt(r["std_a"]), fmt(r["std_b"]),
             interval(r["ratio"], r["ratio_lo"], r["ratio_hi"]), fmt_p(r["p_value"]), note(r)]
            for _, r in cmp.iterrows()]
    return header, rows


def _spread_table(t):
    keys = [c for c in t.columns[:list(t.columns).index("n_seeds")]]
    header = [("dataset" if c == DATASET else c) for c in keys] + ["seeds", "median", "std [95 % CI]",
                                                                    "IQR [resampled]", "range [resampled]",
                                                                    "worst seed [resampled] (seed)", "note"]
    rows = [[show_value(r[c]) for c in keys] + [int(r["n_seeds"]), fmt(r["median"])] +
            [interval(r[s], r[f"{s}_lo"], r[f"{s}_hi"]) for s in ("std", "iqr", "range")] +
            [interval(r["worst"], r["worst_lo"], r["worst_hi"]) + f" ({show_value(r['worst_seed'])})", note(r)]
            for _, r in t.iterrows()]
    return header, rows


def _axis_spread(trials, q, head, ctrl, trt, wa, wb, name):
    if not isinstance(trt, tuple):
        return [f"{head} cannot be answered: axis_spread compares two values of a column: give question.levels."], []
    col = ctrl[0]
    if q.axis not in trials:
        return [f"{head} cannot be answered: no column {q.axis} in the trials table."], []
    by = [c for c in setting_columns(trials, [col, q.axis]) if not c.startswith(q.compare + ".")]
    # a = treated, b = control: spread_comparison's ratio a / b is then treated / control
    cmp = stats.spread_comparison(trials, q.metric, q.axis, col, trt[1], ctrl[1], by=by, n_boot=N_BOOT, seed=SEED)
    holm = stats.holm(cmp["p_value"].to_numpy(dtype=float)) if len(cmp) > 1 else cmp["p_value"].to_numpy(dtype=float)
    lines = []
    for (_, r), ph in zip(cmp.iterrows(), holm):
        where = ", ".join(f"{c} = {show_value(r[c])}" for c in by)
        verdict = _verdict(ph, r["ratio"], f"less sensitive {wb}", f"more sensitive {wb}")
        lines.append(f"Sensitivity to {q.axis}" + (f" ({where})" if where else "") + f": the spread across {q.axis} of "
                     f"the per-point mean final {name} {wb} is {fmt(r['ratio'])}x" +
                     (f" (95 % CI {fmt(r['ratio_lo'])}-{fmt(r['ratio_hi'])})" if np.isfinite(r["ratio_lo"]) else
                      " (no interval)") + f" that {wa} (Brown-Forsythe on {int(r['n_points_a'])} vs "
                     f"{int(r['n_points_b'])} point means, {p_is(r['p_value'])}" +
                     (f", Holm over the {len(cmp)} settings {p_is(ph)}" if len(cmp) > 1 else "") + f"): {verdict}" +
                     (f"; note: {r['reason']}" if r["reason"] else "") + ".")
    if not lines:
        return [f"{head} cannot be answered: no group has both levels."], []
    lines[0] = lines[0][:-1] + f" ({head[0].lower() + head[1:]}; the primary test, alpha {ALPHA})."
    lines.append(f"Power: the test has one value per {q.axis} point ({int(cmp['n_points_a'].max())} a side); more "
                 "seeds narrow the interval but do not give it more observations, more axis points would.")
    return lines, []


def _mean_difference(trials, q, head, ctrl, trt, tcols, wa, wb, name):
    res = stats.paired_difference(trials, q.metric, treatment=trt, control=ctrl, treatment_columns=tcols,
                                  by=(DATASET,), n_boot=N_BOOT, seed=SEED).summary
    lines = []
    for _, r in res.iterrows():
        arm = f" ({r['arm']})" if len(res) > 1 else ""
        verdict = "no significant difference" if not r["p_value"] <= ALPHA else \
            ("better" if (r["mean_diff"] > 0) == bool(r["higher_is_better"]) else "worse") + f" {wb}"
        lines.append(f"Mean difference{arm} on {r[DATASET]}: {wb} minus {wa}, the final {name} changes by "
                     f"{interval(r['mean_diff'], r['lo'], r['hi'])} (paired over {int(r['n'])} pairs, Wilcoxon "
                     f"{p_is(r['p_value'])}): {verdict}.")
    if not lines:
        return [f"{head} cannot be answered: no pairs."], []
    lines[0] = lines[0][:-1] + f" ({head[0].lower() + head[1:]}; the primary test, alpha {ALPHA}, not Holm-adjusted with the tables)."
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
                   f"true per-K means, seed noise taken out) of the final {metric_name(metric)} is at most "
                   f"{interval(r['std'], r['std_lo'], r['std_hi'], note(r))}" + (f" (at {where}" if where else " (")
                   + f"; {len(t)} setting(s), median {fmt(t['std'].median())}); for scale, the median std across "
                   f"seeds of these lens trials is {fmt(seed_std)}.")
    return out
