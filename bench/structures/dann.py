"""DANN, domain-adversarial training (Ganin et al., JMLR 2016): a feature extractor F, a label classifier C on F's
features, and a domain classifier behind a gradient reversal layer, on the two-domain set (dataset `domains`:
labelled source A, unlabelled target B = T(A); bench.data.domains).

One iteration, per configuration: a source batch (x_s, y_s) from A and a target batch x_t from B (the `data`
stream);
    loss_y   = CE(C(F(x_s)), y_s)
    loss_dom = BCE(Dom(R(F(x_s))), source) + BCE(Dom(R(F(x_t))), target)
and one optimizer step of F, C and Dom on loss_y + loss_dom, where R is the identity forward and multiplies the
gradient by -lambda backward: Dom learns to tell the domains apart, F learns to make them indistinguishable. The
weight lambda follows `variant.dann_schedule` (any bench.schedules name) up to `variant.dann_lambda` over the run:
the paper's `dann` ramp lambda_p = 2 / (1 + exp(-gamma p)) - 1 (p = step / steps, gamma = `variant.dann_gamma`,
10), or `constant`, ... Baselines in the same structure: `dann_lambda: 0` is source-only training (F gets no domain
gradient); `dann_oracle: true` trains C on the target's labels instead (the target-oracle upper bound). The
paper's learning-rate annealing mu_p = mu_0 / (1 + 10 p)^0.75 is not applied: the run keeps train.lr (said where it
matters, docs/methods.md).

Networks: F = DCGAN's discriminator stack (4x4 convs, stride 2, to 4x4), C = one linear layer to the 10 classes,
Dom = Linear(100) + ReLU + Linear(1) (the paper's MNIST domain classifier width), all from the `init` stream.
Evaluate: target_accuracy (C(F(.)) on the test split of B, whose labels are known) and source_accuracy (on A's test
split); no samples are generated (DECLARE samples: false).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from bench.objectives.classic import ns
from bench.structures import Pack, Result, Streams, draws, eval_mode, evaluated, pack_nets
from bench.structures.cgan import cross_entropy

DECLARE = {"dann": {
    "title": "DANN", "doc": "domain-adversarial training through gradient reversal (Ganin et al. 2016)",
    "options": {
        "dann_lambda": {"type": "float", "default": 1.0, "ge": 0, "packable": True,
                        "doc": "DANN: the adaptation weight's final value (0: source-only training)"},
        "dann_schedule": {"type": "str", "default": "dann",
                          "doc": "DANN: how the weight reaches dann_lambda (a bench.schedules name: dann, constant)"},
        "dann_gamma": {"type": "float", "default": 10.0, "gt": 0, "packable": True,
                       "doc": "DANN: gamma of the dann schedule's ramp 2 / (1 + exp(-gamma p)) - 1"},
        "dann_oracle": {"type": "bool", "default": False,
                        "doc": "DANN: train the label classifier on the target's labels (the upper-bound baseline)"},
    },
    "uses": [], "datasets": ["domains"], "samples": False,
    "losses": ["loss_y", "loss_dom"],
    "new_metrics": {
        "target_accuracy": {"higher_is_better": True, "label": "accuracy on the target domain's test split",
                            "range": [0, 1]},
        "source_accuracy": {"higher_is_better": True, "label": "accuracy on the source domain's test split",
                            "range": [0, 1]},
    },
    "metrics": ["target_accuracy", "source_accuracy"],
    "headline": "target_accuracy", "success": "finished", "sections": ["own_weights"],
    "arms": ["dann_schedule", "dann_oracle"],  # different methods, not settings: the report never pools them
}}

N_CLASSES = 10
DOMAIN_HIDDEN = 100
SCHEDULES = ("dann", "constant", "linear", "sine", "none")


def check(cfg) -> None:
    if cfg.model.name != "dcgan":
        raise ValueError(f"model.name: structure 'dann' needs model.name dcgan (its feature extractor), not "
                         f"{cfg.model.name}")
    if cfg.variant.dann_schedule not in SCHEDULES:
        raise ValueError(f"variant.dann_schedule: unknown schedule '{cfg.variant.dann_schedule}' "
                         f"(known: {', '.join(SCHEDULES)})")


def weight(cfg, t: int) -> float:
    """The adaptation weight lambda at step t (the schedule's horizon is the whole run)."""
    from bench import schedules

    v = cfg.variant
    if v.dann_schedule == "dann":
        return schedules.dann(t, cfg.train.steps, v.dann_lambda, v.dann_gamma)
    return schedules.lam(v.dann_schedule, t, cfg.train.steps, v.dann_lambda)


def scalars(cfg, t: int) -> dict:
    return {"lambda": weight(cfg, t)}


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, coef: Tensor) -> Tensor:
        ctx.save_for_backward(coef)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (coef,) = ctx.saved_tensors
        return -coef.view(-1, *([1] * (grad.dim() - 1))) * grad, None


