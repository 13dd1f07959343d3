"""DCGAN generator and discriminator (Radford et al. 2016, as in the tempered-lens paper's appendix)
and the convolutional residual lens.

G: z -> 4x4 x (C * 2^(n-1)) -> n transposed convs (4x4, stride 1/2) halving channels -> image, tanh.
D: n strided convs (4x4, stride 2) doubling channels from C, leaky ReLU 0.2 -> linear -> 1 logit.
n = log2(image_size / 4), so 32x32 images use C, 2C, 4C channels. Batch norm is switchable in each
(off in a WGAN-GP critic, whose gradient penalty is per sample).
"""

import math

import torch
from torch import nn


def _n_layers(size: int) -> int:
    n = int(round(math.log2(size / 4)))
    if 4 * 2**n != size:
        raise ValueError(f"DCGAN needs an image size of 4 * 2^n (8, 16, 32, 64, ...), got {size}")
    return n


class Generator(nn.Module):
    def __init__(self, z_dim: int, channels: int, size: int, C: int, batch_norm: bool):
        super().__init__()
        n = _n_layers(size)
        top = C * 2 ** (n - 1)
        self.top = top
        self.fc = nn.Linear(z_dim, 4 * 4 * top)
        self.bn0 = nn.BatchNorm1d(4 * 4 * top) if batch_norm else nn.Identity()
        layers, c = [], top
        for i in range(n - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.BatchNorm2d(c // 2) if batch_norm else nn.Identity(),
                       nn.ReLU()]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        h = torch.relu(self.bn0(self.fc(z)))
        return self.net(h.view(len(z), self.top, 4, 4))


def conv_stack(channels: int, size: int, C: int, batch_norm: bool) -> tuple[list[nn.Module], int]:
    """DCGAN's down-sampling stack to 4x4: 4x4 convs, stride 2, C, 2C, ... channels, leaky ReLU 0.2,
    batch norm on all but the first layer. Returns the layers and the last channel count."""
    layers, c_in, c = [], channels, C
    for i in range(_n_layers(size)):
        norm = nn.BatchNorm2d(c) if batch_norm and i > 0 else nn.Identity()
        layers += [nn.Conv2d(c_in, c, 4, 2, 1), norm, nn.LeakyReLU(0.2)]
        c_in, c = c, c * 2
    return layers, c_in


class Discriminator(nn.Module):
    def __init__(self, channels: int, size: int, C: int, batch_norm: bool):
        super().__init__()
        layers, c_out = conv_stack(channels, size, C, batch_norm)
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_out * 4 * 4, 1))

    def forward(self, x):
        return self.net(x)


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1))

    def forward(self, x):
        return torch.relu(x + self.body(x))


class ConvLens(nn.Module):
    """Residual fully-convolutional lens: 3x3 convs, stride 1, `blocks` residual blocks, plus a skip from
    input to output. The output conv starts at zero, so the lens starts as the identity."""

    def __init__(self, channels: int, width: int, blocks: int):
        super().__init__()
        self.inp = nn.Conv2d(channels, width, 3, 1, 1)
        self.blocks = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
        self.out = nn.Conv2d(width, channels, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        return x + self.out(self.blocks(torch.relu(self.inp(x))))


def init_weights(module: nn.Module, scheme: str) -> None:
    """'xavier' (the tempered paper), 'dcgan' (N(0, 0.02), BN weights N(1, 0.02)) or 'default' (PyTorch's)."""
    if scheme == "default":
        return
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and scheme == "dcgan":
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build(model_cfg, data_dim) -> tuple[nn.Module, nn.Module]:
    channels, size, _ = data_dim
    G = Generator(model_cfg.z_dim, channels, size, model_cfg.width, model_cfg.batch_norm)
    D = Discriminator(channels, size, model_cfg.width, model_cfg.d_batch_norm)
    init_weights(G, model_cfg.init)
    init_weights(D, model_cfg.init)
    return G, D


def build_lens(lens_cfg, model_cfg, data_dim) -> nn.Module:
    return ConvLens(data_dim[0], lens_cfg.width or model_cfg.width, lens_cfg.depth or 8)
