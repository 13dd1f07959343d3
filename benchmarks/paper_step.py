"""The paper studies' exact step costs, to budget them and to pick their GPU fraction.

For each paper study (lens_paper, edgan_paper, zoo_paper) the trials are grouped as the runner packs them
(bench.packing.compatibility: same shapes, same step), and one pack of K members of each group is
timed for a few training steps (no evaluation) at K in --packs. Printed per group and K: ms per
configuration-step; then the study's training time (every trial's steps, at the best K) on one device.

A random study with variants (robustness_fmnist, robustness_paper: up to thousands of trials, a packing
group per sampled n_critic and D batch-norm setting) is timed per cost group instead: the packing key
without n_critic, the step count and the evaluation cadence, with datasets of the same shape merged (MNIST
and Fashion-MNIST); each group at its lowest and highest n_critic (at each K), a trial in between costing
the straight line between them (a step is n_critic D updates and one G update). Stage 2's trials are known
only after stage 1: each variant's `top` x new seeds are costed at the mean of that variant's stage-1
trials. Torch's FLOP counter cannot follow autograd.grad (WGAN-GP's gradient penalty): such a group's
GFLOP is its time x the FLOPs per second of the counted groups (lens on / off alike), and says so.

On a GPU, the best K is the pack size to use: the study's `resources.gpu` is then 1 / (number of
packs that fit side by side), and `sweep.pack` K. On a CPU the figures budget a CPU run.
Usage: python -m benchmarks.paper_step [--device cuda] [--packs 1,2,4,8] [--steps 5] [--study lens_paper]
       [--set dataset.name=mnist ...]
       [--clock cpu]   (time the steps in this process's CPU time: a CPU shared with other work)
Rows are appended to benchmarks/results/paper_step.parquet or --out (device, study, group, K, ms per
config-step, GFLOP per config-step, clock).
"""

from __future__ import annotations

import argparse
import math
import os
import re
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
STUDIES = ("lens_paper", "edgan_paper", "zoo_paper", "robustness_fmnist", "robustness_paper")
# what times a step: the wall clock (default), or with --clock cpu this process's CPU time (a CPU shared with
# other work: one torch thread's CPU time does not count the time the process waited for a core)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = CLOCKS["wall"]


def config_step_seconds(cfgs: list[dict], device: str, steps: int) -> tuple[float, float]:
    """(seconds, GFLOP) per configuration-step of one pack of `cfgs` (two warm-up steps, then `steps`
    timed; the FLOPs of one more step counted by torch.utils.flop_counter: the same on every device)."""
    from torch.utils.flop_counter import FlopCounterMode

    run = setup(cfgs, device)
    for t in range(2):
        run.step(t)
    if run.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = CLOCK()
    for t in range(steps):
        out = run.step(t)
    {k: v.tolist() for k, v in out.items()}  # the trial syncs every 25 steps on a GPU: one sync here
    if run.device.type == "cuda":
        torch.cuda.synchronize()
    sec = (CLOCK() - t0) / steps / len(cfgs)
    try:
        with FlopCounterMode(display=False) as flops:
            run.step(steps + 2)
    except RuntimeError:  # torch's FLOP counter cannot follow autograd.grad (WGAN-GP's gradient penalty)
        return sec, math.nan
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


def cost_key(t: dict) -> str:
    """Trials of a random study that cost the same per step up to n_critic (see the module docstring)."""
    same = {**t, "dataset": {**t["dataset"], **STAND_INS.get(t["dataset"]["name"], {})},
            "train": {**t["train"], "n_critic": 0, "steps": 0, "eval_every": 0, "checkpoint_every": 0}}
    return packing.compatibility(same)


