"""Every number a trial produces is pinned: rows of 12 configurations (toys with every objective family
and the lens, DCGAN with the conv lens and WGAN-GP, the three ED structures with the code prior, a
diverging run) were captured from the implementation before the structure refactor
(tests/golden/capture_v0.py, tests/golden/trials.json).

Bit for bit where that is a property of the code: float32 results depend on which kernels torch's CPU
backend picks for the processor (AVX2 or AVX-512 matrix products round differently in the last bit, and
image evaluators are trained on the machine, so they differ too). So:
- on a machine whose kernels are recorded (tests/golden/machines.json, keyed by `kernels()`: a hash of a
  few matrix products and convolutions), every row must equal that machine's rows bit for bit;
- elsewhere, a machine whose first evaluation (step 0: initial weights and the evaluation, before any
  training) equals the capture's bit for bit is the capture's machine type: every row must equal it;
- on any other machine the rows are compared within tolerances measured between two such machines
  (`APPROX`), with a warning that says so. `python tests/test_golden.py --record` adds this machine's rows.
FID's matrix square root is numpy's LAPACK eigh, whose last bits depend on the BLAS build: to 1e-9 relative
even where the rest is bit for bit."""

import base64
import hashlib
import json
import math
import platform
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench import artifacts
from bench.metrics import INFO
from bench.study import expand, load_study
from bench.trial import run_trial

from conftest import load_shipped

GOLDEN = Path(__file__).parent / "golden"
CASES = json.loads((GOLDEN / "trials.json").read_text())
MACHINES = GOLDEN / "machines.json"
SKIP = {"wall_seconds", "pack_wall_seconds", "pack_id", "pack_size", "torch_threads", "config_id", "attempt", "resumed_from_step", "samples_path", "outputs_path", "ray_node_id",
        # provenance, not a result: the numbers are what is pinned, and the kernel hash below says whether they must
        # match bit for bit (torch 2.13.0+cpu gave every golden number of 2.14.1+cu130 bit for bit here, 2026-12-07)
        "torch_version"}
LAPACK = ("fid", "class_fid", "inception_fid")
# Another machine type (measured: Intel Xeon vs AMD EPYC, torch 2.14.1): toy losses and metrics agree to 7e-6
# relative after 100 steps, image losses to 5e-4, FID/KID to 3e-3 (the evaluator is trained on the machine).
# Statistics that count k-NN or argmax hits among a few hundred samples move by 1/n per sample (measured up to
# 33 %): not compared there, nor hashes of artifacts and the evaluator's weights.
APPROX = {"rel": 1e-2, "abs": 1e-6}
COARSE = {"precision", "recall", "density", "coverage", "modes_covered", "mode_kl", "evaluator_id", "grids",
          "samples", "outputs", "class_accuracy", "swap_accuracy", "rec_accuracy", "code_accuracy"}


