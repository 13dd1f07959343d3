"""The replication ledger: every quantitative claim of the seed papers against ganbench's committed rows.

The claims live in one data file (results/claims.yaml: claim text, the paper's number and setting, which
published study and statistic answers it); `ganbench replicate` computes each statistic from the study's Parquet
rows and writes results/REPLICATION.md. The verdict is computed from the interval, never typed:

- reproduces: the 95 % interval lies wholly on the side the claim predicts (for `within`: inside the margin);
- same direction, not significant: the estimate is on the predicted side but the interval reaches the null
  (for `within`: the estimate is inside the margin, the interval is not);
- contradicts: the estimate is on the other side of the null (for `within`: outside the margin); the interval
  column says whether it excludes the null;
- not testable at this scale: the claim has no study here, only a plan (a study file and its GPU-hour estimate).

A claim's diagnostics are tests of the explanation offered for a disagreement, computed the same way: the ledger
prints their numbers and says whether the data support the explanation. Reads Parquet only (no model code)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy import stats as sps

from bench import results, stats
from bench.fsutil import atomic_write
from bench.report.fmt import fmt, p_is, show_value
from bench.study import StudyError, _yaml_error

CLAIMS = Path("results/claims.yaml")
LEDGER = "REPLICATION.md"
SCORES = "scores.parquet"
VERDICTS = ("reproduces", "same direction, not significant", "contradicts", "not testable at this scale")
STATISTICS = ("paired_difference", "mean_difference", "spread_ratio", "rate", "rate_difference")
# the optional test fields each statistic reads (treated, where, expect, margin, at_step: all of them)
USES = {"paired_difference": {"metric", "control"}, "mean_difference": {"metric", "control", "control_study"},
        "spread_ratio": {"metric", "control", "axis"}, "rate": {"against", "success"},
        "rate_difference": {"control", "success"}}
TOY_DATA = {"ring8", "grid25", "dirac", "normal2d"}
SUPPORT = {"reproduces": "supported", "same direction, not significant": "not significant",
           "contradicts": "not supported", "not testable at this scale": "not decided (no informative interval)"}


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SuccessCfg(_Cfg):
    """A claim's own rule for "trained" where the report's (recall >= 0.1) does not fit the claim: a run trained
    when its final `metric` (lower is better) is at most `of_start` times its value at the first evaluation
    (step 0, the untrained generator); a diverged run did not train."""
    metric: str
    of_start: float = Field(gt=0, lt=1)

    @model_validator(mode="after")
    def _lower_better(self):
        from bench.metrics import INFO

        if self.metric not in INFO or INFO[self.metric][0]:
            raise ValueError(f"success.metric: {self.metric!r} is not a recorded lower-is-better metric")
        return self


class ClaimTest(_Cfg):
    """One statistic on one study's rows. Filters are {column: value}; null matches a missing value (e.g. no
    lens), a list matches any of its values."""
    statistic: Literal["paired_difference", "mean_difference", "spread_ratio", "rate", "rate_difference"]
    metric: Optional[str] = None       # a metric (final.<m>), a derived one (auc:fid), or nrds (nrds.parquet)
    where: dict[str, Any] = {}         # the study's rows the test reads
    treated: dict[str, Any] = {}
    control: dict[str, Any] = {}
    control_study: Optional[str] = None  # mean_difference: the control rows come from this study
    axis: Optional[str] = None         # spread_ratio: the knob whose spread is compared
    expect: Literal["lower", "higher", "within"]
    margin: Optional[float] = None     # within: |difference| < margin; ratio: 1/(1+m) < ratio < 1+m
    against: Optional[float] = None    # rate: the rate the claim is compared with (e.g. 0.5 for "most")
    success: Optional[SuccessCfg] = None  # rates: the claim's rule for "trained" (default: the report's)
    at_step: Optional[int] = Field(None, ge=0)  # the metric at this evaluation step instead of the final one

    @model_validator(mode="after")
    def _fields(self):
        st, uses = self.statistic, USES[self.statistic]
        for f in ("metric", "control", "control_study", "axis", "against", "success"):
            if getattr(self, f) and f not in uses:
                raise ValueError(f"{f} is not used by {st} (it uses: {', '.join(sorted(uses))})")
        if "metric" in uses and not self.metric:
            raise ValueError(f"{st} needs a metric")
        if not self.treated:
            raise ValueError(f"{st} needs treated (the filter of the rows the claim is about)")
        if "control" in uses and not self.control:
            raise ValueError(f"{st} needs control (the filter of the rows it is compared with)")
        if "control" in uses and self.control == self.treated and not self.control_study:
            raise ValueError("treated and control are the same filter")
        if st == "rate" and self.against is None:
            raise ValueError("rate needs against (the rate the claim is compared with, e.g. 0.5 for 'most')")
        if st == "spread_ratio" and not self.axis:
            raise ValueError("spread_ratio needs an axis")
        if (self.expect == "within") != (self.margin is not None):
            raise ValueError("expect: within needs a margin, and a margin needs expect: within")
        return self


class PlanCfg(_Cfg):
    study: str        # the study file that would test the claim at the paper's scale
    gpu_hours: str    # its estimate, from the measured step cost
    basis: str        # how the estimate was made


class DiagnosticCfg(_Cfg):
    explains: str     # the explanation, as a sentence that holds when the test's expectation holds
    study: str
    test: ClaimTest


class ClaimCfg(_Cfg):
    id: str
    paper: str
    source: str           # where in the paper
    claim: str
    paper_value: str
    paper_setting: str
    departures: str = ""  # what ganbench runs differently (stand-in data, scale, reading of the paper)
    study: Optional[str] = None
    test: Optional[ClaimTest] = None
    plan: Optional[PlanCfg] = None
    diagnostics: list[DiagnosticCfg] = []
    queued: list[str] = []  # study files that will diagnose it, not yet run (each must exist)

    @model_validator(mode="after")
    def _testable(self):
        if (self.study is None) != (self.test is None):
            raise ValueError("study and test go together")
        if self.study is None and self.plan is None:
            raise ValueError("a claim needs a study and a test, or a plan (not testable at this scale)")
        return self


@dataclass
class Measure:
    estimate: float
    lo: float
    hi: float
    null: float
    kind: str          # what the estimate is, in words
    n: str             # what it was computed from
    p: float = math.nan
    floor: float = -math.inf  # the smallest value the statistic can take (0 for a ratio)


# ----------------------------------------------------------------------------- loading
def load_claims(path: Path) -> list[ClaimCfg]:
    """The claims file, validated; StudyError naming the claim and field on anything wrong."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise StudyError(path, "claims", "no such file") from None
    except yaml.YAMLError as e:
        raise _yaml_error(path, e) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("claims"), list) or not raw["claims"]:
        raise StudyError(path, "claims", "expected a mapping with a non-empty list 'claims'")
    out, seen = [], set()
    for i, entry in enumerate(raw["claims"]):
        name = entry.get("id", f"#{i}") if isinstance(entry, dict) else f"#{i}"
        try:
            c = ClaimCfg.model_validate(entry)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(map(str, err["loc"]))
            raise StudyError(f"{path}: claims[{i}] ({name})", loc or "claim", err["msg"]) from None
        if c.id in seen:
            raise StudyError(f"{path}: claims[{i}] ({c.id})", "id", f"duplicate claim id {c.id!r}")
        seen.add(c.id)
        out.append(c)
    return out


