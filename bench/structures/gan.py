"""GAN: G from noise against D, with or without the tempered lens (Sajjadi et al. 2018).

One iteration: `n_critic` D updates on {real, G(z)} (with a lens L, D sees L(x) instead of x), then one
G update, then (with a lens) one lens update that minimises
    lambda(t) * L_adv(D(L(x)), D(G(z))) + ||x - L(x)||^2     (per-sample squared L2, batch mean)
where L_adv is the objective's own lens term (bench.objectives). `lens.recon: mean` takes the squared
error's mean over the sample's entries instead of its sum (the paper's formula is the sum, which on
32x32 images adds up 1024+ terms and keeps the lens close to the identity).

G and D come from the configuration's `init` stream and the lens from its `extra` stream, so the same
seed gives the same initial G and D with and without a lens (the paired comparison). Toys (2-D
mixtures) are evaluated with the toy metrics on `eval_samples` points from a fixed noise batch; images
with the dataset's evaluator (FID/KID/PR/DC, modes), with grids of generated, real and lensed images.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from bench import registry, schedules
from bench.structures import Pack, Result, Streams, d_step, eval_mode, evaluated, frozen, pack_nets, stacked

# the catalog's declaration (bench.catalog reads it without importing this module: plain data only)
DECLARE = {"gan": {
    "title": "GAN", "doc": "G from noise, D on real vs fake; optionally the tempered lens on D's real input",
    "options": {},
    "uses": ["objective", "lens", "clip", "gp_weight"],
    "losses": ["loss_d", "loss_g", "loss_lens"], "grids": ["generated", "real", "lensed"],
    "metrics": [], "headline": "energy_distance", "success": "collapse", "sections": ["treatment"],
}}

N_SCATTER = 1000  # toy points per kind kept for the report's real-vs-generated plots


def check(cfg) -> None:
    if cfg.model.name == "encdec":
        raise ValueError("model.name: encdec is for the encoder-decoder structures (variant.structure: ed+gan, "
                         "ed+gan2, ed//gan)")


def lens_weight(cfg, t: int) -> float:
    lens = cfg.variant.lens
    return schedules.lam(lens.schedule, t, lens.K, lens.lam) if lens else 0.0


def scalars(cfg, t: int) -> dict:
    return {"lambda": lens_weight(cfg, t) if cfg.variant.lens else math.nan}


def build(pack: Pack, data, streams: list[Streams], device):
    nets = registry.get("network", pack.cfg.model.name)
    per_config = []
    for cfg, s in zip(pack.cfgs, streams):
        torch.manual_seed(s.init)
        G, D = nets.build(cfg.model, data.dim)
        lens = None
        if cfg.variant.lens is not None:
            torch.manual_seed(s.extra)
            lens = nets.build_lens(cfg.variant.lens, cfg.model, data.dim)
        per_config.append({"G": G, "D": D, "lens": lens})
    return pack_nets(per_config, pack, device)


def batch(pack: Pack, data, gens: list[dict], device) -> dict:
    """real [n_critic, n, B, ...], z [n_critic + 1, n, B, z_dim], eps [n_critic, n, B]."""
    nc, B, z_dim = pack.cfg.train.n_critic, pack.cfg.train.batch_size, pack.cfg.model.z_dim

    def real(g):
        x = data.sample(nc * B, g["data"])
        return x.reshape(nc, B, *x.shape[1:])

    z = stacked(lambda g: torch.randn(nc + 1, B, z_dim, generator=g["noise"], device=g["noise"].device), gens, device)
    eps = stacked(lambda g: torch.rand(nc, B, generator=g["noise"], device=g["noise"].device), gens, device)
    return {"real": stacked(real, gens, device).transpose(0, 1), "z": z.transpose(0, 1), "eps": eps.transpose(0, 1)}


def step(nets, batch: dict, pack: Pack, t: int) -> dict:
    obj = registry.get("objective", pack.cfg.variant.objective)
    G, D, lens = nets.G, nets.D, nets.lens
    out = {}

    nc = pack.cfg.train.n_critic
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
        loss_d = d_step(D, nets.opt["D"], obj, pack, x, fake, batch["eps"][k])
    out["loss_d"] = loss_d

    with frozen(D):  # G's and the lens' losses need no gradient for D's weights
        fake = G(batch["z"][-1])
        d_fake = D(fake)
        d_real = D(lensed.detach() if lensed is not None else batch["real"][-1]) if obj.relativistic else None
        loss_g = obj.g(d_real, d_fake)
        nets.opt["G"].zero_grad()
        loss_g.sum().backward()
        nets.opt["G"].step()
        out["loss_g"] = loss_g.detach()

        if lens is not None:
            sq = (batch["real"][-1] - lensed) ** 2
            sq = sq.flatten(2)
            loss_lens = (sq.sum(2) if pack.cfg.variant.lens.recon == "sum" else sq.mean(2)).mean(1)
            lams = [lens_weight(c, t) for c in pack.cfgs]  # the schedule is a function of the step, on the host
            if any(v > 0 for v in lams):
                lam = torch.tensor(lams, device=loss_lens.device)
                adv = obj.lens(D(lensed), d_fake.detach())
                loss_lens = loss_lens + torch.where(lam > 0, lam * adv, torch.zeros_like(adv))
            nets.opt["lens"].zero_grad()
            loss_lens.sum().backward()
            nets.opt["lens"].step()
            out["loss_lens"] = loss_lens.detach()
    return out


class Evaluate:
    """Metrics of G's samples from each configuration's fixed noise batch (its `eval` stream): toy
    metrics on 2-D mixtures, evaluator metrics on images. Artifacts: points for toys, image grids."""

    def __init__(self, pack: Pack, data, gens: list[dict], device):
        self.data, self.device, self.size = data, device, pack.size
        n = pack.cfg.train.eval_samples
        self.z = torch.stack([torch.randn(n, pack.cfg.model.z_dim, generator=g["eval"]) for g in gens])
        self.images = isinstance(data.dim, tuple)
        if self.images:
            from bench.metrics.evaluator import get_evaluator
            from bench.metrics.images import inception_status

            self.evaluator = get_evaluator(data, pack.cfg.dataset).to(device)  # on the trial's device
            self.real = torch.stack([data.sample(64, g["eval"]) for g in gens])
            # Inception FID/KID only with a local weights file; the reason it was skipped goes in the row
            self.inception_skipped = inception_status()
        else:
            from bench.metrics.toy import mean_self_distance

            self.real = torch.stack([data.sample(n, g["eval"]) for g in gens])
            self.real_eyy = [mean_self_distance(r) for r in self.real]  # fixed: computed once
            self.inception_skipped = None

    def __call__(self, nets, final: bool = False, alive: Optional[list[int]] = None) -> list[Optional[Result]]:
        alive = range(self.size) if alive is None else alive
        with eval_mode(*nets.modules()):
            fake = evaluated(nets.G, self.z, device=self.device)
            lensed = None
            if nets.has("lens"):
                lensed = evaluated(nets.lens, self.real if self.images else self.real[:, :N_SCATTER], device=self.device)
        return [self._one(k, fake[k], None if lensed is None else lensed[k]) if k in alive else None
                for k in range(self.size)]

    def _one(self, k: int, fake, lensed) -> Result:
        if not bool(torch.isfinite(fake).all()):
            return Result(diverged="generated samples contain NaN/Inf")
        if self.images:
            from bench.metrics.images import image_metrics, inception_metrics

            metrics = {**image_metrics(self.evaluator, self.data, fake, device=self.device), **self.evaluator.columns()}
            if self.inception_skipped is None:
                metrics.update(inception_metrics(self.data, fake, device=self.device)[0])
            grids = {"generated": fake, "real": self.real[k]}
            if lensed is not None:
                grids["lensed"] = lensed
            return Result(metrics, {"grids": grids})
        from bench.metrics.toy import toy_metrics

        metrics = toy_metrics(fake, self.real[k], self.data.modes, self.data.std, self.real_eyy[k])
        samples = {"generated": fake[:N_SCATTER], "real": self.real[k, :N_SCATTER]}
        if lensed is not None:
            samples["lensed"] = lensed
        return Result(metrics, {"samples": samples})
