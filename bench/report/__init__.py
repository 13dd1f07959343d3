"""`build_report(results_dir)`: report.html (self-contained) and report.md (+ figures/) of a results folder,
or of several (`build_report([dir1, dir2], out)`: one report comparing the studies).

Order: headline findings (sentences with numbers and intervals from `bench.stats`, see
`bench.report.analysis`), tables, plots, then the study file(s) and the environment.

Reads only the Parquet files and study.yaml; never imports torch or model code, so a report can be
built anywhere the results folder is copied to.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bench import catalog, results, stats
from bench.metrics import DIAGNOSTIC, INFO, bounds
from bench.report import analysis, edgan, html, plots, question, zoo
from bench.report.fmt import N_BOOT, hms, mean_ci
from bench.schema import variant_label  # pydantic only: no model code

ENV_COLUMNS = ("torch_version", "ray_version", "ganbench_version", "git_commit", "hostname", "device", "torch_threads",
               "evaluator_id")
CONFIG_PREFIXES = ("dataset.", "model.", "train.", "variant.")


def _order(trials: pd.DataFrame) -> list[str]:
    # Study order (first appearance) keeps base variants next to their lensed versions.
    return list(dict.fromkeys(trials["variant"]))


def present_metrics(trials: pd.DataFrame, curves: pd.DataFrame) -> list[str]:
    """The metrics this study measured (toy studies have no FID, image studies no energy distance): a finite
    value in a curve or a final value."""
    return [m for m in INFO if m not in DIAGNOSTIC
            and (analysis.has_finite(curves, m) or analysis.has_finite(trials, f"final.{m}"))]


def summary(trials: pd.DataFrame, metrics: list[str]) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "variant", "trials", "ok", "diverged", "failed"]
    header += [f"{m} {'↑' if INFO[m][0] else '↓'}" for m in metrics]
    rows = []
    for ds in sorted(trials[plots.DATASET].unique()):
        for v in _order(trials):
            g = trials[(trials[plots.DATASET] == ds) & (trials["variant"] == v)]
            if g.empty:
                continue
            st = g["status"].value_counts()
            row = [ds, v, len(g), st.get("ok", 0), st.get("diverged", 0), st.get("failed", 0)]
            for m in metrics:
                vals = g[f"final.{m}"].astype(float) if f"final.{m}" in g else pd.Series(np.nan, index=g.index)
                missing = int((~np.isfinite(vals)).sum())
                cell = mean_ci(vals, *bounds(m, ds))
                if missing and missing < len(g):
                    cell += f"; {missing} of {len(g)} runs had no value"
                elif missing:
                    cell = f"no value ({missing} of {len(g)} runs)"
                row.append(cell)
            rows.append(row)
    return header, rows


def pooled_columns(trials: pd.DataFrame) -> list[str]:
    """Config fields (other than the seed) that differ between trials summarised in the same row."""
    cols = [c for c in trials.columns if c.startswith(CONFIG_PREFIXES) and c != plots.DATASET]
    varying = set()
    for _, g in trials.groupby(analysis.group_columns(trials), dropna=False):
        varying |= {c for c in cols if g[c].astype(str).nunique() > 1}
    return sorted(varying)


def status_sentence(trials: pd.DataFrame) -> str:
    """'7 trials: 5 ok, 1 diverged, 1 failed.' — the report's count of what finished (`bench.status.status_line`
    is the live progress of a running study)."""
    st = trials["status"].value_counts()
    known = ["ok", "diverged", "failed"]
    parts = [f"{st.get(s, 0)} {s}" for s in known] + [f"{n} {s}" for s, n in st.items() if s not in known]
    return f"{len(trials)} trials: " + ", ".join(parts) + "."


def pack_costs(trials: pd.DataFrame, folders: dict[str, Path] | None = None) -> pd.DataFrame:
    """One row per pack that trained the trials: study, pack, size, wall seconds, cpu, gpu.

    Rows written since the cost columns exist name their `pack_id` and `pack_wall_seconds`. Older rows' `wall_seconds`
    is the pack's elapsed time when the configuration finished: their packs come from the folder's packs.json
    (a trial in several packs, after a resume, belongs to the last) and a pack's wall time is its members' largest."""
    t = trials.copy()
    for c in ("pack_id", "pack_wall_seconds", "pack_size"):
        if c not in t:
            t[c] = np.nan
    t["pack_wall_seconds"] = pd.to_numeric(t["pack_wall_seconds"], errors="coerce")
    t["pack_id"] = t["pack_id"].astype(object)
    old = t["pack_id"].isna()
    if old.any():
        member = {}
        for study, d in (folders or {}).items():
            f = Path(d) / "packs.json"
            for pid, ids in (json.loads(f.read_text()).items() if f.exists() else []):
                for i in ids:
                    member[(study, str(i))] = pid
        tid = t["trial_id"].astype(str).str.split("/").str[-1]
        t.loc[old, "pack_id"] = [member.get((s, i), f"alone:{i}") for s, i in zip(t.loc[old, "study"], tid[old])]
        t.loc[old, "pack_wall_seconds"] = pd.to_numeric(t.loc[old, "wall_seconds"], errors="coerce")
    res = {c: pd.to_numeric(t[c], errors="coerce").fillna(0) if c in t else 0.0 for c in ("resources.cpu", "resources.gpu")}
    t = t.assign(cpu=res["resources.cpu"], gpu=res["resources.gpu"])
    g = t.groupby(["study", "pack_id"], sort=True)
    return pd.DataFrame({"size": g.size(), "wall_seconds": g["pack_wall_seconds"].max(), "cpu": g["cpu"].first(),
                         "gpu": g["gpu"].first()}).reset_index()


def environment(trials: pd.DataFrame, folders: dict[str, Path] | None = None) -> list[list[str]]:
    """Versions, commit, hardware (hostname / device / torch threads) and the study's real costs: the measured
    wall clock of its `ganbench run`s (runs.json), the packs' summed wall time, CPU- and GPU-hours (each pack
    counted once, not once per configuration it trains)."""
    rows = []
    if trials["study"].nunique() > 1:
        rows.append(["studies", ", ".join(dict.fromkeys(trials["study"].astype(str)))])
    for c in ENV_COLUMNS:
        if c in trials:
            vals = [str(x) for x in trials[c].dropna().unique()]
            if vals:
                rows.append([c, ", ".join(sorted(vals))])
    runs = [r for d in (folders or {}).values() for r in results.read_runs(d)]
    if runs:
        el = sum(float(r["wall_seconds"]) for r in runs)
        rows.append(["elapsed wall time (measured: `ganbench run`, Ray start to the last trial" +
                     (f", summed over {len(runs)} runs" if len(runs) > 1 else "") + ")", f"{hms(el)} ({el:.1f} s)"])
    else:
        rows.append(["elapsed wall time", "not recorded (folder written before runs.json)"])
    packs = pack_costs(trials, folders)
    w = packs["wall_seconds"]
    if w.notna().any():
        rows.append([f"training time (sum over the {len(packs)} packs' wall times; packs running side by side "
                     "each count)", f"{hms(w.sum())} ({w.sum():.1f} s)"])
        share = pd.to_numeric(trials.get("wall_seconds"), errors="coerce")
        if "pack_size" in trials and pd.to_numeric(trials["pack_size"], errors="coerce").notna().all():
            rows.append(["median wall seconds per trial (its share of its pack)", f"{share.median():.1f}"])
        else:
            rows.append(["median wall seconds per trial (pack wall time / pack size; older rows)",
                         f"{(packs['wall_seconds'] / packs['size']).median():.1f}"])
        rows.append(["CPU-hours (pack wall time x resources cpu)", f"{(w * packs['cpu']).sum() / 3600:.3g}"])
        gpu = (w * packs["gpu"]).sum() / 3600
        rows.append(["GPU-hours (pack wall time x resources gpu)", f"{gpu:.3g}" if gpu else "0 (no GPU resources)"])
    return rows


@dataclass
class Loaded:
    name: str
    description: str
    trials: pd.DataFrame
    curves: pd.DataFrame
    samples: pd.DataFrame
    studies: list[tuple[str, Path, str]]  # (study name, folder, study.yaml text)
    question: dict | None = None          # the study file's `question:` block (one study only)


def _study_file(results_dir: Path) -> tuple[str, dict]:
    f = results_dir / results.STUDY
    text = f.read_text(encoding="utf-8") if f.exists() else ""
    try:
        study = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        study = {}
    return text, study if isinstance(study, dict) else {}


def load(results_dirs) -> Loaded:
    """Trials, curves and samples of one or several results folders. Several: a `study` column names each
    trial's study (the folder's name where two studies share a name), trial ids are prefixed by it, and
    variant names that occur in more than one study are prefixed by the study ("quickstart: ns")."""
    dirs = [Path(results_dirs)] if isinstance(results_dirs, (str, Path)) else [Path(d) for d in results_dirs]
    if not dirs:
        raise ValueError("build_report: no results folder")
    parts, names = [], []
    for d in dirs:
        trials, curves = results.load(d)
        samples = results.load_samples(d)
        text, study = _study_file(d)
        name = str(study.get("name") or (", ".join(map(str, trials["study"].dropna().unique()))
                                         if "study" in trials else "") or d.name)
        if name in names:
            name = f"{name} [{d.name}]" if f"{name} [{d.name}]" not in names else f"{name} [{d}]"
        names.append(name)
        trials = results.with_derived(trials, curves, dirs)  # final.auc:<m> etc. that a question names (issue 23)
        trials["variant"] = trials["variant"].fillna(trials.get("variant.objective", "?")).astype(str)
        if "config" in trials:  # names follow the current naming, also for folders written by older versions
            # (not a random study's rows: their label leaves the sampled values out, so a variant stays one variant)
            stage = trials["stage"] if "stage" in trials else pd.Series(np.nan, index=trials.index)
            trials["variant"] = [variant_label(json.loads(c)) if isinstance(c, str) and pd.isna(st) else v
                                 for c, v, st in zip(trials["config"], trials["variant"], stage)]
        for col in [c for c in curves.columns if c.startswith("grid_")]:  # grids are files under each folder
            curves[col] = curves[col].map(lambda r, d=d: str((d / r).resolve()) if isinstance(r, str) else r)
        parts.append((name, d, text, study, trials, curves, samples))
    if len(parts) == 1:
        name, d, text, study, trials, curves, samples = parts[0]
        if "study" not in trials:
            trials["study"] = name
        return Loaded(name, str(study.get("description") or "").strip(), trials, curves, samples, [(name, d, text)],
                      study.get("question"))
    for name, d, text, study, trials, curves, samples in parts:
        trials["study"] = name
        for df in (trials, curves, samples):
            if "trial_id" in df:
                df["trial_id"] = name + "/" + df["trial_id"].astype(str)
    owners: dict[str, set] = {}
    for name, *_, trials, _c, _s in parts:
        for v in trials["variant"].unique():
            owners.setdefault(v, set()).add(name)
    for name, *_, trials, _c, _s in parts:
        trials["variant"] = [f"{name}: {v}" if len(owners[v]) > 1 else v for v in trials["variant"]]
    cat = lambda i: pd.concat([p[i] for p in parts if not p[i].empty], ignore_index=True) \
        if any(not p[i].empty for p in parts) else parts[0][i]
    desc = " ".join(f"{p[0]}: {str(p[3].get('description') or '').strip()}" for p in parts if p[3].get("description"))
    return Loaded(" vs ".join(names), desc, cat(4), cat(5), cat(6), [(p[0], p[1], p[2]) for p in parts])


def _budget(trials: pd.DataFrame, metric: str, variants: list[str]) -> dict:
    """Budget curve per (dataset, variant) over every configuration that ran: a diverged or failed one counts as
    a failure at the worst value (the metric's bound on its bad side where it has one, e.g. 0 modes, else the
    worst finished value of any variant on the dataset), so variants are judged alike."""
    col = f"final.{metric}"
    out = {}
    hib = INFO[metric][0]
    for ds in sorted(trials[plots.DATASET].unique()):
        sub = trials[trials[plots.DATASET] == ds]
        vals = pd.to_numeric(sub[col], errors="coerce").astype(float) if col in sub else pd.Series(dtype=float)
        fin = vals[np.isfinite(vals)]
        if fin.empty:
            continue
        fail = analysis.failure_value(sub, metric, ds)
        for v in variants:
            g = sub[sub["variant"] == v]
            # an ok trial without a value (the metric undefined for it) is not a failure: leave it out
            g = g[(g["status"] != "ok") | np.isfinite(vals[g.index])]
            x = vals[g.index].to_numpy()
            if len(x) >= 2 and np.isfinite(x).any():
                out[(ds, v)] = stats.budget_curve(x, hib, n_boot=1000, seed=analysis.SEED, failure_value=fail,
                                                  bounds=bounds(metric, ds))
    return out


# the report sections a structure may declare (bench.catalog `sections`), in page order; each runs only where a
# structure in the rows declares it ("treatment", the lens pairing, is part of the generic findings)
SECTIONS = {
    "nrds": lambda data: edgan.blocks([d for _, d, _ in data.studies]),   # NRDS across the weight (seed Table 2)
    "own_weights": lambda data: zoo.blocks(data.trials, data.curves),      # sensitivity to a structure's own weights
}


def declared_sections(data: Loaded) -> tuple[list[str], list[tuple]]:
    """(headline sentences, blocks) of the sections the rows' structures declare; a structure the catalog does not
    know (an old folder) gets every section, each of which says nothing where it has nothing to say."""
    cat = catalog.catalog()
    col = data.trials["variant.structure"] if "variant.structure" in data.trials else pd.Series(["gan"])
    wanted = {sec for s in col.dropna().astype(str).unique() for sec in (cat[s].sections if s in cat else SECTIONS)}
    heads, out = [], []
    own = sorted(w for w in wanted if ":" in w)  # "module:function": a section a plug-in brings (torch-free)
    for name in [*[n for n in SECTIONS if n in wanted], *own]:
        if name in SECTIONS:
            section = SECTIONS[name]
        else:
            module, _, fn = name.partition(":")
            section = getattr(importlib.import_module(module), fn)
        h, b = section(data)
        heads += h
        out += b
    return heads, out


def protocol_rows(trials: pd.DataFrame) -> bool:
    return "stage" in trials and pd.to_numeric(trials["stage"], errors="coerce").notna().any()


@dataclass
class Page:
    """What the parts of a (grid) study's page share: the loaded study and the findings computed once."""
    data: Loaded
    variants: list[str]
    metrics: list[str]
    found: analysis.Findings
    multi: bool
    q_lines: list[str]
    q_blocks: list[tuple]
    section_heads: list[str]
    section_blocks: list[tuple]

    @property
    def trials(self) -> pd.DataFrame:
        return self.data.trials

    def label(self, r) -> str:  # a paired row's name in a headline
        n = str(r["variant.objective"])
        return f"{n} ({r['study']})" if self.multi else n


