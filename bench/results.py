"""The results folder: Parquet schema, atomic writes, load().

results/<study>/
  study.yaml        the study as run (after --set overrides); earlier versions kept as study-<hash>.yaml
  trials.parquet    one row per trial: ids, every config field as a column, status, final.* and best.*
                    metric values, steps done, wall seconds, versions, git commit; a random study with
                    variants also says which stage (1, 2) and which sampled point (`sample`) each row is,
                    and the sampled knobs that apply to it (`knobs`, JSON)
  curves/<trial_id>.parquet  that trial's rows, one per evaluation step, written as each evaluation
                    arrives (live curves of a running study); `curves/*.parquet` is one table.
                    (Folders written before schema version 2 have one curves.parquet instead; load()
                    reads both.)
  samples/<trial_id>.parquet  toys: the last evaluation's points (kind: real / generated / lensed) for
                    scatter plots (samples.parquet in folders before schema version 2)
  grids/, samples/, outputs/  the trials' artifacts (bench.artifacts): image grids of every evaluation
                    (curves columns `grid_<kind>`), the toys' last samples, the ED structures' final
                    test outputs for NRDS (trials column `outputs_path`)
  nrds.parquet      ED structures: the study-level NRDS per comparison group and trial (bench.nrds_step)
  progress.json     the running study's expected / running trial ids (for `ganbench status`)
  runs.json         one entry per `ganbench run` of the folder: start, measured wall seconds (Ray start to the
                    last trial), trials finished, slots; the report's elapsed time is their sum

Every table has one fixed Arrow schema (types from the config schema, bench.schema.column_types, and
the metric registry, bench.metrics.INFO; never the `null` type), and a `schema_version` column, so the
tables of any two folders concatenate (pandas, polars, DuckDB). Every file is written to a temporary name
and renamed into place, so a reader never sees half a file and an interrupted run leaves the previous
version intact. A trial's rows are keyed by trial_id (the config hash): writing a trial again replaces
its rows, never duplicates them. This module never imports model code.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench import artifacts, catalog
from bench.fsutil import atomic_write
from bench.metrics import INFO

TRIALS, CURVES, SAMPLES, PROGRESS, STUDY = "trials.parquet", "curves", "samples", "progress.json", "study.yaml"
RUNS = "runs.json"  # every `ganbench run` of the folder: its measured wall clock (the report's elapsed time)
LEGACY_CURVES, LEGACY_SAMPLES = "curves.parquet", "samples.parquet"  # schema version 1: one file each
NRDS = "nrds.parquet"
SCHEMA_VERSION = 2
FINISHED = ("ok", "diverged")  # statuses that a rerun skips; `failed` trials are retried

# columns whose type is not a config field's or a metric's
FIXED = {"study": "string", "trial_id": "string", "config_hash": "string", "variant": "string", "status": "string",
         "diverged_step": "int64", "error": "string", "steps_done": "int64", "evaluations": "int64",
         "wall_seconds": "float64", "pack_wall_seconds": "float64", "pack_size": "int64", "pack_id": "string",
         "attempts": "int64", "resumed_from_step": "int64", "evaluator": "string",
         "evaluator_id": "string", "evaluator_accuracy": "float64", "torch_version": "string", "device": "string",
         "torch_threads": "int64", "inception_skipped": "string", "outputs_path": "string", "ray_node_id": "string",
         "hostname": "string", "config": "string", "ray_version": "string", "ganbench_version": "string",
         "git_commit": "string", "resources.cpu": "float64", "resources.gpu": "float64", "resources.retries": "int64",
         "step": "int64", "lambda": "float64", "kind": "string", "x": "float64", "y": "float64",
         "schema_version": "int64",
         # random studies with sweep.variants (bench.study): stage 1 or 2, the sampled point's index, and the
         # sampled knobs that apply to the trial as JSON {path: value} (a ratio prior: {path/other: ratio})
         "stage": "int64", "sample": "int64", "knobs": "string",
         # nrds.parquet (bench.nrds_step)
         "group": "string", "score": "float64", "curve": "list", "real_curve": "list", "epochs": "int64",
         "n_real": "int64", "n_fake": "int64", "settings": "string", "note": "string", "group_hash": "string"}


def arrow_type(column: str) -> pa.DataType:
    """The one Arrow type of a column in any table of any results folder."""
    from bench.schema import column_types  # pydantic only

    bare = column.split(".", 1)[1] if column.startswith(("final.", "best.")) else column
    if bare in INFO or column.startswith("loss_"):
        return pa.float64()  # metrics and losses: float64 always (a NaN row must not turn a column into int)
    if column.startswith("grid_"):
        return pa.string()
    name = FIXED.get(column) or column_types().get(column, "string")
    return {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
            "list": pa.list_(pa.float64())}[name]


# Every table's columns, in order, whatever the trials wrote: a column a trial has no value for is a
# typed null, so folders of different studies share one schema. A structure's losses (loss_<name>) and grid kinds
# come from its declaration (bench.catalog), after the columns of the structures that existed first.
LOSSES = tuple(dict.fromkeys(("loss_d", "loss_g", "loss_lens", "loss_rec", "loss_adv", "loss_dz", "loss_prior",
                              "loss_cls", "loss_info", "loss_e", "loss_zrec", "loss_fm", *catalog.losses())))
GRIDS = tuple(f"grid_{k}" for k in dict.fromkeys(("generated", "real", "lensed", "input", "output", "target", "swapped",
                                                  "traversal_c1", "traversal_c2", *catalog.grids())))
IDS = ("study", "trial_id")


def curve_columns() -> list[str]:
    return [*IDS, "step", "lambda", "wall_seconds", *LOSSES, *INFO, "evaluator", "evaluator_id",
            "evaluator_accuracy", *GRIDS]


def trial_columns() -> list[str]:
    from bench.schema import column_types  # pydantic only

    return [*IDS, "config_hash", "variant", "stage", "sample", "knobs", *column_types(), "resources.cpu", "resources.gpu", "resources.retries",
            "status", "diverged_step", "error", "steps_done", "evaluations", "wall_seconds", "pack_wall_seconds",
            "pack_size", "pack_id", "attempts",
            "resumed_from_step", *(f"{w}.{m}" for m in INFO for w in ("final", "best")), "evaluator", "evaluator_id",
            "evaluator_accuracy", "inception_skipped", "outputs_path", "torch_version", "ray_version",
            "ganbench_version", "git_commit", "device", "hostname", "torch_threads", "ray_node_id", "config"]


SAMPLE_COLUMNS = [*IDS, "step", "kind", "x", "y"]


def _text(v):
    return v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)


def to_table(df: pd.DataFrame, columns: list[str] | None = None) -> pa.Table:
    """The DataFrame with every column in its fixed type, plus schema_version; with `columns`, exactly
    those first (typed nulls where absent), then any others."""
    if columns is not None:
        df = df.reindex(columns=[*columns, *(c for c in df.columns if c not in set(columns))])
    df = df.reset_index(drop=True).assign(schema_version=SCHEMA_VERSION)
    columns = {}
    for col in df.columns:
        t, s = arrow_type(col), df[col]
        if pa.types.is_floating(t):
            s = pd.to_numeric(s, errors="coerce").astype("float64")
        elif pa.types.is_integer(t):
            s = pd.to_numeric(s, errors="coerce").astype("Int64")
        elif pa.types.is_boolean(t):
            s = s.astype("boolean")
        elif pa.types.is_list(t):
            s = s.map(lambda v: None if v is None else [float(x) for x in v])
        else:
            s = s.astype(object).map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else _text(v))
        columns[col] = pa.array(s, type=t, from_pandas=True)
    return pa.table(columns)


def write_parquet(df: pd.DataFrame, path: Path, columns: list[str] | None = None) -> None:
    table = to_table(df, columns)
    atomic_write(Path(path), lambda tmp: pq.write_table(table, tmp))


def write_text(text: str, path: Path) -> None:
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


def read_parquet(path: Path) -> pd.DataFrame:
    """A table in its fixed types (also for files an older version wrote with drifting types)."""
    if not Path(path).exists():
        return pd.DataFrame()
    df = pd.read_parquet(path)
    for col in df.columns:
        t = arrow_type(col)
        if pa.types.is_floating(t) and df[col].dtype != "float64":
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    return df


def write_rows(results_dir: Path, table: str, trial_id: str, rows: list[dict]) -> None:
    """One trial's rows of a per-trial table (curves: at every evaluation as rows arrive, and at its end)."""
    if rows:
        columns = curve_columns() if table == CURVES else SAMPLE_COLUMNS if table == SAMPLES else None
        write_parquet(pd.DataFrame(rows), Path(results_dir) / table / f"{trial_id}.parquet", columns)


