"""Honest cost accounting (issue 22, item 5): a row's wall_seconds is its configuration's share of its pack's wall
time, the shares of a pack add up to the pack's wall time, and the report's elapsed time is the run's own measured
wall clock (runs.json), checked here against a clock this test reads itself around bench.runner.run_study."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from bench import results
from conftest import ROOT

# 4 toy configurations packed 2 by 2 on an embedded Ray with 2 CPUs (2 packs side by side). The configuration with
# the absurd learning rate (seed 2) diverges within a few steps, so its pack's other member trains most of the pack's
# time alone: the shares of that pack are far from equal, and must still add up to the pack's wall time.
STUDY = """
name: costs
dataset: {name: ring8, std: 0.02}
model: {name: mlp, width: 32, depth: 2, z_dim: 2}
train: {steps: 600, batch_size: 64, eval_every: 200, eval_samples: 500}
variant: {objective: ns}
sweep:
  zip:
    - seed: [0, 1, 2, 3]
      train.lr: [1.0e-3, 1.0e-3, 1.0e+10, 1.0e-3]
  pack: 2
resources: {cpu: 1, gpu: 0}
"""

RUN = textwrap.dedent("""
    import json, sys, time
    from bench.runner import run_study
    from bench.study import load_study

    study = load_study(sys.argv[1])
    t0 = time.perf_counter()
    counts = run_study(study, sys.argv[2], show_progress=False, num_cpus=2)
    measured = time.perf_counter() - t0
    print(json.dumps({"measured": measured, "counts": counts}))