def _page(data: Loaded, metrics: list[str]) -> Page:
    trials = data.trials
    multi = trials["study"].nunique() > 1
    page = Page(data, _order(trials), metrics, None, multi, [], [], [], [])
    page.found = analysis.findings(trials, metrics, label=page.label)
    page.section_heads, page.section_blocks = declared_sections(data)
    # the study's question is answered first (a lens study without one: is the seed spread smaller with the lens)
    first = next(iter(page.found.by_metric), None)
    q, q_note = question.resolve(trials, data.question, first)
    page.q_lines, page.q_blocks = question.answer(trials, q) if q else ([], [])
    if analysis.has_lens_pairs(trials) and (q or first):
        page.q_lines += question.k_spread(trials, q.metric if q else first)
    page.q_lines = ([q_note] if q_note else []) + page.q_lines
    return page


def _title(p: Page) -> list[tuple]:
    out = [("h1", f"ganbench report: {p.data.name}")]
    if p.data.description:
        out.append(("p", p.data.description))
    return out + [("p", status_sentence(p.trials))]


def _leaderboard(p: Page) -> list[tuple]:
    """Several studies: the robustness leaderboard first."""
    if not p.multi:
        return []
    from bench.report import leaderboard as lbm

    lb = lbm.leaderboard(p.trials, p.metrics)
    if lb.empty:
        return []
    out = [("h2", "Robustness leaderboard"), ("p", lbm.TEXT), ("table", *lbm.table(lb))]
    img = lbm.figure(lb)
    if img:
        out.append(("img", "leaderboard", img, "seed spread per variant with its 95 % confidence interval"))
    return out