def bench_random(name: str, study, trials: list[dict], device: str, packs: list[int], steps: int) -> list[dict]:
    """Per cost group, a pack of K configurations timed at the group's lowest and highest n_critic, for K in
    `packs`; each trial costs its group's best K."""
    groups = defaultdict(list)
    for t in trials:
        groups[cost_key(t)].append(t)
    rows, per_trial, fits, skipped = [], {}, [], 0
    for members in groups.values():
        ncs = sorted({m["train"]["n_critic"] for m in members})
        fit = {}
        for nc in (ncs[0], ncs[-1]) if len(ncs) > 1 else ncs:
            rep = next(m for m in members if m["train"]["n_critic"] == nc)
            bn = rep["model"].get("d_batch_norm")
            lab = label(rep) + ("" if bn is None else f" d_bn={'on' if bn else 'off'}")
            for K in packs:
                try:
                    sec, gflop, note = with_data([{**rep, "seed": s, "trial_id": f"bench{s}"} for s in range(K)],
                                                 device, steps)
                except RuntimeError as e:  # out of memory
                    print(f"{name:11s} {lab:58s} K={K:<3d} skipped: {str(e).splitlines()[0][:80]}", flush=True)
                    break
                if nc not in fit or sec < fit[nc][0]:
                    fit[nc] = (sec, gflop)
                rows.append({"study": name, "group": lab, "trials": sum(m["train"]["n_critic"] == nc for m in members),
                             "K": K, "device": device, "ms_per_config_step": sec * 1e3, "gflop_per_config_step": gflop,
                             "steps_per_trial": rep["train"]["steps"]})
                print(f"{name:11s} {lab:58s} K={K:<3d} {sec * 1e3:9.2f} ms {gflop:7.2f} GFLOP per config-step{note}",
                      flush=True)
        if len(fit) == len({ncs[0], ncs[-1]}):
            fits.append((members, fit, bool(members[0]["variant"].get("lens"))))
        else:
            skipped += len(members)
    # groups whose FLOPs the counter could not follow (WGAN-GP): their time x the FLOPs per second of the
    # counted groups with the lens on / off alike (on one CPU thread those agree within about 10 %)
    rate = {}
    for lens in (False, True):
        counted = [(s, f) for _, fit, on in fits if on == lens for s, f in fit.values() if math.isfinite(f)]
        rate[lens] = sum(f for _, f in counted) / sum(s for s, _ in counted) if counted else math.nan
    for members, fit, lens in fits:
        if any(not math.isfinite(f) for _, f in fit.values()):
            group = re.sub(r" n_critic=[0-9]+", "", label(members[0]))
            print(f"{name:11s} {group:58s} GFLOP not countable: estimated at "
                  f"{rate[lens]:.0f} GFLOP per {'CPU ' if CLOCK is time.process_time else ''}second, "
                  + ", ".join(f"n_critic={nc}: {s * rate[lens]:.1f}" for nc, (s, _) in sorted(fit.items())), flush=True)
            for nc, (s, f) in list(fit.items()):
                fit[nc] = (s, s * rate[lens] if not math.isfinite(f) else f)
        (n0, (s0, f0)), (n1, (s1, f1)) = min(fit.items()), max(fit.items())
        for m in members:
            w = 0.0 if n1 == n0 else (m["train"]["n_critic"] - n0) / (n1 - n0)
            per_trial[m["trial_id"]] = ((s0 + w * (s1 - s0)) * m["train"]["steps"],
                                        (f0 + w * (f1 - f0)) * m["train"]["steps"] / 1e6)
    r = study.sweep.retrain
    seed1 = study.sweep.seeds[0] if study.sweep.seeds else study.seed
    new_seeds = len(set(r.seeds) - {seed1}) if r is not None else 0
    by_variant = defaultdict(list)
    for t in trials:
        if t["trial_id"] in per_trial:
            by_variant[t["variant_label"]].append(per_trial[t["trial_id"]])
    if skipped:
        print(f"{name}: {skipped} trials left out of the sums below (their group could not be timed)", flush=True)
    s1 = [sum(x[i] for x in per_trial.values()) for i in (0, 1)]
    s2 = [sum(min(r.top, len(v)) * new_seeds * sum(x[i] for x in v) / len(v) for v in by_variant.values())
          if r is not None else 0.0 for i in (0, 1)]
    n2 = sum(min(r.top, len(v)) for v in by_variant.values()) * new_seeds if r is not None else 0
    print(f"{name}: {len(groups)} cost groups; stage 1: {len(trials)} trials, {s1[0] / 3600:.2f} device-hours of "
          f"training on {device}, {s1[1]:.4g} PFLOP; stage 2 (each variant's best {r.top if r else 0} x {new_seeds} "
          f"new seeds at its stage-1 mean): {n2} trials, {s2[0] / 3600:.2f} device-hours, {s2[1]:.4g} PFLOP; "
          f"in all {(s1[0] + s2[0]) / 3600:.2f} device-hours, {s1[1] + s2[1]:.4g} PFLOP of training", flush=True)
    return rows


def bench_study(name: str, device: str, packs: list[int], steps: int, overrides: list[str] = ()) -> list[dict]:
    study = load_study(ROOT / "studies" / f"{name}.yaml", list(overrides))
    trials = expand(study)
    if study.sweep.method == "random" and study.sweep.variants is not None:
        return bench_random(name, study, trials, device, packs, steps)
    groups = defaultdict(list)
    for t in trials:
        groups[packing.compatibility(t)].append(t)
    rows, total, pflop, uncounted = [], 0.0, 0.0, 0
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
            if math.isfinite(gflop):
                pflop += gflop * sum(m["train"]["steps"] for m in members) / 1e6
            else:
                uncounted += len(members)
    print(f"{name}: {len(trials)} trials, training alone at the best K: {total / 3600:.1f} device-hours on {device}; "
          f"{pflop:.0f} PFLOP of training in all"
          + (f" but {uncounted} trials' (the FLOP counter cannot follow their gradient penalty)" if uncounted else ""),
          flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--packs", default="1,2,4,8")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--study", action="append", choices=STUDIES)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                    help="cpu: time the steps in CPU time (a shared CPU; --threads 1; not on a GPU)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"the Parquet file the rows are appended to (default {OUT})")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a study field as `ganbench run --set` does (e.g. dataset.name=mnist)")
    a = ap.parse_args()
    if a.clock == "cpu" and a.device != "cpu":
        ap.error("--clock cpu times CPU steps only (a GPU step's time is not this process's CPU time)")
    global CLOCK
    CLOCK = CLOCKS[a.clock]
    torch.set_num_threads(a.threads)
    rows = []
    for name in a.study or STUDIES:
        rows += bench_study(name, a.device, [int(k) for k in a.packs.split(",")], a.steps, a.set)
    df = pd.DataFrame(rows).assign(when=pd.Timestamp.now(tz="UTC"), threads=a.threads, clock=a.clock)
    old = pd.read_parquet(a.out) if a.out.exists() else pd.DataFrame()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    pd.concat([old, df], ignore_index=True).to_parquet(a.out)
    print(f"-> {a.out}")


if __name__ == "__main__":
    main()
