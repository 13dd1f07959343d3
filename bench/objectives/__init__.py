"""GAN objectives: each one function set over D's outputs on BOTH sides, so losses that compare the
two (relativistic GANs) fit as well as the classic ones (compare_gan's `loss(d_real, d_fake)` idea).

D's outputs are logits / critic values shaped [n, B] (n packed configurations, B samples); every loss
is a mean over the batch, one value per configuration: [n]. An Objective checks that at every call: a
loss of another shape (a per-sample loss [n, B]) is an error naming the objective and both shapes.

  d(r, f)     what D minimizes, from D(real) and D(fake);
  g(r, f)     what G minimizes; `r` is None unless the objective is `relativistic` (a structure only
              computes D(real) for G's step when the objective needs it);
  lens(r, f)  the tempered lens' adversarial term L_L^A, with r = D(L(x)) on lensed real data and
              f = D(G(z)): the lens works against D by making lensed real data look fake, i.e. the
              generator's loss with the target flipped (GAN: -log(1 - D(L(x))); LSGAN: D(L(x))^2;
              WGAN: D(L(x))); a relativistic lens minimises G's relativistic loss through r instead.

The sigmoid of the GAN losses is folded into softplus for numerical stability:
-log D(x) = softplus(-d), -log(1 - D(x)) = softplus(d).

Objectives live in this package by family: classic.py (minimax, ns, lsgan, wgan, wgan-gp, hinge) and
relativistic.py (ragan, ralsgan, rpgan, r3gan). Adding an objective: a new file with an `Objective`, and one line in
bench/registry.py.
"""

import functools
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

Loss = Callable[[Optional[Tensor], Tensor], Tensor]


@dataclass(frozen=True)
class Objective:
    name: str
    d: Loss
    g: Loss
    lens: Loss
    relativistic: bool = False      # G's loss needs D(real)
    penalties: tuple = ()           # its own penalties (bench.penalties), weighted by variant.gp_weight: wgan-gp's gp,
    #                                 r3gan's r1 and r2 (a named combination: the same as the base + variant.penalty)
    clip_weights: bool = False      # WGAN: clip D's weights to [-clip, clip] after each D step

    @property
    def gradient_penalty(self) -> bool:
        """WGAN-GP's two-sided penalty on interpolates is part of the objective."""
        return "gp" in self.penalties

    def __post_init__(self):
        for role in ("d", "g", "lens"):
            fn = getattr(self, role)
            if not getattr(fn, "checked_shape", False):
                object.__setattr__(self, role, _checked(self.name, role, fn))


ROLES = {"d": "D loss d(r, f)", "g": "G loss g(r, f)", "lens": "lens loss lens(r, f)"}


def _checked(name: str, role: str, fn: Loss) -> Loss:
    """`fn`, raising a ValueError that names the objective and the shapes when its loss is not [n]."""
    @functools.wraps(fn)
    def loss(r: Optional[Tensor], f: Tensor) -> Tensor:
        out = fn(r, f)
        if getattr(out, "shape", None) != f.shape[:1]:
            got = list(out.shape) if hasattr(out, "shape") else type(out).__name__
            raise ValueError(f"objective '{name}': its {ROLES[role]} has shape {got} for D outputs of shape "
                             f"{list(f.shape)}; a loss is one value per configuration, shape {list(f.shape[:1])} "
                             "(the batch mean: bench.objectives.mean)")
        return out

    loss.checked_shape = True
    return loss


def mean(x: Tensor) -> Tensor:
    """The batch mean of each configuration: [n, B] -> [n]."""
    return x.mean(1)


def gradient_penalty(D, real: Tensor, fake: Tensor, eps: Tensor) -> Tensor:
    """Gulrajani et al.: E[(||grad_x D(x_hat)||_2 - 1)^2] on interpolates (bench.penalties.gp)."""
    from bench.penalties import gp

    return gp(D, real, fake, {"eps": eps})
