"""AGE: Adversarial Generator-Encoder networks (Ulyanov, Vedaldi, Lempitsky, AAAI 2018; DmitryUlyanov/AGE).
Two networks and no discriminator: an encoder E onto the unit sphere and a generator G from it (noise
z ~ N(0, I) projected onto the unit sphere). Their game is played on a divergence of codes to the prior:
a diagonal Gaussian fitted to a batch of codes (scaled by sqrt(z_dim), so that the uniform distribution on
the sphere has coordinates of mean 0 and variance 1; bench.metrics.encoders.sphere_kl) and its
KL(N(m, v) || N(0, I)) averaged over dimensions:

    E minimises KL(E(x)) - KL(E(G(z))) + age_mu * |G(E(x)) - x|_1          (G(z) detached, G not updated)
    G minimises KL(E(G(z))) + age_lambda * d_cos(E(G(z)), z)                (E not updated)

with one E step then `age_g_steps` G steps per iteration (defaults: lambda 1000, mu 10, 1 : 2, the
paper's CIFAR-10 setting). The scaling by sqrt(z_dim) departs from the authors' code, which compares
the unit-norm codes with N(0, I) directly (a target variance the sphere cannot reach); here the
divergence is 0 at the prior itself. The L1 is the mean over pixels ([-1, 1] scale).

There is no discriminator, so `variant.objective` has no role: `check` rejects any objective but the
default `ns` (and `train.n_critic` other than 1: the E : G ratio is `variant.age_g_steps`), so a study
cannot sweep a knob that does nothing. Data (unlabelled use of a 10-class image set; the labels only
feed the evaluator) from the `data` stream, noise from the `noise` stream; G then E from the `init`
stream, so every weight of one seed starts from the same networks.

Evaluate: `eval_samples` samples G(z) of a fixed sphere-noise batch (`eval` stream): the evaluator
metrics (FID/KID/PR/DC); on a fixed test subset (the first min(eval_samples, test size) images of a
permutation seeded with EVAL_SUBSET_SEED, the same for every trial) the reconstructions G(E(x)): `l1`
and `psnr` to x ([0, 1] scale, bench.metrics.images.psnr_l1), and `code_kl` = sphere_kl(E(x)). Grids:
`generated`, `real`, `input` (test images), `output` (their reconstructions).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.structures import Pack, Result, Streams, draws, eval_mode, evaluated, frozen, pack_nets
from bench.structures.cgan import LABELLED, ImageEval, check_image_gan

# the catalog's declaration (bench.catalog reads it without importing this module: plain data only)
DECLARE = {"age": {
    "title": "AGE", "doc": ("Adversarial Generator-Encoder networks (Ulyanov et al. 2018): an encoder onto the "
                            "sphere and a generator play the game through the codes' divergence from the prior; no "
                            "discriminator"),
    "options": {
        "age_lambda": {"type": "float", "default": 1000.0, "ge": 0, "packable": True, "doc": (
            "age: weight of the latent reconstruction d_cos(E(G(z)), z) in G's loss (the paper's lambda)")},
        "age_mu": {"type": "float", "default": 10.0, "ge": 0, "packable": True, "doc": (
            "age: weight of the image reconstruction |G(E(x)) - x|_1 in E's loss (the paper's mu)")},
        "age_g_steps": {"type": "int", "default": 2, "ge": 1,
                        "doc": "age: G steps per E step (the paper's 1 : 2 on CIFAR-10)"},
    },
    "uses": [], "losses": ["loss_e", "loss_g", "loss_rec", "loss_zrec"],
    "grids": ["generated", "real", "input", "output"], "metrics": ["l1", "psnr", "code_kl"], "headline": "fid",
    "success": "collapse", "sections": ["own_weights"],
}}

EVAL_SUBSET_SEED = 0  # the test images reconstructions are scored on (the same for every trial)
GRID = 64


def check(cfg) -> None:
    check_image_gan(cfg, LABELLED)
    if cfg.variant.objective != "ns":
        raise ValueError(f"variant.objective: structure 'age' has no discriminator, so no objective "
                         f"(leave it at ns, not {cfg.variant.objective})")
    if cfg.train.n_critic != 1:
        raise ValueError("train.n_critic: structure 'age' has no critic; its E : G step ratio is "
                         "variant.age_g_steps (G steps per E step)")


def build(pack: Pack, data, streams: list[Streams], device):
    from bench.nets import bidir

    per_config = []
    for cfg, s in zip(pack.cfgs, streams):
        torch.manual_seed(s.init)
        G, E = bidir.build_age(cfg.model, data.dim)
        per_config.append({"G": G, "E": E})
    return pack_nets(per_config, pack, device, critics=())


def sphere(z: Tensor) -> Tensor:
    return F.normalize(z, dim=-1)


def batch(pack: Pack, data, gens: list[dict], device) -> dict:
    """real [n, B, ...] (`data` stream); z [1 + age_g_steps, n, B, z_dim] on the unit sphere (`noise`
    stream): the first for E's step, one for each G step."""
    B, z_dim, n = pack.cfg.train.batch_size, pack.cfg.model.z_dim, 1 + pack.cfg.variant.age_g_steps
    idx = draws(gens, device, torch.randint, len(data.train), (B,), stream="data")
    images, _ = data.on(idx.device)
    z = draws(gens, device, torch.randn, n, B, z_dim)
    return {"real": data.to_float(images[idx]).to(device), "z": sphere(z.transpose(0, 1))}


