"""InfoGAN (Chen et al. 2016): G(z, c) with a latent code c = one 10-way categorical code (one-hot) + 2
continuous codes ~ U(-1, 1); a Q head on D's shared features predicts c from G(z, c) (10 logits + the
2 continuous codes' means, unit variance as in the authors' MNIST setting). The mutual-information
lower bound enters as the loss
    L_info = CE(Q_cat(G(z, c)), c_cat) + 0.1 * sum_j (c_j - Q_j(G(z, c)))^2 / 2
(cross-entropy, plus the continuous codes' Gaussian NLL less its constant, weighed 0.1 as the paper's
continuous codes), times `variant.lambda_info` (default 1, the paper's weight of the categorical code):
D (its shared layers and Q) minimises its objective loss + lambda_info * L_info on that step's fakes;
G minimises its objective loss + lambda_info * L_info (D and Q frozen).

Data (unlabelled use of a labelled 10-class image set) from the `data` stream, noise and codes from the
`noise` stream; G then D (with Q) from the `init` stream, so every lambda_info of one seed starts from
the same networks.

Evaluate: `eval_samples` samples from a fixed batch (the `eval` stream) with categorical codes 0, 1, ...,
9, 0, ...: the evaluator metrics and the agreement of the categorical code with the evaluator's
predicted class, `code_accuracy` (best one-to-one map of codes to classes) and `code_nmi`. Grids:
`generated` (a row per categorical code), `real`, and the latent traversals `traversal_c1` /
`traversal_c2` (a row per categorical code, one noise vector per row, the continuous code from -1 to 1
across the row, the other one at 0).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from bench import registry
from bench.structures import Pack, Result, Streams, d_step, draws, eval_mode, evaluated, frozen, pack_nets
from bench.structures.cgan import GRID_COLUMNS, LABELLED, ImageEval, check_image_gan, class_rows, cross_entropy, \
    labelled_batch

# the catalog's declaration (bench.catalog reads it without importing this module: plain data only)
DECLARE = {"infogan": {
    "title": "InfoGAN", "doc": ("InfoGAN (Chen et al. 2016): a 10-way categorical and 2 continuous codes, a Q head on "
                                "D's features that recovers them, and a mutual-information term in both losses"),
    "options": {"lambda_info": {"type": "float", "default": 1.0, "ge": 0, "packable": True, "doc": (
        "infogan: weight of the mutual-information term (Q's categorical cross-entropy + 0.1 x the continuous "
        "codes' Gaussian NLL) in G's and D/Q's losses")}},
    "uses": ["objective", "clip", "gp_weight", "penalty"], "losses": ["loss_d", "loss_g", "loss_info"],
    "grids": ["generated", "real", "traversal_c1", "traversal_c2"],
    "metrics": ["code_accuracy", "code_nmi"], "headline": "fid", "success": "collapse", "sections": ["own_weights"],
}}

N_CAT, N_CONT = 10, 2
CONT_WEIGHT = 0.1  # the continuous codes' NLL relative to the categorical code's cross-entropy


def check(cfg) -> None:
    check_image_gan(cfg, LABELLED)  # the labels only score the code (code_accuracy, code_nmi)


def build(pack: Pack, data, streams: list[Streams], device):
    from bench.nets import conditional

    per_config = []
    for cfg, s in zip(pack.cfgs, streams):
        torch.manual_seed(s.init)
        G, D = conditional.build(cfg.model, data.dim, N_CAT + N_CONT, head=N_CAT + N_CONT)
        per_config.append({"G": G, "D": D})
    return pack_nets(per_config, pack, device)


def batch(pack: Pack, data, gens: list[dict], device) -> dict:
    """The GAN's batch (real [n_critic, n, B, ...], z, eps; the labels go unused) plus codes: cat
    [n_critic + 1, n, B] and cont [n_critic + 1, n, B, 2], from the `noise` stream."""
    out = labelled_batch(pack, data, gens, device)
    n, B = pack.cfg.train.n_critic + 1, pack.cfg.train.batch_size
    cat = draws(gens, device, torch.randint, N_CAT, (n, B))
    cont = draws(gens, device, torch.rand, n, B, N_CONT) * 2 - 1
    return {**out, "cat": cat.transpose(0, 1), "cont": cont.transpose(0, 1)}


def code(cat: Tensor, cont: Tensor) -> Tensor:
    """G's code input [n, B, 12]: one-hot categorical code, continuous codes."""
    return torch.cat([F.one_hot(cat, N_CAT).to(cont.dtype), cont], -1)