def reverse(x: Tensor, coef: Tensor) -> Tensor:
    """Gradient reversal: x forward; backward, each configuration's gradient times -coef[k] (x: [n, ...])."""
    return _Reverse.apply(x, coef)


class Features(nn.Module):
    """images [K, B, C, H, W] -> DCGAN discriminator features [K, B, F]."""

    def __init__(self, channels: int, size: int, C: int, batch_norm: bool, K: int = 1):
        super().__init__()
        from bench.nets import dcgan

        self.K = K
        layers, c_out = dcgan.conv_stack(channels, size, C, batch_norm, K)
        self.conv, self.dim = nn.Sequential(*layers), c_out * 4 * 4

    def forward(self, x: Tensor) -> Tensor:
        from bench.nets import packed as P

        return P.flatten_grouped(self.conv(P.to_grouped(x)), self.K)


def build(pack: Pack, data, streams: list[Streams], device):
    from bench.nets import dcgan
    from bench.nets import packed as P

    per_config = []
    channels, size = data.dim[0], data.dim[1]
    for cfg, s in zip(pack.cfgs, streams):
        torch.manual_seed(s.init)
        feat = Features(channels, size, cfg.model.width, bool(cfg.model.d_batch_norm))
        dcgan.init_weights(feat, cfg.model.init)
        cls = P.Linear(1, feat.dim, N_CLASSES)
        dom = nn.Sequential(P.Linear(1, feat.dim, DOMAIN_HIDDEN), nn.ReLU(), P.Linear(1, DOMAIN_HIDDEN, 1))
        per_config.append({"F": feat, "C": cls, "Dom": dom})
    return pack_nets(per_config, pack, device, critics=())


def batch(pack: Pack, data, gens: list[dict], device) -> dict:
    """x_s, y_s: a source batch from A; x_t, y_t: a target batch from B (y_t only trains the oracle)."""
    B = pack.cfg.train.batch_size

    def draw(images, labels):
        idx = draws(gens, "cpu", torch.randint, len(images), (B,), stream="data")
        return data.to_float(images[idx]).to(device), labels[idx].to(device)

    xs, ys = draw(data.train, data.train_labels)
    xt, yt = draw(data.train_b, data.train_b_labels)
    return {"xs": xs, "ys": ys, "xt": xt, "yt": yt}


def step(nets, batch: dict, pack: Pack, t: int) -> dict:
    lam = pack.vec(lambda c: weight(c, t))
    hs, ht = nets.F(batch["xs"]), nets.F(batch["xt"])
    if pack.cfg.variant.dann_oracle:
        loss_y = cross_entropy(nets.C(ht), batch["yt"])
    else:
        loss_y = cross_entropy(nets.C(hs), batch["ys"])
    # the domain classifier's cross-entropy, source 1 and target 0: the GAN discriminator's loss
    loss_dom = ns.d(nets.Dom(reverse(hs, lam)).squeeze(-1), nets.Dom(reverse(ht, lam)).squeeze(-1))
    for o in nets.opt.values():
        o.zero_grad()
    (loss_y + loss_dom).sum().backward()
    for o in nets.opt.values():
        o.step()
    return {"loss_y": loss_y.detach(), "loss_dom": loss_dom.detach()}


class Evaluate:
    """Accuracy of the classifier on both domains' test splits (B's labels are A's: the test split is paired); a
    structure with another classifier (DupGAN: C(E(.))) overrides `classify`, and adds metrics in `extra`."""

    def __init__(self, pack: Pack, data, gens: list[dict], device):
        self.size, self.device = pack.size, device
        self.source, self.target = data.to_float(data.test), data.to_float(data.test_b)
        self.labels = data.test_labels

    def classify(self, nets, x: Tensor) -> Tensor:
        return nets.C(nets.F(x))

    def extra(self, k: int, logits: dict) -> dict:
        return {}

    def __call__(self, nets, final: bool = False, alive: Optional[list[int]] = None) -> list[Optional[Result]]:
        alive = range(self.size) if alive is None else alive
        with eval_mode(*nets.modules()):
            logits = {name: evaluated(lambda v: self.classify(nets, v), x.expand(self.size, *x.shape),
                                      device=self.device)
                      for name, x in (("source", self.source), ("target", self.target))}
        out = []
        for k in range(self.size):
            if k not in alive:
                out.append(None)
            elif not all(bool(torch.isfinite(v[k]).all()) for v in logits.values()):
                out.append(Result(diverged="classifier outputs contain NaN/Inf"))
            else:
                acc = {f"{name}_accuracy": float((v[k].argmax(-1) == self.labels).float().mean())
                       for name, v in logits.items()}
                out.append(Result({**acc, **self.extra(k, logits)}))
        return out
