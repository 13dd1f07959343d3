"""The Dirac GAN (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?", Section 2): the data
are a point mass at 0 (dataset `dirac`), the generator is G(z) = theta and the discriminator D(x) = psi * x. The
unique equilibrium is (theta, psi) = (0, 0), and the paper derives what each training method does near it:
simultaneous gradient descent spirals outward, alternating gradient descent circles without converging, and the
zero-centred penalties (R1, R2), consensus optimization and instance noise converge for a small enough step.

The game is the GAN structure's own training step (bench.structures.gan.step: objectives, penalties, simultaneous
or alternating updates, consensus, instance noise), on these two one-parameter players; only the networks and the
metrics are this file's. Every configuration starts at (theta0, psi0) (options), so the seed changes only the noise
draws (instance noise). Metrics: theta, psi and their distance to the equilibrium at every evaluation; the report
draws each configuration's (theta, psi) trajectory (bench.report.dirac).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.structures import Pack, Result, Streams, pack_nets
from bench.structures import gan

DECLARE = {"dirac": {
    "title": "Dirac GAN", "doc": "G(z) = theta against D(x) = psi x on a point mass at 0 (Mescheder et al. 2018)",
    "options": {
        "theta0": {"type": "float", "default": 1.0, "doc": "Dirac GAN: the generator's initial theta",
                   "packable": True},
        "psi0": {"type": "float", "default": 1.0, "doc": "Dirac GAN: the discriminator's initial psi",
                 "packable": True},
    },
    "uses": ["objective", "clip", "gp_weight", "penalty", "dragan", "consensus", "updates", "noise"],
    "datasets": ["dirac"],
    "losses": ["loss_d", "loss_g"],
    "new_metrics": {
        "theta": {"label": "theta (the generator's parameter)", "diagnostic": True},
        "psi": {"label": "psi (the discriminator's parameter)", "diagnostic": True},
        "dirac_distance": {"higher_is_better": False, "label": "distance to the equilibrium sqrt(theta^2 + psi^2)",
                           "range": [0, None], "positive": True},
    },
    "metrics": ["theta", "psi", "dirac_distance"],
    "headline": "dirac_distance", "success": "finished", "sections": ["bench.report.dirac:section"],
}}


def check(cfg) -> None:
    """Nothing of its own: the catalog already limits it to the dirac dataset and its declared stabilizers, and the
    model section is unused (G and D are the two scalars)."""


class Theta(nn.Module):
    """G(z) = theta for every z: [K, B, z_dim] -> [K, B, 1]."""

    def __init__(self, theta0: float, K: int = 1):
        super().__init__()
        self.K = K
        self.theta = nn.Parameter(torch.full((K, 1), float(theta0)))

    def forward(self, z):
        return self.theta[:, None, :].expand(z.shape[0], z.shape[1], 1)


class Psi(nn.Module):
    """D(x) = psi * x: [K, B, 1] -> [K, B]."""

    def __init__(self, psi0: float, K: int = 1):
        super().__init__()
        self.K = K
        self.psi = nn.Parameter(torch.full((K, 1), float(psi0)))

    def forward(self, x):
        return (self.psi[:, None, :] * x).squeeze(-1)


def build(pack: Pack, data, streams: list[Streams], device):
    per_config = [{"G": Theta(c.variant.theta0), "D": Psi(c.variant.psi0), "lens": None} for c in pack.cfgs]
    return pack_nets(per_config, pack, device)


batch = gan.batch
step = gan.step


class Evaluate:
    """(theta, psi) of every configuration and their distance to the equilibrium (0, 0)."""

    def __init__(self, pack: Pack, data, gens: list[dict], device):
        self.size = pack.size
        self.inception_skipped = None

    def __call__(self, nets, final: bool = False, alive=None) -> list:
        alive = range(self.size) if alive is None else alive
        theta, psi = nets.G.theta.detach().cpu().flatten(), nets.D.psi.detach().cpu().flatten()
        out = []
        for k in range(self.size):
            if k not in alive:
                out.append(None)
                continue
            t, p = float(theta[k]), float(psi[k])
            if not (math.isfinite(t) and math.isfinite(p)):
                out.append(Result(diverged="theta or psi is NaN/Inf"))
                continue
            out.append(Result({"theta": t, "psi": p, "dirac_distance": math.hypot(t, p)}))
        return out