def code_kl(codes: Tensor) -> Tensor:
    """The divergence of each configuration's batch of codes [n, B, d] to the sphere prior -> [n]
    (bench.metrics.encoders.sphere_kl in torch)."""
    c = codes.float() * math.sqrt(codes.shape[-1])
    m, v = c.mean(1), c.var(1, unbiased=False).clamp_min(1e-12)
    return (0.5 * (v + m ** 2 - 1.0 - torch.log(v))).mean(-1)


def l1(out: Tensor, x: Tensor) -> Tensor:
    """Mean absolute difference per configuration: [n, B, ...] -> [n]."""
    return (out.float() - x.float()).abs().flatten(2).mean(-1).mean(1)


def step(nets, batch: dict, pack: Pack, t: int) -> dict:
    G, E = nets.G, nets.E
    lam, mu = pack.variant("age_lambda"), pack.variant("age_mu")
    x, z = batch["real"], batch["z"]

    with torch.no_grad():
        fake = G(z[0])
    with frozen(G):
        ex = E(x)
        kl_real, kl_fake = code_kl(ex), code_kl(E(fake))
        loss_rec = l1(G(ex), x)
        loss_e = kl_real - kl_fake + mu * loss_rec
        nets.opt["E"].zero_grad()
        loss_e.sum().backward()
        nets.opt["E"].step()

    for j in range(pack.cfg.variant.age_g_steps):
        zj = z[1 + j]
        with frozen(E):
            ez = E(G(zj))
            loss_zrec = (1 - (ez * zj).sum(-1) / ez.norm(dim=-1).clamp_min(1e-12)).mean(1)  # d_cos, |z| = 1
            loss_g = code_kl(ez) + lam * loss_zrec
            nets.opt["G"].zero_grad()
            loss_g.sum().backward()
            nets.opt["G"].step()
    return {"loss_e": loss_e.detach(), "loss_g": loss_g.detach(), "loss_rec": loss_rec.detach(),
            "loss_zrec": loss_zrec.detach()}


class EncoderEval(ImageEval):
    """What the encoder GANs' evaluations share: samples G(z) of a fixed noise batch, and a fixed test
    subset with its reconstructions G(E(x)) and codes E(x)."""

    def __init__(self, pack: Pack, data, gens: list[dict], device, z: Tensor):
        super().__init__(pack, data, gens, device)
        self.z = z
        n_test = len(data.test)
        perm = torch.randperm(n_test, generator=torch.Generator().manual_seed(EVAL_SUBSET_SEED))[:min(self.n, n_test)]
        self.test, self.test_labels = data.to_float(data.test[perm]), data.test_labels[perm]

    def outputs(self, nets) -> tuple[Tensor, Tensor, Tensor]:
        """(samples [n, n, ...], codes E(x) [n, n_test, z_dim], reconstructions [n, n_test, ...]), on the CPU."""
        x = self.test.expand(self.size, *self.test.shape)
        with eval_mode(*nets.modules()):
            fake = evaluated(nets.G, self.z, device=self.device)
            codes = evaluated(nets.E, x, device=self.device)
            rec = evaluated(lambda v: nets.G(nets.E(v)), x, device=self.device)
        return fake, codes, rec

    def common(self, k: int, fake: Tensor, rec: Tensor) -> tuple[Optional[Result], dict, dict]:
        """(a diverged Result or None, the metrics of samples and reconstructions, the grids)."""
        from bench.metrics.images import psnr_l1

        if not bool(torch.isfinite(fake).all()) or not bool(torch.isfinite(rec).all()):
            return Result(diverged="generated samples or reconstructions contain NaN/Inf"), {}, {}
        metrics, _ = self.metrics(fake)
        rec = rec.clamp(-1, 1)
        metrics.update(psnr_l1(rec, self.test))
        grids = {"generated": fake, "real": self.real[k], "input": self.test[:GRID], "output": rec[:GRID]}
        return None, metrics, grids


class Evaluate(EncoderEval):
    def __init__(self, pack: Pack, data, gens: list[dict], device):
        zd = pack.cfg.model.z_dim
        n = pack.cfg.train.eval_samples
        z = torch.stack([sphere(torch.randn(n, zd, generator=g["eval"])) for g in gens])
        super().__init__(pack, data, gens, device, z)

    def __call__(self, nets, final: bool = False, alive: Optional[list[int]] = None) -> list[Optional[Result]]:
        alive = range(self.size) if alive is None else alive
        fake, codes, rec = self.outputs(nets)
        return [self._one(k, fake[k], codes[k], rec[k]) if k in alive else None for k in range(self.size)]

    def _one(self, k: int, fake: Tensor, codes: Tensor, rec: Tensor) -> Result:
        from bench.metrics.encoders import sphere_kl

        bad, metrics, grids = self.common(k, fake, rec)
        if bad is not None:
            return bad
        metrics["code_kl"] = sphere_kl(codes)
        return Result(metrics, {"grids": grids})
