"""`ganbench publish SRC DEST`: a finished results folder as a small, self-describing copy to commit
(results/<study>/): the tables, the study file and the report, none of what only a rerun needs.

Kept: trials.parquet and nrds.parquet as they are; curves and samples joined into one curves.parquet
and samples.parquet (bench.results.compact's layout); study*.yaml, packs.json, runs.json; the report, rebuilt in
DEST with --link-images. Image grids: only those the report draws, i.e. for each configuration (every
field but the seed) its lowest-seed trial's last evaluation (its last six with a lens: the lens-progress
figure), identical grids (the same test inputs in every ED trial) stored once. The curves' grid columns
then name published files only (a grid that is not published reads as not saved). Toy samples: the
lowest-seed trials' (the scatter plots'); in a random study (rows with `stage`) only those of each variant's
default point and stage-2 points. Not kept: checkpoints (ray/), ED outputs/ and .npz samples
(trials.parquet still names them: a rerun writes them again), logs, progress.json.

DEST is built under a temporary name beside it and renamed into place: an interrupted publish leaves no
half folder, and an earlier published DEST is replaced whole. SRC is only read. Never imports model code.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd

from bench import results
from bench.status import status_counts
from bench.study import StudyError

LENS_STEPS = 6  # evaluations of a lens trial that bench.report.plots.lens_progress draws
COPIED = (results.TRIALS, results.NRDS, "packs.json", results.RUNS)


def _lowest_seed_ids(trials: pd.DataFrame) -> set[str]:
    """Per configuration but the seed, the trial with the lowest seed (every figure's pick)."""
    def key(row):
        cfg = json.loads(row["config"]) if isinstance(row.get("config"), str) else {}
        cfg.pop("seed", None), cfg.pop("trial_id", None)  # the id hashes the seed: every trial would be its own
        return json.dumps(cfg, sort_keys=True, default=str) if cfg else row["variant"]

    t = trials.assign(_key=[key(r) for _, r in trials.iterrows()])
    if "stage" in t and t["stage"].notna().any():
        # a random study: its pages draw each variant's default point (lowest sample of stage 1) and its
        # stage-2 points, never the hundreds of other sampled points (their samples would be most of the folder)
        stage = pd.to_numeric(t["stage"], errors="coerce")
        one = t[stage == 1].assign(_s=pd.to_numeric(t["sample"], errors="coerce"))
        default = one.sort_values(["_s", "trial_id"]).groupby("variant", sort=False).head(1)
        t = t[t["_key"].isin(set(default["_key"]) | set(t.loc[stage == 2, "_key"]))]
    return set(t.sort_values(["seed", "trial_id"]).groupby("_key", sort=False).head(1)["trial_id"])


def _grids(src: Path, tmp: Path, curves: pd.DataFrame, keep_ids: set[str]) -> tuple[pd.DataFrame, int]:
    """Copy the drawn grids (one copy per distinct image) and point the curves' grid columns at them."""
    cols = [c for c in curves.columns if c.startswith("grid_")]
    if not cols:
        return curves, 0
    drawn = set()
    for tid, c in curves[curves["trial_id"].isin(keep_ids)].groupby("trial_id"):
        c = c.sort_values("step")
        lensed = "grid_lensed" in c and c["grid_lensed"].notna().any()
        for _, row in (c.tail(LENS_STEPS) if lensed else c.tail(1)).iterrows():
            drawn |= {row[g] for g in cols if isinstance(row[g], str)}
    canonical, by_hash = {}, {}
    for rel in sorted(drawn):
        f = src / rel
        if not f.exists():
            continue
        h = hashlib.sha256(f.read_bytes()).hexdigest()
        if h not in by_hash:
            by_hash[h] = rel
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, tmp / rel)
        canonical[rel] = by_hash[h]
    curves = curves.copy()
    for g in cols:
        curves[g] = curves[g].map(lambda r: canonical.get(r) if isinstance(r, str) else None)
    return curves, len(by_hash)


def publish(src: str | Path, dest: str | Path) -> dict:
    """Write the trimmed copy of results folder SRC to DEST; returns what it holds."""
    src, dest = Path(src), Path(dest)
    if not (src / results.TRIALS).exists():
        raise StudyError(src, results.TRIALS, "not found: not a ganbench results folder, or nothing finished yet")
    if dest.resolve() == src.resolve():
        raise StudyError(dest, "DEST", "is SRC: publish writes a trimmed copy and never edits the run's folder")
    if dest.exists() and any(dest.iterdir()) and not (dest / results.TRIALS).exists():
        raise StudyError(dest, "DEST", "exists and is not a results folder: refusing to replace it")
    counts = status_counts(src)
    if counts["running"]:
        raise StudyError(src, results.PROGRESS, f"{counts['running']} trial(s) still running: publish when it ends")
    trials = results.read_parquet(src / results.TRIALS)
    keep = _lowest_seed_ids(trials)

    tmp = dest.parent / f".{dest.name}.publishing"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name in COPIED:
            if (src / name).exists():
                shutil.copy2(src / name, tmp / name)
        for f in src.glob("study*.yaml"):
            shutil.copy2(f, tmp / f.name)
        curves, n_grids = _grids(src, tmp, results.read_curves(src), keep)
        results.write_parquet(curves, tmp / results.LEGACY_CURVES, results.curve_columns())
        samples = results.load_samples(src)
        if not samples.empty:
            samples = samples[samples["trial_id"].isin(keep)]
            results.write_parquet(samples, tmp / results.LEGACY_SAMPLES, results.SAMPLE_COLUMNS)
        from bench.report import build_report  # plotting libraries load only once the copy is made

        build_report([tmp], tmp, link_images=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = dest.parent / f".{dest.name}.replaced"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    try:
        tmp.rename(dest)
    except BaseException:
        if old.exists():
            old.rename(dest)
        raise
    shutil.rmtree(old, ignore_errors=True)
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    return {"trials": len(trials), "finished": counts["ok"] + counts["diverged"], "expected": counts["expected"],
            "grids": n_grids, "bytes": size}
