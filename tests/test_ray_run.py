"""End to end on a real local Ray: study file -> Ray Tune -> Parquet -> report, then resume."""

import subprocess

import pandas as pd
import pytest

from bench import results
from conftest import GANBENCH, ROOT

MICRO = """
name: micro
description: four tiny trials, two of them with an absurd learning rate
dataset: {name: ring8, std: 0.02}
model: {name: mlp, width: 32, depth: 2, z_dim: 2}
train: {steps: 100, batch_size: 64, eval_every: 50, eval_samples: 500}
variant: {objective: ns}
sweep:
  axes:
    variant.objective: [ns, lsgan]
  cases:
    - {train.optimizer: adam}
    - {train.optimizer: sgd, train.lr: 1.0e+12}
  seeds: [0]
resources: {cpu: 1, gpu: 0}
"""


def _run(args, cwd):
    return subprocess.run([GANBENCH, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_micro_study_on_local_ray_then_resume(tmp_path):
    study = tmp_path / "micro.yaml"
    study.write_text(MICRO)
    out = tmp_path / "res"
    p = _run(["run", str(study), "--results", str(out)], ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Trial name" not in p.stdout + p.stderr  # one progress line, not Ray's tables
    assert "micro: 2 ok, 2 diverged, 0 failed" in p.stderr

    trials, curves = results.load(out)
    assert len(trials) == 4 and trials["trial_id"].is_unique
    by_opt = trials.groupby("train.optimizer")["status"].apply(sorted).to_dict()
    assert by_opt == {"adam": ["ok", "ok"], "sgd": ["diverged", "diverged"]}
    ok = trials[trials.status == "ok"]
    assert (ok["steps_done"] == 100).all() and (ok["torch_threads"] == 1).all()
    assert ok["final.energy_distance"].notna().all()
    assert set(ok["ray_version"]) == {"2.60.0"} and ok["git_commit"].notna().all()
    assert curves.groupby("trial_id").size().loc[ok["trial_id"]].tolist() == [3, 3]
    assert (out / "study.yaml").exists() and (out / "report.html").exists() and (out / "report.md").exists()

    st = _run(["status", str(out)], ROOT)
    assert st.returncode == 0 and "4/4 done (2 ok, 2 diverged)" in st.stdout and "0 running" in st.stdout

    # Running again does nothing and duplicates nothing.
    p = _run(["run", str(study), "--results", str(out), "--no-report"], ROOT)
    assert p.returncode == 0 and "all 4 trials already finished" in p.stderr
    assert len(results.load(out)[0]) == 4

    # A second seed adds exactly the new trials; the finished ones are kept as they were.
    p = _run(["run", str(study), "--results", str(out), "--no-report", "--set", "sweep.seeds=[0, 1]"], ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "4 of 8 trials already finished, running 4" in p.stderr
    after, curves2 = results.load(out)
    assert len(after) == 8 and after["trial_id"].is_unique
    assert not curves2.duplicated(["trial_id", "step"]).any()
    kept = after.set_index("trial_id").loc[trials["trial_id"], "wall_seconds"]
    pd.testing.assert_series_equal(kept, trials.set_index("trial_id")["wall_seconds"])
    assert list(out.glob("study-*.yaml"))  # the earlier study file is kept beside the new one


OPTUNA = """
name: optuna_micro
dataset: {name: ring8}
model: {width: 16}
train: {steps: 40, batch_size: 32, eval_every: 20, eval_samples: 300}
sweep:
  method: optuna
  num_samples: 3
  metric: energy_distance
  mode: min
  axes:
    train.lr: {dist: loguniform, low: 1.0e-4, high: 1.0e-2}
    variant.objective: [ns, lsgan]
"""


@pytest.mark.slow  # slow: the Optuna searcher on Ray; test_micro_study_on_local_ray_then_resume covers Ray Tune in the default suite
def test_optuna_study_on_local_ray(tmp_path):
    study = tmp_path / "optuna.yaml"
    study.write_text(OPTUNA)
    out = tmp_path / "res"
    p = _run(["run", str(study), "--results", str(out), "--no-report"], ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    trials, curves = results.load(out)
    assert len(trials) == 3 and (trials["status"] == "ok").all() and trials["trial_id"].is_unique
    assert trials["train.lr"].between(1e-4, 1e-2).all()
    assert set(trials["variant.objective"]) <= {"ns", "lsgan"}
    assert trials["train.lr"].nunique() == 3  # sampled, not the base value
    assert len(curves) == 3 * 3

    # The Optuna study lives in the results folder: a rerun with more samples continues it (the sampler
    # sees the 3 points tried before) and runs only the difference.
    import optuna

    db = optuna.load_study(study_name="optuna_micro", storage=f"sqlite:///{out / 'optuna.db'}")
    assert len([t for t in db.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 3
    assert "3/3 done" in _run(["status", str(out)], ROOT).stdout
    p = _run(["run", str(study), "--results", str(out), "--no-report", "--set", "sweep.num_samples=5"], ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "3 of 5 trials already finished, running 2" in p.stderr
    after, _ = results.load(out)
    assert len(after) == 5 and after["trial_id"].is_unique
    db = optuna.load_study(study_name="optuna_micro", storage=f"sqlite:///{out / 'optuna.db'}")
    assert len([t for t in db.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 5
    assert "5/5 done" in _run(["status", str(out)], ROOT).stdout
    p = _run(["run", str(study), "--results", str(out), "--no-report", "--set", "sweep.num_samples=5"], ROOT)
    assert p.returncode == 0 and "all 5 trials already finished" in p.stderr
