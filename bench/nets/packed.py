"""Packed layers: K independent copies of a layer in one module, so K configurations of the same
network train in one process with batched kernels (issue: packed trials). A single configuration is
simply K = 1, so every network in ganbench is built from these layers.

Layouts:
- vectors: [K, B, F]. `Linear` is one batched matrix product (baddbmm); `BatchNorm1d` and `LayerNorm`
  normalise each configuration's features separately.
- images: the *grouped* layout [B, K*C, H, W] inside convolution stacks: a convolution with groups=K is
  K independent convolutions, batch norm over K*C channels is K independent batch norms, and group norm
  with K groups is K independent layer norms (`LayerNorm2d`). Networks convert at their edges with
  `to_grouped` / `from_grouped`; at their interfaces images are [K, B, C, H, W].
- `SpectralLinear` / `SpectralConv2d`: those layers with each configuration's weight divided by its own
  largest singular value (spectral normalization).

Every parameter and buffer has shape [K, *shape of the torch layer's], and a K = 1 layer is built by
constructing the torch layer itself and adding the pack dimension, so it draws exactly the same
initial weights from the RNG as before packing existed. On the CPU, K = 1 forward passes equal torch's
layers bit for bit and gradients agree to float32 rounding; every configuration pinned by
tests/test_golden.py trains bit-identically to the implementation before packing. Each configuration
of a K > 1 pack computes what its own K = 1 network would, within float32 rounding
(tests/test_packed.py). `stack(nets)` joins K = 1 networks (each built under its own configuration's
seed) into one K-network of the same class.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _from(make, K: int) -> dict[str, Tensor]:
    """The parameters of K torch layers made one after the other, stacked (K = 1: that layer's own
    initial draws from the RNG)."""
    layers = [make() for _ in range(K)]
    return {n: torch.stack([dict(l.named_parameters())[n].detach() for l in layers])
            for n, _ in layers[0].named_parameters()}


class Linear(nn.Module):
    """x [K, B, d_in] -> [K, B, d_out]; weight [K, d_out, d_in], bias [K, d_out]."""

    def __init__(self, K: int, d_in: int, d_out: int):
        super().__init__()
        self.K = K
        p = _from(lambda: nn.Linear(d_in, d_out), K)
        self.weight, self.bias = nn.Parameter(p["weight"]), nn.Parameter(p["bias"])

    def forward(self, x: Tensor) -> Tensor:
        return self._forward(x, self.weight)

    def _forward(self, x: Tensor, weight: Tensor) -> Tensor:
        if self.K > 1 and weight.shape[1] == 1 and x.device.type == "cpu":
            # one output (a critic's logit): BLAS computes a lone matrix-vector product differently from a
            # batch of them, so on the CPU each configuration gets its own call, the one it makes unpacked
            # (unbind, not x[k:k+1]: a slice's backward fills a zero tensor of the whole pack per configuration)
            return torch.cat([torch.baddbmm(b[None, None], xk[None], w.T[None])
                              for xk, w, b in zip(x.unbind(0), weight.unbind(0), self.bias.unbind(0))])
        return torch.baddbmm(self.bias.unsqueeze(1), x, weight.transpose(1, 2))


class Conv2d(nn.Module):
    """Grouped layout [B, K*c_in, H, W] -> [B, K*c_out, H', W']; weight [K, c_out, c_in, k, k]."""
    torch_layer, op = nn.Conv2d, staticmethod(F.conv2d)

    def __init__(self, K: int, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.K, self.stride, self.padding = K, stride, padding
        p = _from(lambda: self.torch_layer(c_in, c_out, kernel, stride, padding), K)
        self.weight, self.bias = nn.Parameter(p["weight"]), nn.Parameter(p["bias"])

    def forward(self, x: Tensor) -> Tensor:
        return self._forward(x, self.weight)

    def _forward(self, x: Tensor, weight: Tensor) -> Tensor:
        return self.op(x, weight.flatten(0, 1), self.bias.flatten(), self.stride, self.padding, groups=self.K)


class ConvTranspose2d(Conv2d):
    """Grouped layout [B, K*c_in, H, W] -> [B, K*c_out, H', W']; weight [K, c_in, c_out, k, k]."""
    torch_layer, op = nn.ConvTranspose2d, staticmethod(F.conv_transpose2d)


class _BatchNorm(nn.Module):
    def __init__(self, K: int, c: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.K, self.momentum, self.eps = K, momentum, eps
        self.weight, self.bias = nn.Parameter(torch.ones(K, c)), nn.Parameter(torch.zeros(K, c))
        self.register_buffer("running_mean", torch.zeros(K, c))
        self.register_buffer("running_var", torch.ones(K, c))

    def _norm(self, x: Tensor) -> Tensor:  # x: [B, K*c, ...]; the running statistics update in place
        return F.batch_norm(x, self.running_mean.view(-1), self.running_var.view(-1), self.weight.flatten(),
                            self.bias.flatten(), self.training, self.momentum, self.eps)


class BatchNorm1d(_BatchNorm):
    """x [K, B, c]: each configuration's features normalised over its own batch."""

    def forward(self, x: Tensor) -> Tensor:
        K, B, c = x.shape
        return self._norm(x.transpose(0, 1).reshape(B, K * c)).reshape(B, K, c).transpose(0, 1)