def read_rows(path: str | Path, table: str, legacy: str) -> pd.DataFrame:
    """Every row of a per-trial table: <table>/*.parquet (and an older folder's single <legacy> file)."""
    path = Path(path)
    frames = [read_parquet(p) for p in sorted((path / table).glob("*.parquet"))]
    old = read_parquet(path / legacy)
    if not old.empty:
        have = {f["trial_id"].iloc[0] for f in frames if not f.empty}
        frames.insert(0, old[~old["trial_id"].isin(have)])
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_curves(path: str | Path) -> pd.DataFrame:
    return read_rows(path, CURVES, LEGACY_CURVES)


def compact(results_dir: str | Path) -> None:
    """A finished folder's per-trial curves/ and samples/ files as one curves.parquet and samples.parquet
    (the single-file form read_rows and upsert already handle): published folders (results/) are a
    twentieth of the size. A later run into the folder writes per-trial files again and drops a rerun
    trial's rows from the single files."""
    results_dir = Path(results_dir)
    for table, single, columns in ((CURVES, LEGACY_CURVES, curve_columns()), (SAMPLES, LEGACY_SAMPLES, SAMPLE_COLUMNS)):
        files = sorted((results_dir / table).glob("*.parquet"))
        if not files:
            continue
        write_parquet(read_rows(results_dir, table, single), results_dir / single, columns)
        for f in files:
            f.unlink()
        if not any((results_dir / table).iterdir()):
            (results_dir / table).rmdir()


