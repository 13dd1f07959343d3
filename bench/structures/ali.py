"""ALI / BiGAN (Dumoulin et al. 2017; Donahue et al. 2017): an encoder E (x -> z, deterministic as in
BiGAN), a generator G (z ~ N(0, I) -> x) and a joint discriminator D(x, z) (bench.nets.bidir) that tells
pairs (x, E(x)) from pairs (G(z), z). D minimises the objective's D loss with (x, E(x)) as the real side
and (G(z), z) as the fake side; E and G together minimise the same loss with the sides swapped,
obj.d(D(G(z), z), D(x, E(x))) (for `ns` the BiGAN / ALI generator loss -log D(G(z), z) - log(1 -
D(x, E(x))); the symmetric loss for the others). WGAN's clipping applies through d_step; objectives with
a gradient penalty are rejected (a penalty on (x, z) pairs is not implemented). D's inputs x and z go
through dropout at rate `variant.ali_dropout` (ALI's 0.2), with masks drawn from each configuration's
`noise` stream (so packed runs equal unpacked ones), in D's and in E/G's steps. Reconstructions
G(E(x)) are a by-product: they are what the structure is judged on.

`train.n_critic` D steps per iteration, each on its own real batch (`data` stream) and noise; E and G
then step on the last real batch and fresh noise. G, E then D are built from the `init` stream, so every
ali_dropout of one seed starts from the same networks.

Evaluate (bench.structures.age.EncoderEval): the evaluator metrics of `eval_samples` samples G(z) of a
fixed noise batch; on a fixed test subset, `l1` / `psnr` of G(E(x)) to x, `rec_accuracy` (the evaluator
classifier's accuracy on G(E(x)) against x's labels) and `probe_accuracy` (a logistic regression on
E(x) of a fixed subset of PROBE_TRAIN training images, scored on E(x) of the test subset;
bench.metrics.encoders.linear_probe). Grids: `generated`, `real`, `input`, `output`.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from bench import registry
from bench.structures import Pack, Result, Streams, d_step, draws, eval_mode, evaluated, frozen, pack_nets
from bench.structures.age import EncoderEval
from bench.structures.cgan import LABELLED, check_image_gan

# the catalog's declaration (bench.catalog reads it without importing this module: plain data only)
DECLARE = {"ali": {
    "title": "ALI / BiGAN", "doc": ("ALI / BiGAN (Dumoulin et al. 2017; Donahue et al. 2017): an encoder E and G, a "
                                    "joint discriminator on (x, E(x)) against (G(z), z)"),
    "options": {"ali_dropout": {"type": "float", "default": 0.2, "ge": 0, "lt": 1, "packable": True, "doc": (
        "ali: dropout rate of the joint discriminator's inputs x and z (ALI's 0.2)")}},
    "uses": ["objective", "clip"], "losses": ["loss_d", "loss_g"], "grids": ["generated", "real", "input", "output"],
    "metrics": ["l1", "psnr", "rec_accuracy", "probe_accuracy"], "headline": "fid", "success": "collapse",
    "sections": ["own_weights"],
}}

PROBE_TRAIN = 5000  # training images the linear probe is fitted on (a fixed subset)
PROBE_SEED = 0


def check(cfg) -> None:
    check_image_gan(cfg, LABELLED)
    if registry.get("objective", cfg.variant.objective).gradient_penalty:
        raise ValueError(f"variant.objective: structure 'ali' does not implement a gradient penalty on (x, z) "
                         f"pairs ({cfg.variant.objective})")


def build(pack: Pack, data, streams: list[Streams], device):
    from bench.nets import bidir

    per_config = []
    for cfg, s in zip(pack.cfgs, streams):
        torch.manual_seed(s.init)
        G, E, D = bidir.build_ali(cfg.model, data.dim)
        per_config.append({"G": G, "E": E, "D": D})
    return pack_nets(per_config, pack, device)


def batch(pack: Pack, data, gens: list[dict], device) -> dict:
    """real [n_critic, n, B, ...] (`data` stream); from the `noise` stream z [n_critic + 1, n, B, z_dim],
    eps [n_critic, n, B] and the dropout draws ux [n_critic + 1, 2, n, B, C, H, W], uz [.., z_dim]
    (index 1: the real pair's and the fake pair's)."""
    nc, B, z_dim = pack.cfg.train.n_critic, pack.cfg.train.batch_size, pack.cfg.model.z_dim
    idx = draws(gens, device, torch.randint, len(data.train), (nc, B), stream="data")
    images, _ = data.on(idx.device)

    def draw(*shape):
        return draws(gens, device, torch.rand, *shape)

    z = draws(gens, device, torch.randn, nc + 1, B, z_dim)
    eps = draw(nc, B)
    ux, uz = draw(nc + 1, 2, B, *data.dim), draw(nc + 1, 2, B, z_dim)
    return {"real": data.to_float(images[idx]).transpose(0, 1).to(device), "z": z.transpose(0, 1),
            "eps": eps.transpose(0, 1), "ux": ux.movedim(0, 2), "uz": uz.movedim(0, 2)}


def keep_mask(u: Tensor, p: Tensor) -> Tensor:
    """Inverted dropout masks from uniforms u [n, B, ...] at each configuration's rate p [n]."""
    p = p.reshape((-1,) + (1,) * (u.dim() - 1))
    return (u >= p).to(u.dtype) / (1 - p)


