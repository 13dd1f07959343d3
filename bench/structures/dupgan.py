"""DupGAN, the duplex GAN for unsupervised domain adaptation (Hu, Wang, Lu, CVPR 2018), on the two-domain set
(`dataset.name: domains`: labelled source A, unlabelled target B = T(A)).

Networks: an encoder E (DCGAN's discriminator stack, then a linear layer to `model.z_dim`) shared by both domains;
a classifier C on E's code; a generator G(z, d) rendering a code in domain d (DCGAN's generator on the code and a
one-hot domain code); two duplex discriminators D_A, D_B with 11 outputs each: the 10 classes and "fake".

One iteration, per configuration: a source batch (x_a, y_a) and a target batch x_b; the target's pseudo-labels are
C's predictions on E(x_b) where their probability reaches `variant.dupgan_threshold` (the others are left out);
- D_A: real x_a -> its class, G(E(x_b), A) -> fake; D_B: real x_b -> its pseudo-label, G(E(x_a), B) -> fake;
- E, C, G: CE(C(E(x_a)), y_a) + CE(C(E(x_b)), pseudo) + `dupgan_rec` x (|G(E(x_a), A) - x_a| + |G(E(x_b), B) -
  x_b|) + `dupgan_adv` x (CE(D_B(G(E(x_a), B)), y_a) + CE(D_A(G(E(x_b), A)), pseudo)): each translation must be
  read by the other domain's discriminator as the class of the image it came from, which pulls E's code towards
  categories both domains share.
Departures (said in the study): DCGAN-sized networks at 32 px, Adam for every network, one pseudo-labelling
threshold for the run (the paper raises it over training). Evaluate: target_accuracy and source_accuracy of C(E(.))
on the two test splits, and pseudo_label_rate (the share of a fixed target batch confident enough to be labelled).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F_
from torch import Tensor, nn

from bench.structures import Pack, Streams, dann, frozen, pack_nets
from bench.structures.cgan import cross_entropy

DECLARE = {"dupgan": {
    "title": "DupGAN", "doc": "duplex GAN for domain adaptation: class-aware discriminators per domain (Hu et al. 2018)",
    "options": {
        "dupgan_rec": {"type": "float", "default": 1.0, "ge": 0, "packable": True,
                       "doc": "dupgan: weight of the reconstruction loss of both domains"},
        "dupgan_adv": {"type": "float", "default": 1.0, "ge": 0, "packable": True,
                       "doc": "dupgan: weight of the class-preserving adversarial loss of the translations"},
        "dupgan_threshold": {"type": "float", "default": 0.95, "ge": 0, "le": 1, "packable": True,
                             "doc": "dupgan: C's probability a target image needs for its pseudo-label"},
    },
    "uses": [], "datasets": ["domains"], "samples": False,
    "losses": ["loss_d", "loss_cls", "loss_rec", "loss_adv"],
    "new_metrics": {
        "pseudo_label_rate": {"label": "share of target images confident enough to be pseudo-labelled",
                              "diagnostic": True},
    },
    "metrics": ["target_accuracy", "source_accuracy", "pseudo_label_rate"],
    "headline": "target_accuracy", "success": "finished", "sections": ["own_weights"],
}}

N_CLASSES, FAKE = 10, 10  # the discriminators' 11th output is "fake"


def check(cfg) -> None:
    if cfg.model.name != "dcgan":
        raise ValueError(f"model.name: structure 'dupgan' needs model.name dcgan, not {cfg.model.name}")


class Encoder(nn.Module):
    """images [K, B, c, s, s] -> codes [K, B, z_dim]."""

    def __init__(self, channels: int, size: int, C: int, batch_norm: bool, z_dim: int, K: int = 1):
        super().__init__()
        from bench.nets import packed as P

        self.K = K
        self.features = dann.Features(channels, size, C, batch_norm, K)
        self.fc = P.Linear(K, self.features.dim, z_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


def build(pack: Pack, data, streams: list[Streams], device):
    from bench.nets import conditional, dcgan
    from bench.nets import packed as P

    channels, size = data.dim[0], data.dim[1]
    per_config = []
    for cfg, s in zip(pack.cfgs, streams):
        torch.manual_seed(s.init)
        m = cfg.model
        nets = {"E": Encoder(channels, size, m.width, bool(m.d_batch_norm), m.z_dim),
                "C": P.Linear(1, m.z_dim, N_CLASSES),
                "G": conditional.Generator(m.z_dim + 2, channels, size, m.width, m.batch_norm),
                "D_A": conditional.ClassDiscriminator(channels, size, m.width, bool(m.d_batch_norm), classes=N_CLASSES + 1),
                "D_B": conditional.ClassDiscriminator(channels, size, m.width, bool(m.d_batch_norm), classes=N_CLASSES + 1)}
        for name in ("E", "G", "D_A", "D_B"):
            dcgan.init_weights(nets[name], m.init)
        per_config.append(nets)
    return pack_nets(per_config, pack, device, critics=("D_A", "D_B"))


batch = dann.batch  # a source and a target batch


def _domain(z: Tensor, d: int) -> Tensor:
    code = torch.zeros(*z.shape[:-1], 2, device=z.device, dtype=z.dtype)
    code[..., d] = 1.0
    return code


def _masked_ce(logits: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Each configuration's cross-entropy over its masked samples: [n, B, k], [n, B], [n, B] bool -> [n] (0 where
    none is masked in)."""
    ce = F_.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="none").view(y.shape)
    m = mask.float()
    return (ce * m).sum(1) / m.sum(1).clamp(min=1.0)


