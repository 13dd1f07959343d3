"""The results folder: Parquet schema, atomic writes, load().

results/<study>/
  study.yaml        the study as run (after --set overrides); earlier versions kept as study-<hash>.yaml
  trials.parquet    one row per trial: ids, every config field as a column, status, final.* and best.*
                    metric values, steps done, wall seconds, versions, git commit
  curves.parquet    one row per trial and evaluation step
  samples.parquet   a few final samples per trial (kind: real / generated / lensed) for scatter plots
  grids/, samples/, outputs/  the trials' artifacts (bench.artifacts): image grids of every evaluation
                    (curves columns `grid_<kind>`), the toys' last samples, the ED structures' final
                    test outputs for NRDS (trials column `outputs_path`)
  nrds.parquet      ED structures: the study-level NRDS per comparison group and trial (bench.nrds_step)
  progress.json     the running study's expected / running trial ids (for `ganbench status`)

Every file is written to a temporary name and renamed into place, so a reader never sees half a file
and an interrupted run leaves the previous version intact. A trial's rows are keyed by trial_id (the
config hash): writing a trial again replaces its rows, never duplicates them.
This module never imports model code.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench import artifacts
from bench.fsutil import atomic_write
from bench.metrics import INFO

TRIALS, CURVES, SAMPLES, PROGRESS, STUDY = "trials.parquet", "curves.parquet", "samples.parquet", "progress.json", "study.yaml"
NRDS = "nrds.parquet"
FINISHED = ("ok", "diverged")  # statuses that a rerun skips; `failed` trials are retried


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    atomic_write(Path(path), lambda tmp: pq.write_table(table, tmp))


def write_text(text: str, path: Path) -> None:
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


def read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if Path(path).exists() else pd.DataFrame()


def upsert(results_dir: Path, trial_row: dict, curve_rows: list[dict], sample_rows: list[dict]) -> None:
    """Replace (or add) one trial's rows. Curves and samples are written before the trials row, so
    a trial that trials.parquet lists as finished always has its curves on disk."""
    results_dir = Path(results_dir)
    tid = trial_row["trial_id"]
    for name, rows in ((CURVES, curve_rows), (SAMPLES, sample_rows), (TRIALS, [trial_row])):
        old = read_parquet(results_dir / name)
        if not old.empty:
            old = old[old["trial_id"] != tid]
        new = pd.DataFrame(rows)
        frames = [f for f in (old, new) if not f.empty]
        if frames:
            df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            write_parquet(df, results_dir / name)


def load(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, curves) of a results folder as DataFrames."""
    path = Path(path)
    if not (path / TRIALS).exists():
        raise FileNotFoundError(f"{path}: no {TRIALS} (not a ganbench results folder, or nothing finished yet)")
    return read_parquet(path / TRIALS), read_parquet(path / CURVES)


def load_samples(path: str | Path) -> pd.DataFrame:
    return read_parquet(Path(path) / SAMPLES)


def finished_ids(path: str | Path) -> set[str]:
    trials = read_parquet(Path(path) / TRIALS)
    return set() if trials.empty else set(trials.loc[trials["status"].isin(FINISHED), "trial_id"])


def metric_summary(curve_rows: list[dict], status: str) -> dict:
    """final.<m> = value at the last evaluation of a run that finished (NaN for a diverged run, which
    has no final model); best.<m> = best value over its evaluations (before divergence)."""
    out = {}
    for m, (higher, _) in INFO.items():
        vals = [r[m] for r in curve_rows if m in r and r[m] is not None and not math.isnan(r[m])]
        out[f"final.{m}"] = curve_rows[-1].get(m, math.nan) if (status == "ok" and curve_rows) else math.nan
        out[f"best.{m}"] = (max(vals) if higher else min(vals)) if vals else math.nan
    return out


def read_progress(path: str | Path) -> dict:
    p = Path(path) / PROGRESS
    return json.loads(p.read_text()) if p.exists() else {}


def write_progress(path: str | Path, progress: dict) -> None:
    write_text(json.dumps(progress, indent=1), Path(path) / PROGRESS)


CURVE_KEYS = ("step", "lambda", "wall_seconds", "evaluator", "evaluator_id", "evaluator_accuracy")


def rows_from_reports(config: dict, reports: list[dict], status: str | None = None, error: str | None = None,
                      provenance: dict | None = None, root: str | Path | None = None) -> tuple[dict, list[dict], list[dict]]:
    """Turn what a trial reported (one dict per evaluation, the last with final=True) into its
    trials row, curve rows and sample rows (read from its samples file under `root`, the artifact
    root). `status` overrides the reported one (e.g. `failed` when the trial raised). Keys Ray adds to
    reports are ignored."""
    from bench.schema import flat_config  # pure data: pydantic models, no torch

    ids = {"study": config["study"], "trial_id": config["trial_id"]}
    curves = [{**ids, **{k: r[k] for k in r if k in CURVE_KEYS or k.startswith(("loss_", "grid_")) or k in INFO}}
              for r in reports if "step" in r and r.get("status") != "diverged"]
    last = reports[-1] if reports else {}
    status = status or (last.get("status") if last.get("final") else "failed")
    if status == "failed" and error is None:
        error = "trial ended without a final report"
    samples = []
    if last.get("samples_path") and root is not None and (Path(root) / last["samples_path"]).exists():
        samples = artifacts.sample_rows(root, last["samples_path"], ids, last.get("samples_step", last.get("step")))
    trial = {
        **ids,
        "config_hash": config["trial_id"],
        "variant": config.get("variant_label"),
        **flat_config(config),
        **{f"resources.{k}": v for k, v in (config.get("resources") or {}).items()},  # for CPU/GPU-hours
        "status": status,
        "diverged_step": last.get("diverged_step") if status == "diverged" else None,
        "error": error if error is not None else last.get("error"),
        "steps_done": last.get("step", 0) if status == "ok" else (last.get("diverged_step") or last.get("step", 0)),
        "evaluations": len(curves),
        "wall_seconds": last.get("wall_seconds", math.nan),
        **metric_summary(curves, status),
        **{k: next((r[k] for r in reversed(curves) if r.get(k) is not None), None)
           for k in ("evaluator", "evaluator_id", "evaluator_accuracy")},
        "attempts": last.get("attempts", last.get("attempt", 1 if reports else 0)),
        "resumed_from_step": last.get("resumed_from_step", 0),
        "torch_version": last.get("torch_version"),
        "device": last.get("device"),
        "torch_threads": last.get("torch_threads"),
        "inception_skipped": last.get("inception_skipped"),
        "outputs_path": last.get("outputs_path") if status == "ok" else None,
        "ray_node_id": last.get("ray_node_id"),
        "hostname": last.get("hostname"),
        "config": json.dumps({k: config[k] for k in config if k not in ("resources",)}, sort_keys=True),
        **(provenance or {}),
    }
    return trial, curves, samples



def load_nrds(path: str | Path) -> pd.DataFrame:
    """nrds.parquet of a results folder (bench.nrds_step): one row per (group, trial_id); empty if none."""
    return read_parquet(Path(path) / NRDS)
