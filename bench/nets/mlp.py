"""MLPs for the 2-D toys: generator, discriminator, and the residual lens. Inputs and outputs carry
the pack dimension: [K, B, F] (bench.nets.packed; one configuration is K = 1)."""

from torch import nn

from bench.nets import packed as P


def mlp(K: int, d_in: int, d_out: int, width: int, depth: int) -> nn.Sequential:
    layers, d = [], d_in
    for _ in range(depth):
        layers += [P.Linear(K, d, width), nn.ReLU()]
        d = width
    return nn.Sequential(*layers, P.Linear(K, d, d_out))


class Critic(nn.Module):
    """x [K, B, d] -> one logit / critic value per sample [K, B]."""

    def __init__(self, K: int, d_in: int, width: int, depth: int):
        super().__init__()
        self.net = mlp(K, d_in, 1, width, depth)

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
    """(G, D) for a model config. G: z [K, B, z_dim] -> x [K, B, d]; D: x -> [K, B]."""
    G = mlp(K, model_cfg.z_dim, data_dim, model_cfg.width, model_cfg.depth)
    D = Critic(K, data_dim, model_cfg.width, model_cfg.depth)
    return G, D


def build_lens(lens_cfg, model_cfg, data_dim: int, K: int = 1) -> nn.Module:
    return ResidualLens(K, data_dim, lens_cfg.width or model_cfg.width, lens_cfg.depth or 2)
