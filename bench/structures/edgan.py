"""The encoder-decoder + GAN structures of Zhang, Song, Qi, "Decoupled Learning for Conditional
Adversarial Networks" (WACV 2018), on a conditional image task (bench.data.tasks):

- `ed+gan` (coupled; `ed+gan2` is the same with batch norm in the networks): E and Dec minimise
      L1(x_target, Dec(E(x_in))) + w * L_adv(D(Dec(E(x_in))))
  so both losses back-propagate into the same decoder; D is trained on the real target vs the output.
- `ed//gan` (decoupled): the output is I = I_ED + G_res(code, labels), with I_ED = Dec(E(x_in)) and G_res
  a second decoder with Dec's input (the code and the labels; not noise). The L1 loss mean|x - I_ED|
  updates ONLY E and Dec; w * L_adv(D(I)) updates ONLY G_res (its input code and I_ED are detached);
  D is trained on the real target vs I. G_res gets `variant.g_res_steps` updates per iteration
  (2 in the authors' CAAE code), the others one.
- `variant.code_prior` > 0: the original CAAE's code discriminator D_z (U(-1, 1) samples vs E's codes);
  E also minimises code_prior * its adversarial loss (pushes the class out of the code).

L_adv is the objective's generator loss and D's loss its d loss (bench.objectives; default ns, i.e.
-log D(I) as in the paper; relativistic objectives compare with D on the real target); WGAN-GP's
gradient penalty and WGAN's weight clipping apply to D as in the GAN structure. D sees the output
concatenated with the conditioning when `variant.d_cond` (the input image for inpaint/downsample,
one-hot label planes for caae).

Networks: bench.nets.encdec (E, Dec, D from the `init` stream; G_res from the `extra` stream, so the
same seed gives the same initial E, Dec and D for every structure). Every network has its own optimizer.

Evaluate on a fixed subset of the TEST split (the same images for every trial: the first
max(eval_samples, nrds_samples) of a permutation seeded with EVAL_SUBSET_SEED): `l1` and `psnr` of the
outputs (clamped to [-1, 1]) against the targets in [0, 1] scale, the evaluator metrics of the outputs,
and for caae `swap_accuracy`; grids of input / output / target (caae: also `swapped`); and at the end
the outputs for the study-level NRDS (bench.nrds_step; bench.artifacts says the file's layout).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from bench import registry
from bench.data.tasks import degrade, swapped_labels, uses_labels
from bench.structures import Pack, Result, Streams, d_step, draws, eval_mode, frozen, pack_nets

# the catalog's declaration (bench.catalog reads it without importing this module: plain data only)
DECLARE_ED = {
    "options": {
        "w": {"type": "float", "default": 1.0, "ge": 0, "packable": True,
              "doc": "ED structures: weight of the adversarial loss"},
        "task": {"type": "task", "default": None, "doc": "ED structures: the conditional task (bench.data.tasks)"},
        "g_res_steps": {"type": "int", "default": 2, "ge": 1, "doc": "ed//gan: G_res updates per iteration"},
        "d_cond": {"type": "bool", "default": True,
                   "doc": "ED structures: D also sees the conditioning (input image / labels)"},
        "code_prior": {"type": "float", "default": 0.0, "ge": 0, "packable": "while_on", "doc": (
            "ED structures: weight of an adversarial loss that pushes E's code towards U(-1, 1) through a code "
            "discriminator D_z (the original CAAE's; it pushes the class out of the code, so the decoder must use "
            "the label); 0 = off")},
    },
    "uses": ["objective", "clip", "gp_weight", "penalty"],  # penalties act on both critics, D and D_z (as wgan-gp)
    "losses": ["loss_d", "loss_rec", "loss_adv", "loss_dz", "loss_prior"],
    "grids": ["input", "output", "target", "swapped"],
    "metrics": ["l1", "psnr"], "headline": "fid", "success": "finished", "sections": ["own_weights", "edgan", "nrds"],
    "conditioned": True,
}
DECLARE = {
    "ed+gan": {**DECLARE_ED, "title": "ED+GAN",
               "doc": "encoder-decoder + GAN, coupled: L1 and w x the adversarial loss train the same decoder"},
    "ed+gan2": {**DECLARE_ED, "title": "ED+GAN (batch norm)", "doc": "ed+gan with batch norm in the networks"},
    "ed//gan": {**DECLARE_ED, "title": "ED//GAN",
                "doc": "decoupled: L1 trains E and Dec, the adversarial loss only a residual decoder G_res"},
}

EVAL_SUBSET_SEED = 0  # the test subset: the same images for every trial (paired comparisons)
SWAP_SEED = 1         # caae: the swapped labels of that subset


def check(cfg) -> None:
    s = cfg.variant.structure
    if cfg.variant.task is None:
        raise ValueError(f"variant.task: structure '{s}' needs variant.task ({', '.join(registry.names('task'))})")
    if cfg.model.name != "encdec":
        raise ValueError(f"model.name: '{cfg.model.name}' does not fit variant.structure '{s}': the ED structures "
                         "need model.name encdec")
    if cfg.dataset.name in registry.TOY_DATASETS:
        raise ValueError(f"dataset.name: structure '{s}' needs an image dataset, not {cfg.dataset.name}")
    if uses_labels(cfg.variant.task) and cfg.dataset.name == "celeba":
        raise ValueError("dataset.name: the caae task needs class labels; celeba is unlabelled here")
    if cfg.variant.lens is not None:
        raise ValueError(f"variant.lens: the lens is not implemented for structure '{s}' (set variant.lens: null)")


def build(pack: Pack, data, streams: list[Streams], device):
    from bench.nets.encdec import build_ed

    per_config = []
    for cfg, s in zip(pack.cfgs, streams):
        torch.manual_seed(s.init)
        m = build_ed(cfg.model, cfg.variant, data.dim, data.num_classes, res_seed=s.extra)
        per_config.append({"E": m.E, "Dec": m.Dec, "D": m.D, "G_res": m.G_res, "D_z": m.D_z})
    return pack_nets(per_config, pack, device)


def batch(pack: Pack, data, gens: list[dict], device) -> dict:
    """batch_size training images per configuration: input (degraded by the task), target (the clean
    image), labels, eps (and `prior`, U(-1, 1) codes for D_z, when variant.code_prior > 0): [n, B, ...]."""
    cfg = pack.cfg
    B = cfg.train.batch_size
    idx = draws(gens, device, torch.randint, len(data.train), (B,), stream="data")
    images, labels = data.on(idx.device)
    x = data.to_float(images[idx])
    out = {"input": degrade(cfg.variant.task, x.flatten(0, 1)).reshape(x.shape).to(device),
           "target": x.to(device), "labels": labels[idx].to(device)}
    dev = gens[0]["noise"].device
    eps = [torch.rand(B, generator=g["noise"], device=dev) for g in gens]
    # drawn only then: trials without the prior keep their noise stream
    prior = [torch.rand(B, cfg.model.z_dim, generator=g["noise"], device=dev) * 2 - 1 if c.variant.code_prior > 0
             else None for c, g in zip(pack.cfgs, gens)]
    out["eps"] = torch.stack(eps).to(device)
    if prior[0] is not None:
        out["prior"] = torch.stack(prior).to(device)
    return out


def onehot(nets, labels: Tensor) -> Optional[Tensor]:
    """The decoder's label input (None when the task does not use labels)."""
    k = nets.Dec.num_labels
    return F.one_hot(labels, k).float() if k else None