def upsert(results_dir: Path, trial_row: dict, curve_rows: list[dict], sample_rows: list[dict]) -> None:
    """Replace (or add) one trial's rows. Curves and samples are written before the trials row, so
    a trial that trials.parquet lists as finished always has its curves on disk."""
    results_dir = Path(results_dir)
    tid = trial_row["trial_id"]
    write_rows(results_dir, CURVES, tid, curve_rows)
    write_rows(results_dir, SAMPLES, tid, sample_rows)
    for name, rows in ((LEGACY_CURVES, []), (LEGACY_SAMPLES, []), (TRIALS, [trial_row])):
        old = read_parquet(results_dir / name)
        if name != TRIALS and (old.empty or tid not in set(old["trial_id"])):
            continue  # an older folder's single file: only to drop a rerun trial's old rows
        if not old.empty:
            old = old[old["trial_id"] != tid]
        new = pd.DataFrame(rows)
        frames = [f for f in (old, new) if not f.empty]
        if frames:
            df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            write_parquet(df, results_dir / name, trial_columns() if name == TRIALS else None)


def load(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, curves) of a results folder as DataFrames, in the fixed column types."""
    path = Path(path)
    if not (path / TRIALS).exists():
        raise FileNotFoundError(f"{path}: no {TRIALS} (not a ganbench results folder, or nothing finished yet)")
    return current_columns(read_parquet(path / TRIALS)), read_curves(path)


def current_columns(trials: pd.DataFrame) -> pd.DataFrame:
    """Rows written before a config field existed have a null in its column where later rows have its default, so
    a study resumed across versions would not pair or group its old rows with its new ones (seen on 2026-12-07:
    lens_k_fmnist_seeds, half its rows before dataset.transform and the DANN options existed, had no pairs). The
    fields added after studies had run are bench.schema.HASH_DROPPED_AT_DEFAULT (with their defaults): a null in one
    of their columns becomes the default (a sub-model's field only where the sub-model is on: a row without a lens
    keeps null lens columns). Values present are never changed. Torch-free (the report reads through it)."""
    from bench.schema import HASH_DROPPED_AT_DEFAULT

    out = None
    for path, default in HASH_DROPPED_AT_DEFAULT.items():
        items = [(".".join(path + (k,)), v) for k, v in default.items()] if isinstance(default, dict) \
            else [(".".join(path), default)]
        for col, value in items:
            if value is None or col not in trials or not trials[col].isna().any():
                continue
            hole = trials[col].isna()
            if len(path) > 2:  # a sub-model's field: only where the sub-model is on (any of its columns set)
                sub = [c for c in trials.columns if c.startswith(".".join(path[:-1]) + ".") and c != col]
                hole &= trials[sub].notna().any(axis=1) if sub else False
            if hole.any():
                out = trials.copy() if out is None else out
                out[col] = out[col].astype(object).where(~hole, value).infer_objects()
    return trials if out is None else out

def question_metrics(path: str | Path) -> list[str]:
    """The metric names the `question:` block of a results folder's study.yaml uses (metric, co_primary,
    secondary, in that order); [] without a question, or where the file cannot be read."""
    import yaml

    f = Path(path) / STUDY
    try:
        study = yaml.safe_load(f.read_text(encoding="utf-8")) if f.exists() else None
    except (yaml.YAMLError, UnicodeDecodeError):
        return []
    q = study.get("question") if isinstance(study, dict) else None
    if not isinstance(q, dict):
        return []
    names = [q.get("metric")]
    for key in ("co_primary", "secondary"):
        names += q[key] if isinstance(q.get(key), list) else []
    return [m for m in dict.fromkeys(names) if isinstance(m, str)]


def with_derived(trials: pd.DataFrame, curves: pd.DataFrame, folders) -> pd.DataFrame:
    """A copy of `trials` with a `final.<name>` column for each derived convergence metric (`auc:<m>`,
    `steps_to_within:<m>`: bench.metrics.derived) that the question of any study in `folders` (one results
    folder or several) names, computed from `curves` (bench.stats.convergence.derived_columns); the report's
    load() attaches them, so every study compared in one report gets the same columns."""
    from bench.metrics import derived
    from bench.stats.convergence import derived_columns

    folders = [folders] if isinstance(folders, (str, Path)) else list(folders)
    names = [m for d in folders for m in question_metrics(d) if derived(m) is not None]
    return derived_columns(trials, curves, names) if names else trials.copy()


def load_samples(path: str | Path) -> pd.DataFrame:
    return read_rows(path, SAMPLES, LEGACY_SAMPLES)


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


def read_runs(path: str | Path) -> list[dict]:
    p = Path(path) / RUNS
    return json.loads(p.read_text()) if p.exists() else []


def record_run(path: str | Path, entry: dict) -> None:
    """Append one `ganbench run`'s measured wall clock to runs.json (atomically)."""
    write_text(json.dumps([*read_runs(path), entry], indent=1), Path(path) / RUNS)


