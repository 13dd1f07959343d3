"""SGAN: the semi-supervised GAN of Salimans et al. 2016 ("Improved techniques for training GANs"). D has
10 class logits l_k (bench.nets.conditional.ClassDiscriminator) and the implicit logit 0 for "fake", so
D(x) = Z / (Z + 1), Z = sum exp(l_k): the GAN logit is logsumexp(l). D minimises the objective's D loss
on that logit (for `ns` the paper's unsupervised -log D(x_r) - log(1 - D(G(z)))) + the cross-entropy of
its class logits on a batch of the `variant.n_labels` labelled training images (a fixed, class-balanced
subset, the same for every trial: the first n_labels / 10 of each class in a permutation seeded with
LABEL_SUBSET_SEED). G minimises the objective's G loss + `variant.lambda_fm` x feature matching
||mean f(x_r) - mean f(G(z))||^2 on D's last (flattened) feature maps f. The paper's G uses feature
matching alone; Adam being invariant to the loss's scale, a large lambda_fm approaches it (default 1).

Data: the unlabelled real batches (the whole training split, labels unused) and the labelled batches
(min(batch_size, n_labels) images drawn with replacement from the subset) from the `data` stream, noise
from the `noise` stream; G then D from the `init` stream, so every lambda_fm of one seed starts from the
same networks.

Evaluate: the evaluator metrics of `eval_samples` samples of a fixed noise batch, and `d_class_accuracy`:
the accuracy of D's classifier (argmax of l) on a fixed test subset (EVAL_SUBSET_SEED). Grids:
`generated`, `real`.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from bench import registry
from bench.structures import Pack, Result, Streams, d_step, draws, eval_mode, evaluated, frozen, pack_nets, stacked
from bench.structures.cgan import LABELLED, N_CLASSES, ImageEval, check_image_gan, cross_entropy

# the catalog's declaration (bench.catalog reads it without importing this module: plain data only)
DECLARE = {"sgan": {
    "title": "SGAN", "doc": ("semi-supervised GAN (Salimans et al. 2016): a (K+1)-class discriminator trained on a "
                             "few labelled images, feature matching for G"),
    "options": {
        "n_labels": {"type": "int", "default": 100, "ge": 10,
                     "doc": "sgan: labelled training images (a fixed class-balanced subset)"},
        "lambda_fm": {"type": "float", "default": 1.0, "ge": 0, "packable": True, "doc": (
            "sgan: weight of feature matching ||E f(x) - E f(G(z))||^2 (D's last features) in G's loss")},
    },
    "uses": ["objective", "clip", "gp_weight", "penalty"], "losses": ["loss_d", "loss_g", "loss_cls", "loss_fm"],
    "grids": ["generated", "real"], "metrics": ["d_class_accuracy"], "headline": "fid", "success": "collapse",
    "sections": ["own_weights"],
}}

LABEL_SUBSET_SEED = 0
EVAL_SUBSET_SEED = 0


def check(cfg) -> None:
    check_image_gan(cfg, LABELLED)
    if cfg.variant.n_labels % N_CLASSES:
        raise ValueError(f"variant.n_labels: structure 'sgan' takes a class-balanced labelled subset, so a multiple "
                         f"of {N_CLASSES} (not {cfg.variant.n_labels})")


def labelled_subset(labels: Tensor, n: int) -> Tensor:
    """Indices of the first n / 10 images of each class in a fixed permutation (all of a class if fewer)."""
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(LABEL_SUBSET_SEED))
    per = n // N_CLASSES
    return torch.cat([perm[labels[perm] == c][:per] for c in range(N_CLASSES)])


def build(pack: Pack, data, streams: list[Streams], device):
    from bench.nets import conditional

    per_config = []
    for cfg, s in zip(pack.cfgs, streams):
        torch.manual_seed(s.init)
        G, D = conditional.build_sgan(cfg.model, data.dim, N_CLASSES)
        per_config.append({"G": G, "D": D})
    return pack_nets(per_config, pack, device)


def batch(pack: Pack, data, gens: list[dict], device) -> dict:
    """real [n_critic, n, B, ...]; labelled images [n_critic, n, B_l, ...] and their labels (`data` stream);
    z [n_critic + 1, n, B, z_dim] and eps [n_critic, n, B] (`noise` stream)."""
    nc, B, z_dim = pack.cfg.train.n_critic, pack.cfg.train.batch_size, pack.cfg.model.z_dim
    subset = labelled_subset(data.train_labels, pack.cfg.variant.n_labels)
    Bl = min(B, len(subset))

    def draw(g):
        d = g["data"]
        real = torch.randint(len(data.train), (nc, B), generator=d, device=d.device)
        lab = subset.to(d.device)[torch.randint(len(subset), (nc, Bl), generator=d, device=d.device)]
        return torch.cat([real, lab], 1)

    idx = stacked(draw, gens, device)
    images, labels = data.on(idx.device)
    z = draws(gens, device, torch.randn, nc + 1, B, z_dim)
    eps = draws(gens, device, torch.rand, nc, B)
    x = data.to_float(images[idx]).transpose(0, 1).to(device)
    return {"real": x[:, :, :B], "lab": x[:, :, B:], "labels": labels[idx[..., B:]].transpose(0, 1).to(device),
            "z": z.transpose(0, 1), "eps": eps.transpose(0, 1)}


def step(nets, batch: dict, pack: Pack, t: int) -> dict:
    obj = registry.get("objective", pack.cfg.variant.objective)
    G, D = nets.G, nets.D
    lam = pack.variant("lambda_fm")

    for k in range(pack.cfg.train.n_critic):
        with torch.no_grad():
            fake = G(batch["z"][k])
        x_l, y_l = batch["lab"][k], batch["labels"][k]
        sup = []

        def extra():
            loss = cross_entropy(D.all(x_l)[1], y_l)
            sup.append(loss.detach())
            return loss

        loss_d = d_step(D, nets.opt["D"], obj, pack, batch["real"][k], fake, batch["eps"][k], extra=extra)

    with frozen(D):
        fake = G(batch["z"][-1])
        d_fake, _, h_fake = D.all(fake)
        d_real, _, h_real = D.all(batch["real"][-1])
        loss_g = obj.g(d_real if obj.relativistic else None, d_fake)
        loss_fm = ((h_real.detach().mean(1) - h_fake.mean(1)) ** 2).sum(-1)
        nets.opt["G"].zero_grad()
        (loss_g + lam * loss_fm).sum().backward()
        nets.opt["G"].step()
    return {"loss_d": loss_d, "loss_g": loss_g.detach(), "loss_cls": sup[-1], "loss_fm": loss_fm.detach()}


class Evaluate(ImageEval):
    def __init__(self, pack: Pack, data, gens: list[dict], device):
        super().__init__(pack, data, gens, device)
        self.z = torch.stack([torch.randn(self.n, pack.cfg.model.z_dim, generator=g["eval"]) for g in gens])
        n_test = len(data.test)
        perm = torch.randperm(n_test, generator=torch.Generator().manual_seed(EVAL_SUBSET_SEED))[:min(self.n, n_test)]
        self.test, self.test_labels = data.to_float(data.test[perm]), data.test_labels[perm]

    def __call__(self, nets, final: bool = False, alive: Optional[list[int]] = None) -> list[Optional[Result]]:
        alive = range(self.size) if alive is None else alive
        with eval_mode(*nets.modules()):
            fake = evaluated(nets.G, self.z, device=self.device)
            x = self.test.expand(self.size, *self.test.shape)
            d_pred = evaluated(lambda v: nets.D.all(v)[1].argmax(-1), x, device=self.device)
        return [self._one(k, fake[k], d_pred[k]) if k in alive else None for k in range(self.size)]

    def _one(self, k: int, fake: Tensor, d_pred: Tensor) -> Result:
        from bench.metrics.conditional import class_accuracy

        if not bool(torch.isfinite(fake).all()):
            return Result(diverged="generated samples contain NaN/Inf")
        metrics, _ = self.metrics(fake)
        metrics["d_class_accuracy"] = class_accuracy(d_pred, self.test_labels)
        return Result(metrics, {"grids": {"generated": fake, "real": self.real[k]}})
