"""Throughput: configurations per hour for plain Ray (one configuration per trial), packed Ray
(`sweep.pack: auto`) and a sequential loop (every configuration in turn, in this process), on a toy study
and on a DCGAN Fashion-MNIST study; and the per-configuration cost of one pack as K grows (what
bench.packing.AUTO_CAP is set from). Results go to benchmarks/results/throughput.parquet and are printed
as ratios. Usage: python -m benchmarks.throughput [toy|dcgan|k|all] (make bench runs all).

The Ray runs are whole `ganbench run` commands (Ray start and everything), timed from outside; the
sequential loop runs the same configurations with bench.trial.run_trial, torch on all cores."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "throughput.parquet"
GANBENCH = str(Path(sys.executable).parent / "ganbench")

STUDIES = {
    # the target: ring8, 16 seeds x 2000 steps
    "toy": """
name: bench_toy
dataset: {name: ring8, std: 0.02}
model: {name: mlp, width: 128, depth: 2, z_dim: 2}
train: {steps: 2000, batch_size: 256, eval_every: 250, eval_samples: 2500}
variant: {objective: ns}
sweep: {seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]}
resources: {cpu: 1}
""",
    # lens_fmnist's DCGAN (C = 16), 8 seeds, CPU-sized
    "dcgan": """
name: bench_dcgan
dataset: {name: fashion_mnist, image_size: 32}
model: {name: dcgan, width: 16, z_dim: 64, batch_norm: true, init: xavier}
train: {steps: 300, batch_size: 64, eval_every: 150, eval_samples: 1000, lr: 2.0e-4}
variant: {objective: ns}
sweep: {seeds: [0, 1, 2, 3, 4, 5, 6, 7]}
resources: {cpu: 1}
""",
}


def ray_run(study: Path, pack: str) -> float:
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        subprocess.run([GANBENCH, "run", str(study), "--results", d, "--no-report", "--set", f"sweep.pack={pack}"],
                       cwd=ROOT, check=True, capture_output=True)
        return time.perf_counter() - t


def sequential(study: Path) -> float:
    code = ("import sys, tempfile, time; from bench.study import expand, load_study; from bench.trial import run_trial\n"
            f"trials = expand(load_study({str(study)!r}))\n"
            "t = time.perf_counter()\n"
            "for c in trials:\n"
            "    with tempfile.TemporaryDirectory() as d: run_trial(c, lambda row, state=None: None, d)\n"
            "print(time.perf_counter() - t)")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t  # the process's imports included, as a user's loop would pay them


def study_rows(name: str) -> list[dict]:
    from bench.study import expand, load_study

    with tempfile.TemporaryDirectory() as d:
        study = Path(d) / f"{name}.yaml"
        study.write_text(STUDIES[name])
        n = len(expand(load_study(study)))
        rows = []
        for how, run in (("plain Ray", lambda: ray_run(study, "off")), ("packed Ray", lambda: ray_run(study, "auto")),
                         ("sequential", lambda: sequential(study))):
            wall = run()
            rows.append({"study": name, "how": how, "configurations": n, "wall_seconds": wall,
                         "configurations_per_hour": n * 3600 / wall})
            print(f"{name:6s} {how:11s} {n} configurations in {wall:7.1f} s: {n * 3600 / wall:8.0f} per hour", flush=True)
    plain = rows[0]["configurations_per_hour"]
    for r in rows:
        r["vs_plain_ray"] = r["configurations_per_hour"] / plain
    print(f"{name:6s} packed / plain Ray = {rows[1]['vs_plain_ray']:.2f}x; packed / sequential = "
          f"{rows[1]['configurations_per_hour'] / rows[2]['configurations_per_hour']:.2f}x", flush=True)
    return rows


def k_rows(device: str = "cpu", threads: int = 1) -> list[dict]:
    """Seconds per configuration for 200 training steps of one pack of K configurations (no evaluation)."""
    import torch

    from bench.schema import TrialConfig
    from bench.trial import setup

    torch.set_num_threads(threads)
    rows = []
    fm = {"dataset": {"name": "fashion_mnist"}, "model": {"name": "dcgan", "width": 16, "z_dim": 64},
          "train": {"batch_size": 64, "lr": 2e-4}}
    for family, base, steps in (("mlp", {}, 200), ("conv", fm, 40)):
        for K in (1, 2, 4, 8, 16, 32):
            if family == "conv" and K > 16 and device == "cpu":
                continue
            cfgs = [{**TrialConfig(**base, seed=s).model_dump(mode="json"), "trial_id": f"s{s}"} for s in range(K)]
            run = setup(cfgs, device)
            for t in range(3):
                run.step(t)
            t0 = time.perf_counter()
            for t in range(steps):
                out = run.step(t)
                {k: v.tolist() for k, v in out.items()}
            per = (time.perf_counter() - t0) / steps / K
            rows.append({"study": f"k-{family}", "how": f"K={K}", "configurations": K, "device": device,
                         "seconds_per_config_step": per})
            print(f"{family:4s} K={K:3d}: {per * 1e3:7.3f} ms per configuration-step", flush=True)
    return rows


def main(which: str = "all"):
    rows = []
    if which in ("k", "all"):
        rows += k_rows()
    for name in ("toy", "dcgan"):
        if which in (name, "all"):
            rows += study_rows(name)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df["machine"] = f"{os.cpu_count()} CPU cores" + (", GPU" if _gpu() else "")
    old = pd.read_parquet(OUT) if OUT.exists() else pd.DataFrame()
    pd.concat([old, df.assign(when=pd.Timestamp.now(tz="UTC"))], ignore_index=True).to_parquet(OUT)
    print(f"-> {OUT}")


def _gpu() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "all")
