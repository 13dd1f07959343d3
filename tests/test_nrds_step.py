"""The study-level NRDS step (bench.nrds_step): groups, scoring one group from disk, nrds.parquet."""

import io
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bench import nrds_step, results
from pydantic import ValidationError

from bench.schema import TrialConfig, flat_config

SETTINGS = {"epochs": 3, "batch_size": 8, "width": 0.125}


def _row(tid, structure="ed//gan", w=0.01, optimizer="adam", seed=0, task="inpaint", status="ok", outputs=True,
         nrds_samples=12):
    over = {"dataset": {"name": "digits", "image_size": 32}, "model": {"name": "encdec", "width": 8, "z_dim": 16},
            "train": {"optimizer": optimizer, "nrds_samples": nrds_samples},
            "variant": {"structure": structure, "task": task, "w": w}, "seed": seed}
    if structure == "gan":
        over = {"dataset": {"name": "digits"}, "model": {"name": "dcgan"}, "seed": seed}
    cfg = TrialConfig.model_validate(over).model_dump(mode="json")
    if structure == "ed//gan":
        cfg["variant"]["g_res_steps"] = 3  # ED-only field that differs by structure: not a grouping column
    return {"study": "s", "trial_id": tid, **flat_config(cfg), "status": status,
            "diverged_step": 7 if status == "diverged" else None,
            "outputs_path": f"outputs/{tid}.npz" if (outputs and status == "ok") else None,
            "config": json.dumps(cfg, sort_keys=True)}


def test_groups_by_seed_optimizer_task_and_skip_gan_and_singletons():
    rows = [_row("a0", "ed+gan", 1e-3), _row("a1", "ed+gan2", 1e-2), _row("a2", "ed//gan", 1.0),
            _row("a3", "ed//gan", 0.1, status="diverged"), _row("a4", "ed+gan", 0.1, status="failed"),
            _row("b0", "ed+gan", seed=1), _row("b1", "ed//gan", seed=1),
            _row("c0", "ed+gan", optimizer="sgd"), _row("c1", "ed//gan", optimizer="sgd"),
            _row("d0", "ed+gan", task="downsample"), _row("d1", "ed//gan", task="downsample"),
            _row("e0", "ed+gan", seed=2), _row("e1", "ed//gan", seed=2, status="diverged"),  # 1 ok: not scored
            _row("f0", "ed+gan", seed=3),  # singleton
            _row("g0", "gan"), _row("g1", "gan")]
    groups = nrds_step.nrds_groups(pd.DataFrame(rows))
    assert sorted(groups.values()) == [["a0", "a1", "a2", "a3"], ["b0", "b1"], ["c0", "c1"], ["d0", "d1"]]
    key = next(k for k, v in groups.items() if v[0] == "a0")
    assert key.startswith("digits/inpaint/adam/seed0/")
    assert nrds_step.nrds_groups(pd.DataFrame()) == {}


def _write_study(tmp_path, n=12, ids=("t_a", "t_b", "t_c")):
    """A results folder with three ED trials' npz outputs on `digits` (two ok, of different quality,
    plus one diverged) and the trials.parquet rows that point to them."""
    from bench.data.images import digits

    d = tmp_path / "res"
    rows = [_row(ids[0], "ed+gan", 0.01), _row(ids[1], "ed//gan", 0.01), _row(ids[2], "ed+gan2", 0.01, status="diverged")]
    cfg = TrialConfig.model_validate(json.loads(rows[0]["config"]))
    data = digits(cfg.dataset)
    index = np.arange(n, dtype=np.int64) * 3
    clean = data.test[index].numpy()
    rng = np.random.default_rng(0)
    outs = {ids[0]: np.clip(clean.astype(int) + rng.integers(-20, 20, clean.shape), 0, 255).astype(np.uint8),
            ids[1]: rng.integers(0, 256, clean.shape).astype(np.uint8)}
    for tid, out in outs.items():
        buf = io.BytesIO()
        np.savez_compressed(buf, outputs=out, index=index, labels=data.test_labels[index].numpy())
        (d / "outputs").mkdir(parents=True, exist_ok=True)
        (d / "outputs" / f"{tid}.npz").write_bytes(buf.getvalue())
    results.write_parquet(pd.DataFrame(rows), d / results.TRIALS)
    return d, rows


