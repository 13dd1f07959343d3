"""Networks of the encoder GANs (bench.structures.age, bench.structures.ali), from the DCGAN ones
(bench.nets.dcgan) and the packed layers, so packs of K configurations train together.

- Encoder E: images [K, B, C, H, W] -> codes [K, B, z_dim]: DCGAN's down-sampling stack (4x4 convs, stride
  2, C, 2C, ... channels, leaky ReLU 0.2, batch norm but on the first layer) and a linear layer; AGE's
  codes are L2-normalised onto the unit sphere (`sphere=True`), ALI's / BiGAN's are left unbounded
  (a deterministic encoder, as in BiGAN).
- G: DCGAN's generator (bench.nets.dcgan.Generator) from z [K, B, z_dim].
- JointDiscriminator D(x, z) (ALI / BiGAN): DCGAN's conv stack on x, a linear + leaky ReLU embedding of z,
  their concatenation through a hidden linear layer (leaky ReLU) to one logit. Dropout of its inputs
  (ALI's 0.2) is applied by the structure, with masks drawn from each configuration's noise stream
  (`forward(x, z, mx, mz)` multiplies x and z by the masks), so packed and unpacked runs agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.nets import dcgan
from bench.nets import packed as P


class Encoder(nn.Module):
    """images [K, B, C, H, W] -> codes [K, B, code_dim] (unit norm with `sphere`)."""

    def __init__(self, channels: int, size: int, C: int, code_dim: int, batch_norm: bool, K: int = 1,
                 sphere: bool = False):
        super().__init__()
        self.K, self.sphere = K, sphere
        layers, c_out = dcgan.conv_stack(channels, size, C, batch_norm, K)
        self.conv = nn.Sequential(*layers)
        self.fc = P.Linear(K, c_out * 4 * 4, code_dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(P.flatten_grouped(self.conv(P.to_grouped(x)), self.K))
        return F.normalize(h, dim=-1) if self.sphere else h


class JointDiscriminator(nn.Module):
    """(images [K, B, C, H, W], codes [K, B, z_dim]) -> logits [K, B]."""

    def __init__(self, channels: int, size: int, C: int, z_dim: int, batch_norm: bool, K: int = 1):
        super().__init__()
        self.K = K
        layers, c_out = dcgan.conv_stack(channels, size, C, batch_norm, K)
        self.conv = nn.Sequential(*layers)
        hidden = c_out * 2  # 4C for 16 x 16 images with C channels in the first layer, 8C for 32 x 32
        self.fz = P.Linear(K, z_dim, hidden)
        self.joint = P.Linear(K, c_out * 4 * 4 + hidden, hidden)
        self.fc = P.Linear(K, hidden, 1)

    def forward(self, x: Tensor, z: Tensor, mx: Tensor = None, mz: Tensor = None) -> Tensor:
        if mx is not None:
            x, z = x * mx, z * mz
        hx = P.flatten_grouped(self.conv(P.to_grouped(x)), self.K)
        hz = F.leaky_relu(self.fz(z), 0.2)
        h = F.leaky_relu(self.joint(torch.cat([hx, hz], -1)), 0.2)
        return self.fc(h).squeeze(-1)


def build_age(model_cfg, data_dim, K: int = 1) -> tuple[nn.Module, nn.Module]:
    """G then E (sphere codes), from the current RNG."""
    channels, size, _ = data_dim
    G = dcgan.Generator(model_cfg.z_dim, channels, size, model_cfg.width, model_cfg.batch_norm, K)
    E = Encoder(channels, size, model_cfg.width, model_cfg.z_dim, model_cfg.d_batch_norm, K, sphere=True)
    dcgan.init_weights(G, model_cfg.init)
    dcgan.init_weights(E, model_cfg.init)
    return G, E


def build_ali(model_cfg, data_dim, K: int = 1) -> tuple[nn.Module, nn.Module, nn.Module]:
    """G, E (unbounded codes), then the joint D, from the current RNG."""
    channels, size, _ = data_dim
    G = dcgan.Generator(model_cfg.z_dim, channels, size, model_cfg.width, model_cfg.batch_norm, K)
    E = Encoder(channels, size, model_cfg.width, model_cfg.z_dim, model_cfg.d_batch_norm, K)
    D = JointDiscriminator(channels, size, model_cfg.width, model_cfg.z_dim, model_cfg.d_batch_norm, K)
    for m in (G, E, D):
        dcgan.init_weights(m, model_cfg.init)
    return G, E, D