def output(nets, x_in: Tensor, y: Optional[Tensor]) -> Tensor:
    """The structure's output for inputs x_in (and one-hot labels y): I_ED, plus G_res for ed//gan."""
    code = nets.E(x_in)
    out = nets.Dec(code, y)
    if nets.has("G_res"):
        out = out + nets.G_res(code, y)
    return out


def _inputs(nets, batch: dict):
    """(input, target, one-hot labels or None, what D is conditioned on)."""
    x_in, x_t = batch["input"], batch["target"]
    y = onehot(nets, batch["labels"])
    return x_in, x_t, y, (y if y is not None else x_in)


def _adversarial(nets, obj, x_t: Tensor, out: Tensor, cond: Tensor) -> Tensor:
    """The generator side's adversarial loss on `out` (D frozen by the caller)."""
    d_real = nets.D(x_t, cond) if obj.relativistic else None
    return obj.g(d_real, nets.D(out, cond))


def _l1(x_t: Tensor, out: Tensor) -> Tensor:
    """mean |x_t - out| of each configuration [n]."""
    return (x_t - out).abs().flatten(1).mean(1)


def _code_prior(nets, obj, pack: Pack, code: Tensor, batch: dict, out: dict):
    """CAAE's code prior (variant.code_prior > 0): one D_z step (U(-1, 1) samples vs E's codes), then
    E's weighted adversarial loss on its code, to be added to E's loss; 0 when off."""
    if not nets.has("D_z"):
        return code.new_zeros(())
    out["loss_dz"] = d_step(nets.D_z, nets.opt["D_z"], obj, pack, batch["prior"], code.detach(), batch["eps"])
    with frozen(nets.D_z):
        loss = obj.g(nets.D_z(batch["prior"]) if obj.relativistic else None, nets.D_z(code))
    out["loss_prior"] = loss.detach()
    return pack.variant("code_prior") * loss