def kernels() -> str:
    """This CPU's float32 kernels, as a hash of a few matrix products and convolutions on fixed inputs
    (one thread)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(4, 64, 96, generator=g), torch.randn(4, 96, 80, generator=g)
        x, w = torch.randn(8, 16, 12, 12, generator=g), torch.randn(24, 16, 4, 4, generator=g)
        outs = [torch.bmm(a, b), a[0] @ b[0], a[0] @ b[0][:, :1], F.conv2d(x, w, stride=2, padding=1),
                F.conv_transpose2d(x, w.transpose(0, 1).contiguous(), stride=2, padding=1),
                F.conv2d(x, w.reshape(48, 8, 4, 4), groups=2)]
        return hashlib.sha1(b"".join(o.contiguous().numpy().tobytes() for o in outs)).hexdigest()[:16]
    finally:
        torch.set_num_threads(n)


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


def observed(name: str, root: Path) -> list[dict]:
    """This machine's rows of a case (one thread), in the golden file's terms."""
    rows = []
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_trial(CASES[name]["config"], rows.append, root)
    finally:
        torch.set_num_threads(n)
    return [_canon(r, root) for r in rows]


def expected(rows: list[dict]) -> list[dict]:
    # (samples_step, the step of the scatter samples, now exists only where there are samples: the toys)
    return [{k: v for k, v in r.items() if k not in SKIP and not (k == "lambda" and v == "nan")
             and not (k == "samples_step" and "samples" not in r)} for r in rows]


def comparable(got: list[dict], want: list[dict]) -> list[dict]:
    got = [{k: v for k, v in r.items() if not (k == "lambda" and v == "nan")} for r in got]
    # a diverged row carries every metric of bench.metrics.INFO as NaN: metrics registered after the capture
    # (e.g. the zoo's class_accuracy) are NaN columns the golden rows do not list
    return [{k: v for k, v in g.items() if not (k in INFO and v == "nan" and k not in w)} for g, w in zip(got, want)]


def bit_for_bit(g: dict, w: dict) -> bool:
    """Equal, but LAPACK's last bits (LAPACK keys to 1e-9 relative)."""
    g, w = dict(g), dict(w)
    for k in LAPACK:
        if isinstance(g.get(k), float) and isinstance(w.get(k), float):
            if g.pop(k) != pytest.approx(w.pop(k), rel=1e-9, abs=0):
                return False
    return g == w


def assert_bit_for_bit(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if not bit_for_bit(g, w):
            assert g == w  # fails: pytest lists the keys that differ


def assert_close(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert set(g) == set(w), set(g) ^ set(w)
        for k, v in w.items():
            if k in COARSE:
                continue
            if isinstance(v, float) and isinstance(g[k], float):
                assert g[k] == pytest.approx(v, **APPROX), (g["step"], k)
            else:
                assert g[k] == v, (g["step"], k)


def recorded() -> dict:
    return json.loads(MACHINES.read_text()) if MACHINES.exists() else {}


@pytest.mark.parametrize("name", sorted(CASES))
def test_trial_numbers_unchanged(name, tmp_path):
    raw, capture = observed(name, tmp_path), expected(CASES[name]["rows"])
    got = comparable(raw, capture)
    mine = recorded().get(kernels())
    if mine is not None:  # a machine type recorded here: its own rows, bit for bit
        want = expected(mine["rows"][name])
        assert_bit_for_bit(comparable(raw, want), want)
    elif bit_for_bit(got[0], capture[0]):  # the capture's machine type
        assert_bit_for_bit(got, capture)
    else:
        warnings.warn(f"golden {name}: this CPU's kernels ({kernels()}, {platform.processor() or platform.machine()}) "
                      "are not recorded and its first evaluation differs from the capture's: compared within "
                      f"{APPROX} (python tests/test_golden.py --record adds this machine)")
        assert_close(got, capture)


def test_every_study_keeps_its_trial_ids():
    ids = json.loads((GOLDEN / "trial_ids.json").read_text())
    for path in sorted((Path(__file__).parents[1] / "studies").glob("*.yaml")):
        if path.name in ids:  # a study may grow (lens_toy: 5 -> 12 seeds); the ids it had stay
            assert set(ids[path.name]) <= {t["trial_id"] for t in expand(load_shipped(path))}, path.name


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    # Record this machine's rows, after checking them against the capture within APPROX: run it only at a
    # commit whose golden test passes on a recorded machine (the numbers must come from unchanged code).
    rows = {}
    for name in sorted(CASES):
        got = observed(name, Path(tempfile.mkdtemp()))
        assert_close(comparable(got, expected(CASES[name]["rows"])), expected(CASES[name]["rows"]))
        rows[name] = got
        print(name, "ok", flush=True)
    machines = recorded()
    machines[kernels()] = {"cpu": cpu_name(), "torch": torch.__version__, "rows": rows}
    MACHINES.write_text(json.dumps(machines, indent=1, sort_keys=True) + "\n")
    print(f"recorded {cpu_name()} as {kernels()} in {MACHINES}")
