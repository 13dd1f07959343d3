"""GAN: G from noise against D, with or without the tempered lens (Sajjadi et al. 2018).

One iteration: `n_critic` D updates on {real, G(z)} (with a lens L, D sees L(x) instead of x), then one
G update (`train.updates: simultaneous`: the last D update and G's take their gradients at the same point, with
consensus optimization if variant.penalty.consensus > 0), then (with a lens) one lens update that minimises
    lambda(t) * L_adv(D(L(x)), D(G(z))) + ||x - L(x)||^2     (per-sample squared L2, batch mean)
where L_adv is the objective's own lens term (bench.objectives). `lens.recon: mean` takes the squared
error's mean over the sample's entries instead of its sum (the paper's formula is the sum, which on
32x32 images adds up 1024+ terms and keeps the lens close to the identity).

Instance noise (variant.noise) adds N(0, sigma(t)^2) to every input of D, real and fake, in D's and G's steps.
Penalties on D (variant.penalty: gp, dragan, r1, r2) are added by bench.structures.d_loss.

G and D come from the configuration's `init` stream and the lens from its `extra` stream, so the same
seed gives the same initial G and D with and without a lens (the paired comparison). Toys (2-D
mixtures) are evaluated with the toy metrics on `eval_samples` points from a fixed noise batch; images
with the dataset's evaluator (FID/KID/PR/DC, modes), with grids of generated, real and lensed images.
"""

from __future__ import annotations

import copy
import math
from typing import Optional

import torch

from bench import registry, schedules
from bench.metrics import EMA, INFO
from bench.penalties import DRAWS, consensus, step_draws
from bench.structures import (Pack, Result, Streams, clip_weights, d_step, draws, eval_mode, evaluated, frozen,
                              pack_nets, penalties, stacked)

# the catalog's declaration (bench.catalog reads it without importing this module: plain data only)
DECLARE = {"gan": {
    "title": "GAN", "doc": "G from noise, D on real vs fake; optionally the tempered lens on D's real input",
    "options": {},
    "uses": ["objective", "lens", "clip", "gp_weight", "penalty", "dragan", "consensus", "updates", "noise", "ema",
             "d_norm"],
    "losses": ["loss_d", "loss_g", "loss_lens"], "grids": ["generated", "real", "lensed"],
    "metrics": [], "headline": "energy_distance", "success": "collapse", "sections": ["treatment"],
}}

N_SCATTER = 1000  # toy points per kind kept for the report's real-vs-generated plots


def check(cfg) -> None:
    if cfg.model.name == "encdec":
        raise ValueError("model.name: encdec is for the encoder-decoder structures (variant.structure: ed+gan, "
                         "ed+gan2, ed//gan)")
    if cfg.train.updates == "simultaneous" and cfg.variant.lens is not None:
        raise ValueError("train.updates: simultaneous updates are built without the lens (its step follows G's); "
                         "use alternating with variant.lens")


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
        per_config.append({"G": G, "D": D, "lens": lens,
                           "G_ema": copy.deepcopy(G).requires_grad_(False) if cfg.train.ema is not None else None})
    return pack_nets(per_config, pack, device, fixed=("G_ema",))


@torch.no_grad()
def average(nets, pack: Pack) -> None:
    """G_ema <- ema * G_ema + (1 - ema) * G after G's step (Yazici et al. 2019); batch norm statistics copied."""
    if not nets.has("G_ema"):
        return
    beta = pack.cfg.train.ema  # train.ema is not packable: one value per pack
    for e, p in zip(nets.G_ema.parameters(), nets.G.parameters()):
        e.lerp_(p, 1.0 - beta)
    for e, b in zip(nets.G_ema.buffers(), nets.G.buffers()):
        e.copy_(b)


def batch(pack: Pack, data, gens: list[dict], device) -> dict:
    """real [n_critic, n, B, ...], z [n_critic + 1, n, B, z_dim], eps [n_critic, n, B]; with DRAGAN on, perturb
    [n_critic, n, B, ...] (U[0, 1]); with instance noise, noise_real and noise_fake [n_critic + 1, n, B, ...] (N(0, 1),
    the last for G's step). The extra draws come after the others and only when on (the pack has them on in every
    configuration: bench.packing), so a configuration without them draws exactly what it did before they existed."""
    nc, B, z_dim = pack.cfg.train.n_critic, pack.cfg.train.batch_size, pack.cfg.model.z_dim
    shape = tuple(data.dim) if isinstance(data.dim, tuple) else (data.dim,)

    def real(g):
        x = data.sample(nc * B, g["data"])
        return x.reshape(nc, B, *x.shape[1:])

    def draw(fn, *size):
        return draws(gens, device, fn, *size).transpose(0, 1)

    out = {"real": stacked(real, gens, device).transpose(0, 1), "z": draw(torch.randn, nc + 1, B, z_dim),
           "eps": draw(torch.rand, nc, B)}
    for name, key in DRAWS.items():  # U[0, 1] per entry, for the penalties on in the pack (DRAGAN's perturbation)
        if getattr(pack.cfg.variant.penalty, name) > 0:
            out[key] = draw(torch.rand, nc, B, *shape)
    if pack.cfg.variant.noise is not None:
        out["noise_real"], out["noise_fake"] = draw(torch.randn, nc + 1, B, *shape), draw(torch.randn, nc + 1, B, *shape)
    return out


def noise_sigma(cfg, t: int) -> float:
    """Instance noise's standard deviation at step t (0 without instance noise)."""
    n = cfg.variant.noise
    return schedules.lam(n.schedule, t, n.K, n.sigma) if n else 0.0


