"""Training throughput on the 2-D toys: iterations per second of the GAN step, per objective,
with and without the lens, on one torch thread (a trial's CPU share). Run: make bench."""

import time

import torch

from bench.schema import TrialConfig
from bench.trial import setup


def iters_per_second(objective: str, lens: bool, n_critic: int = 1, iters: int = 300) -> float:
    cfg = TrialConfig(variant={"objective": objective, "lens": {"K": 1000} if lens else None},
                      train={"n_critic": n_critic}).model_dump(mode="json")
    run = setup({**cfg, "trial_id": "bench"}, "cpu")
    for t in range(20):  # warm-up
        run.step(t)
    t0 = time.perf_counter()
    for t in range(iters):
        out = run.step(t)
        {k: v.tolist() for k, v in out.items()}  # the trial synchronises every step for divergence checks
    return iters / (time.perf_counter() - t0)


def main():
    torch.set_num_threads(1)
    rows = []
    for obj, nc in (("ns", 1), ("lsgan", 1), ("hinge", 1), ("wgan", 5), ("wgan-gp", 5)):
        for lens in (False, True):
            rows.append((obj, nc, lens, iters_per_second(obj, lens, nc)))
    print("objective  n_critic  lens   iters/s (batch 256, MLP 128x2, 1 thread)")
    for obj, nc, lens, ips in rows:
        print(f"{obj:9s}  {nc:8d}  {str(lens):5s}  {ips:8.0f}")
    return rows


if __name__ == "__main__":
    main()
