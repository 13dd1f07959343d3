"""Unpaired translation between the two domains of `dataset.name: domains` (B = T(A), bench.data.domains):

- `cyclegan` (Zhu et al. 2017): generators G_AB, G_BA with residual blocks, PatchGAN discriminators D_A, D_B,
  the chosen objective (the paper's LSGAN by default in the study), cycle consistency |G_BA(G_AB(a)) - a| +
  |G_AB(G_BA(b)) - b| (L1) at `variant.cycle_weight` (10) and the identity loss |G_AB(b) - b| + |G_BA(a) - a| at
  `variant.identity_weight` x cycle_weight (0.5 x);
- `discogan` (Kim et al. 2017): encoder-decoder generators (no residual blocks) and DCGAN discriminators, the
  reconstruction loss as a mean squared error at `variant.recon_weight` (1).

One iteration, per configuration: a batch a from A and b from B (the `data` stream, disjoint halves of the
training images: unpaired); D_A and D_B take one step each on real vs the current translations, then both
generators one step on the adversarial terms plus the weighted cycle (and identity) losses. Departures, said in the
study: 32-pixel images, 3 residual blocks (the paper: 6 at 128 px, 9 at 256 px), batch norm in G (the paper:
instance norm), no 50-image history buffer for D.

Evaluate (the test split is paired, so translations have known answers): translation_error (G_AB(x) against
T(x)), translation_error_ba (G_BA(T(x)) against x), cycle_error, class_preservation (the source evaluator on
T^-1(G_AB(x)) against x's label) and identity_error (the identity map's translation error: the baseline), on a
fixed subset of `eval_samples` test images; and the image metrics of the translations against domain B (FID, KID,
precision / recall, density / coverage, modes): T is known and invertible, so the base evaluator on T^-1 is domain
B's evaluator, and T^-1(G_AB(x)) is scored against the base test split (T^-1 of B's). Grids: source / translation /
right answer rows.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from bench import registry
from bench.structures import Pack, Result, Streams, d_step, eval_mode, evaluated, frozen, pack_nets

DECLARE_METRICS = ["translation_error", "translation_error_ba", "cycle_error", "class_preservation", "identity_error"]
DECLARE_T = {
    "uses": ["objective", "clip", "gp_weight", "penalty"], "datasets": ["domains"],
    "losses": ["loss_d", "loss_g", "loss_cycle"], "grids": ["translated"], "metrics": DECLARE_METRICS,
    "new_metrics": {
        "translation_error": {"higher_is_better": False, "range": [0, 1],
                              "label": "A -> B translation error against the known answer T(x) (mean |.| on [0, 1])"},
        "translation_error_ba": {"higher_is_better": False, "range": [0, 1],
                                 "label": "B -> A translation error against the known answer x"},
        "cycle_error": {"higher_is_better": False, "range": [0, 1], "label": "round-trip error |G_BA(G_AB(x)) - x|"},
        "class_preservation": {"higher_is_better": True, "range": [0, 1],
                               "label": "translations whose class (source evaluator on T^-1) is the source's"},
        "identity_error": {"label": "the identity map's translation error (the baseline)", "diagnostic": True},
    },
    "headline": "translation_error", "success": "finished", "sections": ["own_weights"],
}
DECLARE = {
    "cyclegan": {**DECLARE_T, "title": "CycleGAN", "doc": "two GANs tied by cycle consistency (Zhu et al. 2017)",
                 "options": {
                     "cycle_weight": {"type": "float", "default": 10.0, "ge": 0, "packable": True,
                                      "doc": "cyclegan: weight of the cycle-consistency loss (L1)"},
                     "identity_weight": {"type": "float", "default": 0.5, "ge": 0, "packable": True,
                                         "doc": "cyclegan: the identity loss's weight, as a fraction of cycle_weight"},
                 }},
    "discogan": {**DECLARE_T, "title": "DiscoGAN", "doc": "two GANs tied by a reconstruction loss (Kim et al. 2017)",
                 "options": {
                     "recon_weight": {"type": "float", "default": 1.0, "ge": 0, "packable": True,
                                      "doc": "discogan: weight of the reconstruction loss (mean squared error)"},
                 }},
}

RES_BLOCKS = {"cyclegan": 3, "discogan": 0}
GRID_ROWS = 8


def check(cfg) -> None:
    if cfg.model.name != "dcgan":
        raise ValueError(f"model.name: structure '{cfg.variant.structure}' needs model.name dcgan (its networks' "
                         f"width comes from model.width), not {cfg.model.name}")


class Translator(nn.Module):
    """images [K, B, c, s, s] -> images: 3x3 conv (C), two 4x4 stride-2 convs (2C, 4C), `blocks` residual blocks,
    two 4x4 stride-1/2 transposed convs back, 3x3 conv to c channels, tanh; batch norm after the hidden convs."""

    def __init__(self, channels: int, C: int, blocks: int, K: int = 1):
        super().__init__()
        from bench.nets import dcgan
        from bench.nets import packed as P

        self.K = K

        def bn(c):
            return P.BatchNorm2d(K, c)

        self.net = nn.Sequential(
            P.Conv2d(K, channels, C, 3, 1, 1), bn(C), nn.ReLU(),
            P.Conv2d(K, C, 2 * C, 4, 2, 1), bn(2 * C), nn.ReLU(),
            P.Conv2d(K, 2 * C, 4 * C, 4, 2, 1), bn(4 * C), nn.ReLU(),
            *[dcgan.ResBlock(4 * C, K) for _ in range(blocks)],
            P.ConvTranspose2d(K, 4 * C, 2 * C, 4, 2, 1), bn(2 * C), nn.ReLU(),
            P.ConvTranspose2d(K, 2 * C, C, 4, 2, 1), bn(C), nn.ReLU(),
            P.Conv2d(K, C, channels, 3, 1, 1), nn.Tanh())

    def forward(self, x: Tensor) -> Tensor:
        from bench.nets import packed as P

        return P.from_grouped(self.net(P.to_grouped(x)), self.K)


class PatchD(nn.Module):
    """PatchGAN: images [K, B, c, s, s] -> one logit per patch, flattened into the batch: [K, B * patches] (each
    patch a sample of the objective). 4x4 convs: stride 2 (C), stride 2 (2C, batch norm), stride 1 to 1 channel."""

    def __init__(self, channels: int, C: int, batch_norm: bool, K: int = 1):
        super().__init__()
        from bench.nets import packed as P

        self.K = K
        self.net = nn.Sequential(P.Conv2d(K, channels, C, 4, 2, 1), nn.LeakyReLU(0.2),
                                 P.Conv2d(K, C, 2 * C, 4, 2, 1), P.BatchNorm2d(K, 2 * C) if batch_norm else nn.Identity(),
                                 nn.LeakyReLU(0.2), P.Conv2d(K, 2 * C, 1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        from bench.nets import packed as P

        return P.from_grouped(self.net(P.to_grouped(x)), self.K).flatten(1)


def build(pack: Pack, data, streams: list[Streams], device):
    from bench.nets import dcgan

    s_name, per_config = pack.cfg.variant.structure, []
    channels, size = data.dim[0], data.dim[1]
    for cfg, s in zip(pack.cfgs, streams):
        torch.manual_seed(s.init)
        C, bn = cfg.model.width, bool(cfg.model.d_batch_norm)
        nets = {"G_AB": Translator(channels, C, RES_BLOCKS[s_name]), "G_BA": Translator(channels, C, RES_BLOCKS[s_name])}
        for name in ("D_A", "D_B"):
            nets[name] = PatchD(channels, C, bn) if s_name == "cyclegan" else dcgan.Discriminator(channels, size, C, bn)
        for m in nets.values():
            dcgan.init_weights(m, cfg.model.init)
        per_config.append(nets)
    return pack_nets(per_config, pack, device, critics=("D_A", "D_B"))


def batch(pack: Pack, data, gens: list[dict], device) -> dict:
    """a: B images of A, b: B images of B (DANN's two independent draws: unpaired); eps [2, n, B] for the penalties."""
    from bench.structures import dann, draws

    two = dann.batch(pack, data, gens, device)
    B = pack.cfg.train.batch_size
    eps = draws(gens, device, torch.rand, 2, B)
    return {"a": two["xs"], "b": two["xt"], "eps": eps.transpose(0, 1)}


def _per_config(x: Tensor) -> Tensor:
    """[n, ...] -> the mean over everything but the configuration: [n]."""
    return x.flatten(1).mean(1)


def step(nets, batch: dict, pack: Pack, t: int) -> dict:
    obj = registry.get("objective", pack.cfg.variant.objective)
    a, b = batch["a"], batch["b"]
    with torch.no_grad():
        fake_b, fake_a = nets.G_AB(a), nets.G_BA(b)
    loss_d = d_step(nets.D_B, nets.opt["D_B"], obj, pack, b, fake_b, batch["eps"][0]) \
        + d_step(nets.D_A, nets.opt["D_A"], obj, pack, a, fake_a, batch["eps"][1])

    cyclegan = pack.cfg.variant.structure == "cyclegan"
    with frozen(nets.D_A, nets.D_B):
        fake_b, fake_a = nets.G_AB(a), nets.G_BA(b)
        loss_g = obj.g(nets.D_B(b) if obj.relativistic else None, nets.D_B(fake_b)) \
            + obj.g(nets.D_A(a) if obj.relativistic else None, nets.D_A(fake_a))
        back_a, back_b = nets.G_BA(fake_b), nets.G_AB(fake_a)
        if cyclegan:
            w = pack.variant("cycle_weight")
            cycle = _per_config((back_a - a).abs()) + _per_config((back_b - b).abs())
            ident = _per_config((nets.G_AB(b) - b).abs()) + _per_config((nets.G_BA(a) - a).abs())
            loss = loss_g + w * cycle + w * pack.variant("identity_weight") * ident
        else:
            cycle = _per_config((back_a - a) ** 2) + _per_config((back_b - b) ** 2)
            loss = loss_g + pack.variant("recon_weight") * cycle
        for name in ("G_AB", "G_BA"):
            nets.opt[name].zero_grad()
        loss.sum().backward()
        for name in ("G_AB", "G_BA"):
            nets.opt[name].step()
    return {"loss_d": loss_d, "loss_g": loss_g.detach(), "loss_cycle": cycle.detach()}


class Evaluate:
    """The known-answer metrics on a fixed subset of the paired test split (see the module docstring)."""

    def __init__(self, pack: Pack, data, gens: list[dict], device):
        from bench.data import domains
        from bench.metrics.evaluator import get_evaluator

        self.size, self.device, self.transform = pack.size, device, data.transform
        n = min(pack.cfg.train.eval_samples, len(data.test))
        idx = torch.randperm(len(data.test), generator=torch.Generator().manual_seed(0))[:n]
        self.x, self.tx = data.to_float(data.test[idx]), data.to_float(data.test_b[idx])
        self.labels = data.test_labels[idx]
        base_cfg = pack.cfg.dataset.model_copy(update={"name": data.domain_base})
        self.base = registry.get("dataset", data.domain_base)(base_cfg)  # T^-1 of domain B: the image metrics' reals
        self.evaluator = get_evaluator(self.base, base_cfg).to(device)
        self.inverse = lambda v: domains.transform_float_inverse(self.transform, v)

    def __call__(self, nets, final: bool = False, alive: Optional[list[int]] = None) -> list[Optional[Result]]:
        from bench.metrics import translation as tr
        from bench.metrics.images import image_metrics

        alive = range(self.size) if alive is None else alive
        x, tx = self.x.expand(self.size, *self.x.shape), self.tx.expand(self.size, *self.tx.shape)
        with eval_mode(*nets.modules()):
            ab = evaluated(nets.G_AB, x, device=self.device)
            ba = evaluated(nets.G_BA, tx, device=self.device)
            back = evaluated(lambda v: nets.G_BA(nets.G_AB(v)), x, device=self.device)
        out = []
        for k in range(self.size):
            if k not in alive:
                out.append(None)
                continue
            if not bool(torch.isfinite(ab[k]).all() and torch.isfinite(ba[k]).all()):
                out.append(Result(diverged="translations contain NaN/Inf"))
                continue
            back_a = self.inverse(ab[k]).to(self.device)  # the translations read in A: B's evaluator is A's on T^-1
            features, logits = self.evaluator.embed(back_a)
            read = self.evaluator.classes_from_logits(logits)
            m = {"translation_error": tr.translation_error(ab[k], self.tx), "cycle_error": tr.cycle_error(self.x, back[k]),
                 "translation_error_ba": tr.translation_error(ba[k], self.x),
                 "class_preservation": tr.class_preservation(read.cpu(), self.labels),
                 "identity_error": tr.identity_error(self.x, self.tx),
                 **image_metrics(self.evaluator, self.base, back_a, features=features, logits=logits, device=self.device),
                 **self.evaluator.columns()}
            rows = torch.stack([self.x[:GRID_ROWS], ab[k][:GRID_ROWS], self.tx[:GRID_ROWS]])
            out.append(Result(m, {"grids": {"translated": rows}}))
        return out
