"""DCGAN generator and discriminator (Radford et al. 2016, as in the tempered-lens paper's appendix)
and the convolutional residual lens, built from packed layers (bench.nets.packed): every network
holds K configurations, and its images are [K, B, C, H, W] at its interface.

G: z -> 4x4 x (C * 2^(n-1)) -> n transposed convs (4x4, stride 1/2) halving channels -> image, tanh.
D: n strided convs (4x4, stride 2) doubling channels from C, leaky ReLU 0.2 -> linear -> 1 logit.
n = log2(image_size / 4), so 32x32 images use C, 2C, 4C channels. Batch norm is switchable in G (off in
a WGAN-GP critic, whose gradient penalty is per sample); D's normalization is none, batch (all convs but
the first), layer (where batch norm would be) or spectral (every conv and the final linear), see `d_norm`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.nets import packed as P


def _n_layers(size: int) -> int:
    n = int(round(math.log2(size / 4)))
    if 4 * 2**n != size:
        raise ValueError(f"DCGAN needs an image size of 4 * 2^n (8, 16, 32, 64, ...), got {size}")
    return n


class Generator(nn.Module):
    """z [K, B, z_dim] -> images [K, B, channels, size, size] in [-1, 1]."""

    def __init__(self, z_dim: int, channels: int, size: int, C: int, batch_norm: bool, K: int = 1):
        super().__init__()
        n = _n_layers(size)
        top = C * 2 ** (n - 1)
        self.K, self.top = K, top
        self.fc = P.Linear(K, z_dim, 4 * 4 * top)
        self.bn0 = P.BatchNorm1d(K, 4 * 4 * top) if batch_norm else nn.Identity()
        layers, c = [], top
        for i in range(n - 1):
            layers += [P.ConvTranspose2d(K, c, c // 2, 4, 2, 1), P.BatchNorm2d(K, c // 2) if batch_norm else nn.Identity(),
                       nn.ReLU()]
            c //= 2
        layers += [P.ConvTranspose2d(K, c, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        h = torch.relu(self.bn0(self.fc(z)))                          # [K, B, 16 * top]
        h = h.transpose(0, 1).reshape(z.shape[1], self.K * self.top, 4, 4)  # grouped
        return P.from_grouped(self.net(h), self.K)


NORMS = {"batch": P.BatchNorm2d, "layer": P.LayerNorm2d}


def d_norm(model_cfg) -> str:
    """D's normalization: model.d_norm, or if unset "batch" / "none" as model.d_batch_norm says."""
    norm = getattr(model_cfg, "d_norm", None)
    return norm if norm is not None else ("batch" if model_cfg.d_batch_norm else "none")


def _norm(batch_norm: bool, norm: str | None) -> str:
    norm = norm if norm is not None else ("batch" if batch_norm else "none")
    if norm not in ("none", "spectral", *NORMS):
        raise ValueError(f"unknown normalization {norm!r}")
    return norm


def conv_stack(channels: int, size: int, C: int, batch_norm: bool, K: int = 1,
               norm: str | None = None) -> tuple[list[nn.Module], int]:
    """DCGAN's down-sampling stack to 4x4 (grouped layout): 4x4 convs, stride 2, C, 2C, ... channels,
    leaky ReLU 0.2, batch norm on all but the first layer. `norm` (if given, instead of `batch_norm`):
    "none", "batch", "layer" (layer norm where batch norm would be) or "spectral" (every conv).
    Returns the layers and the last channel count."""
    norm = _norm(batch_norm, norm)
    conv = P.SpectralConv2d if norm == "spectral" else P.Conv2d
    layers, c_in, c = [], channels, C
    for i in range(_n_layers(size)):
        after = NORMS[norm](K, c) if norm in NORMS and i > 0 else nn.Identity()
        layers += [conv(K, c_in, c, 4, 2, 1), after, nn.LeakyReLU(0.2)]
        c_in, c = c, c * 2
    return layers, c_in


class Discriminator(nn.Module):
    """images [K, B, channels, size, size] -> logits [K, B]. `features(x)` gives the flattened last
    feature maps [K, B, F] (for heads other than the logit). `norm` as in `conv_stack`; "spectral" also
    normalises the final linear layer."""

    def __init__(self, channels: int, size: int, C: int, batch_norm: bool, K: int = 1, norm: str | None = None):
        super().__init__()
        self.K = K
        norm = _norm(batch_norm, norm)
        layers, c_out = conv_stack(channels, size, C, batch_norm, K, norm)
        self.conv = nn.Sequential(*layers)
        self.fc = (P.SpectralLinear if norm == "spectral" else P.Linear)(K, c_out * 4 * 4, 1)

    def features(self, x):
        return P.flatten_grouped(self.conv(P.to_grouped(x)), self.K)

    def forward(self, x):
        return self.fc(self.features(x)).squeeze(-1)


class ResBlock(nn.Module):
    def __init__(self, c: int, K: int = 1):
        super().__init__()
        self.body = nn.Sequential(P.Conv2d(K, c, c, 3, 1, 1), nn.ReLU(), P.Conv2d(K, c, c, 3, 1, 1))

    def forward(self, x):
        return torch.relu(x + self.body(x))


class ConvLens(nn.Module):
    """Residual fully-convolutional lens: 3x3 convs, stride 1, `blocks` residual blocks, plus a skip from
    input to output. The output conv starts at zero, so the lens starts as the identity."""

    def __init__(self, channels: int, width: int, blocks: int, K: int = 1):
        super().__init__()
        self.K = K
        self.inp = P.Conv2d(K, channels, width, 3, 1, 1)
        self.blocks = nn.Sequential(*[ResBlock(width, K) for _ in range(blocks)])
        self.out = P.Conv2d(K, width, channels, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        g = P.to_grouped(x)
        return x + P.from_grouped(self.out(self.blocks(torch.relu(self.inp(g)))), self.K)


INIT_LAYERS = (P.Conv2d, P.ConvTranspose2d, P.Linear)


def init_weights(module: nn.Module, scheme: str) -> None:
    """'xavier' (the tempered paper), 'dcgan' (N(0, 0.02), BN weights N(1, 0.02)) or 'default' (PyTorch's);
    each configuration's slice initialised as its own torch layer would be."""
    if scheme == "default":
        return
    for m in module.modules():
        for k in range(getattr(m, "K", 0)):
            if isinstance(m, INIT_LAYERS):
                if scheme == "xavier":
                    nn.init.xavier_uniform_(m.weight[k])
                else:
                    nn.init.normal_(m.weight[k], 0.0, 0.02)
                nn.init.zeros_(m.bias[k])
            elif isinstance(m, P._BatchNorm) and scheme == "dcgan":
                nn.init.normal_(m.weight[k], 1.0, 0.02)
                nn.init.zeros_(m.bias[k])


def build(model_cfg, data_dim, K: int = 1) -> tuple[nn.Module, nn.Module]:
    channels, size, _ = data_dim
    G = Generator(model_cfg.z_dim, channels, size, model_cfg.width, model_cfg.batch_norm, K)
    D = Discriminator(channels, size, model_cfg.width, model_cfg.d_batch_norm, K, d_norm(model_cfg))
    init_weights(G, model_cfg.init)
    init_weights(D, model_cfg.init)
    return G, D


def build_lens(lens_cfg, model_cfg, data_dim, K: int = 1) -> nn.Module:
    return ConvLens(data_dim[0], lens_cfg.width or model_cfg.width, lens_cfg.depth or 8, K)