def table(d: Path) -> pd.DataFrame:
    """A published folder's rows: trials.parquet, or scores.parquet for a check that is not a ganbench study
    (results/nrds_toy: one row per seed and fake set, written by bench.nrds_toy; no report, so `ganbench report
    results/*` skips it)."""
    return results.current_columns(results.read_parquet(d / results.TRIALS)) if (d / results.TRIALS).exists() \
        else pd.read_parquet(d / SCORES)


def _rows(root: Path, study: str, metric: str | None, where: str) -> pd.DataFrame:
    """The study's rows with `final.<metric>` available: trials.parquet, nrds.parquet's scores for `nrds`,
    a derived convergence metric computed from curves.parquet."""
    d = root / study
    if not (d / results.TRIALS).exists() and not (d / SCORES).exists():
        raise StudyError(where, "study", f"{d} has no {results.TRIALS} (is the study published in results/?)")
    if metric == "nrds" and (d / results.NRDS).exists():  # else the rows carry final.nrds (bench.nrds_toy)
        from bench.report.edgan import nrds_trials

        t = nrds_trials(d)
        if t.empty:
            raise StudyError(where, "test.metric", f"nrds: {d} has no nrds.parquet scores")
        return t
    trials = table(d)
    if metric and ":" in metric:
        from bench.metrics import derived, derived_error
        from bench.stats.convergence import derived_columns

        if derived(metric) is None:
            raise StudyError(where, "test.metric", derived_error(metric) or f"{metric}: not a metric")
        return derived_columns(trials, results.read_curves(d), [metric])
    return trials


