"""Metrics of unpaired translation between the two domains of `dataset.name: domains` (issue 28: CycleGAN,
DiscoGAN), pure functions of images in [-1, 1] ([N, C, H, W]). Because B = T(A) for a known transform T
(bench.data.domains), every translation of a test image has a right answer:

- translation_error(pred, target): the mean absolute pixel error of the translations against the right answer
  (T(x) for A -> B), on the [0, 1] intensity scale (half the [-1, 1] difference): 0 for a perfect translation,
  mean |T(x) - x| / 2 for the identity map (`identity_error`, the baseline any translator must beat);
- cycle_error(x, back): the same between images and their round trip G_BA(G_AB(x));
- class_preservation(pred_classes, labels): the fraction of translations whose class, read by the source domain's
  evaluator classifier on T^-1 of the translation, is the source image's label (a translation that keeps the
  pixels right but swaps the item scores low; the evaluator's own test accuracy is the ceiling).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _check(a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {list(a.shape)} vs {list(b.shape)}")


def translation_error(pred: Tensor, target: Tensor) -> float:
    """Mean |pred - target| / 2: images in [-1, 1], error on the [0, 1] intensity scale."""
    _check(pred, target)
    return float((pred.float() - target.float()).abs().mean() / 2) if pred.numel() else math.nan


def cycle_error(x: Tensor, back: Tensor) -> float:
    """translation_error of the round trip against the images themselves."""
    return translation_error(back, x)


def identity_error(x: Tensor, target: Tensor) -> float:
    """The identity map's translation error: what a translator that changes nothing scores."""
    return translation_error(x, target)


def class_preservation(pred_classes: Tensor, labels: Tensor) -> float:
    pred, labels = torch.as_tensor(pred_classes).reshape(-1), torch.as_tensor(labels).reshape(-1)
    if len(pred) != len(labels):
        raise ValueError(f"{len(pred)} predictions for {len(labels)} labels")
    return float((pred == labels).float().mean()) if len(pred) else math.nan