def info_loss(q: Tensor, cat: Tensor, cont: Tensor) -> Tensor:
    """L_info of each configuration [n] from Q's outputs q [n, B, 12]."""
    nll = 0.5 * (cont - q[..., N_CAT:].float()) ** 2
    return cross_entropy(q[..., :N_CAT], cat) + CONT_WEIGHT * nll.sum(-1).mean(1)


def step(nets, batch: dict, pack: Pack, t: int) -> dict:
    obj = registry.get("objective", pack.cfg.variant.objective)
    G, D = nets.G, nets.D
    lam = pack.variant("lambda_info")

    for k in range(pack.cfg.train.n_critic):
        cat, cont = batch["cat"][k], batch["cont"][k]
        with torch.no_grad():
            fake = G(batch["z"][k], code(cat, cont))
        heads = []

        def forward(v):
            logit, h = D.both(v)
            heads.append(h)
            return logit

        loss_d = d_step(D, nets.opt["D"], obj, pack, batch["real"][k], fake, batch["eps"][k], forward,
                        lambda: lam * info_loss(heads[1], cat, cont))

    cat, cont = batch["cat"][-1], batch["cont"][-1]
    with frozen(D):
        fake = G(batch["z"][-1], code(cat, cont))
        d_fake, q = D.both(fake)
        loss_g = obj.g(D(batch["real"][-1]) if obj.relativistic else None, d_fake)
        loss_info = info_loss(q, cat, cont)
        nets.opt["G"].zero_grad()
        (loss_g + lam * loss_info).sum().backward()
        nets.opt["G"].step()
    return {"loss_d": loss_d, "loss_g": loss_g.detach(), "loss_info": loss_info.detach()}


class Evaluate(ImageEval):
    """Samples for categorical codes 0..9 from a fixed batch; code agreement; traversals."""

    def __init__(self, pack: Pack, data, gens: list[dict], device):
        super().__init__(pack, data, gens, device)
        size, n, zd = pack.size, self.n, pack.cfg.model.z_dim
        self.cat = torch.arange(n) % N_CAT
        self.z = torch.stack([torch.randn(n, zd, generator=g["eval"]) for g in gens])
        self.cont = torch.stack([torch.rand(n, N_CONT, generator=g["eval"]) * 2 - 1 for g in gens])
        # traversals: row i = categorical code i with the noise of sample i; a continuous code from -1 to 1
        rows = min(N_CAT, n)
        self.tr_z = self.z[:, :rows].repeat_interleave(GRID_COLUMNS, 1)
        self.tr_cat = torch.arange(rows).repeat_interleave(GRID_COLUMNS).expand(size, -1)
        sweep = torch.linspace(-1, 1, GRID_COLUMNS).repeat(rows)
        self.tr_cont = []
        for j in range(N_CONT):
            c = torch.zeros(size, rows * GRID_COLUMNS, N_CONT)
            c[..., j] = sweep
            self.tr_cont.append(c)

    def __call__(self, nets, final: bool = False, alive: Optional[list[int]] = None) -> list[Optional[Result]]:
        alive = range(self.size) if alive is None else alive
        with eval_mode(*nets.modules()):
            fake = evaluated(nets.G, self.z, code(self.cat.expand(self.size, -1), self.cont), device=self.device)
            trav = [evaluated(nets.G, self.tr_z, code(self.tr_cat, c), device=self.device) for c in self.tr_cont]
        return [self._one(k, fake[k], [t[k] for t in trav]) if k in alive else None for k in range(self.size)]

    def _one(self, k: int, fake: Tensor, trav: list[Tensor]) -> Result:
        from bench.metrics.conditional import code_accuracy, code_nmi

        if not bool(torch.isfinite(fake).all()):
            return Result(diverged="generated samples contain NaN/Inf")
        metrics, pred = self.metrics(fake)
        metrics["code_accuracy"] = code_accuracy(self.cat, pred)
        metrics["code_nmi"] = code_nmi(self.cat, pred)
        rows = class_rows(fake, self.cat)
        grids = {"generated": rows if rows is not None else fake, "real": self.real[k]}
        for j, t in enumerate(trav):
            grids[f"traversal_c{j + 1}"] = t.reshape(-1, GRID_COLUMNS, *t.shape[1:])
        return Result(metrics, {"grids": grids})