def _mask(df: pd.DataFrame, filt: dict, where: str, field: str) -> pd.Series:
    m = pd.Series(True, index=df.index)
    for col, val in filt.items():
        if col not in df:
            raise StudyError(where, field, f"no column {col!r} in the study's rows")
        if val is None:
            m &= df[col].isna()
        elif isinstance(val, list):
            m &= df[col].isin(val)
        else:
            m &= df[col] == val
    return m


def _select(df: pd.DataFrame, filt: dict, where: str, field: str) -> pd.DataFrame:
    sub = df[_mask(df, filt, where, field)]
    if sub.empty:
        raise StudyError(where, field, f"{filt} matches no row of the study")
    return sub


# ----------------------------------------------------------------------------- statistics
def _metric_col(df: pd.DataFrame, metric: str, where: str) -> str:
    from bench.report.analysis import has_finite

    col = f"final.{metric}"
    if not has_finite(df, col):
        raise StudyError(where, "test.metric", f"{metric}: no value in the study's rows")
    return col


def _means(a: pd.DataFrame, b: pd.DataFrame, col: str) -> str:
    va, vb = (pd.to_numeric(x[col], errors="coerce").astype(float) for x in (a, b))
    return f"means {fmt(va.mean())} treated vs {fmt(vb.mean())} control"


def _dropped(df: pd.DataFrame, col: str) -> str:
    """How many rows have no value of the metric (diverged or failed): said, never silently dropped."""
    bad = int((~np.isfinite(pd.to_numeric(df[col], errors="coerce").astype(float))).sum())
    return f", {bad} without a value (diverged/failed) not in the interval" if bad else ""


def _treatment_columns(rows: pd.DataFrame, cols: set[str]) -> list[str]:
    """The filter columns and, for a sub-model's field (variant.lens.schedule), every field of that sub-model:
    the columns a pair may differ in."""
    subs = {c.rsplit(".", 1)[0] + "." for c in cols if c.count(".") >= 2}
    return sorted(cols | {c for c in rows.columns if c.startswith(tuple(subs))})


def _paired(rows: pd.DataFrame, t: ClaimTest, where: str) -> Measure:
    col = _metric_col(rows, t.metric, where)
    treated, control = _select(rows, t.treated, where, "test.treated"), _select(rows, t.control, where, "test.control")
    control = control[~control.index.isin(treated.index)]  # a row both filters match is treated
    sub = pd.concat([treated, control]).reset_index(drop=True)
    arm = pd.Series([True] * len(treated) + [False] * len(control))  # sub's rows: the treated first
    tcols = _treatment_columns(rows, set(t.treated) | set(t.control))
    try:
        res = stats.paired_difference(sub, t.metric, treatment=lambda d: arm, control=lambda d: ~arm,
                                      treatment_columns=tcols, by=(), status=None,
                                      higher_is_better=True if t.metric == "nrds" else None)
    except ValueError as e:
        msg = str(e) if len(str(e)) <= 240 else str(e)[:240] + " ..."
        raise StudyError(where, "test", f"paired_difference: {msg}") from None
    s = res.summary
    if len(s) != 1 or int(s["n"].iloc[0]) < 2:
        raise StudyError(where, "test", f"paired_difference: {len(s)} arm(s), "
                                        f"{int(s['n'].sum()) if len(s) else 0} usable pair(s); need one arm, 2+ pairs")
    r = s.iloc[0]
    d = res.pairs.loc[res.pairs["used"], "diff"].to_numpy(dtype=float)
    p = sps.ttest_1samp(d, 0.0).pvalue if np.std(d) > 0 else math.nan  # the test of the t interval shown
    means = _means(treated, control, col)
    side = f"{int((d < 0).sum())} of {len(d)} pairs below 0, {int((d > 0).sum())} above; median {fmt(np.median(d))}"
    return Measure(r["mean_diff"], r["lo"], r["hi"], 0.0, f"mean paired difference in {t.metric}{_when(t)} "
                   "(treated - control; paired t)", f"{int(r['n'])} pairs ({side}), {means}{_dropped(sub, col)}", p)


