"""A real multi-process Ray cluster on this machine: a head node and a worker node started with
`ray start` (token authentication on), and `ganbench run --address` joining it."""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from bench import results
from conftest import GANBENCH, ROOT

RAY = str(Path(GANBENCH).parent / "ray")

STUDY = """
name: cluster
dataset: {name: ring8}
model: {width: 32}
train: {steps: 200, batch_size: 64, eval_every: 100, eval_samples: 500}
sweep: {seeds: [0, 1]}
resources: {cpu: 1}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_nodes(addr: str, env: dict, n: int, timeout: float = 120) -> None:
    code = ("import ray, time, sys\n"
            f"ray.init(address='{addr}', logging_level='ERROR')\n"
            f"t = time.time()\nwhile len([x for x in ray.nodes() if x['Alive']]) < {n}:\n"
            f"    time.sleep(0.5)\n    if time.time() - t > {timeout}: sys.exit(1)\n")
    subprocess.run([str(Path(RAY).parent / "python"), "-c", code], env=env, check=True, timeout=timeout + 60)


_WORKER_PGID: list[int] = []  # the worker node's process group, for the test that kills it
_HEAD_PGID: list[int] = []


@pytest.fixture
def two_node_cluster(tmp_path):
    """Head and worker started with `ray start --block`, each in its own process group, and stopped by
    killing those groups: `ray stop` would also stop any other Ray on the machine (a user's study)."""
    # its own token (Ray reads RAY_AUTH_TOKEN first): a fresh machine has no ~/.ray/auth_token, and `ray start` makes none
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}
    port = _free_port()
    addr = f"127.0.0.1:{port}"
    procs = []
    try:
        procs.append(subprocess.Popen([RAY, "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
                                       "--include-dashboard=false"], env=env, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _HEAD_PGID[:] = [procs[-1].pid]
        time.sleep(3)
        procs.append(subprocess.Popen([RAY, "start", "--block", f"--address={addr}", "--num-cpus=1"], env=env,
                                      start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _WORKER_PGID[:] = [procs[-1].pid]
        _wait_for_nodes(addr, env, 2)
        yield addr, env
    finally:
        # SIGKILL: `ray start --block` ignores SIGTERM for 30 s, and these processes hold nothing to save
        for p in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)


def test_study_runs_across_two_nodes(tmp_path, two_node_cluster):
    addr, env = two_node_cluster
    study = tmp_path / "cluster.yaml"
    study.write_text(STUDY)
    out = tmp_path / "res"
    p = subprocess.run([GANBENCH, "run", str(study), "--address", addr, "--results", str(out), "--no-report"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    trials, curves = results.load(out)
    assert sorted(trials["status"]) == ["ok", "ok"]
    # one CPU per node and one CPU per trial: the two trials ran on the two different nodes
    assert trials["ray_node_id"].nunique() == 2
    assert len(curves) == 2 * 3


@pytest.mark.slow  # slow: the default suite's test_study_runs_across_two_nodes covers the cluster path
def test_without_address_runs_its_own_ray_beside_a_running_cluster(tmp_path, two_node_cluster):
    """`ganbench run` with no --address starts an embedded Ray even when `ray start` put a cluster (and
    its address file) on this machine; it neither joins nor disturbs that cluster."""
    addr, env = two_node_cluster
    study = tmp_path / "local.yaml"
    study.write_text(STUDY.replace("seeds: [0, 1]", "seeds: [0]"))
    out = tmp_path / "res"
    p = subprocess.run([GANBENCH, "run", str(study), "--results", str(out), "--no-report"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    trials, _ = results.load(out)
    assert trials["status"].tolist() == ["ok"]
    code = (f"import ray; ray.init(address='{addr}', logging_level='ERROR'); "
            "print(sum(n['Alive'] for n in ray.nodes()), ' '.join(n['NodeID'] for n in ray.nodes()))")
    alive = subprocess.run([str(Path(RAY).parent / "python"), "-c", code], env=env, capture_output=True, text=True,
                           timeout=120).stdout.split()
    assert alive[0] == "2"  # the cluster is still up
    assert trials["ray_node_id"].iloc[0] not in alive[1:]  # the study ran on its own embedded node


LONG = STUDY.replace("train: {steps: 200, batch_size: 64, eval_every: 100, eval_samples: 500}",
                     "train: {steps: 6000, batch_size: 64, eval_every: 500, eval_samples: 300, checkpoint_every: 1000}")


def _start_long_study(tmp_path, addr, env):
    """`ganbench run` of the long study on the cluster, in its own process group: (process, results folder)."""
    study = tmp_path / "cluster.yaml"
    study.write_text(LONG)
    out = tmp_path / "res"
    proc = subprocess.Popen([GANBENCH, "run", str(study), "--address", addr, "--results", str(out), "--no-report"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    return proc, out


@pytest.mark.slow  # slow: checkpoint resume after a lost worker; test_faults' killed worker covers resume in the default suite
def test_lost_worker_node_trial_finishes_on_the_head_from_its_checkpoint(tmp_path, two_node_cluster):
    """The worker node is killed (its whole process group, as a crashed or preempted machine) once both
    trials have checkpointed: its trial is retried on the head from its latest checkpoint."""
    proc, out = _start_long_study(tmp_path, *two_node_cluster)
    try:
        t = time.time()
        while len({p.parent.parent.name for p in (out / "ray").glob("*/*/checkpoint_*/meta.json")}) < 2:
            assert time.time() - t < 240 and proc.poll() is None, "no checkpoints"
            time.sleep(0.2)
        os.killpg(_WORKER_PGID[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    trials, curves = results.load(out)
    assert sorted(trials["status"]) == ["ok", "ok"] and not curves.duplicated(["trial_id", "step"]).any()
    assert sorted(trials["attempts"]) == [1, 2]
    moved = trials.loc[trials["attempts"].idxmax()]
    assert moved["resumed_from_step"] > 0
    assert trials["ray_node_id"].nunique() == 1  # both ended on the head: the worker node is gone


@pytest.mark.slow  # ~55 s; the watchdog is also tested by the raylet kill in test_faults.py (make test-all runs it)
def test_cluster_going_away_ends_the_run_within_a_minute(tmp_path, two_node_cluster):
    """The head node's processes (GCS, raylet) are killed mid-study: `ganbench run --address` exits 1 with
    one line instead of hanging."""
    proc, out = _start_long_study(tmp_path, *two_node_cluster)
    try:
        t = time.time()
        while not list((out / "ray").glob("*/*/checkpoint_*/meta.json")):
            assert time.time() - t < 240 and proc.poll() is None, "no checkpoints"
            time.sleep(0.2)
        os.killpg(_HEAD_PGID[0], signal.SIGKILL)
        t = time.time()
        _, err = proc.communicate(timeout=120)
        took = time.time() - t
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, err[-2000:]
    assert took < 60, took
    print(f"ganbench exited {took:.1f} s after the cluster's head was killed")
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Ray failed" in lines[0], err[-2000:]
