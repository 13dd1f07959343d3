"""Penalties: regularizers of D (and, for consensus, of both players), orthogonal to the objective and the structure
(compare_gan's `penalty.fn`). A study sets their weights in `variant.penalty` ({gp: 10, r1: 1, ...}; 0 = off, several
may combine); bench.structures.d_loss adds the input-gradient ones to D's loss of every structure that uses it.

An input-gradient penalty is a function `penalty(D, real, fake, draws) -> [n]` of D's forward (a callable on
[n, B, ...] inputs, e.g. a conditional D with its labels bound), real and fake batches [n, B, ...] and this step's
random draws (`eps` [n, B] for interpolation weights, `perturb` [n, B, ...] for DRAGAN), one value per configuration.
Gradients are taken per sample with respect to D's input and kept in the graph (double backprop), so the penalty
trains D. Weight conventions follow the papers: gp and dragan are weighted as Gulrajani et al. (lambda * E(...)^2);
r1, r2 and consensus include the 1/2 of Mescheder et al., so the weight is their gamma.

Consensus optimization (Mescheder et al. 2017) is not a function of D's input: `consensus(grads, n)` takes both
players' gradients at one point (a list of packed [n, ...] tensors, with their graph) and returns (1/2)||v||^2 per
configuration; the structure adds gamma times it to both losses (bench.structures.gan, simultaneous updates).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _input_grad(D, x: Tensor) -> Tensor:
    """d(sum of D(x)) / dx with its graph: each sample's gradient, [n, B, ...] (D scores samples independently,
    batch norm aside)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    return grad.flatten(2)


def _expand(w: Tensor, like: Tensor) -> Tensor:
    return w.reshape(w.shape + (1,) * (like.dim() - w.dim()))


def gp(D, real: Tensor, fake: Tensor, draws: dict) -> Tensor:
    """Gulrajani et al. 2017: E[(||grad D(x_hat)|| - 1)^2], x_hat = eps real + (1 - eps) fake, eps ~ U[0, 1]."""
    eps = _expand(draws["eps"], real)
    return ((_input_grad(D, eps * real + (1 - eps) * fake).norm(dim=2) - 1) ** 2).mean(1)


def dragan(D, real: Tensor, fake: Tensor, draws: dict) -> Tensor:
    """Kodali et al. 2017 (their reference code): E[(||grad D(x_hat)|| - 1)^2] around the data, x_hat = x + eps (x_p
    - x), x_p = x + 0.5 std(x) u, u ~ U[0, 1] per entry, std over each configuration's batch."""
    std = real.flatten(2).std(dim=(1, 2))  # [n]
    perturbed = real + 0.5 * _expand(std, real) * draws["perturb"]
    eps = _expand(draws["eps"], real)
    return ((_input_grad(D, real + eps * (perturbed - real)).norm(dim=2) - 1) ** 2).mean(1)


def r1(D, real: Tensor, fake: Tensor, draws: dict) -> Tensor:
    """Mescheder et al. 2018: (1/2) E_real ||grad D(x)||^2 (zero-centred, on the data)."""
    return 0.5 * _input_grad(D, real).pow(2).sum(2).mean(1)


def r2(D, real: Tensor, fake: Tensor, draws: dict) -> Tensor:
    """Mescheder et al. 2018: (1/2) E_fake ||grad D(G(z))||^2 (zero-centred, on the generator's samples)."""
    return 0.5 * _input_grad(D, fake).pow(2).sum(2).mean(1)


def consensus(grads: list[Tensor], n: int) -> Tensor:
    """(1/2) ||v||^2 per configuration, v the concatenation of both players' gradients (packed [n, ...] each)."""
    return 0.5 * sum(g.reshape(n, -1).pow(2).sum(1) for g in grads)


INPUT = ("gp", "dragan", "r1", "r2")  # the penalties of D through its input gradients (consensus is the other kind)
DRAWS = {"dragan": "perturb"}  # penalties that need a draw besides eps: drawn only when one is on


def step_draws(batch: dict, k: int) -> dict:
    """The draws besides eps that the penalties on take at a structure's k-th D step ({} when none is on)."""
    return {key: batch[key][k] for key in DRAWS.values() if key in batch}