def _when(t: ClaimTest) -> str:
    return "" if t.at_step is None else f" at step {t.at_step}"


def _mean_difference(rows: pd.DataFrame, ctrl_rows: pd.DataFrame, t: ClaimTest, where: str) -> Measure:
    col = _metric_col(rows, t.metric, where)
    a = _select(rows, t.treated, where, "test.treated")
    b = _select(ctrl_rows, t.control, where, "test.control")
    _metric_col(b, t.metric, where)
    va, vb = (pd.to_numeric(x[col], errors="coerce").astype(float).to_numpy() for x in (a, b))
    va, vb = va[np.isfinite(va)], vb[np.isfinite(vb)]
    if len(va) < 2 or len(vb) < 2:
        raise StudyError(where, "test", f"mean_difference: {len(va)} and {len(vb)} values; need 2+ per side")
    r = sps.ttest_ind(va, vb, equal_var=False)
    lo, hi = r.confidence_interval(stats.LEVEL)
    return Measure(va.mean() - vb.mean(), lo, hi, 0.0, f"difference of mean {t.metric}{_when(t)} (treated - control, "
                   "Welch t)",
                   f"{len(va)} vs {len(vb)} trials, {_means(a, b, col)}{_dropped(pd.concat([a, b]), col)}", r.pvalue)


def _spread_ratio(rows: pd.DataFrame, t: ClaimTest, where: str) -> Measure:
    col = _metric_col(rows, t.metric, where)
    diff = [k for k in set(t.treated) | set(t.control) if t.treated.get(k) != t.control.get(k)]
    if len(diff) != 1:
        raise StudyError(where, "test", "spread_ratio: treated and control must differ in exactly one column")
    k = diff[0]
    if t.axis not in rows:
        raise StudyError(where, "test.axis", f"no column {t.axis!r} in the study's rows")
    sub = pd.concat([_select(rows, t.treated, where, "test.treated"), _select(rows, t.control, where, "test.control")])
    sub = sub.assign(status="ok") if "status" not in sub else sub
    c = stats.spread_comparison(sub.dropna(subset=[col]), t.metric, axis=t.axis, compare=k, a=t.treated[k],
                                b=t.control[k], by=())
    r = c.iloc[0]
    n_pts = sub[t.axis].nunique()
    why = f"; {r['reason']}" if isinstance(r["reason"], str) and r["reason"] else ""
    return Measure(r["ratio"], r["ratio_lo"], r["ratio_hi"], 1.0,
                   f"ratio of the spread of {t.metric} across {t.axis} (treated / control, seed noise taken out; "
                   "Bonferroni-combined interval, no test)",
                   f"{n_pts} values of {t.axis}, {sub['seed'].nunique()} seeds; spreads {fmt(r['std_a'])} treated, "
                   f"{fmt(r['std_b'])} control{why}{_dropped(sub, col)}", floor=0.0)


def _successes(rows: pd.DataFrame, rule: SuccessCfg | None) -> tuple[int, int]:
    from bench.report.analysis import success_rule

    if rule is None:
        mask, _ = success_rule(rows)
    else:
        final = pd.to_numeric(rows[f"final.{rule.metric}"], errors="coerce").astype(float)
        mask = final <= rule.of_start * rows[f"start.{rule.metric}"].astype(float)  # NaN (diverged): False
    counted = rows["status"] != "failed"
    return int((mask & (rows["status"] == "ok") & counted).sum()), int(counted.sum())


def _rule(t: ClaimTest) -> str:
    return "" if t.success is None else f"; trained = final {t.success.metric} <= {fmt(t.success.of_start)} x step 0's"