def _headlines(p: Page) -> list[tuple]:
    found = p.found
    out = [("h2", "Headline findings"), ("ul", p.q_lines + p.section_heads + found.headlines)]
    if p.q_blocks:
        out.append(("p", question.POWER_TEXT))
    out.append(("p", "Success rule: " + analysis.SUCCESS_TEXT))
    if not found.paired_summary.empty:
        out.append(("p", "Pairing rule: " + analysis.PAIRING_TEXT))
    if found.axes:
        out.append(("p", "Swept axes (config fields other than the seed that vary within a variant): "
                         + "; ".join(f"{a.name} {a.span()}" for a in found.axes) + ". With several swept axes, "
                         "a spread across one is taken with the others held fixed; the headline names the "
                         "largest."))
    if found.by_metric:
        out.append(("p", "Headlines use the final " + "; ".join(
            f"{m} ({analysis.direction(m)})" + (f" on {', '.join(map(str, d))}" if len(found.by_metric) > 1 else "")
            for m, d in found.by_metric.items()) + "; the tables and plots below show the other metrics."))
    return out


def _tables(p: Page) -> list[tuple]:
    out = [("h2", "Summary"),
           ("p", "Final metric per variant: mean over seeds [95 % Student t interval over seeds]. "
                 "Runs without a value (diverged, failed, or the "
                 "metric undefined) are left out of the mean and counted."),
           ("table", *summary(p.trials, p.metrics)),
           ("p", "; ".join(f"{m}: {INFO[m][1]} ({'higher' if INFO[m][0] else 'lower'} is better)"
                           for m in p.metrics) + ".")]
    pooled = pooled_columns(p.trials)
    if pooled:
        out.append(("p", "Note: rows pool trials that also differ in " + ", ".join(pooled) + "."))
    return out + [("h2", "Statistics")] + p.q_blocks + p.found.tables + p.section_blocks


