"""Relativistic GANs (Jolicoeur-Martineau 2018). Average (ragan, ralsgan): each side is judged against the other
side's mean logit, C(x_r) - E C(x_f) and C(x_f) - E C(x_r). Paired (rpgan): each real sample against the fake one
drawn beside it, softplus(-(C(x_r) - C(x_f))). G's loss is D's with real and fake swapped, so it needs D(real)
(`relativistic=True`); the lens, which moves the real side, minimises the same swapped loss through r.

r3gan (Huang et al. 2024, "The GAN is dead; long live the GAN!"): the paired loss with the zero-centred penalties
R1 and R2 (bench.penalties), both weighted by variant.gp_weight (their gamma): a named combination, the same
training as rpgan with variant.penalty {r1: gamma, r2: gamma}."""

import torch.nn.functional as F

from bench.objectives import Objective, mean


def _rel(r, f):
    return r - f.mean(1, keepdim=True), f - r.mean(1, keepdim=True)


def _ragan_d(r, f):
    cr, cf = _rel(r, f)
    return mean(F.softplus(-cr)) + mean(F.softplus(cf))


def _ragan_g(r, f):
    cr, cf = _rel(r, f)
    return mean(F.softplus(cr)) + mean(F.softplus(-cf))


def _ralsgan_d(r, f):
    cr, cf = _rel(r, f)
    return mean((cr - 1) ** 2) + mean((cf + 1) ** 2)


def _ralsgan_g(r, f):
    cr, cf = _rel(r, f)
    return mean((cr + 1) ** 2) + mean((cf - 1) ** 2)


ragan = Objective("ragan", _ragan_d, _ragan_g, lens=_ragan_g, relativistic=True)
ralsgan = Objective("ralsgan", _ralsgan_d, _ralsgan_g, lens=_ralsgan_g, relativistic=True)


def _rp_d(r, f):
    return mean(F.softplus(f - r))


def _rp_g(r, f):
    return mean(F.softplus(r - f))


rpgan = Objective("rpgan", _rp_d, _rp_g, lens=_rp_g, relativistic=True)
r3gan = Objective("r3gan", _rp_d, _rp_g, lens=_rp_g, relativistic=True, penalties=("r1", "r2"))