def _update_ed(nets, loss: Tensor) -> None:
    """One step of E and Dec (each its own optimizer) on loss [n]."""
    nets.opt["E"].zero_grad()
    nets.opt["Dec"].zero_grad()
    loss.sum().backward()
    nets.opt["E"].step()
    nets.opt["Dec"].step()


def step(nets, batch: dict, pack: Pack, t: int) -> dict:
    """One iteration of variant.structure (ed+gan, ed+gan2 or ed//gan)."""
    if pack.cfg.variant.structure == "ed//gan":
        return step_decoupled(nets, batch, pack, t)
    return step_coupled(nets, batch, pack, t)


def step_coupled(nets, batch: dict, pack: Pack, t: int) -> dict:
    """ED+GAN / ED+GAN2: Dec (and E) minimise L1 + w * L_adv; D: real target vs Dec's output."""
    obj, w = registry.get("objective", pack.cfg.variant.objective), pack.variant("w")
    x_in, x_t, y, cond = _inputs(nets, batch)
    code = nets.E(x_in)
    out = nets.Dec(code, y)

    loss_d = d_step(nets.D, nets.opt["D"], obj, pack, x_t, out.detach(), batch["eps"], lambda x: nets.D(x, cond))
    extra: dict = {}
    prior = _code_prior(nets, obj, pack, code, batch, extra)

    with frozen(nets.D):
        loss_rec = _l1(x_t, out)
        loss_adv = _adversarial(nets, obj, x_t, out, cond)
        _update_ed(nets, loss_rec + w * loss_adv + prior)
    return {"loss_d": loss_d, "loss_rec": loss_rec.detach(), "loss_adv": loss_adv.detach(), **extra}


def step_decoupled(nets, batch: dict, pack: Pack, t: int) -> dict:
    """ED//GAN: L1 -> E, Dec only; w * L_adv(D(I_ED + G_res)) -> G_res only; D: real vs I."""
    obj, w = registry.get("objective", pack.cfg.variant.objective), pack.variant("w")
    x_in, x_t, y, cond = _inputs(nets, batch)

    code = nets.E(x_in)
    i_ed = nets.Dec(code, y)
    loss_rec = _l1(x_t, i_ed)
    extra: dict = {}
    _update_ed(nets, loss_rec + _code_prior(nets, obj, pack, code, batch, extra))
    code, i_ed = code.detach(), i_ed.detach()  # the adversarial loss never reaches E or Dec

    with torch.no_grad():
        fake = i_ed + nets.G_res(code, y)
    loss_d = d_step(nets.D, nets.opt["D"], obj, pack, x_t, fake, batch["eps"], lambda x: nets.D(x, cond))

    with frozen(nets.D):
        for _ in range(pack.cfg.variant.g_res_steps):
            loss_adv = _adversarial(nets, obj, x_t, i_ed + nets.G_res(code, y), cond)
            nets.opt["G_res"].zero_grad()
            (w * loss_adv).sum().backward()
            nets.opt["G_res"].step()
    return {"loss_d": loss_d, "loss_rec": loss_rec.detach(), "loss_adv": loss_adv.detach(), **extra}