PROTOCOL_KEYS = ("stage", "sample", "knobs")  # what a random study with variants adds to its trials
CURVE_KEYS = ("step", "lambda", "wall_seconds", "evaluator", "evaluator_id", "evaluator_accuracy")


def curve_rows(config: dict, reports: list[dict]) -> list[dict]:
    """The curves rows of a trial's reports (every evaluation but a divergence's final report)."""
    ids = {"study": config["study"], "trial_id": config["trial_id"]}
    return [{**ids, **{k: r[k] for k in r if k in CURVE_KEYS or k.startswith(("loss_", "grid_")) or k in INFO}}
            for r in reports if "step" in r and r.get("status") != "diverged"]


def rows_from_reports(config: dict, reports: list[dict], status: str | None = None, error: str | None = None,
                      provenance: dict | None = None, root: str | Path | None = None) -> tuple[dict, list[dict], list[dict]]:
    """Turn what a trial reported (one dict per evaluation, the last with final=True) into its
    trials row, curve rows and sample rows (read from its samples file under `root`, the artifact
    root). `status` overrides the reported one (e.g. `failed` when the trial raised). Keys Ray adds to
    reports are ignored."""
    from bench.schema import flat_config  # pure data: pydantic models, no torch

    ids = {"study": config["study"], "trial_id": config["trial_id"]}
    curves = curve_rows(config, reports)
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
        **{k: config.get(k) for k in PROTOCOL_KEYS},  # not part of the config (nor of its id)
        **flat_config(config),
        **{f"resources.{k}": v for k, v in (config.get("resources") or {}).items()},  # for CPU/GPU-hours
        "status": status,
        "diverged_step": last.get("diverged_step") if status == "diverged" else None,
        "error": error if error is not None else last.get("error"),
        "steps_done": last.get("step", 0) if status == "ok" else (last.get("diverged_step") or last.get("step", 0)),
        "evaluations": len(curves),
        "wall_seconds": last.get("wall_seconds", math.nan),  # this configuration's share of its pack's time
        "pack_wall_seconds": last.get("pack_wall_seconds", math.nan),
        "pack_size": last.get("pack_size"),
        "pack_id": last.get("pack_id"),
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
        "config": json.dumps({k: config[k] for k in config if k not in ("resources", *PROTOCOL_KEYS)}, sort_keys=True),
        **(provenance or {}),
    }
    return trial, curves, samples



def load_nrds(path: str | Path) -> pd.DataFrame:
    """nrds.parquet of a results folder (bench.nrds_step): one row per (group, trial_id); empty if none."""
    return read_parquet(Path(path) / NRDS)
