"""The GPU measurements that issues 11 (packed trials) and 14 (GPU paths) still lack, as one prepared,
time-boxed command for a session that is lent a GPU (the device tool: `benchmarks/gpu_check.sh`).

Ray-free on purpose: the device machine has no Ray and Ray's wheel (79 MB) is larger than what the tool
carries. Plain Ray on one GPU runs one configuration per trial one after another (resources.gpu: 1), so
"one configuration at a time" below is plain Ray less its per-trial overhead: the packed / plain ratio it
gives is a lower bound of packed Ray / plain Ray.

Parts, in order, each skipped once the deadline (--minutes) is near; rows go to OUT/gpu_check.parquet:
  k        ms per configuration-step of one pack as K grows: the toy MLP and DCGAN C = 16 on Fashion-MNIST,
           float32 and train.precision bf16 (sets bench.packing.AUTO_CAP's GPU entries)
  hygiene  host-device synchronisations in 24 steps (torch.cuda.set_sync_debug_mode; the loop syncs only
           every 25 steps), and the warnings a whole trial raises on CUDA (determinism settings)
  whole    whole trials, evaluations included: the toy study (ring8, 16 seeds x 2000 steps) and the DCGAN
           study (8 seeds x 300 steps) of benchmarks.throughput, one configuration at a time vs packed
  paper    benchmarks.paper_step for lens_paper, edgan_paper, zoo_paper at K = 1, 4, 16 (their GPU fraction)
Usage: python -m benchmarks.gpu_check [--out DIR] [--minutes 9] [--parts k,hygiene,whole,paper] [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
import yaml

from benchmarks.paper_step import bench_study, config_step_seconds
from benchmarks.throughput import STUDIES

DEADLINE = [float("inf")]
# benchmarks.throughput's two studies, as trial configs (their sweeps are the seeds below)
TOY, DCGAN = ({k: v for k, v in yaml.safe_load(STUDIES[n]).items() if k in ("dataset", "model", "train", "variant")}
              for n in ("toy", "dcgan"))


def left() -> float:
    return DEADLINE[0] - time.perf_counter()


def configs(base: dict, seeds, device: str, **train) -> list[dict]:
    from bench.schema import TrialConfig, config_hash, variant_label

    out = []
    for s in seeds:
        raw = {**base, "train": {**base["train"], **train}, "seed": s}
        c = TrialConfig.model_validate(raw).model_dump(mode="json")
        out.append({**c, "study": "gpu_check", "trial_id": config_hash(c), "variant_label": variant_label(c),
                    "resources": {"cpu": 1, "gpu": 1 if device == "cuda" else 0}})
    return out


def part_k(device: str) -> list[dict]:
    rows = []
    for family, base, Ks in (("mlp", TOY, (1, 4, 16, 64)), ("conv", DCGAN, (1, 4, 16, 32))):
        for precision in ("fp32", "bf16"):
            for K in Ks:
                if left() < 60:
                    return rows
                try:
                    sec, gflop = config_step_seconds(configs(base, range(K), device, precision=precision), device, 20)
                except RuntimeError as e:  # out of memory
                    print(f"k {family} {precision} K={K}: {str(e).splitlines()[0][:100]}", flush=True)
                    break
                rows.append({"part": "k", "what": f"{family} {precision}", "K": K, "ms_per_config_step": sec * 1e3,
                             "gflop_per_config_step": gflop})
                print(f"k {family:4s} {precision} K={K:3d}: {sec * 1e3:8.3f} ms per configuration-step", flush=True)
    return rows


def part_hygiene(device: str) -> list[dict]:
    from bench.trial import run_trial, setup

    rows = []
    for name, base in (("toy", TOY), ("dcgan", DCGAN)):
        cfgs = configs(base, range(4), device)
        run = setup(cfgs, device)
        run.step(0)
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                for t in range(1, 25):
                    run.step(t)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message).lower()]
        print(f"hygiene {name}: {len(syncs)} host-device synchronisations in 24 steps of a pack of 4"
              + (f": {sorted(set(syncs))[:3]}" if syncs else ""), flush=True)
        with warnings.catch_warnings(record=True) as caught, tempfile.TemporaryDirectory() as d:
            warnings.simplefilter("always")
            run_trial(configs(base, [0], device, steps=20, eval_every=10)[0], lambda r, state=None: None, d, device=device)
        msgs = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:150]}" for w in caught})
        print(f"hygiene {name}: a 20-step trial raised {len(msgs)} distinct warnings" + "".join(f"\n  {m}" for m in msgs),
              flush=True)
        rows.append({"part": "hygiene", "what": name, "syncs_in_24_steps": len(syncs), "trial_warnings": len(msgs),
                     "detail": "; ".join(sorted(set(syncs)) + msgs)[:2000]})
    return rows


def part_whole(device: str) -> list[dict]:
    from bench.packing import make_packs
    from bench.trial import run_trial

    rows = []
    for name, base, seeds in (("toy", TOY, range(16)), ("dcgan", DCGAN, range(8))):
        cfgs = configs(base, seeds, device)
        packs = make_packs(cfgs, "auto", 1)
        with tempfile.TemporaryDirectory() as d:  # untimed: the evaluator trained and cached, kernels loaded
            run_trial(configs(base, [0], device, steps=2, eval_every=2)[0], lambda r, state=None: None, d, device=device)
        timed = {}
        for how, groups in (("packed", packs), ("one at a time", [[c] for c in cfgs])):
            if left() < 90:
                return rows
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as d:
                for g in groups:
                    run_trial(g, lambda r, state=None: None, d, device=device)
            timed[how] = time.perf_counter() - t0
            n = len(cfgs)
            rows.append({"part": "whole", "what": f"{name} {how}", "K": max(map(len, groups)), "configurations": n,
                         "wall_seconds": timed[how], "configurations_per_hour": n * 3600 / timed[how]})
            print(f"whole {name:5s} {how:13s}: {n} configurations in {timed[how]:7.1f} s (packs of "
                  f"{max(map(len, groups))})", flush=True)
        if len(timed) == 2:
            print(f"whole {name}: packed / one at a time = {timed['one at a time'] / timed['packed']:.2f}x", flush=True)
    return rows


def part_paper(device: str) -> list[dict]:
    rows = []
    for study in ("lens_paper", "edgan_paper", "zoo_paper"):
        if left() < 120:
            break
        rows += [{"part": "paper", "what": f"{r['study']}: {r['group']}", **r} for r in bench_study(study, device, [1, 4, 16], 3)]
    return rows


PARTS = {"k": part_k, "hygiene": part_hygiene, "whole": part_whole, "paper": part_paper}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT") or "benchmarks/results")
    ap.add_argument("--minutes", type=float, default=9.0)
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    DEADLINE[0] = time.perf_counter() + a.minutes * 60
    if a.device == "cuda":
        p = torch.cuda.get_device_properties(0)
        machine = f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}"
    else:
        machine = f"{os.cpu_count()} CPU cores, torch {torch.__version__}"
    print(f"gpu_check on {machine}", flush=True)
    rows = []
    for part in a.parts.split(","):
        if part == "hygiene" and a.device != "cuda":
            continue
        t0 = time.perf_counter()
        rows += PARTS[part](a.device)
        print(f"-- {part}: {time.perf_counter() - t0:.0f} s; {left():.0f} s left", flush=True)
        out = Path(a.out) / "gpu_check.parquet"  # after each part: a killed run keeps what it measured
        out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).assign(machine=machine, when=pd.Timestamp.now(tz="UTC")).to_parquet(out)


if __name__ == "__main__":
    main()
