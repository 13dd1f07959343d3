"""A real multi-process Ray cluster on this machine: a head node and a worker node started with
`ray start` (token authentication on), and `ganbench run --address` joining it."""

import os
import socket
import subprocess
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


@pytest.fixture
def two_node_cluster(tmp_path):
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    port = _free_port()
    addr = f"127.0.0.1:{port}"
    try:
        subprocess.run([RAY, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"],
                       env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([RAY, "start", f"--address={addr}", "--num-cpus=1"], env=env, check=True,
                       capture_output=True, timeout=120)
        yield addr, env
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


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
