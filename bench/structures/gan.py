"""One training iteration of a GAN, with or without the tempered lens (Sajjadi et al. 2018).

`step(nets, batch, cfg, t)` is a pure function of the networks, the batch and the config: all the
randomness (real data, noise, GP interpolation weights) comes in `batch`, so several configurations
can be stepped in one process and the same batch gives the same update.

With a lens L, D is trained on {L(x), G(z)}; after G's update the lens minimizes
    lambda(t) * L_adv(D(L(x))) + ||x - L(x)||^2     (per-sample squared L2, batch mean)
where L_adv is the objective's own lens term (bench.objectives). `lens.recon: mean` takes the squared
error's mean over the sample's entries instead of its sum (the paper's formula is the sum, which on
32x32 images adds up 1024+ terms and keeps the lens close to the identity).
"""

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from bench import registry, schedules
from bench.objectives import gradient_penalty


@dataclass
class Nets:
    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    lens: Optional[nn.Module] = None
    opt_lens: Optional[torch.optim.Optimizer] = None

    def modules(self) -> list[nn.Module]:
        return [m for m in (self.G, self.D, self.lens) if m is not None]


def lens_weight(cfg, t: int) -> float:
    lens = cfg.variant.lens
    return schedules.lam(lens.schedule, t, lens.K, lens.lam) if lens else 0.0


def d_step(D, opt_d, obj, v, real, fake, eps, forward=None) -> torch.Tensor:
    """One discriminator update: the objective's D loss (+ WGAN-GP's penalty), a step, WGAN's weight
    clipping. `forward` calls D with extra inputs (e.g. a conditional D); default D itself."""
    f = forward or D
    loss_d = obj.d_loss(f(real), f(fake))
    if obj.gradient_penalty and v.gp_weight > 0:
        loss_d = loss_d + v.gp_weight * gradient_penalty(f, real, fake, eps)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    if obj.clip_weights:
        with torch.no_grad():
            for p in D.parameters():
                p.clamp_(-v.clip, v.clip)
    return loss_d.detach()


def step(nets: Nets, batch: dict, cfg, t: int) -> dict:
    """batch: real (n_critic, B, ...), z (n_critic + 1, B, z_dim), eps (n_critic, B).
    Returns the iteration's losses as 0-d tensors (the caller decides when to synchronise)."""
    obj = registry.get("objective", cfg.variant.objective)
    v = cfg.variant
    G, D, lens = nets.G, nets.D, nets.lens
    out = {}

    nc = cfg.train.n_critic
    lensed = None
    for k in range(nc):
        x = batch["real"][k]
        if lens is not None:
            if k == nc - 1:  # the lens step reuses this forward pass: its weights don't change before it
                lensed = lens(x)
                x = lensed.detach()
            else:
                with torch.no_grad():
                    x = lens(x)
        with torch.no_grad():
            fake = G(batch["z"][k])
        loss_d = d_step(D, nets.opt_d, obj, v, x, fake, batch["eps"][k])
    out["loss_d"] = loss_d

    D.requires_grad_(False)  # G's and the lens' losses need no gradient for D's weights
    loss_g = obj.g_loss(D(G(batch["z"][-1])))
    nets.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    nets.opt_g.step()
    out["loss_g"] = loss_g.detach()

    if lens is not None:
        x, lx = batch["real"][-1], lensed
        sq = ((x - lx) ** 2).flatten(1)
        loss_lens = (sq.sum(1) if cfg.variant.lens.recon == "sum" else sq.mean(1)).mean()
        lam = lens_weight(cfg, t)
        if lam > 0:
            loss_lens = loss_lens + lam * obj.lens_adv(D(lx))
        nets.opt_lens.zero_grad(set_to_none=True)
        loss_lens.backward()
        nets.opt_lens.step()
        out["loss_lens"] = loss_lens.detach()
    D.requires_grad_(True)
    return out