class BatchNorm2d(_BatchNorm):
    """Grouped layout [B, K*c, H, W]."""

    def forward(self, x: Tensor) -> Tensor:
        return self._norm(x)


class _LayerNorm(nn.Module):
    def __init__(self, K: int, c: int, eps: float = 1e-5):
        super().__init__()
        self.K, self.eps = K, eps
        self.weight, self.bias = nn.Parameter(torch.ones(K, c)), nn.Parameter(torch.zeros(K, c))


class LayerNorm(_LayerNorm):
    """x [K, B, c]: each sample's c features normalised, with each configuration's own affine (torch's
    LayerNorm(c))."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.addcmul(self.bias.unsqueeze(1), F.layer_norm(x, x.shape[-1:], eps=self.eps), self.weight.unsqueeze(1))


class LayerNorm2d(_LayerNorm):
    """Grouped layout [B, K*c, H, W]: each sample's c*H*W features of each configuration normalised together,
    with a per-channel affine (torch's GroupNorm(1, c); here group norm with one group per configuration)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x, self.K, self.weight.flatten(), self.bias.flatten(), self.eps)


class _Spectral:
    """Spectral normalization (Miyato et al. 2018) of a packed layer: each configuration's weight, as a matrix
    [out, in * k * k], divided by its largest singular value sigma (for a convolution that of the reshaped
    kernel, as in the paper, not the operator norm of the convolution). sigma is estimated by power iteration
    as torch.nn.utils.parametrizations.spectral_norm does: one iteration per forward in training mode, none in
    eval mode, and gradients flow through sigma (torch also iterates 15 times at construction; not here, as
    networks re-initialise their weights after it, so sigma is rough for the first few steps). The buffer u [K, out] (in checkpoints; `stack` joins it) is
    each configuration's left singular vector estimate; sigma = |W^T u|. u is drawn from the RNG after the
    layer's weights (only layers with spectral normalization draw it)."""

    def __init__(self, K: int, *args, **kwargs):
        super().__init__(K, *args, **kwargs)
        self.register_buffer("u", F.normalize(torch.randn(K, self.weight.shape[1]), dim=1))

    def sigma(self) -> Tensor:
        """[K]: each configuration's estimate of its weight's largest singular value (in float32 under
        autocast too)."""
        w = self.weight.flatten(2)  # [K, out, in * k * k]
        with torch.autocast(self.u.device.type, enabled=False):
            if self.training:
                with torch.no_grad():  # v = W^T u / |W^T u|, u = W v / |W v|
                    v = F.normalize(torch.bmm(self.u.unsqueeze(1), w), dim=2)
                    self.u.copy_(F.normalize(torch.bmm(v, w.transpose(1, 2)), dim=2).squeeze(1))
            # a copy: the graph must not hold the buffer, which the next forward updates in place before backward
            return torch.bmm(self.u.clone().unsqueeze(1), w).norm(dim=2).squeeze(1)

    def normalized_weight(self) -> Tensor:
        return self.weight / self.sigma().view(-1, *[1] * (self.weight.dim() - 1))

    def forward(self, x: Tensor) -> Tensor:
        return self._forward(x, self.normalized_weight())


class SpectralLinear(_Spectral, Linear):
    """`Linear` with spectral normalization (see _Spectral)."""


class SpectralConv2d(_Spectral, Conv2d):
    """`Conv2d` with spectral normalization (see _Spectral)."""


def to_grouped(x: Tensor) -> Tensor:
    """[K, B, C, H, W] -> [B, K*C, H, W] (a copy when K > 1)."""
    K, B = x.shape[:2]
    return x.transpose(0, 1).reshape(B, K * x.shape[2], *x.shape[3:])


def from_grouped(x: Tensor, K: int) -> Tensor:
    """[B, K*C, H, W] -> [K, B, C, H, W] (a view)."""
    return x.reshape(x.shape[0], K, x.shape[1] // K, *x.shape[2:]).transpose(0, 1)


def flatten_grouped(x: Tensor, K: int) -> Tensor:
    """[B, K*C, H, W] -> [K, B, C*H*W] (each configuration's feature maps flattened as nn.Flatten would)."""
    return x.reshape(x.shape[0], K, -1).transpose(0, 1)


def stack(nets: list[nn.Module]) -> nn.Module:
    """One K-network from K networks of the same class built with K = 1 (parameters and buffers joined
    along the pack dimension, in the given order)."""
    if len(nets) == 1:
        return nets[0]
    out = copy.deepcopy(nets[0])
    K = len(nets)
    for m in out.modules():
        if hasattr(m, "K"):
            m.K = K
    states = [dict(n.named_parameters()) | dict(n.named_buffers()) for n in nets]
    for name, mod in out.named_modules():
        prefix = f"{name}." if name else ""
        for pname, p in list(mod.named_parameters(recurse=False)):
            mod._parameters[pname] = nn.Parameter(torch.cat([s[prefix + pname].detach() for s in states]),
                                                  requires_grad=p.requires_grad)
        for bname, b in list(mod.named_buffers(recurse=False)):
            mod._buffers[bname] = torch.cat([s[prefix + bname] for s in states])
    return out


def per_config(x: Tensor, K: int) -> Tensor:
    """A packed parameter or buffer [K, ...] (or [K*...] for grouped tensors) as [K, -1]."""
    return x.reshape(K, -1)