class Evaluate:
    """The ED structures' evaluation on a fixed test subset (see the module docstring)."""

    def __init__(self, pack: Pack, data, gens: list[dict], device):
        from bench.metrics.images import inception_status

        cfg = pack.cfg
        self.data, self.device, self.task, self.size = data, device, cfg.variant.task, pack.size
        n_test = len(data.test)
        self.n_eval = min(cfg.train.eval_samples, n_test)
        self.n_nrds = min(cfg.train.nrds_samples, n_test)
        perm = torch.randperm(n_test, generator=torch.Generator().manual_seed(EVAL_SUBSET_SEED))
        self.index = perm[:max(self.n_eval, self.n_nrds)]
        self.target = data.to_float(data.test[self.index])
        self.labels = data.test_labels[self.index]
        self.input = degrade(self.task, self.target)
        self.evaluator = None
        if data.num_classes:
            from bench.metrics.evaluator import get_evaluator

            self.evaluator = get_evaluator(data, cfg.dataset).to(device)  # on the trial's device
        self.swapped = None
        if uses_labels(self.task):
            self.swapped = swapped_labels(self.labels, data.num_classes, torch.Generator().manual_seed(SWAP_SEED))
        self.inception_skipped = inception_status()

    @torch.no_grad()
    def outputs(self, nets, x_in: Tensor, labels: Tensor, batch: int = 500) -> Tensor:
        """Every configuration's outputs [n, N, ...] for the same inputs, in eval mode, on the CPU."""
        size = self.size
        with eval_mode(*nets.modules()):
            out = []
            for i in range(0, len(x_in), batch):
                x = x_in[i:i + batch].to(self.device).expand(size, -1, -1, -1, -1)
                y = onehot(nets, labels[i:i + batch].to(self.device).expand(size, -1))
                out.append(output(nets, x, y).float().cpu())
        return torch.cat(out, 1)

    def __call__(self, nets, final: bool = False, alive: Optional[list[int]] = None) -> list[Optional[Result]]:
        alive = range(self.size) if alive is None else alive
        out = self.outputs(nets, self.input, self.labels)
        swapped = None
        if self.swapped is not None:
            swapped = self.outputs(nets, self.input[:self.n_eval], self.swapped[:self.n_eval])
        return [self._one(out[k], None if swapped is None else swapped[k], final) if k in alive else None
                for k in range(self.size)]

    def _one(self, out: Tensor, swapped: Optional[Tensor], final: bool) -> Result:
        from bench.metrics.images import image_metrics, inception_metrics, psnr_l1, to_uint8

        if not bool(torch.isfinite(out).all()) or (swapped is not None and not bool(torch.isfinite(swapped).all())):
            return Result(diverged="outputs contain NaN/Inf")
        out = out.clamp(-1, 1)
        n = self.n_eval
        metrics = psnr_l1(out[:n], self.target[:n])
        if self.evaluator is not None:
            metrics.update(image_metrics(self.evaluator, self.data, out[:n], device=self.device))
            metrics.update(self.evaluator.columns())
        if self.inception_skipped is None:
            metrics.update(inception_metrics(self.data, out[:n], device=self.device)[0])
        artifacts = {"grids": {"input": self.input, "output": out, "target": self.target}}
        if swapped is not None:
            swapped = swapped.clamp(-1, 1)
            metrics["swap_accuracy"] = float((self.evaluator.predict(swapped) == self.swapped[:n]).double().mean())
            artifacts["grids"]["swapped"] = swapped
        if final:
            k = self.n_nrds
            arrays = {"outputs": to_uint8(out[:k]).numpy(), "index": self.index[:k].numpy(),
                      "labels": self.labels[:k].numpy()}
            if self.swapped is not None:
                arrays["swapped_labels"] = self.swapped[:k].numpy()
            artifacts["outputs"] = arrays
        return Result(metrics, artifacts)
