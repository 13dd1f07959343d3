"""The classic objectives: minimax GAN, non-saturating GAN, LSGAN, WGAN (weight clipping), WGAN-GP, hinge."""

import torch.nn.functional as F

from bench.objectives import Objective, mean


def _gan_d(r, f):
    return mean(F.softplus(-r)) + mean(F.softplus(f))


def _gan_lens(r, f):
    return mean(F.softplus(r))


def _critic_d(r, f):
    return mean(f) - mean(r)


def _critic_g(r, f):
    return -mean(f)


def _critic_lens(r, f):
    return mean(r)


minimax = Objective("minimax", _gan_d, g=lambda r, f: -mean(F.softplus(f)), lens=_gan_lens)
ns = Objective("ns", _gan_d, g=lambda r, f: mean(F.softplus(-f)), lens=_gan_lens)
lsgan = Objective("lsgan", d=lambda r, f: mean((r - 1) ** 2) + mean(f**2), g=lambda r, f: mean((f - 1) ** 2),
                  lens=lambda r, f: mean(r**2))
wgan = Objective("wgan", _critic_d, _critic_g, _critic_lens, clip_weights=True)
wgan_gp = Objective("wgan-gp", _critic_d, _critic_g, _critic_lens, penalties=("gp",))
hinge = Objective("hinge", d=lambda r, f: mean(F.relu(1 - r)) + mean(F.relu(1 + f)), g=_critic_g, lens=_critic_lens)
