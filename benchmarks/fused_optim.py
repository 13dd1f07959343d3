"""The fused pack optimizer (bench.optim) against the per-run optimizers it replaced, on the toy MLP GAN
of studies/quickstart.yaml: 8 configurations with 8 distinct learning rates trained as

    fused       one pack, one fused optimizer per network (PackOptimizer's default)
    per-run     one pack, one torch optimizer per configuration and network (PackOptimizer(per_run=True),
                the implementation before bench.optim)
    plain       8 unpacked configurations, one after another
    same-lr     (reference) one pack of 8 seeds sharing one learning rate: torch's optimizer over the pack

Configuration-steps per second (training steps only, one torch thread: a trial's CPU share, the trial's
per-step synchronisation included), the median of `repeats` interleaved rounds, and the ratios; appended
to benchmarks/results/fused_optim.parquet. `compiled` adds the fused Adam's update under torch.compile.
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
        t = time.perf_counter()
        step()
        spent[0] += time.perf_counter() - t
    return f


def seconds(cfgs: list[dict], per_run: bool = False, compiled: bool = False) -> tuple[float, float]:
    """Seconds for STEPS training steps of one pack of these configurations, and those in optimizer steps."""
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
    t0, spent[0] = time.perf_counter(), 0.0
    for t in range(WARM, WARM + STEPS):
        out = run.step(t)
        {k: v.tolist() for k, v in out.items()}  # the trial reads the losses every step on a CPU
    optim.adam_update = plain_update
    return time.perf_counter() - t0, spent[0]


WAYS = {
    "fused": lambda: seconds(configs(LRS)),
    "per-run": lambda: seconds(configs(LRS), per_run=True),
    "plain": lambda: tuple(map(sum, zip(*(seconds(configs([lr])) for lr in LRS)))),
    "same-lr": lambda: seconds(configs([1e-3] * K)),
}


def main(repeats: int = 3, compiled: bool = False) -> list[dict]:
    torch.set_num_threads(1)
    ways = dict(WAYS)
    if compiled:
        ways["fused-compiled"] = lambda: seconds(configs(LRS), compiled=True)
    times = {w: [] for w in ways}
    for _ in range(repeats):  # interleaved: a busy spell of the machine hits every way alike
        for w, f in ways.items():
            times[w].append(f())
    med = {w: statistics.median(s for s, _ in ts) for w, ts in times.items()}
    opt_ms = {w: statistics.median(o for _, o in ts) / (K * STEPS) * 1e3 for w, ts in times.items()}
    rate = {w: K * STEPS / m for w, m in med.items()}
    print(f"{K} toy configurations (quickstart MLP GAN), {K} distinct learning rates, {STEPS} steps, 1 thread, "
          f"median of {repeats}")
    print("way             configuration-steps/s   vs per-run   vs plain   optimizer ms / configuration-step")
    for w in ways:
        print(f"{w:15s} {rate[w]:21.0f}   {rate[w] / rate['per-run']:9.2f}x  {rate[w] / rate['plain']:8.2f}x   "
              f"{opt_ms[w]:8.3f}")
    rows = [{"how": w, "configurations": K, "steps": STEPS, "repeat": i, "seconds": s, "optimizer_seconds": o,
             "config_steps_per_second": K * STEPS / s, "median_config_steps_per_second": rate[w],
             "vs_per_run": rate[w] / rate["per-run"], "vs_plain": rate[w] / rate["plain"]}
            for w, ts in times.items() for i, (s, o) in enumerate(ts)]
    df = pd.DataFrame(rows).assign(machine=f"{os.cpu_count()} CPU cores", torch_version=torch.__version__,
                                   when=pd.Timestamp.now(tz="UTC"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    old = pd.read_parquet(OUT) if OUT.exists() else pd.DataFrame()
    pd.concat([old, df], ignore_index=True).to_parquet(OUT)
    print(f"-> {OUT}")
    return rows


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(next((a for a in args if a.isdigit()), 3)), "compiled" in args)
