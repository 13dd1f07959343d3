"""Encoder-decoder networks for the ED+GAN / ED+GAN2 / ED//GAN structures (Zhang, Song, Qi, WACV 2018)
on 4 * 2^n sized images (32 x 32: n = 3).

- Encoder E: image -> code. n strided convs (4x4, stride 2, padding 1) with C, 2C, 4C channels
  (C = `model.width`), leaky ReLU 0.2, batch norm (optional, never on the first layer), then a linear
  layer to `model.z_dim` and tanh (a bounded code, as in CAAE).
- Decoder Dec: code [+ one-hot class label, CAAE task] -> image. The DCGAN generator
  (bench.nets.dcgan.Generator): linear to 4x4 x 4C, transposed convs (4x4, stride 1/2) halving the
  channels, ReLU, batch norm (optional), tanh.
- G_res (ED//GAN only): a second decoder with the same architecture and the SAME input as Dec (the
  code plus the labels, never noise, as in the authors' code); the output is I = I_ED + G_res(...).
- D: a conditional DCGAN discriminator over the output image concatenated (when `variant.d_cond`)
  with the conditioning: the input image for the pix2pix-style tasks (inpaint, downsample), one-hot
  label planes for caae.

Batch norm is set by the structure, not by `model.batch_norm`: on in E, Dec and D for `ed+gan2`
(the seed's "ED+GAN2 = with batch normalization"), off everywhere for `ed+gan` and `ed//gan`.
`model.init` applies as for DCGAN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from bench.data.tasks import uses_labels
from bench.nets import packed as P
from bench.nets.dcgan import Discriminator, Generator, conv_stack, init_weights


class Encoder(nn.Module):
    """images [K, B, C, H, W] -> codes [K, B, code_dim] in (-1, 1)."""

    def __init__(self, channels: int, size: int, C: int, code_dim: int, batch_norm: bool, K: int = 1):
        super().__init__()
        self.K = K
        layers, c_out = conv_stack(channels, size, C, batch_norm, K)
        self.conv = nn.Sequential(*layers)
        self.fc = P.Linear(K, c_out * 4 * 4, code_dim)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.fc(P.flatten_grouped(self.conv(P.to_grouped(x)), self.K)))


class Decoder(nn.Module):
    """code [K, B, code_dim] (+ one-hot labels [K, B, n]) -> image in [-1, 1]."""

    def __init__(self, code_dim: int, num_labels: int, channels: int, size: int, C: int, batch_norm: bool, K: int = 1):
        super().__init__()
        self.num_labels = num_labels
        self.g = Generator(code_dim + num_labels, channels, size, C, batch_norm, K)

    def forward(self, code: Tensor, onehot: Optional[Tensor] = None) -> Tensor:
        if self.num_labels:
            code = torch.cat([code, onehot], -1)
        return self.g(code)


class CondDiscriminator(nn.Module):
    """D(x, cond): the DCGAN discriminator over x concatenated with `cond` along the channels
    (cond: an image [K, B, c, H, W], or one-hot labels [K, B, n] broadcast to n planes; None =
    unconditional). Returns logits [K, B]."""

    def __init__(self, channels: int, cond_channels: int, size: int, C: int, batch_norm: bool, K: int = 1):
        super().__init__()
        self.cond_channels = cond_channels
        self.d = Discriminator(channels + cond_channels, size, C, batch_norm, K)

    def forward(self, x: Tensor, cond: Optional[Tensor] = None) -> Tensor:
        if self.cond_channels:
            if cond.dim() == 3:
                cond = cond[..., None, None].expand(-1, -1, -1, *x.shape[-2:])
            x = torch.cat([x, cond], 2)
        return self.d(x)


@dataclass
class EDModules:
    E: Encoder
    Dec: Decoder
    D: CondDiscriminator
    G_res: Optional[Decoder] = None
    D_z: Optional[nn.Module] = None


class CodeDiscriminator(nn.Module):
    """CAAE's D_z: an MLP on the code [K, B, z] (real = U(-1, 1) samples, fake = E's codes) -> logits [K, B]."""

    def __init__(self, z_dim: int, width: int = 64, K: int = 1):
        super().__init__()
        self.net = nn.Sequential(P.Linear(K, z_dim, width), nn.LeakyReLU(0.2), P.Linear(K, width, width // 2),
                                 nn.LeakyReLU(0.2), P.Linear(K, width // 2, 1))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).squeeze(-1)


def batch_norm_for(structure: str) -> bool:
    return structure == "ed+gan2"


def build_ed(model_cfg, variant_cfg, data_dim, num_classes: int, res_seed: Optional[int] = None) -> EDModules:
    """E, Dec, D from the current torch RNG state; G_res (ED//GAN) from its own seed `res_seed` when
    given, so the same seed gives the same initial E, Dec and D for ED+GAN and ED//GAN. One
    configuration (K = 1); bench.nets.packed.stack joins several."""
    channels, size, _ = data_dim
    bn = batch_norm_for(variant_cfg.structure)
    labels = num_classes if uses_labels(variant_cfg.task) else 0
    if uses_labels(variant_cfg.task) and not num_classes:
        raise ValueError("the caae task needs a labelled dataset")
    cond = (labels if labels else channels) if variant_cfg.d_cond else 0
    C, code = model_cfg.width, model_cfg.z_dim
    E = Encoder(channels, size, C, code, bn)
    Dec = Decoder(code, labels, channels, size, C, bn)
    D = CondDiscriminator(channels, cond, size, C, bn)
    for m in (E, Dec, D):
        init_weights(m, model_cfg.init)
    G_res = None
    if variant_cfg.structure == "ed//gan":
        if res_seed is not None:
            torch.manual_seed(res_seed)
        G_res = Decoder(code, labels, channels, size, C, bn)
        init_weights(G_res, model_cfg.init)
    D_z = None
    if variant_cfg.code_prior > 0:  # its own stream: E, Dec, D and G_res are the same with or without it
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((res_seed or 0) + 1)
            D_z = CodeDiscriminator(code)
    return EDModules(E, Dec, D, G_res, D_z)