def _final_plots(p: Page) -> list[tuple]:
    out = [("h2", "Final metrics per seed")]
    for m in p.metrics:
        img = plots.final_metric(p.trials, m, p.variants)
        out.append(("img", f"final_{m}", img, f"final {m}: a box per variant, one point per trial (the figure's title "
                                              "says what each box pools)")
                   if img else ("p", f"final {m}: no run has a value."))
    return out


def _axis_plots(p: Page) -> list[tuple]:
    axes, DS = p.found.axes, plots.DATASET
    if not (axes and p.found.by_metric):
        return []
    out = [("h2", "Sensitivity to the swept axes")]
    for m, dss in p.found.by_metric.items():
        sub = p.trials[p.trials[DS].isin(dss)]
        for i, ax in enumerate(axes):
            others = [a.column for a in axes if a is not ax]
            img = plots.metric_vs_axis(sub, m, ax.column, p.variants, ax.log, others)
            out.append(("img", f"axis_{i}_{m}", img, f"final {m} vs {ax.name}" + (" (log x)" if plots.log_x(ax.values)
                                                                                else "")
                        + ": mean over seeds, band min..max") if img else ("p", f"{ax.name}: no finite {m}."))
        a, b = (axes + [None, None])[:2]
        # only where one variant sweeps both (the zoo's variants each sweep a weight of their own)
        crossed = b is not None and (sub.groupby("variant")[[a.column, b.column]]
                                     .agg(lambda x: x.map(analysis._key).nunique()).min(axis=1) > 1).any()
        img = plots.heatmap(sub, m, a.column, b.column, p.variants) if crossed else None
        if img:
            out.append(("img", f"heatmap_{m}", img, f"mean final {m} over seeds on {a.name} x {b.name}"
                        + (" (other axes pooled)" if len(axes) > 2 else "")))
    return out


