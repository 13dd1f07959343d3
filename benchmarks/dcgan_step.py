"""DCGAN training throughput on 32x32 images: iterations per second of the GAN step (one D and one G
update, plus the lens update when on), batch 64, for C = 16 and 32, on this machine's threads.
The batch content does not change the cost, so batches are random tensors of the right shape."""

import time

import torch

from bench.schema import TrialConfig, trial_config
from bench.structures.gan import Nets, step
from bench.nets import dcgan
from bench.trial import make_optimizer


def iters_per_second(C: int, channels: int, objective: str, lens: bool, threads: int, iters: int = 30,
                     batch: int = 64, device: str = "cpu") -> float:
    torch.set_num_threads(threads)
    cfg = trial_config(TrialConfig(model={"name": "dcgan", "width": C, "z_dim": 64},
                                   variant={"objective": objective, "lens": {"K": 1000} if lens else None},
                                   train={"batch_size": batch, "lr": 1e-4}).model_dump(mode="json"))
    dev = torch.device(device)
    dim = (channels, 32, 32)
    G, D = dcgan.build(cfg.model, dim)
    L = dcgan.build_lens(cfg.variant.lens, cfg.model, dim).to(dev) if lens else None
    G, D = G.to(dev), D.to(dev)
    t = cfg.train
    nets = Nets(G, D, make_optimizer(G.parameters(), t), make_optimizer(D.parameters(), t, discriminator=True),
                L, make_optimizer(L.parameters(), t) if lens else None)
    g = torch.Generator().manual_seed(0)

    def batch_():
        return {"real": (torch.rand(1, batch, *dim, generator=g) * 2 - 1).to(dev),
                "z": torch.randn(2, batch, 64, generator=g).to(dev), "eps": torch.rand(1, batch, generator=g).to(dev)}

    for i in range(3):
        step(nets, batch_(), cfg, i)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(iters):
        out = step(nets, batch_(), cfg, i)
        {k: v.item() for k, v in out.items()}
    return iters / (time.perf_counter() - t0)


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