def step(nets, batch: dict, pack: Pack, t: int) -> dict:
    obj = registry.get("objective", pack.cfg.variant.objective)
    G, E, D = nets.G, nets.E, nets.D
    p = pack.variant("ali_dropout")

    def masks(i: int, side: int) -> tuple[Tensor, Tensor]:
        return keep_mask(batch["ux"][i, side], p), keep_mask(batch["uz"][i, side], p)

    nc = pack.cfg.train.n_critic
    for k in range(nc):
        x, z = batch["real"][k], batch["z"][k]
        with torch.no_grad():
            ex, gz = E(x), G(z)
        pairs = iter([(ex, *masks(k, 0)), (z, *masks(k, 1))])  # d_step calls forward(real), forward(fake)

        def forward(v):
            code, mx, mz = next(pairs)
            return D(v, code, mx, mz)

        loss_d = d_step(D, nets.opt["D"], obj, pack, x, gz, batch["eps"][k], forward)

    x, z = batch["real"][-1], batch["z"][nc]
    with frozen(D):
        d_real = D(x, E(x), *masks(nc, 0))
        d_fake = D(G(z), z, *masks(nc, 1))
        loss_g = obj.d(d_fake, d_real)  # the sides swapped
        nets.opt["G"].zero_grad()
        nets.opt["E"].zero_grad()
        loss_g.sum().backward()
        nets.opt["G"].step()
        nets.opt["E"].step()
    return {"loss_d": loss_d, "loss_g": loss_g.detach()}


class Evaluate(EncoderEval):
    def __init__(self, pack: Pack, data, gens: list[dict], device):
        zd, n = pack.cfg.model.z_dim, pack.cfg.train.eval_samples
        z = torch.stack([torch.randn(n, zd, generator=g["eval"]) for g in gens])
        super().__init__(pack, data, gens, device, z)
        n_train = len(data.train)
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(PROBE_SEED))[:min(PROBE_TRAIN, n_train)]
        self.probe_x, self.probe_y = data.to_float(data.train[perm]), data.train_labels[perm]

    def __call__(self, nets, final: bool = False, alive: Optional[list[int]] = None) -> list[Optional[Result]]:
        alive = range(self.size) if alive is None else alive
        fake, codes, rec = self.outputs(nets)
        with eval_mode(*nets.modules()):
            train_codes = evaluated(nets.E, self.probe_x.expand(self.size, *self.probe_x.shape), device=self.device)
        return [self._one(k, fake[k], codes[k], rec[k], train_codes[k]) if k in alive else None
                for k in range(self.size)]

    def _one(self, k: int, fake: Tensor, codes: Tensor, rec: Tensor, train_codes: Tensor) -> Result:
        from bench.metrics.conditional import class_accuracy
        from bench.metrics.encoders import linear_probe

        bad, metrics, grids = self.common(k, fake, rec)
        if bad is not None:
            return bad
        metrics["rec_accuracy"] = class_accuracy(self.evaluator.predict(rec.clamp(-1, 1)), self.test_labels)
        metrics["probe_accuracy"] = linear_probe(train_codes, self.probe_y, codes, self.test_labels)
        return Result(metrics, {"grids": grids})
