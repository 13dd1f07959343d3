"""DCGAN training throughput on 32x32 images: iterations per second of the GAN step (one D and one G
update, plus the lens update when on), batch 64, for C = 16 and 32, on this machine's threads.
Batches are real: scikit-learn's digits at 32x32 (1 channel) and stacked digits (3 channels)."""

import torch

from bench.schema import TrialConfig
from benchmarks.paper_step import config_step_seconds


def iters_per_second(C: int, channels: int, objective: str, lens: bool, threads: int, iters: int = 30,
                     batch: int = 64, device: str = "cpu") -> float:
    torch.set_num_threads(threads)
    data = {"name": "digits"} if channels == 1 else {"name": "stacked", "base": "digits"}
    cfg = TrialConfig(dataset=data, model={"name": "dcgan", "width": C, "z_dim": 64},
                      variant={"objective": objective, "lens": {"K": 1000} if lens else None},
                      train={"batch_size": batch, "lr": 1e-4}).model_dump(mode="json")
    return 1.0 / config_step_seconds([{**cfg, "trial_id": "bench"}], device, iters)[0]  # (seconds, GFLOP)


def main(threads: int = 1, device: str = "cpu"):
    print(f"DCGAN step, 32x32, batch 64, {threads} thread(s), {device}: iterations/s")
    print("C   channels objective lens   it/s")
    for C in (16, 32):
        for ch, obj in ((1, "ns"), (3, "wgan-gp")):
            for lens in (False, True):
                print(f"{C:<3d} {ch:<8d} {obj:9s} {str(lens):5s} {iters_per_second(C, ch, obj, lens, threads, device=device):6.1f}")


if __name__ == "__main__":
    import sys

    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1, sys.argv[2] if len(sys.argv) > 2 else "cpu")