def step(nets, batch: dict, pack: Pack, t: int) -> dict:
    xa, ya, xb = batch["xs"], batch["ys"], batch["xt"]
    G = nets.G
    with torch.no_grad():
        za, zb = nets.E(xa), nets.E(xb)
        prob, pseudo = torch.softmax(nets.C(zb).float(), -1).max(-1)
        sure = prob >= pack.variant("dupgan_threshold")[:, None]
        fake_a, fake_b = G(zb, _domain(zb, 0)), G(za, _domain(za, 1))
    every = torch.ones_like(sure)
    fake_label = torch.full_like(ya, FAKE)
    loss_d = _masked_ce(nets.D_A.all(xa)[1], ya, every) + _masked_ce(nets.D_A.all(fake_a)[1], fake_label, every) \
        + _masked_ce(nets.D_B.all(xb)[1], pseudo, sure) + _masked_ce(nets.D_B.all(fake_b)[1], fake_label, every)
    for name in ("D_A", "D_B"):
        nets.opt[name].zero_grad()
    loss_d.sum().backward()
    for name in ("D_A", "D_B"):
        nets.opt[name].step()

    with frozen(nets.D_A, nets.D_B):
        za, zb = nets.E(xa), nets.E(xb)
        loss_cls = cross_entropy(nets.C(za), ya) + _masked_ce(nets.C(zb), pseudo, sure)
        loss_rec = (G(za, _domain(za, 0)) - xa).abs().flatten(1).mean(1) \
            + (G(zb, _domain(zb, 1)) - xb).abs().flatten(1).mean(1)
        loss_adv = _masked_ce(nets.D_B.all(G(za, _domain(za, 1)))[1], ya, every) \
            + _masked_ce(nets.D_A.all(G(zb, _domain(zb, 0)))[1], pseudo, sure)
        loss = loss_cls + pack.variant("dupgan_rec") * loss_rec + pack.variant("dupgan_adv") * loss_adv
        for name in ("E", "C", "G"):
            nets.opt[name].zero_grad()
        loss.sum().backward()
        for name in ("E", "C", "G"):
            nets.opt[name].step()
    return {"loss_d": loss_d.detach(), "loss_cls": loss_cls.detach(), "loss_rec": loss_rec.detach(),
            "loss_adv": loss_adv.detach()}


class Evaluate(dann.Evaluate):
    """DANN's evaluation of C(E(.)) on both test splits, and the pseudo-labelled share of the target test images."""

    def __init__(self, pack: Pack, data, gens: list[dict], device):
        super().__init__(pack, data, gens, device)
        self.threshold = pack.vec(lambda c: c.variant.dupgan_threshold).cpu()

    def classify(self, nets, x: Tensor) -> Tensor:
        return nets.C(nets.E(x))

    def extra(self, k: int, logits: dict) -> dict:
        sure = torch.softmax(logits["target"][k], -1).max(-1).values >= self.threshold[k]
        return {"pseudo_label_rate": float(sure.float().mean())}