""")


@pytest.fixture(scope="module")
def packed_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("costs")
    (d / "study.yaml").write_text(STUDY)
    out = d / "res"
    p = subprocess.run([sys.executable, "-c", RUN, str(d / "study.yaml"), str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    info = json.loads(p.stdout.strip().splitlines()[-1])
    trials, _ = results.load(out)
    return out, info, trials


def test_the_packed_study_ran_as_planned(packed_run):
    out, info, trials = packed_run
    assert info["counts"] == {"ok": 3, "diverged": 1, "failed": 0}
    assert len(trials) == 4
    assert trials["pack_size"].tolist() == [2, 2, 2, 2]
    assert trials["pack_id"].nunique() == 2 and trials.groupby("pack_id").size().tolist() == [2, 2]
    packs = json.loads((out / "packs.json").read_text())
    assert sorted(packs) == sorted(trials["pack_id"].unique())
    for pid, ids in packs.items():  # the rows name the pack packs.json has them in
        assert sorted(trials.loc[trials["pack_id"] == pid, "trial_id"]) == sorted(ids)
    assert trials.loc[trials["seed"] == 2, "status"].item() == "diverged"


def test_runs_json_is_the_measured_wall_clock(packed_run):
    out, info, trials = packed_run
    runs = results.read_runs(out)
    assert len(runs) == 1
    assert runs[0]["wall_seconds"] == pytest.approx(info["measured"], rel=0.10)
    assert runs[0]["wall_seconds"] <= info["measured"]  # run_study's own clock starts after ours, stops before
    assert runs[0]["slots"] == 2 and runs[0]["trials_finished"] == 4 and runs[0]["stopped"] is False


def test_the_reports_elapsed_time_is_runs_json(packed_run):
    from bench.report import environment
    from bench.report.fmt import hms

    out, info, trials = packed_run
    env = dict((k, v) for k, v in environment(trials, {"costs": out}))
    el = results.read_runs(out)[0]["wall_seconds"]
    key = next(k for k in env if k.startswith("elapsed wall time (measured"))
    assert env[key] == f"{hms(el)} ({el:.1f} s)"
    # the packs' summed wall time: each pack once (its largest pack_wall_seconds), computed here from the rows
    pack_wall = trials.groupby("pack_id")["pack_wall_seconds"].max()
    key = next(k for k in env if k.startswith("training time (sum over the 2 packs"))
    assert env[key] == f"{hms(pack_wall.sum())} ({pack_wall.sum():.1f} s)"
    assert env["CPU-hours (pack wall time x resources cpu)"] == f"{pack_wall.sum() * 1.0 / 3600:.3g}"
    assert env["GPU-hours (pack wall time x resources gpu)"] == "0 (no GPU resources)"
    assert env["median wall seconds per trial (its share of its pack)"] == f"{trials['wall_seconds'].median():.1f}"


def test_shares_add_up_to_the_pack_and_the_packs_fit_in_the_elapsed_time(packed_run):
    out, info, trials = packed_run
    for pid, g in trials.groupby("pack_id"):
        # the members' shares add up to the pack's wall time (the time between a pack's last two rows: rounding)
        assert g["wall_seconds"].sum() == pytest.approx(g["pack_wall_seconds"].max(), rel=1e-3, abs=1e-3), pid
        assert (g["wall_seconds"] <= g["pack_wall_seconds"] + 1e-6).all()
    # the diverged configuration stopped early: its share is a small part of its pack's time
    div = trials[trials["status"] == "diverged"].iloc[0]
    mate = trials[(trials["pack_id"] == div["pack_id"]) & (trials["trial_id"] != div["trial_id"])].iloc[0]
    assert div["wall_seconds"] < 0.25 * mate["wall_seconds"]
    # the packs ran side by side in 2 slots: their summed time cannot exceed the elapsed time x 2
    run = results.read_runs(out)[0]
    summed = trials.groupby("pack_id")["pack_wall_seconds"].max().sum()
    assert summed <= run["wall_seconds"] * run["slots"]
    # the old accounting (every member recording its pack's whole time, summed over rows) counted each pack twice
    old = trials["pack_wall_seconds"].sum()
    assert old > 1.5 * summed and trials["wall_seconds"].sum() == pytest.approx(summed, rel=1e-3, abs=1e-3)


# ----------------------------------------------------------------------------- folders written before pack_id


def test_pack_costs_of_an_old_folder_count_each_pack_once(tmp_path):
    """Rows written before the cost columns existed: wall_seconds was the pack's elapsed time when the configuration
    finished. Packs come from packs.json; a pack's wall time is its members' largest, counted once; a trial in no
    pack is its own pack."""
    from bench.report import environment, pack_costs

    (tmp_path / "packs.json").write_text(json.dumps({"pack-aaa": ["t0", "t1", "t2"], "pack-bbb": ["t3", "t4"]}))
    walls = {"t0": 10.0, "t1": 12.0, "t2": 11.0, "t3": 7.0, "t4": 6.5, "t5": 3.0}
    trials = pd.DataFrame({"study": "old", "trial_id": list(walls), "wall_seconds": list(walls.values()),
                           "resources.cpu": 2.0, "resources.gpu": 0.5, "status": "ok"})
    packs = pack_costs(trials, {"old": tmp_path}).set_index("pack_id")
    assert sorted(packs.index) == ["alone:t5", "pack-aaa", "pack-bbb"]
    assert packs.loc["pack-aaa", "wall_seconds"] == 12.0 and packs.loc["pack-aaa", "size"] == 3
    assert packs.loc["pack-bbb", "wall_seconds"] == 7.0 and packs.loc["pack-bbb", "size"] == 2
    assert packs.loc["alone:t5", "wall_seconds"] == 3.0 and packs.loc["alone:t5", "size"] == 1
    env = dict((k, v) for k, v in environment(trials, {"old": tmp_path}))
    total = 12.0 + 7.0 + 3.0  # not the rows' sum, 49.5
    assert env["training time (sum over the 3 packs' wall times; packs running side by side each count)"] == \
        f"0:00:22 ({total:.1f} s)"
    assert env["CPU-hours (pack wall time x resources cpu)"] == f"{total * 2.0 / 3600:.3g}"
    assert env["GPU-hours (pack wall time x resources gpu)"] == f"{total * 0.5 / 3600:.3g}"
    assert env["median wall seconds per trial (pack wall time / pack size; older rows)"] == \
        f"{np.median([12.0 / 3, 7.0 / 2, 3.0 / 1]):.1f}"
    assert env["elapsed wall time"] == "not recorded (folder written before runs.json)"


def test_pack_costs_with_ids_prefixed_by_the_study(tmp_path):
    """Several studies in one report prefix trial ids with the study ("old/t0"): packs.json still finds them."""
    from bench.report import pack_costs

    (tmp_path / "packs.json").write_text(json.dumps({"pack-aaa": ["t0", "t1"]}))
    trials = pd.DataFrame({"study": "old", "trial_id": ["old/t0", "old/t1"], "wall_seconds": [4.0, 5.0]})
    packs = pack_costs(trials, {"old": tmp_path})
    assert packs["pack_id"].tolist() == ["pack-aaa"] and packs["wall_seconds"].tolist() == [5.0]
