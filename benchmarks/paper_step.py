"""The paper studies' exact step costs, to budget them and to pick their GPU fraction.

For each paper study (lens_paper, edgan_paper) the trials are grouped as the runner packs them
(bench.packing.compatibility: same shapes, same step), and one pack of K members of each group is
timed for a few training steps (no evaluation) at K in --packs. Printed per group and K: ms per
configuration-step; then the study's training time (every trial's steps, at the best K) on one device.

On a GPU, the best K is the pack size to use: the study's `resources.gpu` is then 1 / (number of
packs that fit side by side), and `sweep.pack` K. On a CPU the figures budget a CPU run.
Usage: python -m benchmarks.paper_step [--device cuda] [--packs 1,2,4,8] [--steps 5] [--study lens_paper]
Rows are appended to benchmarks/results/paper_step.parquet (device, study, group, K, ms per config-step).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import torch

from bench import packing
from bench.study import expand, load_study
from bench.trial import setup

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "paper_step.parquet"
STUDIES = ("lens_paper", "edgan_paper", "zoo_paper")


def config_step_seconds(cfgs: list[dict], device: str, steps: int) -> tuple[float, float]:
    """(seconds, GFLOP) per configuration-step of one pack of `cfgs` (two warm-up steps, then `steps`
    timed; the FLOPs of one more step counted by torch.utils.flop_counter: the same on every device)."""
    from torch.utils.flop_counter import FlopCounterMode

    run = setup(cfgs, device)
    for t in range(2):
        run.step(t)
    if run.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for t in range(steps):
        out = run.step(t)
    {k: v.tolist() for k, v in out.items()}  # the trial syncs every 25 steps on a GPU: one sync here
    if run.device.type == "cuda":
        torch.cuda.synchronize()
    sec = (time.perf_counter() - t0) / steps / len(cfgs)
    with FlopCounterMode(display=False) as flops:
        run.step(steps + 2)
    return sec, flops.get_total_flops() / 1e9 / len(cfgs)


# Same-shape stand-ins when a study's dataset files are absent: the step cost depends on shapes only
STAND_INS = {"mnist": {"name": "fashion_mnist"}, "cifar10": {"name": "stacked", "base": "fashion_mnist"},
             "stacked": {"name": "stacked", "base": "fashion_mnist"}, "celeba": {"name": "stacked", "base": "fashion_mnist"}}


def with_data(cfgs: list[dict], device: str, steps: int) -> tuple[float, float, str]:
    try:
        return (*config_step_seconds(cfgs, device, steps), "")
    except FileNotFoundError:
        name = cfgs[0]["dataset"]["name"]
        if name not in STAND_INS:
            raise
        stand = [{**c, "dataset": {**c["dataset"], **STAND_INS[name]}} for c in cfgs]
        try:
            return (*config_step_seconds(stand, device, steps), f" (files absent: {STAND_INS[name]['name']} stands in)")
        except (ValueError, IndexError, RuntimeError):
            # a structure that needs 10 classes cannot take the 1000-class stacked set: the 1-channel set
            # stands in (only the first and last convolutions are smaller)
            stand = [{**c, "dataset": {**c["dataset"], "name": "fashion_mnist"}} for c in cfgs]
            return (*config_step_seconds(stand, device, steps), " (files absent: fashion_mnist stands in, 1 channel)")


def label(t: dict) -> str:
    v, d = t["variant"], t["dataset"]
    lens = v.get("lens") or {}
    return (f"{d['name']} {v['structure']} {v['objective']}" + (f" {v['task']}" if v.get("task") else "")
            + f" {t['train']['optimizer']} n_critic={t['train']['n_critic']}"
            + (f" lens(w={lens.get('width')})" if lens else ""))


def bench_study(name: str, device: str, packs: list[int], steps: int) -> list[dict]:
    trials = expand(load_study(ROOT / "studies" / f"{name}.yaml"))
    groups = defaultdict(list)
    for t in trials:
        groups[packing.compatibility(t)].append(t)
    rows, total, pflop = [], 0.0, 0.0
    for members in groups.values():
        rep, best = members[0], None
        for K in packs:
            cfgs = [{**rep, "seed": s, "trial_id": f"bench{s}"} for s in range(K)]
            try:
                sec, gflop, note = with_data(cfgs, device, steps)
            except (FileNotFoundError, RuntimeError) as e:  # dataset files absent / out of memory
                print(f"{name:11s} {label(rep):58s} K={K:<3d} skipped: {str(e).splitlines()[0][:80]}", flush=True)
                break
            best = sec if best is None else min(best, sec)
            rows.append({"study": name, "group": label(rep), "trials": len(members), "K": K, "device": device,
                         "ms_per_config_step": sec * 1e3, "gflop_per_config_step": gflop,
                         "steps_per_trial": rep["train"]["steps"]})
            print(f"{name:11s} {label(rep):58s} K={K:<3d} {sec * 1e3:9.2f} ms {gflop:7.2f} GFLOP per config-step{note}",
                  flush=True)
        if best is not None:
            total += best * sum(m["train"]["steps"] for m in members)
            pflop += gflop * sum(m["train"]["steps"] for m in members) / 1e6
    print(f"{name}: {len(trials)} trials, training alone at the best K: {total / 3600:.1f} device-hours on {device}; "
          f"{pflop:.0f} PFLOP of training in all", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--packs", default="1,2,4,8")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--study", action="append", choices=STUDIES)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    for name in a.study or STUDIES:
        rows += bench_study(name, a.device, [int(k) for k in a.packs.split(",")], a.steps)
    df = pd.DataFrame(rows).assign(when=pd.Timestamp.now(tz="UTC"), threads=a.threads)
    old = pd.read_parquet(OUT) if OUT.exists() else pd.DataFrame()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    pd.concat([old, df], ignore_index=True).to_parquet(OUT)
    print(f"-> {OUT}")


if __name__ == "__main__":
    main()
