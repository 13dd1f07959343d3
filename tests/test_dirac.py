"""The Dirac GAN (Mescheder et al. 2018, Section 2) with the project's own training loop: data at 0, G(z) = theta,
D(x) = psi x, started at (1, 1), plain gradient descent with step 0.1. The paper's analysis, asserted: simultaneous
gradient descent spirals outward, alternating gradient descent neither converges nor diverges, R1, R2, consensus
optimization and instance noise converge to (0, 0); WGAN-GP's two-sided penalty does not. And `ganbench run
studies/stabilizers_dirac.yaml` draws the trajectory figure."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.schema import TrialConfig, config_hash

from conftest import run_rows

ROOT = Path(__file__).resolve().parents[1]
GANBENCH = str(Path(sys.executable).parent / "ganbench")
START = math.hypot(1.0, 1.0)


def distances(variant=None, train=None, steps=400, status="ok") -> np.ndarray:
    raw = {"dataset": {"name": "dirac"}, "model": {"z_dim": 1},
           "train": {"steps": steps, "eval_every": 10, "batch_size": 1, "optimizer": "sgd", "lr": 0.1, **(train or {})},
           "variant": {"structure": "dirac", "objective": "minimax", **(variant or {})}}
    cfg = TrialConfig.model_validate(raw).model_dump(mode="json")
    rows = run_rows({**cfg, "study": "dirac", "trial_id": config_hash(cfg)})
    assert rows[-1]["status"] == status, rows[-1].get("error")
    d = np.array([r["dirac_distance"] for r in rows if "dirac_distance" in r])
    assert d[0] == pytest.approx(START)
    return d


def test_simultaneous_gradient_descent_spirals_outward():
    d = distances(train={"updates": "simultaneous"})
    assert (np.diff(d) > 0).mean() > 0.9 and d[-1] > 1.3 * START


def test_alternating_gradient_descent_circles_without_converging():
    d = distances()
    assert d.min() > 0.9 * START and d.max() < 1.1 * START


@pytest.mark.parametrize("variant,train", [({"penalty": {"r1": 1.0}}, None), ({"penalty": {"r2": 1.0}}, None),
                                           ({"penalty": {"consensus": 1.0}}, {"updates": "simultaneous"})],
                         ids=["r1", "r2", "consensus"])
def test_zero_centred_penalties_and_consensus_converge(variant, train):
    d = distances(variant, train)
    assert d[-1] < 1e-3


def test_instance_noise_converges_to_a_neighbourhood_of_the_equilibrium():
    d = distances({"noise": {"sigma": 1.0, "schedule": "constant"}}, {"batch_size": 256})
    assert np.median(d[-10:]) < 0.1


def test_a_step_too_large_for_r1_does_not_converge():
    """'for a small enough step': R1 at gamma 1 with step 2.5 overshoots until the run diverges (recorded as such)."""
    d = distances({"penalty": {"r1": 1.0}}, {"lr": 2.5}, steps=100, status="diverged")
    assert np.nanmax(d) > 10 * START


def test_the_two_sided_gradient_penalty_does_not_converge():
    d = distances({"penalty": {"gp": 1.0}})
    assert d[-1] > START


def test_the_study_runs_on_ray_and_draws_the_trajectories(tmp_path):
    out = tmp_path / "dirac"
    p = subprocess.run([GANBENCH, "run", "studies/stabilizers_dirac.yaml", "--results", str(out), "--set",
                        "train.steps=400"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    md = (out / "report.md").read_text()
    assert "## Dirac GAN: trajectories of (theta, psi)" in md
    assert (out / "figures" / "dirac_trajectories.png").stat().st_size > 10_000
    head = next(line for line in md.splitlines() if line.startswith("- Dirac GAN: "))
    converges = head.split("converges: ")[1].split(";")[0]
    for method in ("r1 1", "r2 1", "consensus 1"):
        assert method in converges, head
    assert "minimax simultaneous" in head.split("moves away: ")[1], head