def _budget_plots(p: Page) -> list[tuple]:
    DS = plots.DATASET
    budget = [(m, plots.budget_curves(_budget(p.trials[p.trials[DS].isin(dss)], m, p.variants), m, p.variants,
                                      study_of=plots.study_map(p.trials)))
              for m, dss in p.found.by_metric.items()]
    if not any(img for _, img in budget):
        return []
    return [("h2", "Budget curves")] + [
        ("img", f"budget_{m}", img, f"expected best final {m} of k trials drawn at random (without replacement) from "
                                    "a variant's trials (bench.stats.budget_curve, exact), band: 95 % bootstrap over "
                                    "trials; a diverged or failed trial counts as a failure at the worst value (the "
                                    "metric's bound, else the worst finished value on the dataset): never left out")
        for m, img in budget if img]


def _paired_plots(p: Page) -> list[tuple]:
    s, DS = p.found.paired_summary, plots.DATASET
    if s.empty:
        return []
    figs = []
    for m, dss in (p.found.by_metric or {s["metric"].iloc[0]: list(s[DS].unique())}).items():
        rows = s[(s["metric"] == m) & s[DS].isin(dss)]
        labels = [f"{p.label(r)}" + (f" {r[DS]}" if p.trials[DS].nunique() > 1 else "") + f"\n{r['lens']}"
                  for _, r in rows.iterrows()]
        img = plots.paired_differences(rows, p.found.paired_pairs, m, labels) if not rows.empty else None
        if img:
            figs.append(("img", f"paired_{m}", img, f"final {m}, lens minus no lens, per pair (same seed and "
                                                    "settings), with the mean and its 95 % t interval"))
    return [("h2", "Paired differences (lens - no lens)")] + figs if figs else []


