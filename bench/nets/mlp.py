"""MLPs for the 2-D toys: generator, discriminator, and the residual lens. Inputs and outputs carry
the pack dimension: [K, B, F] (bench.nets.packed; one configuration is K = 1)."""

from __future__ import annotations

from torch import nn

from bench.nets import packed as P

NORMS = {"batch": P.BatchNorm1d, "layer": P.LayerNorm}


def mlp(K: int, d_in: int, d_out: int, width: int, depth: int, norm: str | None = None) -> nn.Sequential:
    """`norm`: None or "none" (no layers added), "batch" or "layer" (after each hidden linear layer, before
    its ReLU), or "spectral" (on every linear layer, the output one included, as Miyato et al. 2018)."""
    if norm not in (None, "none", "spectral", *NORMS):
        raise ValueError(f"unknown normalization {norm!r}")
    linear = P.SpectralLinear if norm == "spectral" else P.Linear
    layers, d = [], d_in
    for _ in range(depth):
        layers += [linear(K, d, width), *([NORMS[norm](K, width)] if norm in NORMS else []), nn.ReLU()]
        d = width
    return nn.Sequential(*layers, linear(K, d, d_out))


class Critic(nn.Module):
    """x [K, B, d] -> one logit / critic value per sample [K, B]. `norm` as in `mlp`."""

    def __init__(self, K: int, d_in: int, width: int, depth: int, norm: str | None = None):
        super().__init__()
        self.net = mlp(K, d_in, 1, width, depth, norm)

    def forward(self, x):
        return self.net(x).squeeze(-1)


class ResidualLens(nn.Module):
    """L(x) = x + f(x) with f's last layer zero-initialised, so the lens starts as the identity."""

    def __init__(self, K: int, dim: int, width: int, depth: int):
        super().__init__()
        self.f = mlp(K, dim, dim, width, depth)
        nn.init.zeros_(self.f[-1].weight)
        nn.init.zeros_(self.f[-1].bias)

    def forward(self, x):
        return x + self.f(x)


def build(model_cfg, data_dim: int, K: int = 1) -> tuple[nn.Module, nn.Module]:
    """(G, D) for a model config. G: z [K, B, z_dim] -> x [K, B, d]; D: x -> [K, B], normalised as
    model.d_norm says (unset: none; the MLP critic ignores model.d_batch_norm)."""
    G = mlp(K, model_cfg.z_dim, data_dim, model_cfg.width, model_cfg.depth)
    D = Critic(K, data_dim, model_cfg.width, model_cfg.depth, getattr(model_cfg, "d_norm", None))
    return G, D


def build_lens(lens_cfg, model_cfg, data_dim: int, K: int = 1) -> nn.Module:
    return ResidualLens(K, data_dim, lens_cfg.width or model_cfg.width, lens_cfg.depth or 2)
