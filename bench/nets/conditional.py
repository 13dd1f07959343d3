"""Conditional DCGAN networks for CGAN, ACGAN and InfoGAN (bench.structures.cgan, .infogan), built from
the DCGAN ones (bench.nets.dcgan) and the packed layers, so packs of K configurations train together.

G(z, c): DCGAN's generator on the noise concatenated with a conditioning vector c [K, B, n_c] (a one-hot
    label for CGAN / ACGAN; InfoGAN's one-hot categorical code and continuous codes).
D(x[, y]): DCGAN's discriminator; with `cond` classes it also sees the one-hot label y [K, B, cond] as
    constant image planes concatenated to the channels (CGAN); with `head` outputs it has a second linear
    head on the shared features (ACGAN's class logits, InfoGAN's Q: categorical logits and continuous
    means). `both(x[, y])` returns (logit [K, B], head [K, B, head]) from one pass.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.nets import dcgan
from bench.nets import packed as P


class Generator(dcgan.Generator):
    """(z [K, B, z_dim], c [K, B, n_c]) -> images [K, B, channels, size, size]."""

    def forward(self, z, c):
        return super().forward(torch.cat([z, c], -1))


class Discriminator(dcgan.Discriminator):
    def __init__(self, channels: int, size: int, C: int, batch_norm: bool, K: int = 1, cond: int = 0,
                 head: int = 0):
        super().__init__(channels + cond, size, C, batch_norm, K)
        self.cond = cond
        self.head = P.Linear(K, self.fc.weight.shape[2], head) if head else None

    def _features(self, x, y=None):
        if self.cond:
            planes = y[..., None, None].expand(*y.shape, *x.shape[-2:])
            x = torch.cat([x, planes.to(x.dtype)], 2)
        return self.features(x)

    def forward(self, x, y=None):
        return self.fc(self._features(x, y)).squeeze(-1)

    def both(self, x, y=None):
        h = self._features(x, y)
        return self.fc(h).squeeze(-1), self.head(h)


def build(model_cfg, data_dim, n_c: int, cond: int = 0, head: int = 0, K: int = 1) -> tuple[nn.Module, nn.Module]:
    """G (noise + n_c conditioning inputs) then D (`cond` label planes, a `head`), from the current RNG."""
    channels, size, _ = data_dim
    G = Generator(model_cfg.z_dim + n_c, channels, size, model_cfg.width, model_cfg.batch_norm, K)
    D = Discriminator(channels, size, model_cfg.width, model_cfg.d_batch_norm, K, cond=cond, head=head)
    dcgan.init_weights(G, model_cfg.init)
    dcgan.init_weights(D, model_cfg.init)
    return G, D


class ClassDiscriminator(dcgan.Discriminator):
    """SGAN's (K+1)-class D (Salimans et al. 2016): DCGAN's discriminator with `classes` logits l_k instead
    of one; the real class's implicit logit is 0, so D(x) = Z / (Z + 1), Z = sum exp(l_k), i.e. the GAN
    logit is logsumexp(l). forward(x) -> that logit [K, B]; `all(x)` -> (logit, class logits [K, B,
    classes], the flattened last features [K, B, F] used for feature matching)."""

    def __init__(self, channels: int, size: int, C: int, batch_norm: bool, K: int = 1, classes: int = 10):
        super().__init__(channels, size, C, batch_norm, K)
        self.fc = P.Linear(K, self.fc.weight.shape[2], classes)

    def all(self, x):
        h = self.features(x)
        logits = self.fc(h)
        return torch.logsumexp(logits, -1), logits, h

    def forward(self, x):
        return self.all(x)[0]


def build_sgan(model_cfg, data_dim, classes: int, K: int = 1) -> tuple[nn.Module, nn.Module]:
    """DCGAN's G then the (K+1)-class D, from the current RNG."""
    channels, size, _ = data_dim
    G = dcgan.Generator(model_cfg.z_dim, channels, size, model_cfg.width, model_cfg.batch_norm, K)
    D = ClassDiscriminator(channels, size, model_cfg.width, model_cfg.d_batch_norm, K, classes)
    dcgan.init_weights(G, model_cfg.init)
    dcgan.init_weights(D, model_cfg.init)
    return G, D