def _curves_and_samples(p: Page) -> list[tuple]:
    trials, curves, variants = p.trials, p.data.curves, p.variants
    out = [("h2", "Learning curves")]
    for m in p.metrics:
        img = plots.learning_curves(trials, curves, m, variants)
        out.append(("img", f"curve_{m}", img, f"{m} vs step: mean over seeds, band from min to max")
                   if img else ("p", f"{m}: no curve values."))
    root = Path("/")  # grid paths are absolute (see load)
    grids = plots.sample_grids(trials, curves, variants, root)
    if not grids:
        img = plots.scatter(trials, p.data.samples, variants)
        caption = "last samples of the lowest seed per variant: real (grey), generated (blue), lensed real (orange)"
        return out + [("h2", "Real vs generated samples"),
                      ("img", "samples", img, caption) if img else ("p", "No samples were stored.")]
    out += [("h2", "Samples"), ("img", "grids", grids, "last evaluation of the lowest seed per variant: generated, "
                                                       "lensed real (lens variants) and real images")]
    lens = plots.lens_progress(trials, curves, variants, root)
    if lens:
        out.append(("img", "lens_progress", lens, "the lens over training: generated (top) and lensed "
                                                  "real images (bottom) at each evaluation"))
    return out


# the parts of a grid study's page, in order (a random study has its own page: random_page)
PARTS = (_title, _leaderboard, _headlines, _tables, _final_plots, _axis_plots, _budget_plots, _paired_plots,
         _curves_and_samples)


def _random_study(d: Path) -> bool:
    """Whether a results folder holds a two-stage random-search study's rows (read from its `stage` column only)."""
    import pyarrow.parquet as pq

    f = Path(d) / results.TRIALS
    return f.exists() and "stage" in pq.read_schema(f).names and \
        protocol_rows(pd.read_parquet(f, columns=["stage"]))


