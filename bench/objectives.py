"""GAN objectives as small function sets over discriminator outputs (logits / critic values).

Each objective gives
  d_loss(d_real, d_fake)  what D minimizes,
  g_loss(d_fake)          what G minimizes,
  lens_adv(d_lensed)      the tempered lens' adversarial term L_L^A: the lens works against D by
                          making lensed real data look fake, i.e. the generator loss with the target
                          flipped (GAN: -log(1 - D(L(x))); LSGAN: D(L(x))^2; WGAN: D(L(x))).
The sigmoid of the GAN losses is folded into softplus for numerical stability:
-log D(x) = softplus(-d), -log(1 - D(x)) = softplus(d).
"""

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Objective:
    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    lens_adv: Callable[[Tensor], Tensor]
    gradient_penalty: bool = False  # WGAN-GP: add gp_weight * (||grad D(x_hat)|| - 1)^2
    clip_weights: bool = False  # WGAN: clip D's weights to [-clip, clip] after each D step


def _gan_d(r, f):
    return F.softplus(-r).mean() + F.softplus(f).mean()


def _lens_gan(r):
    return F.softplus(r).mean()


def _critic_d(r, f):
    return f.mean() - r.mean()


minimax = Objective("minimax", _gan_d, g_loss=lambda f: -F.softplus(f).mean(), lens_adv=_lens_gan)
ns = Objective("ns", _gan_d, g_loss=lambda f: F.softplus(-f).mean(), lens_adv=_lens_gan)
lsgan = Objective(
    "lsgan",
    d_loss=lambda r, f: ((r - 1) ** 2).mean() + (f**2).mean(),
    g_loss=lambda f: ((f - 1) ** 2).mean(),
    lens_adv=lambda r: (r**2).mean(),
)
wgan = Objective("wgan", _critic_d, g_loss=lambda f: -f.mean(), lens_adv=lambda r: r.mean(), clip_weights=True)
wgan_gp = Objective("wgan-gp", _critic_d, g_loss=lambda f: -f.mean(), lens_adv=lambda r: r.mean(),
                    gradient_penalty=True)
hinge = Objective(
    "hinge",
    d_loss=lambda r, f: F.relu(1 - r).mean() + F.relu(1 + f).mean(),
    g_loss=lambda f: -f.mean(),
    lens_adv=lambda r: r.mean(),
)


def gradient_penalty(D, real: Tensor, fake: Tensor, eps: Tensor) -> Tensor:
    """Gulrajani et al.: E[(||grad_x D(x_hat)||_2 - 1)^2] on interpolates x_hat = eps*real + (1-eps)*fake,
    eps ~ U[0, 1] per sample (drawn by the caller, so the step stays a pure function of its batch)."""
    eps = eps.reshape((real.shape[0],) + (1,) * (real.dim() - 1))
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