def step(nets, batch: dict, pack: Pack, t: int) -> dict:
    obj = registry.get("objective", pack.cfg.variant.objective)
    G, D, lens = nets.G, nets.D, nets.lens
    out = {}
    sigma = None  # instance noise: each configuration's sigma(t), [n, 1, ...] (the schedule runs on the host)
    if pack.cfg.variant.noise is not None:
        sigma = pack.vec(lambda c: noise_sigma(c, t)).reshape((-1,) + (1,) * (batch["real"].dim() - 2))

    def noisy(x, kind: str, k: int):
        return x if sigma is None else x + sigma * batch[f"noise_{kind}"][k]

    nc = pack.cfg.train.n_critic
    simultaneous = pack.cfg.train.updates == "simultaneous"
    lensed = None
    for k in range(nc - 1 if simultaneous else nc):
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
        out["loss_d"] = d_step(D, nets.opt["D"], obj, pack, noisy(x, "real", k), noisy(fake, "fake", k),
                               batch["eps"][k], draws=step_draws(batch, k))
    if simultaneous:
        out.update(simultaneous_step(nets, batch, pack, obj, noisy))
        return out

    with frozen(D):  # G's and the lens' losses need no gradient for D's weights
        fake = noisy(G(batch["z"][-1]), "fake", nc)
        d_fake = D(fake)
        d_real = D(noisy(lensed.detach() if lensed is not None else batch["real"][-1], "real", nc)) \
            if obj.relativistic else None
        loss_g = obj.g(d_real, d_fake)
        nets.opt["G"].zero_grad()
        loss_g.sum().backward()
        nets.opt["G"].step()
        average(nets, pack)
        out["loss_g"] = loss_g.detach()

        if lens is not None:
            sq = (batch["real"][-1] - lensed) ** 2
            sq = sq.flatten(2)
            loss_lens = (sq.sum(2) if pack.cfg.variant.lens.recon == "sum" else sq.mean(2)).mean(1)
            lams = [lens_weight(c, t) for c in pack.cfgs]  # the schedule is a function of the step, on the host
            if any(v > 0 for v in lams):
                lam = torch.tensor(lams, device=loss_lens.device)
                adv = obj.lens(D(noisy(lensed, "real", nc)), d_fake.detach())
                loss_lens = loss_lens + torch.where(lam > 0, lam * adv, torch.zeros_like(adv))
            nets.opt["lens"].zero_grad()
            loss_lens.sum().backward()
            nets.opt["lens"].step()
            out["loss_lens"] = loss_lens.detach()
    return out


def simultaneous_step(nets, batch: dict, pack: Pack, obj, noisy) -> dict:
    """D's last step and G's step on gradients taken at one point (theta, psi): both losses from one forward of
    D on real and G(z), each player's gradient of its own loss, then both optimizers step. Consensus optimization
    (Mescheder et al. 2017) adds gamma * (1/2)||v||^2 to both losses, v = both gradients (double backprop)."""
    G, D, k = nets.G, nets.D, pack.cfg.train.n_critic - 1
    d_params, g_params = list(D.parameters()), list(G.parameters())
    fake = G(batch["z"][k])
    x, xf = noisy(batch["real"][k], "real", k), noisy(fake, "fake", k)
    d_real, d_fake = D(x), D(xf)
    loss_d = obj.d(d_real, d_fake) + penalties(D, obj, pack, x, xf, batch["eps"][k], step_draws(batch, k))
    loss_g = obj.g(d_real if obj.relativistic else None, d_fake)
    gamma = [c.variant.penalty.consensus for c in pack.cfgs]
    on = any(v > 0 for v in gamma)
    grads_d = torch.autograd.grad(loss_d.sum(), d_params, create_graph=on, retain_graph=True, allow_unused=True)
    grads_g = torch.autograd.grad(loss_g.sum(), g_params, create_graph=on, allow_unused=True)
    grads = list(grads_d) + list(grads_g)
    out = {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}
    if on:  # each player minimises its loss + gamma (1/2)||v||^2: the rows report those sums
        reg = pack.vec(lambda c: c.variant.penalty.consensus, "consensus") * \
            consensus([g for g in grads if g is not None], pack.size)  # [n]
        extra = torch.autograd.grad(reg.sum(), d_params + g_params, allow_unused=True)
        grads = [g if e is None else (e if g is None else g + e) for g, e in zip(grads, extra)]
        out = {k: v + reg.detach() for k, v in out.items()}
    for p, g in zip(d_params + g_params, grads):
        p.grad = None if g is None else g.detach()
    nets.opt["D"].step()
    nets.opt["G"].step()
    average(nets, pack)
    if obj.clip_weights:
        clip_weights(D, pack.variant("clip"))
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
            ema = evaluated(nets.G_ema, self.z, device=self.device) if nets.has("G_ema") else None
            lensed = None
            if nets.has("lens"):
                lensed = evaluated(nets.lens, self.real if self.images else self.real[:, :N_SCATTER], device=self.device)
        out = [self._one(k, fake[k], None if lensed is None else lensed[k]) if k in alive else None
               for k in range(self.size)]
        if ema is not None:  # the averaged generator's metrics beside the raw one's, in the same row
            for k, r in enumerate(out):
                if r is not None and r.diverged is None:
                    avg = self._one(k, ema[k], None)
                    if avg.diverged is None:
                        r.metrics.update({f"{m}{EMA}": v for m, v in avg.metrics.items() if m + EMA in INFO})
        return out

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
