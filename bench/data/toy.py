"""2-D Gaussian mixtures: the ring of 8 and the grid of 25 (the standard mode-collapse toys)."""

import math
from dataclasses import dataclass

import torch


@dataclass
class ToyMixture:
    name: str
    modes: torch.Tensor  # (K, 2)
    std: float

    dim = 2

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n points, drawn on the generator's device."""
        dev = generator.device
        idx = torch.randint(len(self.modes), (n,), generator=generator, device=dev)
        return self.modes.to(dev)[idx] + self.std * torch.randn(n, 2, generator=generator, device=dev)


def ring8(cfg) -> ToyMixture:
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    modes = cfg.scale * torch.stack([angles.cos(), angles.sin()], dim=1)
    return ToyMixture("ring8", modes.float(), cfg.std)


def grid25(cfg) -> ToyMixture:
    ticks = (torch.arange(5, dtype=torch.float32) - 2) * cfg.scale
    modes = torch.cartesian_prod(ticks, ticks)
    return ToyMixture("grid25", modes, cfg.std)


@dataclass
class PointMass:
    """The Dirac GAN's data (Mescheder et al. 2018, Section 2): every sample is the point 0 on the line."""
    name: str = "dirac"
    dim = 1

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.zeros(n, 1, device=generator.device)


def dirac(cfg) -> PointMass:
    return PointMass()
