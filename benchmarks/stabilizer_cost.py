"""Step-time cost of each stabilizer relative to none (issue 25): seconds per training iteration (one D and one G
update) of the toy MLP (grid25, width 128, batch 256) and of the DCGAN (32 x 32 Fashion-MNIST-shaped digits, C = 32,
batch 64), the non-saturating loss, one configuration per trial, on this machine's threads. Each row is the median of
`repeats` timings of `steps` iterations after two warm-up steps (timings are printed and written, never asserted).

    python -m benchmarks.stabilizer_cost [threads] [device] [repeats]

Writes benchmarks/results/stabilizer_cost.parquet (one row per network x piece, with the machine)."""

from __future__ import annotations

import platform
import statistics
import sys
from pathlib import Path

import pandas as pd
import torch

from bench.schema import TrialConfig
from benchmarks.paper_step import config_step_seconds

PIECES = {
    "none": ({}, {}, {}),
    "gp 10": ({"penalty": {"gp": 10.0}}, {}, {}),
    "dragan 10": ({"penalty": {"dragan": 10.0}}, {}, {}),
    "r1 1": ({"penalty": {"r1": 1.0}}, {}, {}),
    "r2 1": ({"penalty": {"r2": 1.0}}, {}, {}),
    "r1 + r2 (r3gan)": ({"objective": "r3gan", "gp_weight": 1.0}, {}, {}),
    "simultaneous": ({}, {"updates": "simultaneous"}, {}),
    "consensus 1": ({"penalty": {"consensus": 1.0}}, {"updates": "simultaneous"}, {}),
    "instance noise": ({"noise": {"sigma": 0.1, "K": 100000}}, {}, {}),
    "D spectral": ({}, {}, {"d_norm": "spectral"}),
    "D layer": ({}, {}, {"d_norm": "layer"}),
    "ema 0.999": ({}, {"ema": 0.999}, {}),
}
NETS = {
    "toy MLP": ({"name": "grid25"}, {"name": "mlp", "width": 128, "z_dim": 2}, {"batch_size": 256}),
    "DCGAN C=32": ({"name": "digits", "image_size": 32}, {"name": "dcgan", "width": 32, "z_dim": 64},
                   {"batch_size": 64, "lr": 2e-4}),
}
OUT = Path(__file__).resolve().parent / "results" / "stabilizer_cost.parquet"


def seconds(net: str, piece: str, device: str, steps: int, repeats: int) -> float:
    data, model, train = NETS[net]
    variant, t, m = PIECES[piece]
    if model["name"] == "dcgan" and not m:
        m = {"d_norm": "batch"}  # the DCGAN's default D (batch norm) written out: layer / spectral replace it
    cfg = TrialConfig(dataset=data, model={**model, **m}, train={**train, **t},
                      variant=variant).model_dump(mode="json")
    return statistics.median(config_step_seconds([{**cfg, "trial_id": "bench"}], device, steps)[0]
                             for _ in range(repeats))


def main(threads: int = 1, device: str = "cpu", repeats: int = 3) -> pd.DataFrame:
    torch.set_num_threads(threads)
    rows = []
    for net in NETS:
        steps = 60 if net.startswith("toy") else 8
        base = None
        print(f"{net}, {threads} thread(s), {device}: ms per iteration, and relative to none")
        for piece in PIECES:
            s = seconds(net, piece, device, steps, repeats)
            base = base or s
            rows.append({"network": net, "piece": piece, "ms_per_step": 1000 * s, "relative": s / base,
                         "threads": threads, "device": device, "machine": platform.processor() or platform.machine(),
                         "torch": torch.__version__})
            print(f"  {piece:18s} {1000 * s:8.2f} ms   x{s / base:.2f}")
    df = pd.DataFrame(rows)
    OUT.parent.mkdir(exist_ok=True)
    df.to_parquet(OUT, index=False)
    return df


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1, sys.argv[2] if len(sys.argv) > 2 else "cpu",
         int(sys.argv[3]) if len(sys.argv) > 3 else 3)
