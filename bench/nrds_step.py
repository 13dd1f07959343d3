"""NRDS as a study-level step (bench.metrics.nrds): run after the trials of a comparison group finish.

NRDS is relative: one classifier is trained on real vs the POOLED outputs of the compared models, so
a score only means something inside its group. A group is the ED-structure trials (variant.structure
!= "gan") that share every config column except `variant.structure`, `variant.w` and the ED-only
fields that differ by structure (`variant.g_res_steps`), and except where the data lives
(`dataset.data_root`, `dataset.download`): in studies/edgan_fmnist.yaml one group per (optimizer,
seed) holds the 3 structures x 5 weights. Trials that diverged are listed in their group with a NaN
score and a note; `failed` trials are left out (a rerun retries them). Only groups with >= 2 trials
of status ok that saved outputs are scored.

The real set of a group is the same dataset's TEST images at the npz `index` (every trial of a group
saves the same test subset: bench.structures.edgan.Evaluate's fixed permutation and the shared `train.nrds_samples`);
outputs and real images are both used in [-1, 1]. The classifier's seed is the group's `seed`.

results/<study>/nrds.parquet: one row per (group, trial_id): study, group, trial_id, status, score,
curve, real_curve, epochs, n_real, n_fake, settings (JSON), note, group_hash. Written atomically;
rerunning replaces a group's rows, never duplicates them, and a group whose trial ids, outputs and
settings are unchanged since the last NRDS (same group_hash) is skipped.

Torch-free at import: torch and the datasets are imported inside the function that scores a group.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pandas as pd

from bench import artifacts, results
from bench.schema import _TEMPLATE, NrdsCfg, trial_config  # pydantic only: no torch

NRDS = results.NRDS
ED_ONLY_BY_STRUCTURE = ("variant.g_res_steps",)
NOT_GROUPING = ("variant.structure", "variant.w", *ED_ONLY_BY_STRUCTURE, "dataset.data_root", "dataset.download")
DEFAULT_SETTINGS = NrdsCfg().model_dump()  # the study's `nrds:` block defaults
COLUMNS = ("study", "group", "trial_id", "status", "score", "curve", "real_curve", "epochs", "n_real", "n_fake",
           "settings", "note", "group_hash")


# ----------------------------------------------------------------------------- groups
def _config_columns(trials: pd.DataFrame) -> list[str]:
    return [c for c in _TEMPLATE if c in trials.columns and c not in NOT_GROUPING]


def _canon(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if hasattr(v, "item"):  # numpy scalars
        v = v.item()
    return v


def _scoreable(row) -> bool:
    return row["status"] == "ok" and isinstance(row.get("outputs_path"), str) and bool(row.get("outputs_path"))


def group_key(row, columns: list[str]) -> str:
    """A stable, readable key: dataset/task/optimizer/seed plus a hash of every grouping column."""
    values = {c: _canon(row[c]) for c in columns}
    h = hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{values.get('dataset.name')}/{values.get('variant.task')}/{values.get('train.optimizer')}/" \
           f"seed{values.get('seed')}/{h}"


def nrds_groups(trials: pd.DataFrame) -> dict[str, list[str]]:
    """group key -> trial ids (sorted), for the groups that can be scored: ED trials of status ok or
    diverged, grouped by every config column but the structure, w and the structure-specific fields;
    groups with fewer than 2 ok trials with outputs are left out (nothing to compare)."""
    if trials.empty or "variant.structure" not in trials.columns:
        return {}
    ed = trials[(trials["variant.structure"].fillna("gan") != "gan") & trials["status"].isin(["ok", "diverged"])]
    columns = _config_columns(trials)
    groups: dict[str, list] = {}
    for _, row in ed.iterrows():
        groups.setdefault(group_key(row, columns), []).append(row)
    return {k: sorted(r["trial_id"] for r in rows) for k, rows in sorted(groups.items())
            if sum(_scoreable(r) for r in rows) >= 2}


# ----------------------------------------------------------------------------- one group
def _settings(settings) -> dict:
    if settings is None:
        return dict(DEFAULT_SETTINGS)
    if hasattr(settings, "model_dump"):
        settings = settings.model_dump()
    return {**DEFAULT_SETTINGS, **dict(settings)}


def _file_sha1(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest() if Path(path).exists() else "missing"


def prepare_group(results_dir, group: str, trial_ids: list[str], settings=None, trials: pd.DataFrame | None = None) -> dict:
    """Everything scoring a group needs, read on the driver (the trials' rows and their npz bytes), so
    the scoring can run on any Ray worker without a shared filesystem. Includes the group hash."""
    results_dir = Path(results_dir)
    if trials is None:
        trials = results.read_parquet(results_dir / results.TRIALS)
    settings = _settings(settings)
    rows = trials[trials["trial_id"].isin(trial_ids)].set_index("trial_id")
    members, digest = [], []
    for tid in sorted(trial_ids):
        if tid not in rows.index:
            members.append({"trial_id": tid, "status": "missing", "note": "not in trials.parquet"})
            digest.append((tid, "missing"))
            continue
        r = rows.loc[tid]
        m = {"trial_id": tid, "status": r["status"], "study": r.get("study"), "config": r.get("config"),
             "seed": _canon(r.get("seed")), "diverged_step": _canon(r.get("diverged_step"))}
        if _scoreable(r):
            path = results_dir / r["outputs_path"]
            m["npz"] = path.read_bytes() if path.exists() else None
            digest.append((tid, r["status"], _file_sha1(path)))
        else:
            digest.append((tid, r["status"]))
        members.append(m)
    group_hash = hashlib.sha1(json.dumps([digest, settings], sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"group": group, "members": members, "settings": settings, "group_hash": group_hash}


def score_group(payload: dict) -> list[dict]:
    """Score one prepared group (imports torch): the rows of nrds.parquet for it."""
    import numpy as np
    import torch

    from bench import registry
    from bench.metrics.nrds import nrds

    group, settings, members = payload["group"], payload["settings"], payload["members"]
    fakes, notes, index, cfg, seed = {}, {}, None, None, 0
    for m in members:
        if m["status"] == "diverged":
            notes[m["trial_id"]] = f"diverged at step {m.get('diverged_step')}: no outputs, not scored"
        elif m["status"] != "ok":
            notes[m["trial_id"]] = m.get("note") or f"status {m['status']}: not scored"
        elif m.get("npz") is None:
            notes[m["trial_id"]] = "outputs file missing: not scored"
        else:
            z = artifacts.decode_npz(m["npz"])
            idx = z["index"].astype(np.int64)
            if index is None:
                index, cfg, seed = idx, json.loads(m["config"]), int(m.get("seed") or 0)
            elif not np.array_equal(idx, index):
                notes[m["trial_id"]] = "outputs on a different test subset than the group's: not scored"
                continue
            fakes[m["trial_id"]] = torch.from_numpy(z["outputs"].astype(np.float32) / 127.5 - 1.0)
    base = {"study": next((m.get("study") for m in members if m.get("study")), None), "group": group,
            "group_hash": payload["group_hash"]}
    result, real, used = None, None, {}
    if len(fakes) >= 2:
        tc = trial_config(cfg)
        data = registry.get("dataset", tc.dataset.name)(tc.dataset)
        real = data.to_float(data.test[torch.from_numpy(index)])
        n_pool = sum(len(x) for x in fakes.values())
        batch = max(1, min(int(settings["batch_size"]), len(real), n_pool))  # tiny sets: one batch per epoch
        used = {**settings, "batch_size": batch, "seed": seed}
        # the GPU when Ray gave this task one (the study's trials ask for GPUs), else the CPU
        result = nrds(real, fakes, epochs=int(settings["epochs"]), batch_size=batch, seed=seed,
                      width=float(settings["width"]), device="cuda" if torch.cuda.is_available() else "cpu")
    else:
        for tid in fakes:
            notes[tid] = "fewer than 2 trials of the group have outputs: NRDS needs at least 2"
    out = []
    for m in members:
        tid = m["trial_id"]
        scored = result is not None and tid in result.scores
        out.append({**base, "trial_id": tid, "status": m["status"],
                    "score": result.scores[tid] if scored else math.nan,
                    "curve": list(result.curves[tid]) if scored else [],
                    "real_curve": list(result.real_curve) if scored else [],
                    "epochs": int(settings["epochs"]),
                    "n_real": len(real) if scored else 0,
                    "n_fake": len(fakes[tid]) if scored else 0,
                    "settings": json.dumps(result.settings if result is not None else used or settings,
                                           sort_keys=True, default=str),
                    "note": None if scored else notes.get(tid, "not scored")})
    return out


def run_nrds_group(results_dir, group: str, trial_ids: list[str], settings=None) -> list[dict]:
    """Score one group from the results folder on disk (in this process): its nrds.parquet rows."""
    return score_group(prepare_group(results_dir, group, trial_ids, settings))


# ----------------------------------------------------------------------------- the folder
def write_nrds(results_dir, rows: list[dict]) -> None:
    """Replace the rows of every group in `rows` (keyed by group, trial_id), atomically."""
    if not rows:
        return
    path = Path(results_dir) / NRDS
    new = pd.DataFrame(rows, columns=list(COLUMNS))
    old = results.read_parquet(path)
    if not old.empty:
        old = old[~old["group"].isin(set(new["group"]))]
    df = pd.concat([old, new], ignore_index=True) if not old.empty else new
    df = df.drop_duplicates(["group", "trial_id"], keep="last").sort_values(["group", "trial_id"])
    results.write_parquet(df, path)


def study_settings(results_dir) -> dict:
    """The `nrds` block of the results folder's study.yaml (defaults where absent)."""
    import yaml

    p = Path(results_dir) / results.STUDY
    raw = (yaml.safe_load(p.read_text()) or {}) if p.exists() else {}
    return NrdsCfg.model_validate(raw.get("nrds") or {}).model_dump()


def stale_groups(results_dir, settings=None, force: bool = False) -> tuple[list[dict], int]:
    """The prepared payloads of the groups whose group hash differs from the one in nrds.parquet (every
    group with force), and the number of groups. Reads only the results folder: no Ray, no torch."""
    results_dir = Path(results_dir)
    settings = _settings(study_settings(results_dir) if settings is None else settings)
    trials = results.read_parquet(results_dir / results.TRIALS)
    groups = nrds_groups(trials)
    old = results.read_parquet(results_dir / NRDS)
    done = {} if old.empty or "group_hash" not in old else dict(zip(old["group"], old["group_hash"]))
    payloads = [prepare_group(results_dir, g, ids, settings, trials) for g, ids in groups.items()]
    return [p for p in payloads if force or done.get(p["group"]) != p["group_hash"]], len(groups)


def run_nrds(results_dir, settings=None, use_ray: bool = False, force: bool = False, log=None,
             stale: tuple[list[dict], int] | None = None, gpu: float = 0) -> dict:
    """Score every group of the folder whose group hash changed (all with force); with use_ray each
    group is a Ray task (num_cpus=1, num_gpus=gpu) on the cluster ray is connected to. `stale`: stale_groups' answer
    when the caller already has it (not read again). Returns counts."""
    results_dir = Path(results_dir)
    todo, n_groups = stale if stale is not None else stale_groups(results_dir, settings, force)
    counts = {"groups": n_groups, "scored": 0, "skipped": n_groups - len(todo), "failed": 0}
    if not todo:
        return counts
    rows, errors = [], []
    if use_ray:
        import ray

        task = ray.remote(num_cpus=1, num_gpus=gpu)(score_group)
        refs = {p["group"]: task.remote(p) for p in todo}
        for g, ref in refs.items():
            try:
                rows += ray.get(ref)
                write_nrds(results_dir, rows)  # each finished group lands at once
                counts["scored"] += 1
            except Exception as e:  # noqa: BLE001 - one bad group must not lose the others
                errors.append(f"{g}: {e}")
    else:
        for p in todo:
            try:
                rows += score_group(p)
                write_nrds(results_dir, rows)
                counts["scored"] += 1
            except Exception as e:  # noqa: BLE001
                errors.append(f"{p['group']}: {e}")
    counts["failed"] = len(errors)
    if errors and log:
        for e in errors:
            log(f"NRDS failed for group {e}")
    counts["errors"] = errors
    return counts


def stage(trials: list[dict], results_dir, settings, log, stale=None) -> dict | None:
    """The study's NRDS stage, after its trials: one Ray task per stale comparison group, on the cluster
    the study ran on (ray must be connected). Only for studies with ED trials; a failing NRDS never fails
    the study (the trials' rows are already on disk). `stale`: stale_groups' answer when the caller has it."""
    if not has_ed_trials(trials):
        return None
    gpu = max(float((t.get("resources") or {}).get("gpu", 0)) for t in trials)  # NRDS where the trials ran
    try:
        counts = run_nrds(results_dir, settings, use_ray=True, log=log, stale=stale, gpu=gpu)
    except Exception as e:  # noqa: BLE001
        log(f"NRDS failed: {e}  (recompute with: ganbench nrds {results_dir})")
        return None
    log(f"NRDS: {counts['scored']} group(s) scored, {counts['skipped']} unchanged, {counts['failed']} failed "
        f"-> {Path(results_dir) / NRDS}")
    return counts


def has_ed_trials(trials: list[dict]) -> bool:
    """Trials of a structure that declares the NRDS section (the encoder-decoders), with NRDS samples."""
    from bench import catalog

    scored = catalog.with_section("nrds")
    return any(t["variant"].get("structure", "gan") in scored and t["train"].get("nrds_samples", 0) > 0
               for t in trials)


__all__ = [
    "NRDS",
    "has_ed_trials",
    "nrds_groups",
    "prepare_group",
    "run_nrds",
    "run_nrds_group",
    "score_group",
    "stage",
    "stale_groups",
    "study_settings",
    "write_nrds",
]
