"""`build_report(results_dir)`: report.html (self-contained) and report.md (+ figures/) of a results folder.

Reads only the Parquet files and study.yaml; never imports torch or model code, so a report can be
built anywhere the results folder is copied to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bench import results
from bench.metrics import INFO
from bench.report import html, plots

ENV_COLUMNS = ("torch_version", "ray_version", "ganbench_version", "git_commit", "device", "hostname")
CONFIG_PREFIXES = ("dataset.", "model.", "train.", "variant.")
N_BOOT = 2000


def fmt(x: float) -> str:
    return f"{x:.3g}"


def mean_ci(values, n_boot: int = N_BOOT, seed: int = 0) -> str:
    """Mean over seeds with a 95 % percentile bootstrap interval (seeds resampled with replacement)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return "no value"
    if len(v) == 1:
        return f"{fmt(v[0])}, no CI (n=1)"
    if np.all(v == v[0]):
        return f"{fmt(v[0])} (all {len(v)} equal)"
    rng = np.random.default_rng(seed)  # seeded per cell: the same table on every build
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return f"{fmt(v.mean())} [{fmt(lo)}, {fmt(hi)}]"


def _order(trials: pd.DataFrame) -> list[str]:
    # Study order (first appearance) keeps base variants next to their lensed versions.
    return list(dict.fromkeys(trials["variant"]))


def present_metrics(trials: pd.DataFrame, curves: pd.DataFrame) -> list[str]:
    """The metrics this study measured (toy studies have no FID, image studies no energy distance)."""
    return [m for m in INFO if m in curves.columns or f"final.{m}" in trials.columns and trials[f"final.{m}"].notna().any()]


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
                cell = mean_ci(vals)
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
    for _, g in trials.groupby(["variant", plots.DATASET], dropna=False):
        varying |= {c for c in cols if g[c].astype(str).nunique() > 1}
    return sorted(varying)


def status_line(trials: pd.DataFrame) -> str:
    st = trials["status"].value_counts()
    known = ["ok", "diverged", "failed"]
    parts = [f"{st.get(s, 0)} {s}" for s in known] + [f"{n} {s}" for s, n in st.items() if s not in known]
    return f"{len(trials)} trials: " + ", ".join(parts) + "."


def environment(trials: pd.DataFrame) -> list[list[str]]:
    rows = []
    for c in ENV_COLUMNS:
        if c in trials:
            vals = [str(x) for x in trials[c].dropna().unique()]
            if vals:
                rows.append([c, ", ".join(sorted(vals))])
    wall = trials["wall_seconds"].astype(float) if "wall_seconds" in trials else pd.Series(dtype=float)
    if wall.notna().any():
        rows.append(["total wall seconds", f"{wall.sum():.1f}"])
        rows.append(["median wall seconds per trial", f"{wall.median():.1f}"])
    return rows


def blocks(results_dir: Path) -> tuple[str, list[tuple]]:
    trials, curves = results.load(results_dir)
    trials["variant"] = trials["variant"].fillna(trials.get("variant.objective", "?")).astype(str)
    samples = results.load_samples(results_dir)
    study_file = results_dir / results.STUDY
    study_text = study_file.read_text(encoding="utf-8") if study_file.exists() else ""
    try:
        study = yaml.safe_load(study_text) or {}
    except yaml.YAMLError:
        study = {}
    study = study if isinstance(study, dict) else {}
    name = str(study.get("name") or ", ".join(map(str, trials["study"].unique())) or results_dir.name)
    variants = _order(trials)
    metrics = present_metrics(trials, curves)

    out: list[tuple] = [("h1", f"ganbench report: {name}")]
    if study.get("description"):
        out.append(("p", str(study["description"]).strip()))
    out.append(("p", status_line(trials)))

    out.append(("h2", "Summary"))
    out.append(("p", "Final metric per variant: mean over seeds [95 % bootstrap interval over seeds, "
                     f"{N_BOOT} resamples, percentile]. Runs without a value (diverged, failed, or the "
                     "metric undefined) are left out of the mean and counted."))
    out.append(("table", *summary(trials, metrics)))
    out.append(("p", "; ".join(f"{m}: {INFO[m][1]} ({'higher' if INFO[m][0] else 'lower'} is better)"
                               for m in metrics) + "."))
    pooled = pooled_columns(trials)
    if pooled:
        out.append(("p", "Note: rows pool trials that also differ in " + ", ".join(pooled) + "."))

    out.append(("h2", "Final metrics per seed"))
    for m in metrics:
        img = plots.final_metric(trials, m, variants)
        out.append(("img", f"final_{m}", img, f"final {m}: box over seeds, one point per seed")
                   if img else ("p", f"final {m}: no run has a value."))

    out.append(("h2", "Learning curves"))
    for m in metrics:
        img = plots.learning_curves(trials, curves, m, variants)
        out.append(("img", f"curve_{m}", img, f"{m} vs step: mean over seeds, band from min to max")
                   if img else ("p", f"{m}: no curve values."))

    grids = plots.sample_grids(trials, curves, variants, results_dir)
    if grids:
        out.append(("h2", "Samples"))
        out.append(("img", "grids", grids, "last evaluation of the lowest seed per variant: generated, "
                                          "lensed real (lens variants) and real images"))
        lens = plots.lens_progress(trials, curves, variants, results_dir)
        if lens:
            out.append(("img", "lens_progress", lens, "the lens over training: generated (top) and lensed "
                                                      "real images (bottom) at each evaluation"))
    else:
        out.append(("h2", "Real vs generated samples"))
        img = plots.scatter(trials, samples, variants)
        caption = "last samples of the lowest seed per variant: real (grey), generated (blue), lensed real (orange)"
        out.append(("img", "samples", img, caption) if img else ("p", "No samples were stored."))

    out.append(("h2", "Study file"))
    out.append(("pre", study_text) if study_text else ("p", f"No {results.STUDY} in {results_dir}."))

    out.append(("h2", "Environment"))
    env = environment(trials)
    out.append(("table", ["", "value"], env) if env else ("p", "No environment columns."))
    return name, out


def build_report(results_dir: Path, out_dir: Path | None = None) -> dict[str, Path]:
    """Write report.html and report.md (with its PNGs under figures/) into out_dir (default results_dir)."""
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir
    with plots.themed():
        name, bl = blocks(results_dir)
    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for old in figures.glob("*.png"):  # figures of an earlier build that this one may not redraw
        old.unlink()
    for b in bl:
        if b[0] == "img":
            (figures / f"{b[1]}.png").write_bytes(b[2])
    paths = {"html": out_dir / "report.html", "md": out_dir / "report.md"}
    paths["html"].write_text(html.to_html(bl, f"ganbench report: {name}"), encoding="utf-8")
    paths["md"].write_text(html.to_markdown(bl), encoding="utf-8")
    return paths
