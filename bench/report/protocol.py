"""The report page of a two-stage random-search study (issue 23; Lucic et al. 2018, Kurach et al. 2019).

A study with `sweep.variants` samples N points of a prior once and trains every variant on each of them (stage 1,
one seed), then reruns each variant's best points over several seeds (stage 2). Its rows carry `stage`, `sample`
(the point's index, shared by every variant: the comparison is paired on the hyperparameters) and `knobs` (the
sampled values, JSON). Sampled values are never analysed as grid points here: a variant is one distribution of
outcomes over the space, read through
- the distribution of its final metric over the points, and the share of points within 10 % of the best value any
  variant reached (Wilson interval);
- the expected best of k points drawn at random (exact, `stats.budget_curve`) with its 95 % band;
- the question's comparison, paired on the point: per base (e.g. objective) and averaged over the bases, with a
  t interval over the points and a Wilcoxon test; co-primary metrics decide together (`question.decide`);
- fANOVA importance of the sampled knobs and partial dependence of the top ones;
- at the stage-2 points, the seed's share of the variance against the variance over the space.
A diverged or failed point is an outcome: it enters every statistic at the worst value (the metric's bound on its
bad side, else the worst finished value on the dataset) and is counted in the text. Never imports torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench import stats
from bench.metrics import INFO, bounds
from bench.report import plots, protocol_plots
from bench.report.analysis import DATASET, SEED, failure_value, metric_name
from bench.report.fmt import N_BOOT, fmt, fmt_p, interval, p_is, show_value
from bench.report.question import ALPHA, _direction, decide
from bench.stats.importance import importance, partial_dependence
from bench.stats.paired import _paired_stats

TOLERANCE = 0.1        # "reached good quality": within 10 % of the best value any variant reached
TABLE_BUDGETS = (1, 5, 10)  # budgets shown in the table besides k = N
TOP_KNOBS = 3          # partial-dependence panels for this many knobs per variant


def is_random(trials: pd.DataFrame) -> bool:
    """Rows of a two-stage random study (they carry `stage`)."""
    return "stage" in trials and pd.to_numeric(trials["stage"], errors="coerce").notna().any()


@dataclass
class Design:
    """What the study file says: each variant's arm ('a' control, 'b' treated, None outside the question), its base
    (the variant with the compared field left out), the planned trial counts, the prior of every sampled knob."""
    arm: dict[str, str | None]
    base: dict[str, str]
    wa: str = "control"
    wb: str = "treated"
    planned: tuple[int | None, int | None] = (None, None)
    num_samples: int | None = None
    priors: dict | None = None
    seeds: list[int] | None = None
    top: int | None = None
    n_variants: int | None = None
    importance: list[str] | None = None  # knob names (`knobs` keys) importance is taken over; None: every one


def _under(path: str, compare: str) -> bool:
    return path == compare or path.startswith(compare + ".") or compare.startswith(path + ".")


def _columns(trials: pd.DataFrame, path: str) -> list[str]:
    return [c for c in trials.columns if c == path or c.startswith(path + ".")]


def _arm(row: pd.Series, cols: list[str], q) -> str | None:
    if q.levels:
        v = row[cols[0]] if len(cols) == 1 else None
        return "a" if v == q.levels[0] else "b" if v == q.levels[1] else None
    return "a" if all(pd.isna(row[c]) for c in cols) else "b"


def design(trials: pd.DataFrame, study_yaml: Path | None, q) -> Design:
    """Arms, bases and planned counts from the rows and the raw study file (bench.schema's Sweep and
    bench.study.variant_points: pydantic only, no trial config is built, so no structure and no torch is imported).
    A variant's arm comes from its `question.compare` columns; its base is its values at the other paths the
    variants set (`sweep.variants`), sampled paths left out. Without a readable study file: from the labels."""
    import yaml

    from bench.schema import Sweep
    from bench.study import knob_name, variant_points

    variants = list(dict.fromkeys(trials["variant"]))
    try:
        raw = yaml.safe_load(Path(study_yaml).read_text(encoding="utf-8"))
        sw = Sweep.model_validate(raw["sweep"])
        vpoints = variant_points(sw)
    except Exception:  # noqa: BLE001 - a report is still built from the rows alone
        lens = q is not None and q.compare == "variant.lens"
        return Design({v: ("b" if "+lens" in v else "a") if lens else None for v in variants},
                      {v: plots.arm_of(v)[0] for v in variants}, "without the lens", "with the lens")
    compare = q.compare if q is not None else None
    cmp_cols = _columns(trials, compare) if compare else []
    paths = [p for p in dict.fromkeys(k for vp in vpoints for k in vp) if not (compare and _under(p, compare))]
    keep = [c for p in paths for c in _columns(trials, p) if not any(_under(c, a) for a in sw.axes)]
    arm, key = {}, {}
    for v in variants:
        g = trials[trials["variant"] == v]
        row = g.loc[pd.to_numeric(g["sample"], errors="coerce").idxmin()]
        arm[v] = _arm(row, cmp_cols, q) if cmp_cols else None
        key[v] = tuple(str(row[c]) for c in keep)
    names = {}
    for v in variants:  # a base is named after its control variant
        if arm[v] == "a" or key[v] not in names:
            names[key[v]] = v if arm[v] == "a" else plots.arm_of(v)[0]
    word = "the lens" if compare == "variant.lens" else compare
    wa, wb = (f"with {compare} = {show_value(q.levels[0])}", f"with {compare} = {show_value(q.levels[1])}") \
        if q is not None and q.levels else (f"without {word}", f"with {word}")
    r = sw.retrain
    seed1 = sw.seeds[0] if sw.seeds else raw.get("seed", 0)
    planned = (len(vpoints) * sw.num_samples, len(vpoints) * r.top * len(set(r.seeds) - {seed1}) if r else 0)
    imp = [knob_name(p, sw.axes[p]) for p in sw.importance] if sw.importance else None
    return Design(arm, {v: names[key[v]] for v in variants}, wa, wb, planned, sw.num_samples, dict(sw.axes),
                  list(r.seeds) if r else None, r.top if r else None, len(vpoints), imp)


# ------------------------------------------------------------------------------------------- outcomes
def outcomes(s1: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per stage-1 point: dataset, variant, sample, value (failures at `failure_value`, which is `fail`), failed. An ok trial
    without a value (the metric undefined for it) is left out: it is not a failure."""
    col = f"final.{metric}"
    rows = []
    for ds, sub in s1.groupby(DATASET, sort=True):
        fail = failure_value(sub, metric, ds)
        v = pd.to_numeric(sub[col], errors="coerce").astype(float) if col in sub else pd.Series(np.nan, sub.index)
        bad = ~np.isfinite(v)
        keep = ~(bad & (sub["status"] == "ok"))
        rows.append(pd.DataFrame({DATASET: ds, "variant": sub["variant"], "sample": sub["sample"].astype(int),
                                  "seed": sub["seed"], "value": np.where(bad, fail, v), "failed": bad,
                                  "fail": fail})[keep])
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=[DATASET, "variant", "sample", "seed", "value", "failed", "fail"])