def test_run_nrds_group_scores_and_writes_without_duplicates(tmp_path):
    d, _ = _write_study(tmp_path)
    groups = nrds_step.nrds_groups(results.read_parquet(d / results.TRIALS))
    assert len(groups) == 1
    (group, ids), = groups.items()
    assert ids == ["t_a", "t_b", "t_c"]

    out = nrds_step.run_nrds_group(d, group, ids, SETTINGS)
    by = {r["trial_id"]: r for r in out}
    assert math.isclose(by["t_a"]["score"] + by["t_b"]["score"], 1.0, rel_tol=1e-9)
    assert by["t_a"]["score"] > 0 and by["t_b"]["score"] > 0
    assert math.isnan(by["t_c"]["score"]) and "diverged" in by["t_c"]["note"]
    assert len(by["t_a"]["curve"]) == 3 and len(by["t_a"]["real_curve"]) == 3
    assert by["t_a"]["n_real"] == 12 and by["t_a"]["n_fake"] == 12 and by["t_a"]["epochs"] == 3
    assert json.loads(by["t_a"]["settings"])["epochs"] == 3

    c1 = nrds_step.run_nrds(d, SETTINGS)
    assert c1["scored"] == 1 and c1["failed"] == 0
    df = results.load_nrds(d)
    assert len(df) == 3 and set(nrds_step.COLUMNS) <= set(df.columns)
    ok = df[df["status"] == "ok"]
    assert math.isclose(ok["score"].sum(), 1.0, rel_tol=1e-9)
    assert list(df[df["trial_id"] == "t_a"]["curve"].iloc[0]) == pytest.approx(by["t_a"]["curve"])  # deterministic
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave no temp files

    c2 = nrds_step.run_nrds(d, SETTINGS)  # unchanged group: skipped, nothing rewritten
    assert c2["scored"] == 0 and c2["skipped"] == 1
    c3 = nrds_step.run_nrds(d, SETTINGS, force=True)  # recomputed: rows replaced, never duplicated
    assert c3["scored"] == 1
    assert len(results.load_nrds(d)) == 3
    # a changed output changes the group hash: the group is recomputed
    p = d / "outputs" / "t_b.npz"
    z = dict(np.load(p))
    z["outputs"] = 255 - z["outputs"]
    buf = io.BytesIO()
    np.savez_compressed(buf, **z)
    p.write_bytes(buf.getvalue())
    assert nrds_step.run_nrds(d, SETTINGS)["scored"] == 1
    assert len(results.load_nrds(d)) == 3
    # settings differing from the last run (here: the study.yaml defaults) also recompute
    assert nrds_step.study_settings(d) == {"epochs": 20, "batch_size": 64, "width": 0.25}


def test_nrds_cli_recomputes_from_disk(tmp_path):
    d, _ = _write_study(tmp_path)
    (d / results.STUDY).write_text("name: s\nnrds: {epochs: 2, batch_size: 4, width: 0.125}\n")
    assert nrds_step.study_settings(d) == {"epochs": 2, "batch_size": 4, "width": 0.125}
    r = subprocess.run([sys.executable, "-m", "bench.cli", "nrds", str(d)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "1 scored" in r.stdout
    df = results.load_nrds(d)
    assert len(df) == 3 and set(df["epochs"]) == {2}


def test_study_nrds_block_is_validated_and_not_in_trials():
    from bench.schema import Study
    from bench.study import expand

    s = Study.model_validate({"name": "x", "nrds": {"epochs": 5}})
    assert s.nrds.epochs == 5 and s.nrds.batch_size == 64 and s.nrds.width == 0.25
    assert "nrds" not in s.base_config() and all("nrds" not in t for t in expand(s))
    assert expand(s)[0]["trial_id"] == expand(Study.model_validate({"name": "x"}))[0]["trial_id"]
    for bad in ({"epochs": 1}, {"width": 0}, {"batch": 3}):
        with pytest.raises(ValidationError):
            Study.model_validate({"name": "x", "nrds": bad})


ED_MICRO = """
name: ed_micro
dataset: {name: digits, image_size: 32}
model: {name: encdec, width: 8, z_dim: 16, init: dcgan}
train: {steps: 4, batch_size: 16, eval_every: 4, eval_samples: 40, nrds_samples: 24, lr: 2.0e-4}
variant: {objective: ns, structure: ed//gan, task: inpaint, w: 0.01}
sweep:
  axes:
    variant.structure: [ed+gan, ed//gan]
  seeds: [0]
nrds: {epochs: 3, batch_size: 8, width: 0.125}
resources: {cpu: 1, gpu: 0}
"""


@pytest.mark.slow  # slow: test_nrds_cli_recomputes_from_disk covers the NRDS step in the default suite
def test_ed_study_on_local_ray_writes_nrds(tmp_path):  # ~25 s: three runs, each starting a local Ray
    from conftest import GANBENCH, ROOT

    study = tmp_path / "ed_micro.yaml"
    study.write_text(ED_MICRO)
    out = tmp_path / "res"
    p = subprocess.run([GANBENCH, "run", str(study), "--results", str(out), "--no-report"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "NRDS: 1 group(s) scored" in p.stderr
    df = results.load_nrds(out)
    assert len(df) == 2 and (df["status"] == "ok").all()
    assert math.isclose(df["score"].sum(), 1.0, rel_tol=1e-9)
    assert set(df["n_fake"]) == {24} and set(df["epochs"]) == {3}

    # Every trial finished, but the nrds block changed: the rerun runs no trial and rescores the group.
    study.write_text(ED_MICRO.replace("nrds: {epochs: 3,", "nrds: {epochs: 2,"))
    p = subprocess.run([GANBENCH, "run", str(study), "--results", str(out), "--no-report"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "all 2 trials already finished" in p.stderr and "NRDS: 1 group(s) scored" in p.stderr
    df = results.load_nrds(out)
    assert len(df) == 2 and set(df["epochs"]) == {2}
    # Nothing stale: no Ray, no NRDS line.
    p = subprocess.run([GANBENCH, "run", str(study), "--results", str(out), "--no-report"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and "NRDS" not in p.stderr, p.stderr[-3000:]