def _rate(rows: pd.DataFrame, t: ClaimTest, where: str) -> Measure:
    a = _select(rows, t.treated, where, "test.treated")
    sa, na = _successes(a, t.success)
    if t.statistic == "rate":
        lo, hi = stats.wilson_interval(sa, na, stats.LEVEL)
        return Measure(sa / na, lo, hi, t.against, f"success rate against {fmt(t.against)} (Wilson interval{_rule(t)})",
                       f"{sa} of {na} trials trained")
    b = _select(rows, t.control, where, "test.control")
    sb, nb = _successes(b, t.success)
    lo, hi = stats.newcombe_interval(sa, na, sb, nb)
    return Measure(sa / na - sb / nb, lo, hi, 0.0, f"difference of success rates (treated - control, Newcombe{_rule(t)})",
                   f"{sa} of {na} vs {sb} of {nb} trials trained")


def _with_start(rows: pd.DataFrame, d: Path, metric: str) -> pd.DataFrame:
    """`start.<metric>`: each trial's value at its first evaluation (step 0), from curves.parquet."""
    c = results.read_curves(d)
    c = c[c["step"] == c.groupby("trial_id")["step"].transform("min")]
    start = c.dropna(subset=[metric]).drop_duplicates("trial_id").set_index("trial_id")[metric]
    return rows.assign(**{f"start.{metric}": rows["trial_id"].map(start)})


def _at_step(rows: pd.DataFrame, d: Path, t: ClaimTest, where: str) -> pd.DataFrame:
    """`final.<metric>` replaced by each trial's value at evaluation step `at_step` (curves.parquet)."""
    c = results.read_curves(d)
    c = c[c["step"] == t.at_step]
    if c.empty or t.metric not in c:
        raise StudyError(where, "test.at_step", f"no evaluation of {t.metric} at step {t.at_step} in {d}")
    return rows.assign(**{f"final.{t.metric}": rows["trial_id"].map(c.set_index("trial_id")[t.metric])})


def measure(root: Path, study: str, t: ClaimTest, where: str) -> Measure:
    rows = _rows(root, study, t.metric, where)
    if t.success is not None:
        rows = _with_start(rows, root / study, t.success.metric)
    if t.at_step is not None:
        rows = _at_step(rows, root / study, t, where)
    rows = _select(rows, t.where, where, "test.where") if t.where else rows
    if t.statistic == "paired_difference":
        return _paired(rows, t, where)
    if t.statistic == "mean_difference":
        ctrl = rows if t.control_study is None else _rows(root, t.control_study, t.metric, where)
        return _mean_difference(rows, ctrl, t, where)
    if t.statistic == "spread_ratio":
        return _spread_ratio(rows, t, where)
    return _rate(rows, t, where)


def uninformative(m: Measure) -> bool:
    """No interval, or one that spans every value the statistic can take (a spread ratio's [0, inf]): the design
    cannot tell (too few seeds), whatever the estimate."""
    if np.isnan(m.lo) or np.isnan(m.hi) or np.isnan(m.estimate):
        return True
    return m.lo <= m.floor and m.hi == math.inf


def verdict(m: Measure, t: ClaimTest) -> str:
    """The verdict of a measure against the claim's expectation (the vocabulary in VERDICTS)."""
    if uninformative(m):
        return VERDICTS[3]
    if t.expect == "within":
        band = _band(m, t)
        if band[0] < m.lo and m.hi < band[1]:
            return "reproduces"
        return "same direction, not significant" if band[0] < m.estimate < band[1] else "contradicts"
    lo, hi = (m.lo, m.hi) if t.expect == "higher" else (-m.hi, -m.lo)
    null = m.null if t.expect == "higher" else -m.null
    if lo > null:
        return "reproduces"
    return "same direction, not significant" if _on_side(m.estimate, m, t) else "contradicts"


def _band(m: Measure, t: ClaimTest) -> tuple[float, float]:
    """`within`'s band around the null: +-margin for a difference, [1/(1+margin), 1+margin] for a ratio."""
    return (1 / (1 + t.margin), 1 + t.margin) if t.statistic == "spread_ratio" else (-t.margin, t.margin)


