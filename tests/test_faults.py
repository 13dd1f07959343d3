"""Faults, with real processes killed (no mocks): a trial's worker, the driver's whole process group, the
embedded Ray's raylet, Ctrl-C, an address nothing listens on. (A lost worker node is in
tests/test_distributed.py.) Every finished row stays on disk, rows are never duplicated, and a resumed
trial ends with exactly the numbers of an uninterrupted run."""

import contextlib
import functools
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench import results
from bench.study import expand, load_study
from bench.trial import run_trial
from conftest import GANBENCH, ROOT

STUDY = """
name: faults
dataset: {name: ring8}
model: {width: 32}
train: {steps: 4000, batch_size: 64, eval_every: 250, eval_samples: 300, checkpoint_every: 500}
sweep: {seeds: [0, 1]}
resources: {cpu: 1}
"""


def start(study: Path, out: Path, *extra) -> subprocess.Popen:
    """`ganbench run` in its own process group (so the test can kill the whole group)."""
    return subprocess.Popen([GANBENCH, "run", str(study), "--results", str(out), "--no-report", *extra], cwd=ROOT,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(cond, timeout=180, every=0.2):
    t = time.time()
    while not cond():
        if time.time() - t > timeout:
            raise TimeoutError("condition not met")
        time.sleep(every)


def checkpointed(out: Path, at_least: int = 1) -> list[str]:
    """Trial ids with at least that many checkpoints in the study's storage (with two, the first is whole:
    the latest may still be uploading when the test kills something)."""
    from collections import Counter

    n = Counter(p.parent.parent.name for p in (out / "ray").glob("*/*/checkpoint_*/meta.json"))
    return sorted(k for k, v in n.items() if v >= at_least)


def unfinished_checkpointed(out: Path) -> list[str]:
    """Checkpointed trials that have no row yet (still running)."""
    return sorted(set(checkpointed(out, at_least=2)) - results.finished_ids(out))


def workers(session: int) -> set[int]:
    """Trial worker processes of the Ray that the `ganbench run` of this session (its pid) started."""
    p = subprocess.run(["pgrep", "-s", str(session), "-f", "ray::ImplicitFunc"], capture_output=True, text=True)
    return {int(x) for x in p.stdout.split()}


def reference(study: Path) -> pd.DataFrame:
    """The study's final metrics from uninterrupted runs in this process (one thread, as in Ray); computed
    once per study text for the tests of this module."""
    return _reference(study.read_text()).copy()


@functools.lru_cache(maxsize=None)
def _reference(text: str) -> pd.DataFrame:
    root = Path(tempfile.mkdtemp())
    study = root / "study.yaml"
    study.write_text(text)
    rows = []
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for cfg in expand(load_study(study)):
            last = run_trial(cfg, lambda row, state=None: None, root)[0]
            rows.append({"trial_id": cfg["trial_id"], "energy_distance": last["energy_distance"],
                         "modes_covered": last["modes_covered"]})
    finally:
        torch.set_num_threads(n)
    return pd.DataFrame(rows).set_index("trial_id").sort_index()


def check_complete(out: Path, study: Path) -> pd.DataFrame:
    trials, curves = results.load(out)
    assert trials["trial_id"].is_unique and sorted(trials["status"]) == ["ok", "ok"]
    assert not curves.duplicated(["trial_id", "step"]).any() and len(curves) == 2 * 17
    got = trials.set_index("trial_id").sort_index()
    want = reference(study)
    assert got["final.energy_distance"].tolist() == want["energy_distance"].tolist()
    assert got["final.modes_covered"].tolist() == want["modes_covered"].tolist()
    return trials


@pytest.fixture
def study(tmp_path) -> Path:
    p = tmp_path / "faults.yaml"
    p.write_text(STUDY)
    return p


def test_killed_trial_worker_resumes_from_its_checkpoint(tmp_path, study):
    out = tmp_path / "res"
    proc = start(study, out, "--max-concurrent", "1", "--set", "sweep.pack=off")
    try:
        wait_for(lambda: unfinished_checkpointed(out) and workers(proc.pid))
        os.kill(max(workers(proc.pid)), signal.SIGKILL)  # the one running trial's worker process
        _, err = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "worker died" not in err  # Ray's messages went to the log file
    assert "ActorDiedError" in (out / "ganbench.log").read_text()
    trials = check_complete(out, study).set_index("trial_id")
    assert sorted(trials["attempts"]) == [1, 2]
    killed = trials.loc[trials["attempts"].idxmax()]
    assert killed["resumed_from_step"] > 0
    assert not checkpointed(out)  # a finished trial's checkpoints are removed


@pytest.mark.slow  # slow: test_ctrl_c_stops_and_says_how_to_resume covers an interrupted driver's rerun in the default suite
def test_driver_killed_then_rerun_resumes_the_pack(tmp_path, study):
    """With one trial slot the two seeds train as one pack, which checkpoints and resumes as a unit."""
    out = tmp_path / "res"
    proc = start(study, out, "--max-concurrent", "1")
    try:
        wait_for(lambda: unfinished_checkpointed(out))
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the embedded Ray it started
        proc.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    wait_for(lambda: not workers(proc.pid), timeout=60)
    again = subprocess.run([GANBENCH, "run", str(study), "--results", str(out), "--no-report", "--max-concurrent", "1"],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = check_complete(out, study)
    assert (trials["resumed_from_step"] > 0).all() and (trials["attempts"] == 2).all()
    assert len(json.loads((out / "packs.json").read_text())) == 1


@pytest.mark.slow  # slow
def test_killed_raylet_exits_within_a_minute_and_keeps_finished_rows(tmp_path, study):
    out = tmp_path / "res"
    proc = start(study, out, "--max-concurrent", "1", "--set", "sweep.pack=off")
    try:
        wait_for(lambda: (out / results.TRIALS).exists())  # the first trial finished
        raylet = subprocess.run(["pgrep", "-s", str(proc.pid), "-f", "raylet/raylet"], capture_output=True, text=True)
        os.kill(int(raylet.stdout.split()[0]), signal.SIGKILL)
        t = time.time()
        _, err = proc.communicate(timeout=60)
        took = time.time() - t
        assert took < 60
        print(f"ganbench exited {took:.1f} s after the raylet was killed")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Ray failed: Ray's raylet died" in lines[0], err[-2000:]
    trials, _ = results.load(out)
    assert trials["status"].tolist() == ["ok"]


def test_ctrl_c_stops_and_says_how_to_resume(tmp_path, study):
    out = tmp_path / "res"
    proc = start(study, out, "--max-concurrent", "1", "--set", "sweep.pack=off")
    try:
        wait_for(lambda: (out / results.TRIALS).exists() and unfinished_checkpointed(out))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-2000:]
    assert f"resume with: ganbench run {study} --results {out} --set sweep.pack=off" in err
    assert results.load(out)[0]["status"].tolist() == ["ok"]
    again = subprocess.run([GANBENCH, "run", str(study), "--results", str(out), "--no-report", "--set",
                            "sweep.pack=off"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = check_complete(out, study)
    assert trials["resumed_from_step"].max() > 0


def test_unreachable_address_fails_fast_with_one_line(tmp_path, study):
    t = time.time()
    p = subprocess.run([GANBENCH, "run", str(study), "--results", str(tmp_path / "res"), "--address", "127.0.0.1:9"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert time.time() - t < 30
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the Ray cluster at "), p.stderr
    assert "--address 127.0.0.1:9" in lines[0]


# ----------------------------------------------------------------------------- code errors are not retried
FAULTY_OBJECTIVE = '''
import os

from bench.objectives import Objective
from bench.objectives.classic import ns

calls = 0


def _d(r, f):
    global calls
    calls += 1
    if calls > 120 and os.environ.get("GANBENCH_TEST_BOOM") != "off":  # step 120: after the checkpoint at 100
        raise RuntimeError("boom: this objective raises on purpose")
    return ns.d(r, f)


boom = Objective("boom", _d, ns.g, ns.lens)
'''
# a plug-in registered in every process of the run: the driver (validation) and Ray's workers
SITECUSTOMIZE = '''
from bench import registry

registry.REGISTRY["objective"]["boom"] = "faulty_objective:boom"
'''
BOOM = """
name: boom
dataset: {name: ring8}
model: {width: 32}
train: {steps: 400, batch_size: 64, eval_every: 50, eval_samples: 300, checkpoint_every: 100}
variant: {objective: boom}
sweep: {seeds: [0, 1]}
resources: {cpu: 1}
"""


def test_an_objective_that_raises_fails_at_once_without_retries(tmp_path):
    """A deterministic error of the training code ends its configurations `failed` with the error in the
    row after one attempt, though retries are left and a checkpoint exists (a killed worker, above, is
    retried); a later run retries failed trials, from the start."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "faulty_objective.py").write_text(FAULTY_OBJECTIVE)
    (plugins / "sitecustomize.py").write_text(SITECUSTOMIZE)
    study, out = tmp_path / "boom.yaml", tmp_path / "res"
    study.write_text(BOOM)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))}
    cmd = [GANBENCH, "run", str(study), "--results", str(out), "--no-report", "--max-concurrent", "1"]
    t = time.time()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    print(f"failed after {time.time() - t:.1f} s")
    assert p.returncode == 1, p.stderr[-3000:]
    assert "error: 2 trial(s) failed" in p.stderr and "Traceback" not in p.stderr
    trials, curves = results.load(out)
    assert sorted(trials["status"]) == ["failed", "failed"] and (trials["attempts"] == 1).all()
    for error in trials["error"]:
        assert error.startswith("RuntimeError: boom: this objective raises on purpose (at faulty_objective.py:")
        assert "\n" not in error
    assert sorted(curves["step"]) == [0, 0, 50, 50, 100, 100]  # the evaluations before it
    log = (out / "ganbench.log").read_text()
    assert "retried from its latest checkpoint" not in log and "Traceback" in log and "faulty_objective.py" in log
    assert not checkpointed(out)

    again = subprocess.run(cmd, cwd=ROOT, env={**env, "GANBENCH_TEST_BOOM": "off"}, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = results.load(out)[0]
    assert sorted(trials["status"]) == ["ok", "ok"] and (trials["resumed_from_step"] == 0).all()
    assert trials["error"].isna().all()


def test_rays_oom_kill_is_named_in_one_line():
    """Ray's memory monitor killing trial workers makes Tune raise from fit (seen on 2026-12-07: another process
    took 19 GB); the run ends with one line saying so, not a traceback. Ray's message as it was raised then."""
    from bench.runner import ray_oom

    ray_text = ("Caught unexpected exception: 2 worker(s) were killed due to the node running low on memory. Memory "
                "on the node (IP: 192.0.2.2, ID: 62fe1a4f) was 22.69GB used / 23.54GB limit (0.963990)")
    try:
        try:
            raise MemoryError(ray_text.split(": ", 1)[1])
        except MemoryError as inner:
            raise RuntimeError(ray_text) from inner
    except RuntimeError as e:
        why = ray_oom(e)
    assert why.startswith("Ray's memory monitor killed trial workers: the machine ran low on memory (22.69GB of "
                          "23.54GB in use)")
    assert ray_oom(RuntimeError("a trial raised ValueError")) is None
