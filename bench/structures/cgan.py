"""Class-conditional GANs on a labelled image set (10 classes):

- `cgan` (Mirza & Osindero 2014): G(z, y) and D(x, y) both see the one-hot label y (G: concatenated to
  the noise; D: as constant image planes concatenated to the channels).
- `acgan` (Odena et al. 2017): G(z, y) as above; D(x) does not see y but has an auxiliary class head.
  D minimises its objective loss + lambda_cls * [CE(class(x_real), y_real) + CE(class(G(z, y)), y)];
  G minimises its objective loss + lambda_cls * CE(class(G(z, y)), y) (the paper's D maximises
  L_S + L_C, G maximises L_C - L_S; `variant.lambda_cls`, default 1, weighs L_C on both sides).

The adversarial parts are the chosen objective's d(r, f) / g(r, f) (bench.objectives), with WGAN-GP's
penalty and WGAN's clipping through d_step. Fakes of a D step are generated for the labels of that
step's real batch (so a conditional D's real and fake sides, and WGAN-GP's interpolates, share labels);
G's step uses the labels of the last real batch. Labels thus come from the `data` stream, noise from the
`noise` stream; G then D are built from the `init` stream, so every lambda_cls of one seed starts from
the same networks (and CGAN and ACGAN from the same G).

Evaluate: `eval_samples` samples from a fixed noise batch (the `eval` stream) for the labels 0, 1, ..., 9,
0, 1, ...: the evaluator metrics (FID/KID/PR/DC, modes), `class_accuracy` (evaluator class == the label
asked for) and `class_fid` (mean per-class FID against the test split's classes); ACGAN also
`d_class_accuracy` (D's class head on a fixed subset of the test split). Grids: `generated` = a row per
class (8 samples each), `real`.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from bench import registry
from bench.structures import Pack, Result, Streams, d_step, draws, eval_mode, evaluated, frozen, pack_nets

# the catalog's declaration (bench.catalog reads it without importing this module: plain data only)
DECLARE_CGAN = {"uses": ["objective", "clip", "gp_weight", "penalty"], "losses": ["loss_d", "loss_g"],
                "grids": ["generated", "real"], "headline": "fid", "success": "collapse", "sections": ["own_weights"]}
DECLARE = {
    "cgan": {**DECLARE_CGAN, "title": "CGAN", "options": {}, "metrics": ["class_accuracy", "class_fid"],
             "doc": ("class-conditional GAN (Mirza & Osindero 2014): G and D see the one-hot label; the baseline of "
                     "the conditional variants")},
    "acgan": {**DECLARE_CGAN, "title": "ACGAN", "metrics": ["class_accuracy", "class_fid", "d_class_accuracy"],
              "losses": ["loss_d", "loss_g", "loss_cls"],
              "options": {"lambda_cls": {"type": "float", "default": 1.0, "ge": 0, "packable": True, "doc": (
                  "acgan: weight of the auxiliary class loss (cross-entropy of D's class head) in D's and G's "
                  "losses")}},
              "doc": ("auxiliary-classifier GAN (Odena et al. 2017): D also classifies, and both players add the "
                      "class cross-entropy to their losses")},
}

N_CLASSES = 10
LABELLED = ("fashion_mnist", "mnist", "cifar10", "digits")  # labelled image sets with 10 classes
GRID_COLUMNS = 8
EVAL_SUBSET_SEED = 0  # ACGAN: the test images D's classifier is scored on (the same for every trial)


def check_image_gan(cfg, datasets: tuple) -> None:
    """What the conditional / code structures share: DCGAN networks, one of `datasets`, no lens (a task, another
    structure's option, is refused by the schema: bench.catalog)."""
    s = cfg.variant.structure
    if cfg.dataset.name not in datasets:
        raise ValueError(f"dataset.name: structure '{s}' needs an image set with 10 classes ({', '.join(datasets)}), "
                         f"not {cfg.dataset.name}")
    if cfg.model.name != "dcgan":
        raise ValueError(f"model.name: structure '{s}' needs model.name dcgan, not {cfg.model.name}")
    if cfg.variant.lens is not None:
        raise ValueError(f"variant.lens: the lens is not implemented for structure '{s}' (set variant.lens: null)")


def check(cfg) -> None:
    check_image_gan(cfg, LABELLED)


def _acgan(pack: Pack) -> bool:
    return pack.cfg.variant.structure == "acgan"


def build(pack: Pack, data, streams: list[Streams], device):
    from bench.nets import conditional

    ac = _acgan(pack)
    per_config = []
    for cfg, s in zip(pack.cfgs, streams):
        torch.manual_seed(s.init)
        G, D = conditional.build(cfg.model, data.dim, N_CLASSES, cond=0 if ac else N_CLASSES, head=N_CLASSES if ac else 0)
        per_config.append({"G": G, "D": D})
    return pack_nets(per_config, pack, device)


def labelled_batch(pack: Pack, data, gens: list[dict], device) -> dict:
    """real [n_critic, n, B, ...] and their labels [n_critic, n, B] (`data` stream); z [n_critic + 1, n, B,
    z_dim] and eps [n_critic, n, B] (`noise` stream)."""
    nc, B, z_dim = pack.cfg.train.n_critic, pack.cfg.train.batch_size, pack.cfg.model.z_dim
    idx = draws(gens, device, torch.randint, len(data.train), (nc, B), stream="data")
    images, labels = data.on(idx.device)
    z = draws(gens, device, torch.randn, nc + 1, B, z_dim)
    eps = draws(gens, device, torch.rand, nc, B)
    return {"real": data.to_float(images[idx]).transpose(0, 1).to(device), "labels": labels[idx].transpose(0, 1).to(device),
            "z": z.transpose(0, 1), "eps": eps.transpose(0, 1)}


batch = labelled_batch


def onehot(y: Tensor) -> Tensor:
    return F.one_hot(y, N_CLASSES).float()


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Batch-mean cross-entropy of each configuration: logits [n, B, n], y [n, B] -> [n]."""
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="none").reshape(y.shape).mean(1)


def step(nets, batch: dict, pack: Pack, t: int) -> dict:
    obj = registry.get("objective", pack.cfg.variant.objective)
    G, D, ac = nets.G, nets.D, _acgan(pack)
    lam = pack.variant("lambda_cls") if ac else None

    for k in range(pack.cfg.train.n_critic):
        x, y = batch["real"][k], batch["labels"][k]
        c = onehot(y)
        with torch.no_grad():
            fake = G(batch["z"][k], c)
        if ac:
            heads = []

            def forward(v):
                logit, h = D.both(v)
                heads.append(h)
                return logit

            loss_d = d_step(D, nets.opt["D"], obj, pack, x, fake, batch["eps"][k], forward,
                            lambda: lam * (cross_entropy(heads[0], y) + cross_entropy(heads[1], y)))
        else:
            loss_d = d_step(D, nets.opt["D"], obj, pack, x, fake, batch["eps"][k], lambda v: D(v, c))
    out = {"loss_d": loss_d}

    y = batch["labels"][-1]
    c = onehot(y)
    with frozen(D):
        fake = G(batch["z"][-1], c)
        if ac:
            d_fake, h = D.both(fake)
            d_real = D(batch["real"][-1]) if obj.relativistic else None
        else:
            d_fake = D(fake, c)
            d_real = D(batch["real"][-1], c) if obj.relativistic else None
        loss_g = obj.g(d_real, d_fake)
        loss = loss_g
        if ac:
            loss_cls = cross_entropy(h, y)
            loss = loss + lam * loss_cls
            out["loss_cls"] = loss_cls.detach()
        nets.opt["G"].zero_grad()
        loss.sum().backward()
        nets.opt["G"].step()
    out["loss_g"] = loss_g.detach()
    return out


def class_rows(x: Tensor, labels: Tensor, columns: int = GRID_COLUMNS) -> Optional[Tensor]:
    """Images [N, ...] generated for `labels` [N] -> [classes, columns, ...]: the first `columns` of each
    class as a row (None when some class has fewer)."""
    rows = [x[labels == c][:columns] for c in range(N_CLASSES)]
    n = min(len(r) for r in rows)
    return torch.stack([r[:n] for r in rows]) if n else None


class ImageEval:
    """What the conditional and code structures' evaluations share: the evaluator, the real grid, the
    test split's per-class features (for class_fid), the evaluator metrics of one configuration's samples."""

    def __init__(self, pack: Pack, data, gens: list[dict], device):
        from bench.metrics.evaluator import get_evaluator
        from bench.metrics.images import inception_status

        self.data, self.device, self.size = data, device, pack.size
        self.n = pack.cfg.train.eval_samples
        self.evaluator = get_evaluator(data, pack.cfg.dataset).to(device)
        self.real = torch.stack([data.sample(64, g["eval"]) for g in gens])
        self.inception_skipped = inception_status()
        self._test_features = None

    def test_features(self) -> Tensor:
        if self._test_features is None:  # once per trial, at the first evaluation
            self._test_features = self.evaluator.features(self.data.to_float(self.data.test))
        return self._test_features

    def metrics(self, fake: Tensor, labels: Optional[Tensor] = None) -> tuple[dict, Tensor]:
        """(evaluator metrics [+ class_accuracy, class_fid for `labels`], the evaluator's classes)."""
        from bench.metrics.conditional import class_accuracy, class_fid
        from bench.metrics.images import image_metrics, inception_metrics

        features, logits = self.evaluator.embed(fake)
        m = {**image_metrics(self.evaluator, self.data, fake, features=features, logits=logits, device=self.device),
             **self.evaluator.columns()}
        if self.inception_skipped is None:
            m.update(inception_metrics(self.data, fake, device=self.device)[0])
        pred = self.evaluator.classes_from_logits(logits)
        if labels is not None:
            m["class_accuracy"] = class_accuracy(pred, labels)
            m["class_fid"] = class_fid(self.test_features(), self.data.test_labels, features, labels)
        return m, pred


class Evaluate(ImageEval):
    """Conditional samples of every class from a fixed noise batch (see the module docstring)."""

    def __init__(self, pack: Pack, data, gens: list[dict], device):
        super().__init__(pack, data, gens, device)
        self.labels = torch.arange(self.n) % N_CLASSES
        self.z = torch.stack([torch.randn(self.n, pack.cfg.model.z_dim, generator=g["eval"]) for g in gens])
        self.test = None
        if _acgan(pack):
            n_test = len(data.test)
            perm = torch.randperm(n_test, generator=torch.Generator().manual_seed(EVAL_SUBSET_SEED))[:min(self.n, n_test)]
            self.test, self.test_labels = data.to_float(data.test[perm]), data.test_labels[perm]

    def __call__(self, nets, final: bool = False, alive: Optional[list[int]] = None) -> list[Optional[Result]]:
        alive = range(self.size) if alive is None else alive
        c = onehot(self.labels).expand(self.size, -1, -1)
        d_pred = None
        with eval_mode(*nets.modules()):
            fake = evaluated(nets.G, self.z, c, device=self.device)
            if self.test is not None:
                x = self.test.expand(self.size, *self.test.shape)
                d_pred = evaluated(lambda v: nets.D.both(v)[1].argmax(-1), x, device=self.device)
        return [self._one(k, fake[k], None if d_pred is None else d_pred[k]) if k in alive else None
                for k in range(self.size)]

    def _one(self, k: int, fake: Tensor, d_pred: Optional[Tensor]) -> Result:
        from bench.metrics.conditional import class_accuracy

        if not bool(torch.isfinite(fake).all()):
            return Result(diverged="generated samples contain NaN/Inf")
        metrics, _ = self.metrics(fake, self.labels)
        if d_pred is not None:
            metrics["d_class_accuracy"] = class_accuracy(d_pred, self.test_labels)
        grids = {"real": self.real[k]}
        rows = class_rows(fake, self.labels)
        grids["generated"] = rows if rows is not None else fake
        return Result(metrics, {"grids": grids})