def _on_side(x: float, m: Measure, t: ClaimTest) -> bool:
    if not np.isfinite(x):
        return False
    if t.expect == "within":
        lo, hi = _band(m, t)
        return lo < x < hi
    return x > m.null if t.expect == "higher" else x < m.null


# ----------------------------------------------------------------------------- the ledger
def _values(df: pd.DataFrame, col: str) -> list:
    return sorted({show_value(v) for v in df[col].dropna().unique()}) if col in df else []


def setting(root: Path, study: str, t: ClaimTest, where: str) -> str:
    """The setting ganbench ran, read from the rows the test uses: data, nets, steps, optimizer, seeds."""
    d = root / study
    trials = table(d)
    rows = trials[_mask(trials, t.where, where, "test.where")] if t.where else trials
    if t.control_study:  # the control rows come from another study: its setting is said beside
        other = table(root / t.control_study)
        return f"{_describe(rows[_mask(rows, t.treated, where, 'test.treated')])}; against {t.control_study}: " \
               f"{_describe(other[_mask(other, t.control, where, 'test.control')])}"
    mask = _mask(rows, t.treated, where, "test.treated")
    if t.control:
        mask |= _mask(rows, t.control, where, "test.control")
    rows = rows[mask]
    return _describe(rows)


def _describe(rows: pd.DataFrame) -> str:
    """data, nets, structure / objective, steps and batch, optimizer and lr, seeds: each part that the rows record."""
    def v(col: str, fmt_: str = "{}") -> str:
        vals = _values(rows, col)
        return fmt_.format(", ".join(vals)) if vals else ""

    names = _values(rows, "dataset.name")
    data = ", ".join(names) + v("dataset.base", " (channels from {})") * ("stacked" in names)
    if names and not set(names) <= TOY_DATA:
        data += v("dataset.image_size", " {}px")
    parts = [data, v("model.name") + v("model.width", " width {}"),
             " / ".join(p for p in (v("variant.structure"), v("variant.objective")) if p),
             v("train.steps", "{} steps") + v("train.batch_size", ", batch {}"),
             v("train.optimizer") + v("train.lr", " lr {}"),
             f"{rows['seed'].nunique()} seeds" if "seed" in rows else ""]
    return "; ".join(p for p in parts if p)


def _number(m: Measure, t: ClaimTest) -> str:
    ci = "[no interval]" if np.isnan(m.lo) or np.isnan(m.hi) else f"[{fmt(m.lo)}, {fmt(m.hi)}]"
    if t.expect == "within":  # an equivalence claim is read against its margin, not against no effect
        lo, hi = _band(m, t)
        where = "inside" if lo < m.lo and m.hi < hi else "not inside"
        return f"{fmt(m.estimate)} {ci} ({where} the margin ({fmt(lo)}, {fmt(hi)}); {m.kind}; {m.n})"
    excl = "excludes" if np.isfinite(m.lo) and (m.lo > m.null or m.hi < m.null) else "includes"
    p = f", {p_is(m.p)}" if np.isfinite(m.p) else ""
    return f"{fmt(m.estimate)} {ci} ({excl} {fmt(m.null)}{p}; {m.kind}; {m.n})"


@dataclass
class Row:
    claim: ClaimCfg
    verdict: str
    number: str = ""
    setting: str = ""
    diagnostics: tuple = ()


def evaluate(claims: list[ClaimCfg], root: Path, claims_file: Path) -> list[Row]:
    """Every claim's measure and verdict, or StudyError naming the claim (nothing is written before all pass)."""
    out = []
    for i, c in enumerate(claims):
        where = f"{claims_file}: claims[{i}] ({c.id})"
        repo = Path(root).resolve().parent
        if c.plan is not None and not (repo / c.plan.study).exists():
            raise StudyError(where, "plan.study", f"{c.plan.study}: no such study file")
        for j, f in enumerate(c.queued):
            if not (repo / f).exists():
                raise StudyError(where, f"queued[{j}]", f"{f}: no such study file")
        if c.study is None:
            out.append(Row(c, VERDICTS[3]))
            continue
        m = measure(root, c.study, c.test, where)
        diags = []
        for j, dg in enumerate(c.diagnostics):
            dm = measure(root, dg.study, dg.test, f"{where}.diagnostics[{j}]")
            diags.append((dg, dm, SUPPORT[verdict(dm, dg.test)], setting(root, dg.study, dg.test, f"{where}.diagnostics[{j}]"),
                          _number(dm, dg.test)))
        out.append(Row(c, verdict(m, c.test), _number(m, c.test), setting(root, c.study, c.test, where), tuple(diags)))
    return out


