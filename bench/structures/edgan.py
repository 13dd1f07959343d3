"""One training iteration of the encoder-decoder + GAN structures of Zhang, Song, Qi, "Decoupled Learning
for Conditional Adversarial Networks" (WACV 2018):

- `ed+gan` (coupled; `ed+gan2` is the same with batch norm in the networks): E and Dec minimise
      L1(x_target, Dec(E(x_in))) + w * L_adv(D(Dec(E(x_in))))
  so both losses back-propagate into the same decoder; D is trained on the real target vs the output.
- `ed//gan` (decoupled): the output is I = I_ED + G_res(code, labels), with I_ED = Dec(E(x_in)) and G_res
  a second decoder with Dec's input (the code and the labels; not noise). The L1 loss mean|x - I_ED|
  updates ONLY E and Dec; w * L_adv(D(I)) updates ONLY G_res (its input code and I_ED are detached);
  D is trained on the real target vs I. G_res gets `variant.g_res_steps` updates per iteration
  (2 in the authors' CAAE code), the others one.

L_adv is the objective's generator loss and D's loss its d_loss (bench.objectives; default ns, i.e.
-log D(I) as in the paper); WGAN-GP's gradient penalty and WGAN's weight clipping apply to D as in
bench.structures.gan. D sees the output concatenated with the conditioning when `variant.d_cond`
(the input image for inpaint/downsample, one-hot label planes for caae).

`step(nets, batch, cfg, t)` is a pure function of the networks, the batch and the config, like
bench.structures.gan.step: batch = {input, target: [B, C, H, W] in [-1, 1], labels: int64 [B],
eps: [B] (the gradient penalty's interpolation weights)}. Every network has its own optimizer.
Returns the losses as 0-d tensors: loss_d, loss_rec (L1), loss_adv (unweighted adversarial term;
for ed//gan of G_res's last update).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench import registry
from bench.structures.gan import d_step


@dataclass
class EDNets:
    E: nn.Module
    Dec: nn.Module
    D: nn.Module
    opt_e: torch.optim.Optimizer
    opt_dec: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    G_res: Optional[nn.Module] = None
    opt_res: Optional[torch.optim.Optimizer] = None
    D_z: Optional[nn.Module] = None
    opt_dz: Optional[torch.optim.Optimizer] = None

    def modules(self) -> list[nn.Module]:
        return [m for m in (self.E, self.Dec, self.D, self.G_res, self.D_z) if m is not None]


def onehot(nets: EDNets, labels: Tensor) -> Optional[Tensor]:
    """The decoder's label input (None when the task does not use labels)."""
    k = nets.Dec.num_labels
    return F.one_hot(labels, k).float() if k else None


def output(nets: EDNets, x_in: Tensor, y: Optional[Tensor]) -> Tensor:
    """The structure's output for inputs x_in (and one-hot labels y): I_ED, plus G_res for ed//gan."""
    code = nets.E(x_in)
    out = nets.Dec(code, y)
    if nets.G_res is not None:
        out = out + nets.G_res(code, y)
    return out


def _d_step(nets: EDNets, obj, cfg, real: Tensor, fake: Tensor, cond: Tensor, eps: Tensor) -> Tensor:
    return d_step(nets.D, nets.opt_d, obj, cfg.variant, real, fake, eps, forward=lambda z: nets.D(z, cond))


def _inputs(nets: EDNets, batch: dict):
    """(input, target, one-hot labels or None, what D is conditioned on)."""
    x_in, x_t = batch["input"], batch["target"]
    y = onehot(nets, batch["labels"])
    return x_in, x_t, y, (y if y is not None else x_in)


def _code_prior(nets: EDNets, obj, cfg, code: Tensor, batch: dict, out: dict) -> Tensor:
    """CAAE's code prior (variant.code_prior > 0): one D_z step (U(-1, 1) samples vs E's codes), then
    E's weighted adversarial loss on its code, to be added to E's loss; 0 when off."""
    if nets.D_z is None:
        return code.new_zeros(())
    out["loss_dz"] = d_step(nets.D_z, nets.opt_dz, obj, cfg.variant, batch["prior"], code.detach(), batch["eps"])
    nets.D_z.requires_grad_(False)
    loss = obj.g_loss(nets.D_z(code))
    nets.D_z.requires_grad_(True)
    out["loss_prior"] = loss.detach()
    return cfg.variant.code_prior * loss


def _update_ed(nets: EDNets, loss: Tensor) -> None:
    """One step of E and Dec (each its own optimizer) on loss."""
    nets.opt_e.zero_grad(set_to_none=True)
    nets.opt_dec.zero_grad(set_to_none=True)
    loss.backward()
    nets.opt_e.step()
    nets.opt_dec.step()


def step(nets: EDNets, batch: dict, cfg, t: int) -> dict:
    """One iteration of cfg.variant.structure (ed+gan, ed+gan2 or ed//gan)."""
    if cfg.variant.structure == "ed//gan":
        return step_decoupled(nets, batch, cfg, t)
    return step_coupled(nets, batch, cfg, t)


def step_coupled(nets: EDNets, batch: dict, cfg, t: int) -> dict:
    """ED+GAN / ED+GAN2: Dec (and E) minimise L1 + w * L_adv; D: real target vs Dec's output."""
    obj, w = registry.get("objective", cfg.variant.objective), cfg.variant.w
    x_in, x_t, y, cond = _inputs(nets, batch)
    code = nets.E(x_in)
    out = nets.Dec(code, y)

    loss_d = _d_step(nets, obj, cfg, x_t, out.detach(), cond, batch["eps"])
    extra: dict = {}
    prior = _code_prior(nets, obj, cfg, code, batch, extra)

    nets.D.requires_grad_(False)
    loss_rec = (x_t - out).abs().mean()
    loss_adv = obj.g_loss(nets.D(out, cond))
    loss = loss_rec + w * loss_adv + prior
    _update_ed(nets, loss)
    nets.D.requires_grad_(True)
    return {"loss_d": loss_d, "loss_rec": loss_rec.detach(), "loss_adv": loss_adv.detach(), **extra}


def step_decoupled(nets: EDNets, batch: dict, cfg, t: int) -> dict:
    """ED//GAN: L1 -> E, Dec only; w * L_adv(D(I_ED + G_res)) -> G_res only; D: real vs I."""
    obj, w = registry.get("objective", cfg.variant.objective), cfg.variant.w
    x_in, x_t, y, cond = _inputs(nets, batch)

    code = nets.E(x_in)
    i_ed = nets.Dec(code, y)
    loss_rec = (x_t - i_ed).abs().mean()
    extra: dict = {}
    _update_ed(nets, loss_rec + _code_prior(nets, obj, cfg, code, batch, extra))
    code, i_ed = code.detach(), i_ed.detach()  # the adversarial loss never reaches E or Dec

    with torch.no_grad():
        fake = i_ed + nets.G_res(code, y)
    loss_d = _d_step(nets, obj, cfg, x_t, fake, cond, batch["eps"])

    nets.D.requires_grad_(False)
    for _ in range(cfg.variant.g_res_steps):
        loss_adv = obj.g_loss(nets.D(i_ed + nets.G_res(code, y), cond))
        nets.opt_res.zero_grad(set_to_none=True)
        (w * loss_adv).backward()
        nets.opt_res.step()
    nets.D.requires_grad_(True)
    return {"loss_d": loss_d, "loss_rec": loss_rec.detach(), "loss_adv": loss_adv.detach(), **extra}