def blocks(results_dirs) -> tuple[str, list[tuple]]:
    dirs = [Path(results_dirs)] if isinstance(results_dirs, (str, Path)) else [Path(d) for d in results_dirs]
    # comparing grid studies with a random-search one: its sampled values are not grid points (as axes they made a
    # heatmap of hundreds of cells: 19 GB), so it is left out of the grid comparison and named; its own page reports it
    random = [d for d in dirs if _random_study(d)] if len(dirs) > 1 else []
    if random and len(random) < len(dirs):
        dirs = [d for d in dirs if d not in random]
    else:
        random = []
    data = load(dirs)
    metrics = present_metrics(data.trials, data.curves)
    if data.trials["study"].nunique() == 1 and protocol_rows(data.trials):
        return data.name, random_page(data, metrics)
    page = _page(data, metrics)
    left_out = [("p", "Left out of this comparison: " + ", ".join(str(d) for d in random) + " (random-search "
                 "studies: their sampled values are not grid points; `ganbench report FOLDER` gives each its own "
                 "page, and the leaderboard printed by `ganbench report` ranks them).")] if random else []
    parts = [b for part in PARTS for b in part(page)]
    return data.name, parts[:3] + left_out + parts[3:] + appendix(data)


def appendix(data: Loaded) -> list[tuple]:
    """The study file(s) and the environment, last on every page."""
    multi = len(data.studies) > 1
    out: list[tuple] = [("h2", "Study file" + ("s" if multi else ""))]
    for sname, d, text in data.studies:
        if multi:
            out.append(("h3", f"{sname} ({d})"))
        out.append(("pre", text) if text else ("p", f"No {results.STUDY} in {d}."))
    out.append(("h2", "Environment"))
    env = environment(data.trials, {sname: d for sname, d, _ in data.studies})
    out.append(("table", ["", "value"], env) if env else ("p", "No environment columns."))
    return out


def random_page(data: Loaded, metrics: list[str]) -> list[tuple]:
    """A two-stage random-search study (bench.report.protocol): its own page, never the grid analysis."""
    from bench.report import protocol

    q, q_note = question.resolve(data.trials, data.question, None)
    study_yaml = data.studies[0][1] / results.STUDY
    _text, raw = _study_file(data.studies[0][1])
    retrain = (raw.get("sweep") or {}).get("retrain") or {}
    metric = retrain.get("metric") if isinstance(retrain, dict) and retrain.get("metric") in INFO else \
        analysis.primary_metric(data.trials, metrics)  # the metric stage 2 ranked by (without a question)
    out = [("h1", f"ganbench report: {data.name}")]
    if data.description:
        out.append(("p", data.description))
    out.append(("p", status_sentence(data.trials)))
    if q_note:
        out.append(("p", q_note))
    out += protocol.page(data.trials, data.curves, data.samples, q, study_yaml, metrics, metric)
    return out + appendix(data)


def build_report(results_dirs, out_dir: Path | None = None, link_images: bool = False) -> dict[str, Path]:
    """Write report.html and report.md (with its PNGs under figures/) into out_dir (default: the first
    results folder). `results_dirs`: one folder, or a list of folders compared in one report.
    `link_images`: report.html links figures/*.png instead of inlining them (published folders)."""
    dirs = [Path(results_dirs)] if isinstance(results_dirs, (str, Path)) else [Path(d) for d in results_dirs]
    out_dir = Path(out_dir) if out_dir is not None else dirs[0]
    with plots.themed():
        name, bl = blocks(dirs)
    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for old in figures.glob("*.png"):  # figures of an earlier build that this one may not redraw
        old.unlink()
    for b in bl:
        if b[0] == "img":
            (figures / f"{b[1]}.png").write_bytes(b[2])
    paths = {"html": out_dir / "report.html", "md": out_dir / "report.md"}
    page = html.to_html(bl, f"ganbench report: {name}", "figures" if link_images else None)
    paths["html"].write_text(page, encoding="utf-8")
    paths["md"].write_text(html.to_markdown(bl), encoding="utf-8")
    return paths
