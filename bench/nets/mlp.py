"""MLPs for the 2-D toys: generator, discriminator, and the residual lens."""

from torch import nn


def mlp(d_in: int, d_out: int, width: int, depth: int) -> nn.Sequential:
    layers, d = [], d_in
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, d_out))


class ResidualLens(nn.Module):
    """L(x) = x + f(x) with f's last layer zero-initialised, so the lens starts as the identity."""

    def __init__(self, dim: int, width: int, depth: int):
        super().__init__()
        self.f = mlp(dim, dim, width, depth)
        nn.init.zeros_(self.f[-1].weight)
        nn.init.zeros_(self.f[-1].bias)

    def forward(self, x):
        return x + self.f(x)


def build(model_cfg, data_dim: int) -> tuple[nn.Module, nn.Module]:
    """(G, D) for a model config. G: z -> x; D: x -> one logit / critic value."""
    G = mlp(model_cfg.z_dim, data_dim, model_cfg.width, model_cfg.depth)
    D = mlp(data_dim, 1, model_cfg.width, model_cfg.depth)
    return G, D


def build_lens(lens_cfg, model_cfg, data_dim: int) -> nn.Module:
    return ResidualLens(data_dim, lens_cfg.width or model_cfg.width, lens_cfg.depth or 2)