def _cell(s: str) -> str:
    return " ".join(str(s).split()).replace("|", "\\|")


def render(rows: list[Row], claims_file: Path) -> str:
    counts = {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
    lines = ["# Replication ledger", "",
             f"Generated by `ganbench replicate` from `{claims_file}` and the committed rows under results/; do not "
             "edit by hand (tests/test_replicate.py rebuilds it and fails on any drift).", "",
             "Verdicts, computed from each 95 % interval: " + "; ".join(f"{counts[v]} {v}" for v in VERDICTS) + ".", "",
             "- **reproduces**: the interval lies wholly on the side the claim predicts (for an equivalence claim, "
             "`within`: inside its margin);",
             "- **same direction, not significant**: the estimate is on the predicted side, the interval reaches the null "
             "(`within`: the estimate is inside the margin, the interval is not);",
             "- **contradicts**: the estimate is on the null or on the other side (`within`: outside the margin); the "
             "number column says whether the interval excludes the null;",
             "- **not testable at this scale**: no study here can test it (the plan names the study file and its "
             "GPU-hours), or the design gives no interval or one spanning every possible value (too few seeds).", "",
             "p values are those of the test behind the interval (paired t, Welch t); spread ratios have an interval "
             "and no test. Paired rows also give the sign split and the median of the differences.", "",
             "Success (rates): status ok and not collapsed (image data: recall >= 0.1; docs/statistics.md). Intervals: "
             "paired differences Student t over pairs, unpaired Welch t, spread ratios as in the report "
             "(bench.stats.spread_comparison), rates Wilson, rate differences Newcombe's hybrid score; coverage of "
             "each is checked by simulation in tests/.", "",
             "| claim | paper | paper's number and setting | ganbench's setting | ganbench's number [95 % CI] | verdict |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        c = r.claim
        lines.append(f"| **{c.id}**: {_cell(c.claim)} | {_cell(c.paper)}, {_cell(c.source)} | {_cell(c.paper_value)}; "
                     f"{_cell(c.paper_setting)} | {_cell(r.setting) or 'n/a'} | {_cell(r.number) or 'n/a'} | "
                     f"**{r.verdict}** |")
    lines += ["", "## Departures, diagnoses and plans", ""]
    for r in rows:
        lines += _details(r)
    return "\n".join(lines).rstrip() + "\n"


def _details(r: Row) -> list[str]:
    c = r.claim
    out = [f"### {c.id}: {r.verdict}", ""]
    if c.departures:
        out += [f"Departures from the paper: {' '.join(c.departures.split())}", ""]
    if c.study:
        out += [f"Answered by `results/{c.study}/` ({c.test.statistic} of {c.test.metric or 'success'}, "
                f"expect {c.test.expect}).", ""]
    for dg, m, support, sett, number in r.diagnostics:
        out += [f"- Diagnostic, `results/{dg.study}/` ({_cell(sett)}): *{' '.join(dg.explains.split())}* -- "
                f"{support} by the data: {number}."]
    if r.diagnostics:
        out.append("")
    if c.queued:
        out += ["Queued to diagnose it (not yet run): " + ", ".join(f"`{f}`" for f in c.queued) + ".", ""]
    if c.plan:
        out += [f"Paper-scale plan: `{c.plan.study}`, about {c.plan.gpu_hours} GPU-hours ({' '.join(c.plan.basis.split())}).",
                ""]
    return out


def build(claims_file: Path = CLAIMS, root: Path = Path("results"), out: Path | None = None) -> tuple[Path, dict]:
    """Validate the claims, compute every verdict, then write the ledger (atomically; nothing on bad input)."""
    claims = load_claims(claims_file)
    rows = evaluate(claims, root, claims_file)
    text = render(rows, claims_file)
    out = out or root / LEDGER

    def write(tmp: str) -> None:
        Path(tmp).write_text(text)

    atomic_write(out, write)
    return out, {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