def variant_table(out: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per dataset and variant: points, failed, median, quartiles, best, the tolerance success rate, budget curve."""
    hib = INFO[metric][0]
    rows = []
    for ds, d in out.groupby(DATASET, sort=False):
        vals = {v: np.where(g["failed"], np.nan, g["value"]) for v, g in d.groupby("variant", sort=False)}
        tol = stats.tolerance_success(vals, hib, TOLERANCE).set_index("variant")
        for v, g in d.groupby("variant", sort=False):
            x = g["value"].to_numpy(dtype=float)
            curve = stats.budget_curve(np.where(g["failed"], np.nan, x), hib, n_boot=N_BOOT, seed=SEED,
                                       failure_value=float(g["fail"].iloc[0]))
            lo, hi = bounds(metric, ds)  # the band within the metric's range (a one-sided band ends at the bound)
            curve[["lo", "hi"]] = curve[["lo", "hi"]].clip(lower=lo, upper=hi)
            t = tol.loc[v]
            rows.append({DATASET: ds, "variant": v, "n": len(x), "failed": int(g["failed"].sum()),
                         "median": np.median(x), "q1": np.quantile(x, 0.25), "q3": np.quantile(x, 0.75),
                         "best": x.max() if hib else x.min(), "rate": t["rate"], "rate_lo": t["lo"],
                         "rate_hi": t["hi"], "threshold": t["threshold"], "curve": curve})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------- the question
def pairs(out: pd.DataFrame, des: Design) -> pd.DataFrame:
    """Control and treated outcome at the same sampled point, per base and treated variant."""
    o = out.assign(base=out["variant"].map(des.base), arm=out["variant"].map(des.arm))
    a = o[o["arm"] == "a"].rename(columns={"value": "a", "failed": "a_failed", "variant": "variant_a"})
    b = o[o["arm"] == "b"].rename(columns={"value": "b", "failed": "b_failed", "variant": "variant_b"})
    p = a.drop(columns=["arm", "fail"]).merge(b.drop(columns=["arm", "fail"]), on=[DATASET, "base", "sample", "seed"])
    return p.assign(diff=p["b"] - p["a"])


def _stats_row(d: np.ndarray, hib: bool, **key) -> dict:
    r = _paired_stats(d, hib, 0, np.random.default_rng(SEED), stats.LEVEL)
    return {**key, "n": len(d), **{k: r[k] for k in ("mean_diff", "lo", "hi", "p_value", "d_z", "reason")}}


def paired_summary(p: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (dataset, base, treated variant) and, per dataset, averaged over the bases ('all'): the mean paired
    difference treated - control with its t interval over points and a Wilcoxon test. The average is taken per
    point first (a point's difference averaged over its bases), so the points are the independent units; Holm over
    the bases of a dataset (`p_holm`)."""
    hib = INFO[metric][0]
    rows = []
    for ds, d in p.groupby(DATASET, sort=True):
        per = [_stats_row(g["diff"].to_numpy(), hib, **{DATASET: ds, "base": base, "variant_b": vb,
                                                         "variant_a": g["variant_a"].iloc[0],
                                                         "failed_a": int(g["a_failed"].sum()),
                                                         "failed_b": int(g["b_failed"].sum())})
               for (base, vb), g in d.groupby(["base", "variant_b"], sort=False)]
        adj = stats.holm([r["p_value"] for r in per])
        rows += [{**r, "p_holm": h} for r, h in zip(per, adj)]
        if len(per) > 1:  # the points every base has (an unfinished study: not a mix of averages over fewer bases)
            g = d.groupby(["sample", "seed"])["diff"]
            m = g.mean()[g.count() == len(per)].to_numpy()
            rows.append({**_stats_row(m, hib, **{DATASET: ds, "base": "all", "variant_b": "all", "variant_a": "all",
                                                 "failed_a": int(d["a_failed"].sum()),
                                                 "failed_b": int(d["b_failed"].sum())}), "p_holm": np.nan})
    return pd.DataFrame(rows)


def answer(s1: pd.DataFrame, q, des: Design, metrics: list[str]) -> tuple[list[str], dict[str, pd.DataFrame]]:
    """The question's sentences: the average over the bases first (the answer), then one per base; each metric
    the question names decides together (intersection-union), the secondary ones are read beside."""
    summ = {m: paired_summary(pairs(outcomes(s1, m), des), m) for m in q.metrics if m in metrics}
    prim = summ.get(q.metric)
    head = f'The study\'s question ("{q.text.strip()}")' if q.text.strip() else "The study's question"
    if prim is None or prim.empty:
        return [f"{head} cannot be answered yet: no point has finished in both arms."], summ
    key = lambda r: (r[DATASET], r["base"], r["variant_b"])
    index = {m: {key(r): r for _, r in t.iterrows()} for m, t in summ.items()}
    lines = []
    order = pd.concat([prim[prim["base"] == "all"], prim[prim["base"] != "all"]])
    for _, r in order.iterrows():
        dirs, extra = {}, []
        for m in q.metrics:
            rr = index.get(m, {}).get(key(r))
            if m in q.deciding:
                hib = INFO[m][0]
                dirs[metric_name(m)] = "untested" if rr is None else _direction(
                    rr["p_value"] if r["base"] == "all" else rr["p_holm"], rr["mean_diff"] * (1 if hib else -1), False)
            if m != q.metric and rr is not None:
                extra.append(f"{metric_name(m)} {interval(rr['mean_diff'], rr['lo'], rr['hi'])}")
        nb = int(len(prim[(prim[DATASET] == r[DATASET]) & (prim["base"] != "all")]))
        where = f"averaged over the {nb} bases per point" if r["base"] == "all" else \
            f"{r['variant_b']} against {r['variant_a']}"
        failed = f"; failed points counted at the worst value: {r['failed_a']} {des.wa}, {r['failed_b']} {des.wb}" \
            if r["failed_a"] or r["failed_b"] else ""
        pv = p_is(r["p_value"]) if r["base"] == "all" else f"Holm-adjusted p = {fmt_p(r['p_holm'])}"
        lines.append(f"{where} ({r[DATASET]}): {des.wb} minus {des.wa}, final {metric_name(q.metric)} "
                     f"{interval(r['mean_diff'], r['lo'], r['hi'], r['reason'] or '')} over {int(r['n'])} paired "
                     f"points (Wilcoxon {pv})" + (f"; {'; '.join(extra)}" if extra else "") + failed +
                     f": {decide(dirs, {'lower': f'worse {des.wb}', 'higher': f'better {des.wb}'})}.")
    lines[0] = (f"{head}: over the sampled space, " + lines[0][0].lower() + lines[0][1:-1] +
                f" (the primary test, alpha {ALPHA}; differences paired on the sampled point, t interval over points; "
                + ("a verdict only where every co-primary metric agrees; " if q.co_primary else "")
                + "the lines below take each base alone, Holm-adjusted over the bases).")
    return lines, summ


# ------------------------------------------------------------------------------------------- knobs
def knob_frame(s1: pd.DataFrame) -> pd.DataFrame:
    """The `knobs` JSON as columns (one per sampled knob), aligned with s1's index."""
    parsed = [json.loads(k) if isinstance(k, str) else {} for k in s1["knobs"]] if "knobs" in s1 else []
    return pd.DataFrame(parsed, index=s1.index)


def importance_tables(s1: pd.DataFrame, metric: str, out: pd.DataFrame, only: list[str] | None = None) -> dict:
    """({(dataset, variant): importance DataFrame or the reason there is none}, {(dataset, variant): the points it
    was computed from}); over the knobs `only` names (the study's sweep.importance) or every sampled one."""
    hib = INFO[metric][0]
    knobs = knob_frame(s1)
    if only is not None:
        knobs = knobs[[c for c in knobs.columns if c in only]]
    res, points = {}, {}
    for (ds, v), g in s1.groupby([DATASET, "variant"], sort=False):
        o = out[(out[DATASET] == ds) & (out["variant"] == v)][["sample", "seed", "value"]]
        pts = knobs.loc[g.index].assign(sample=g["sample"].astype(int).to_numpy(), seed=g["seed"].to_numpy())
        pts = pts.merge(o, on=["sample", "seed"]).rename(columns={"value": metric})
        cols = [c for c in knobs.columns if c in pts and pts[c].notna().all()]
        try:
            res[(ds, v)] = importance(pts, cols, metric, hib, seed=SEED)
            points[(ds, v)] = pts
        except ValueError as e:
            res[(ds, v)] = str(e)
    return res, points


def importance_sentence(imp: dict) -> str | None:
    tops = [(v, t.iloc[0]) for (_ds, v), t in imp.items() if isinstance(t, pd.DataFrame) and not t.empty]
    if not tops:
        return None
    counts = pd.Series([r["knob"] for _, r in tops]).value_counts()
    parts = [f"{v}: {r['knob']} {fmt(r['importance'])} [{fmt(r['lo'])}, {fmt(r['hi'])}]" for v, r in tops]
    return (f"Which knobs matter (fANOVA share of the variance over the space, range over 5 forests): "
            f"{counts.index[0]} is the most important knob for {counts.iloc[0]} of {len(tops)} variants; "
            + "; ".join(parts) + ".")


# ------------------------------------------------------------------------------------------- stage 2
def stage2_table(s1: pd.DataFrame, s2: pd.DataFrame, metric: str, out: pd.DataFrame) -> pd.DataFrame:
    """Per retrained point: its seeds' values (the stage-1 trial is its first seed), mean with t interval, std; and
    per variant the seed share of the variance (`stats.seed_share`)."""
    col = f"final.{metric}"
    rows = []
    for (ds, v), g2 in s2.groupby([DATASET, "variant"], sort=False):
        o = out[(out[DATASET] == ds) & (out["variant"] == v)]
        fail = failure_value(pd.concat([s1[s1[DATASET] == ds], s2[s2[DATASET] == ds]]), metric, ds)
        cells = []
        for smp, g in g2.groupby("sample", sort=True):
            first = s1[(s1[DATASET] == ds) & (s1["variant"] == v) & (s1["sample"] == smp)]
            both = pd.concat([first, g])
            x = pd.to_numeric(both[col], errors="coerce").astype(float).to_numpy()
            bad = ~np.isfinite(x) & (both["status"] != "ok").to_numpy()
            x = np.where(bad, fail, x)[np.isfinite(np.where(bad, fail, x))]
            cells.append(x)
            lo, hi = stats.t_interval(x) if len(x) > 1 else (np.nan, np.nan)
            rows.append({DATASET: ds, "variant": v, "sample": int(smp), "seeds": len(x), "failed": int(bad.sum()),
                         "mean": x.mean() if len(x) else np.nan, "lo": lo, "hi": hi,
                         "std": x.std(ddof=1) if len(x) > 1 else np.nan, "knobs": first["knobs"].iloc[0]
                         if len(first) else None})
        share = stats.seed_share(o["value"].to_numpy(), cells)
        for r in rows:
            if r[DATASET] == ds and r["variant"] == v:
                r.update(share=share["share"], share_lo=share["lo"], share_hi=share["hi"],
                         var_space=share["var_space"], var_seed=share["var_seed"])
    return pd.DataFrame(rows)


def packing(trials: pd.DataFrame) -> str | None:
    if "pack_id" not in trials or trials["pack_id"].isna().all():
        return None
    sizes = trials.groupby(["stage", "pack_id"]).size()
    return "; ".join(f"stage {int(st)}: {len(s)} packs, {fmt(s.mean())} configurations per pack on average"
                     for st, s in sizes.groupby(level=0))


# ------------------------------------------------------------------------------------------- sentences
def progress(s1: pd.DataFrame, s2: pd.DataFrame, des: Design) -> str:
    n1, n2 = des.planned
    done = s1.groupby("variant").size()
    full = int((done >= des.num_samples).sum()) if des.num_samples else None
    text = f"Stage 1 (random points): {len(s1)}" + (f" of {n1}" if n1 else "") + " trials"
    if full is not None:
        text += f" ({full} of {des.n_variants or len(des.arm)} variants have all {des.num_samples} points)"
    text += f"; stage 2 (best points over seeds): {len(s2)}" + (f" of {n2}" if n2 else "") + " trials."
    if (n1 and len(s1) < n1) or (n2 and len(s2) < n2):
        text += (" The study is unfinished (`ganbench run` resumes it): every number below covers the finished "
                 "points only, and a variant missing points is compared on the points it has.")
    return text


def budget_sentence(vt: pd.DataFrame, metric: str, des: Design) -> list[str]:
    hib = INFO[metric][0]
    out = []
    for ds, d in vt.groupby(DATASET, sort=False):
        d = d[d["curve"].map(lambda c: c is not None and len(c) > 0)]
        if d.empty:
            continue
        n = int(d["n"].min())
        at = lambda c, k: c.iloc[min(k, len(c)) - 1]
        pick = lambda k: max if hib else min
        parts = []
        for k in sorted({1, n}):
            vals = {r["variant"]: at(r["curve"], k) for _, r in d.iterrows()}
            best = pick(k)(vals, key=lambda v: vals[v]["expected_best"])
            r = vals[best]
            parts.append(f"with {'a single random point' if k == 1 else f'{k} points'} the best expected final "
                         f"{metric_name(metric)} is {best}'s {interval(r['expected_best'], r['lo'], r['hi'])}")
        ahead = []
        curves = dict(zip(d["variant"], d["curve"]))
        for v, a in des.arm.items():
            if a != "b" or v not in curves:
                continue
            ctrl = next((c for c, x in des.arm.items() if x == "a" and des.base[c] == des.base[v]), None)
            if ctrl in curves:
                k = stats.overtaking_budget(curves[v], curves[ctrl], hib)
                ahead.append(f"{des.base[v]} from k = {k}" if k else f"{des.base[v]} never")
        text = f"Budget ({ds}; expected best of k points drawn at random, exact, with its 95 % band): " + \
            "; ".join(parts) + "."
        if ahead:
            text += (f" {des.wb.capitalize()} stays ahead of {des.wa} (point estimates; read the bands in the figure): "
                     + ", ".join(ahead) + ".")
        out.append(text)
    return out


def seed_sentence(t2: pd.DataFrame) -> str | None:
    if t2.empty or not np.isfinite(t2["share"]).any():
        return None
    per = t2.drop_duplicates([DATASET, "variant"])
    per = per[np.isfinite(per["share"])]
    parts = [f"{r['variant']} {interval(r['share'], r['share_lo'], r['share_hi'])}" for _, r in per.iterrows()]
    return ("Seed against hyperparameters (seed variance at the retrained best points / variance over the sampled "
            f"space, F interval; 1 = the space matters no more than the seed): median {fmt(per['share'].median())}; "
            + "; ".join(parts) + ".")


# ------------------------------------------------------------------------------------------- the page
METHOD_TEXT = (
    "How to read this page. Stage 1 trains every variant on the same N points drawn from the study's priors (one "
    "seed each, point 0 = the default configuration), so a variant is a distribution of outcomes over the space, "
    "never a grid of settings. A diverged or failed point is an outcome: it counts at the worst value (the "
    "metric's bound on its bad side, else the worst finished value on the dataset) in every statistic. The "
    "question is answered on differences paired on the sampled point (the same hyperparameters in both arms; "
    "knobs only one arm has, such as the lens K, are its own draws), with a Student t interval over points and a "
    "Wilcoxon signed-rank test; the average over the bases takes each point's mean difference over them, so the "
    "points stay the independent units. 'Good quality' is a final value within "
    f"{TOLERANCE:.0%} of the best any variant reached (Wilson interval; conditional on that best). Budget curves: "
    "the exact expected best of k points drawn without replacement (bench.stats.budget_curve); its 95 % band is a "
    "t interval at k = 1, the wider of a studentized and a percentile bootstrap up to k = N // 4, and one-sided "
    "beyond (only the bound on the good side: no band can say how much better the best of many points could have "
    "been; coverage simulated in tests/test_budget_coverage.py). Importance: fANOVA (optuna) over the sampled knobs, 5 forests. Stage 2 reruns each "
    "variant's best points over seeds (the stage-1 trial is the first seed).")


def _partial(imp: dict, points: dict, metric: str) -> tuple[dict, list[str]]:
    shares = pd.concat([t.assign(variant=v) for (_d, v), t in imp.items() if isinstance(t, pd.DataFrame)]) \
        if any(isinstance(t, pd.DataFrame) for t in imp.values()) else pd.DataFrame()
    if shares.empty:
        return {}, []
    knobs = list(shares.groupby("knob")["importance"].mean().sort_values(ascending=False).index[:TOP_KNOBS])
    out = {}
    for (_ds, v), t in imp.items():
        if not isinstance(t, pd.DataFrame):
            continue
        pts = points[(_ds, v)]
        cols = [c for c in t["knob"]]
        for k in knobs:
            if k in cols:
                out[(v, k)] = partial_dependence(pts, k, metric, INFO[metric][0], cols, seed=SEED)
    return out, knobs


def _tables(vt: pd.DataFrame, summ: dict, t2: pd.DataFrame, metric: str, des: Design) -> list[tuple]:
    n = int(vt["n"].max()) if not vt.empty else 0
    ks = [k for k in TABLE_BUDGETS if k < n] + [n]
    head = ["dataset", "variant", "points", "failed", f"median [quartiles] {metric}",
            f"within {TOLERANCE:.0%} of the best [95 % Wilson]"] + [f"E best of {k} [95 % band]" for k in ks]
    rows = []
    for _, r in vt.iterrows():
        c = r["curve"]
        cells = [interval(c.iloc[k - 1]["expected_best"], c.iloc[k - 1]["lo"], c.iloc[k - 1]["hi"])
                 if c is not None and k <= len(c) else "-" for k in ks]
        rows.append([r[DATASET], r["variant"], int(r["n"]), int(r["failed"]),
                     f"{fmt(r['median'])} [{fmt(r['q1'])}, {fmt(r['q3'])}]",
                     f"{fmt(r['rate'])} [{fmt(r['rate_lo'])}, {fmt(r['rate_hi'])}]", *cells])
    out = [("h3", "Per variant over the sampled space"), ("table", head, rows)]
    ps = [t.assign(metric=m) for m, t in summ.items() if not t.empty]
    if ps:
        t = pd.concat(ps)
        out += [("h3", f"Paired on the sampled point ({des.wb} minus {des.wa})"),
                ("table", ["dataset", "metric", "base", "pairs", "mean diff [95 % t]", "Wilcoxon p", "Holm p",
                           f"failed {des.wa} / {des.wb}"],
                 [[r[DATASET], r["metric"], r["variant_b"], int(r["n"]),
                   interval(r["mean_diff"], r["lo"], r["hi"], r["reason"] or ""), fmt_p(r["p_value"]),
                   fmt_p(r["p_holm"]), f"{r['failed_a']} / {r['failed_b']}"] for _, r in t.iterrows()])]
    if not t2.empty:
        out += [("h3", "Stage 2: the best points over seeds"),
                ("table", ["dataset", "variant", "point", "knobs", "seeds", "failed", f"mean {metric} [95 % t]", "std",
                           "seed share [95 % F]"],
                 [[r[DATASET], r["variant"], r["sample"], _knobs(r["knobs"]), r["seeds"], r["failed"],
                   interval(r["mean"], r["lo"], r["hi"]), fmt(r["std"]),
                   interval(r["share"], r["share_lo"], r["share_hi"])] for _, r in t2.iterrows()])]
    return out


def _knobs(text) -> str:
    if not isinstance(text, str):
        return ""
    return ", ".join(f"{k.split('.')[-1] if '/' not in k else k}={show_value(v) if not isinstance(v, float) else fmt(v)}"
                     for k, v in json.loads(text).items())


def page(trials: pd.DataFrame, curves: pd.DataFrame, samples: pd.DataFrame, q, study_yaml: Path | None,
         metrics: list[str], metric: str | None) -> list[tuple]:
    """The blocks of a random-search study's report between its status line and its study file."""
    st = pd.to_numeric(trials["stage"], errors="coerce")
    s1, s2 = trials[st == 1], trials[st == 2]
    des = design(trials, study_yaml, q)
    metric = q.metric if q is not None else metric
    if metric is None or s1.empty:
        return [("h2", "Headline findings"), ("p", "No stage-1 point has a metric yet.")]
    variants = list(dict.fromkeys(trials["variant"]))
    out = outcomes(s1, metric)
    vt = variant_table(out, metric)
    lines = [progress(s1, s2, des)]
    summ = {}
    if q is not None:
        qlines, summ = answer(s1, q, des, metrics)
        lines += qlines
    lines += budget_sentence(vt, metric, des)
    imp, imp_points = importance_tables(s1, metric, out, des.importance)
    lines += [s for s in [importance_sentence(imp)] if s]
    t2 = stage2_table(s1, s2, metric, out) if not s2.empty else pd.DataFrame()
    lines += [s for s in [seed_sentence(t2)] if s]
    pk = packing(trials)
    if pk:
        lines.append(f"Packing achieved: {pk}.")
    blocks = [("h2", "Headline findings"), ("ul", lines), ("p", METHOD_TEXT), ("h2", "Statistics")]
    blocks += _tables(vt, summ, t2, metric, des)
    tabs = [(ds, v, t) for (ds, v), t in imp.items() if isinstance(t, pd.DataFrame)]
    if tabs:
        blocks += [("h3", "Importance of the sampled knobs (fANOVA)"),
                   ("table", ["dataset", "variant", "knob", "share of variance", "min..max over 5 forests", "points",
                              "failed"],
                    [[ds, v, r["knob"], fmt(r["importance"]), f"{fmt(r['lo'])}..{fmt(r['hi'])}", int(r["n_points"]),
                      int(r["n_failed"])] for ds, v, t in tabs for _, r in t.iterrows()])]
    missing = {v: t for (_d, v), t in imp.items() if isinstance(t, str)}
    if missing:
        blocks.append(("p", "No importance for " + "; ".join(f"{v} ({t})" for v, t in missing.items()) + "."))
    shown = [m for m in (q.metrics if q is not None else [metric]) if m in metrics]
    return blocks + _figures(curves, samples, s1, s2, out, vt, summ, (imp, imp_points), t2, metric, des, variants,
                             shown)


def _figures(curves, samples, s1, s2, out, vt, summ, importances, t2, metric, des, variants, shown) -> list[tuple]:
    P = protocol_plots
    imp, imp_points = importances
    b = [("h2", "Figures")]
    img = P.png(P.distribution_figure, out, metric, variants)
    if img:
        b.append(("img", f"space_{metric}", img, f"final {metric} of every sampled point per variant"))
    curves_by = {(r[DATASET], r["variant"]): r["curve"] for _, r in vt.iterrows() if r["curve"] is not None}
    fig = plots.budget_curves_figure(curves_by, metric, variants) if curves_by else None
    if fig is not None:
        plots._title(fig, f"expected best final {metric} with a budget of k sampled points drawn at random (exact; "
                          "95 % band up to k = N // 4, see the text; failures at the worst value)", fig.get_figwidth())
    img = P.png(lambda: fig)
    if img:
        b.append(("img", f"budget_{metric}", img, f"expected best final {metric} of k sampled points drawn at random "
                                                  "(exact), band: 95 % (two-sided up to k = N // 4); failures at the "
                                                  "worst value"))
    if metric in summ and not summ[metric].empty:
        img = P.png(P.paired_figure, pairs(out, des), summ[metric], metric, des.wb, des.wa)
        if img:
            b.append(("img", f"paired_{metric}", img, f"final {metric}, {des.wb} minus {des.wa}, per sampled point"))
    img = P.png(P.importance_figure, imp, variants)
    if img:
        b.append(("img", "importance", img, "fANOVA importance of each sampled knob per variant"))
    pdep, knobs = _partial(imp, imp_points, metric)
    from bench.study import knob_name

    logs = {knob_name(k, pr) for k, pr in (des.priors or {}).items() if getattr(pr, "dist", None) == "loguniform"}
    img = P.png(P.partial_dependence_figure, pdep, metric, variants, knobs, logs)
    if img:
        b.append(("img", "partial_dependence", img, f"partial dependence of the final {metric} on the top knobs"))
    img = P.png(P.seed_share_figure, t2, variants)
    if img:
        b.append(("img", "seed_share", img, "seed variance at the best points against the variance over the space"))
    default = s1[s1["sample"].astype(int) == 0]
    for m in shown:
        img = plots.learning_curves(default, curves, m, variants)
        if img:
            b.append(("img", f"default_curve_{m}", img, f"{m} vs step at the default point (sample 0, one seed): "
                                                        "has the training length let it flatten?"))
    if not s2.empty:
        top = t2.sort_values("mean", ascending=not INFO[metric][0]).drop_duplicates([DATASET, "variant"])
        keep = set(zip(top["variant"], top["sample"]))
        best = pd.concat([s1, s2])
        best = best[[(v, int(s)) in keep for v, s in zip(best["variant"], best["sample"])]]
        img = plots.learning_curves(best, curves, metric, variants)
        if img:
            b.append(("img", f"best_curve_{metric}", img, f"{metric} vs step at each variant's best retrained point: "
                                                          "mean over seeds, band min..max"))
        img = plots.scatter(best[best["seed"] == best.groupby("variant")["seed"].transform("min")], samples, variants)
        if img:
            b.append(("img", "samples", img, "last samples at each variant's best point (lowest seed)"))
    return b


