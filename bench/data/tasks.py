"""Conditional image tasks for the encoder-decoder structures (ED+GAN, ED+GAN2, ED//GAN).

Each task maps a batch of clean images x (float [B, C, H, W] in [-1, 1]) to the network's input;
the target is always the clean image. All functions are pure and deterministic (no randomness):

- `inpaint`: the centre HOLE x HOLE square (12 x 12 on 32 x 32 images, rows/columns 10..21; on other
  sizes the hole scales to 3/8 of the side) is set to -1 (black in [-1, 1]), pix2pix-style
  image-to-image completion.
- `downsample`: 2x down- then up-sampling: 2x2 average pooling, then bilinear upsampling back to the
  full size (align_corners=False), i.e. super-resolution from a half-resolution image.
- `caae`: the input is the image itself; the decoder also gets the one-hot class label (as in the
  authors' CAAE adaptation), and quality is also judged on label-swapped outputs (the evaluator's
  class prediction accuracy for the swapped label).

`uses_labels(task)` says whether the decoder (and the conditional D) get the class label.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

HOLE = 12  # on 32 x 32 images
FILL = -1.0


def hole_size(size: int) -> int:
    """12 on 32 x 32 images; 3/8 of the side elsewhere (rounded to an even number, at least 2)."""
    return HOLE if size == 32 else max(2, 2 * round(size * 3 / 16))


def inpaint(x: Tensor, hole: int | None = None, fill: float = FILL) -> Tensor:
    """x with its centre hole x hole square set to `fill`."""
    h, w = x.shape[-2:]
    k = hole if hole is not None else hole_size(min(h, w))
    top, left = (h - k) // 2, (w - k) // 2
    out = x.clone()
    out[..., top:top + k, left:left + k] = fill
    return out


def downsample(x: Tensor, factor: int = 2) -> Tensor:
    """factor x factor average pooling, then bilinear upsampling back to x's size."""
    small = F.avg_pool2d(x, factor)
    return F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)


def identity(x: Tensor) -> Tensor:
    return x


def uses_labels(task: str) -> bool:
    return task == "caae"


def degrade(task: str, x: Tensor) -> Tensor:
    """The network input for clean images x under `task` (a name in bench.registry's "task" list)."""
    from bench import registry

    return registry.get("task", task)(x)


def swapped_labels(labels: Tensor, num_classes: int, generator: torch.Generator) -> Tensor:
    """A different label for every sample: (y + 1 + r) mod K with r uniform in 0..K-2."""
    r = torch.randint(num_classes - 1, labels.shape, generator=generator)
    return (labels + 1 + r) % num_classes
