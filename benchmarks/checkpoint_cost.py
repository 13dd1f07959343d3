"""What a checkpoint costs, in per cent of trial time, at the default `train.checkpoint_every`.

A trial of the quickstart (toy) and of lens_fmnist (DCGAN, C = 16, no lens / lens) runs in this process
on one thread with a checkpoint at every evaluation; each checkpoint is written exactly as the Ray
trainable writes it (bench.checkpoints.write into a temporary folder) and then copied once more, as Ray
copies it into the study's storage. Cost per cent = time per checkpoint / (checkpoint_every x time per
step). Usage: python -m benchmarks.checkpoint_cost"""

import shutil
import tempfile
import time

import torch

from bench import checkpoints
from bench.schema import TrialConfig
from bench.study import expand, load_study
from bench.trial import run_trial


def measure(cfg: dict, steps: int, every: int) -> dict:
    cfg = {**cfg, "train": {**cfg["train"], "steps": steps, "eval_every": every, "checkpoint_every": every}}
    spent, n = 0.0, 0

    def report(row, state=None):
        nonlocal spent, n
        if state is not None:
            t = time.perf_counter()
            with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
                checkpoints.write(state, a)
                shutil.copytree(a, f"{b}/checkpoint")  # Ray's copy into the storage
            spent, n = spent + time.perf_counter() - t, n + 1

    with tempfile.TemporaryDirectory() as art:
        t = time.perf_counter()
        run_trial(cfg, report, art)
        wall = time.perf_counter() - t
    per_step = (wall - spent) / steps
    default = TrialConfig().train.checkpoint_every
    per_ckpt = spent / n
    return {"per_step_ms": per_step * 1e3, "per_checkpoint_ms": per_ckpt * 1e3,
            "percent_at_default": 100 * per_ckpt / (default * per_step + per_ckpt), "default": default}


def main():
    torch.set_num_threads(1)
    quick = expand(load_study("studies/quickstart.yaml"))[0]
    fm = {t["variant_label"]: t for t in expand(load_study("studies/lens_fmnist.yaml")) if t["seed"] == 0}
    for name, cfg, steps, every in (("toy (quickstart, ns)", quick, 2000, 250),
                                    ("DCGAN C=16 (lens_fmnist, ns)", fm["ns"], 200, 50),
                                    ("DCGAN C=16 + lens (lens_fmnist)", fm["ns+lens(sine K=1000)"], 60, 20)):
        r = measure(cfg, steps, every)
        print(f"{name:34s} {r['per_step_ms']:7.2f} ms/step  {r['per_checkpoint_ms']:7.1f} ms/checkpoint  "
              f"-> {r['percent_at_default']:.2f} % of trial time at checkpoint_every={r['default']}")


if __name__ == "__main__":
    main()
