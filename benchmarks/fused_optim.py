"""The fused pack optimizer (bench.optim) against the per-run optimizers it replaced, on the toy MLP GAN
of studies/quickstart.yaml: 8 configurations with 8 distinct learning rates trained as

    fused       one pack, one fused optimizer per network (PackOptimizer's default)
    per-run     one pack, one torch optimizer per configuration and network (PackOptimizer(per_run=True),
                the implementation before bench.optim)
    plain       8 unpacked configurations, one after another
    same-lr     (reference) one pack of 8 seeds sharing one learning rate: torch's optimizer over the pack

Configuration-steps per second (training steps only, one torch thread: a trial's CPU share, the trial's
per-step synchronisation included) by CPU time and by wall time, the median of `repeats` interleaved
rounds, the ratios, and the CPU time in optimizer steps; appended to benchmarks/results/fused_optim.parquet
(`seconds` wall, `cpu`, `optimizer_cpu` per round). `compiled` adds the fused Adam's update under torch.compile.
Usage: python -m benchmarks.fused_optim [repeats] [compiled]"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from bench import optim
from bench.schema import TrialConfig
from bench.structures import PackOptimizer
from bench.trial import setup

OUT = Path(__file__).resolve().parent / "results" / "fused_optim.parquet"
K, STEPS, WARM = 8, 200, 20
LRS = [1e-4 * 10 ** (1.5 * k / (K - 1)) for k in range(K)]  # 1e-4 .. 3.2e-3, log-spaced


def configs(lrs: list[float]) -> list[dict]:
    """The quickstart's toy (ring8, MLP 128 x 2, batch 256, Adam betas 0.5 / 0.999), one seed per lr."""
    base = {"dataset": {"name": "ring8", "std": 0.02}, "model": {"name": "mlp", "width": 128, "depth": 2, "z_dim": 2},
            "train": {"steps": 2000, "batch_size": 256, "optimizer": "adam", "betas": [0.5, 0.999]}}
    return [{**TrialConfig(**{**base, "train": {**base["train"], "lr": lr}}, seed=s).model_dump(mode="json"),
             "trial_id": f"c{s}"} for s, lr in enumerate(lrs)]


def timed(step, spent: list):
    def f():
        t = time.thread_time()
        step()
        spent[0] += time.thread_time() - t
    return f


def seconds(cfgs: list[dict], per_run: bool = False, compiled: bool = False) -> dict:
    """Wall and CPU seconds of STEPS training steps of one pack of these configurations, and the CPU
    seconds of its optimizer steps."""
    run = setup(cfgs, "cpu")
    if per_run:
        run.nets.opt = {n: PackOptimizer(o.params, o.settings, per_run=True) for n, o in run.nets.opt.items()}
    spent = [0.0]
    for o in run.nets.opt.values():
        o.step = timed(o.step, spent)
    plain_update = optim.adam_update
    if compiled:  # the fused Adam's per-parameter arithmetic as one compiled kernel (inductor's C++)
        optim.adam_update = torch.compile(plain_update, dynamic=False)
    for t in range(WARM):
        run.step(t)
    wall, cpu, spent[0] = time.perf_counter(), time.thread_time(), 0.0
    for t in range(WARM, WARM + STEPS):
        out = run.step(t)
        {k: v.tolist() for k, v in out.items()}  # the trial reads the losses every step on a CPU
    optim.adam_update = plain_update
    return {"wall": time.perf_counter() - wall, "cpu": time.thread_time() - cpu, "optimizer_cpu": spent[0]}


def total(parts: list[dict]) -> dict:
    return {k: sum(p[k] for p in parts) for k in parts[0]}


WAYS = {
    "fused": lambda: seconds(configs(LRS)),
    "per-run": lambda: seconds(configs(LRS), per_run=True),
    "plain": lambda: total([seconds(configs([lr])) for lr in LRS]),
    "same-lr": lambda: seconds(configs([1e-3] * K)),
}


def main(repeats: int = 3, compiled: bool = False) -> pd.DataFrame:
    torch.set_num_threads(1)
    ways = dict(WAYS)
    if compiled:
        ways["fused-compiled"] = lambda: seconds(configs(LRS), compiled=True)
    rows = []
    for i in range(repeats):  # interleaved: a busy spell of the machine hits every way alike
        rows += [{"how": w, "repeat": i, **f()} for w, f in ways.items()]
    df = pd.DataFrame(rows).assign(configurations=K, steps=STEPS)
    med = df.groupby("how", sort=False)[["wall", "cpu", "optimizer_cpu"]].median()
    rate = K * STEPS / med[["wall", "cpu"]]
    print(f"{K} toy configurations (quickstart MLP GAN), {K} distinct learning rates, {STEPS} steps, 1 thread, "
          f"median of {repeats}; configuration-steps per second by CPU time (wall time: a shared machine's is noisier)")
    print("way             per CPU s   vs per-run   vs plain   per wall s   vs per-run   vs plain   optimizer ms")
    for w in ways:
        c, wl = rate.loc[w, "cpu"], rate.loc[w, "wall"]
        print(f"{w:15s} {c:9.0f}   {c / rate.loc['per-run', 'cpu']:9.2f}x  {c / rate.loc['plain', 'cpu']:8.2f}x"
              f"   {wl:10.0f}   {wl / rate.loc['per-run', 'wall']:9.2f}x  {wl / rate.loc['plain', 'wall']:8.2f}x"
              f"   {med.loc[w, 'optimizer_cpu'] / (K * STEPS) * 1e3:12.3f}")
    print("(optimizer ms: CPU milliseconds in optimizer steps per configuration-step)")
    df = df.assign(config_steps_per_cpu_second=K * STEPS / df["cpu"], config_steps_per_second=K * STEPS / df["wall"],
                   machine=f"{os.cpu_count()} CPU cores", torch_version=torch.__version__, when=pd.Timestamp.now(tz="UTC"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    old = pd.read_parquet(OUT) if OUT.exists() else pd.DataFrame()
    pd.concat([old, df], ignore_index=True).to_parquet(OUT)
    print(f"-> {OUT}")
    return df


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(next((a for a in args if a.isdigit()), 3)), "compiled" in args)
