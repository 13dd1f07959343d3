"""Every number a trial produces is pinned: rows of 12 configurations (toys with every objective family
and the lens, DCGAN with the conv lens and WGAN-GP, the three ED structures with the code prior, a
diverging run) were captured from the implementation before the structure refactor
(tests/golden/capture_v0.py, tests/golden/trials.json). A configuration must give bit-identical metrics,
losses and artifacts on this machine type (CPU, torch 2.14.1, one thread)."""

import base64
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import artifacts
from bench.metrics import INFO
from bench.study import expand, load_study
from bench.trial import run_trial

GOLDEN = Path(__file__).parent / "golden"
CASES = json.loads((GOLDEN / "trials.json").read_text())
SKIP = {"wall_seconds", "torch_threads", "config_id", "attempt", "resumed_from_step", "samples_path", "outputs_path", "ray_node_id"}


def _canon(row: dict, root: Path) -> dict:
    """A new row in the golden file's terms: artifacts hashed as the old base64 payloads were."""
    out, grids = {}, {}
    for k, v in row.items():
        if k.startswith("grid_"):
            grids[k[5:]] = hashlib.sha1(base64.b64encode((root / v).read_bytes())).hexdigest()
        elif k not in SKIP:
            out["done" if k == "final" else k] = "nan" if isinstance(v, float) and math.isnan(v) else v
    if grids:
        out["grids"] = grids
    if row.get("final") and row.get("samples_path"):
        pts = artifacts.read_npz(root, row["samples_path"])
        out["samples"] = hashlib.sha1(json.dumps({k: v.tolist() for k, v in pts.items()}).encode()).hexdigest()
    if row.get("outputs_path"):
        z = artifacts.read_npz(root, row["outputs_path"])
        out["outputs"] = {n: hashlib.sha1(np.ascontiguousarray(z[n]).tobytes()).hexdigest() for n in sorted(z)}
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_trial_numbers_unchanged(name, tmp_path):
    case = CASES[name]
    rows = []
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_trial(case["config"], rows.append, tmp_path)
    finally:
        torch.set_num_threads(n)
    got = [_canon(r, tmp_path) for r in rows]
    # (samples_step, the step of the scatter samples, now exists only where there are samples: the toys)
    want = [{k: v for k, v in r.items() if k not in SKIP and not (k == "lambda" and v == "nan")
             and not (k == "samples_step" and "samples" not in r)} for r in case["rows"]]
    got = [{k: v for k, v in r.items() if not (k == "lambda" and v == "nan")} for r in got]
    # a diverged row carries every metric of bench.metrics.INFO as NaN: metrics registered after the capture
    # (e.g. the zoo's class_accuracy) are NaN columns the golden rows do not list
    got = [{k: v for k, v in g.items() if not (k in INFO and v == "nan" and k not in w)} for g, w in zip(got, want)]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        # FID's matrix square root is numpy's LAPACK eigh, whose last bits depend on the CPU's BLAS kernels
        # (OpenBLAS picks them per processor): equal to 1e-9 relative; everything else bit for bit
        for k in LAPACK:
            if isinstance(g.get(k), float) and isinstance(w.get(k), float):
                assert g.pop(k) == pytest.approx(w.pop(k), rel=1e-9, abs=0), k
        assert g == w


LAPACK = ("fid", "class_fid", "inception_fid")


def test_every_study_keeps_its_trial_ids():
    ids = json.loads((GOLDEN / "trial_ids.json").read_text())
    for path in sorted((Path(__file__).parents[1] / "studies").glob("*.yaml")):
        if path.name in ids:  # a study may grow (lens_toy: 5 -> 12 seeds); the ids it had stay
            assert set(ids[path.name]) <= {t["trial_id"] for t in expand(load_study(path))}, path.name
