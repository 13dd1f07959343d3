"""Two unpaired image domains with a known mapping (issue 28: translation and domain adaptation).

Domain A is a single-channel image set (`dataset.base`, Fashion-MNIST by default); domain B is T(images) for a
fixed, documented transform T (`dataset.transform`). The base's training split is shuffled once by
`dataset.stack_seed` and halved: A's training images come from the first half, B's from T of the second half, so
no training image appears in both domains and nothing pairs them. The test split is paired on purpose: test_b =
T(test), image for image, so every translation of a test image has a known right answer (T(x) for A -> B,
T^-1(y) for B -> A), and test_labels are both domains' labels.

Transforms (each exactly invertible, `inverse(name)` gives T^-1):
- `invert`: 255 - x (colour inversion; its own inverse);
- `rot90`: a quarter turn counter-clockwise (torch.rot90 over H, W; inverse: a quarter turn clockwise), the
  harder pair: no pixel keeps its place.
"""

from __future__ import annotations

from typing import Callable

import torch

from bench.data.images import ImageData, _cached

VERSION = 1  # of the prepared tensors: bump when what build() stores changes (the cache key)
TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "invert": lambda x: 255 - x,
    "rot90": lambda x: torch.rot90(x, 1, dims=(-2, -1)).contiguous(),
}
INVERSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "invert": lambda x: 255 - x,
    "rot90": lambda x: torch.rot90(x, -1, dims=(-2, -1)).contiguous(),
}


def transform(name: str, x: torch.Tensor) -> torch.Tensor:
    """T(x) for uint8 (or float in [0, 255]) images [..., H, W]."""
    return TRANSFORMS[name](x)


def inverse(name: str, x: torch.Tensor) -> torch.Tensor:
    """T^-1(x)."""
    return INVERSES[name](x)


def transform_float(name: str, x: torch.Tensor) -> torch.Tensor:
    """T on images in [-1, 1] (what the networks see): inversion is x -> -x there."""
    return -x if name == "invert" else TRANSFORMS[name](x)


def transform_float_inverse(name: str, x: torch.Tensor) -> torch.Tensor:
    """T^-1 on images in [-1, 1]."""
    return -x if name == "invert" else INVERSES[name](x)


def domains(cfg) -> ImageData:
    """A = the base's images, B = T(images) of the other half (train) and of the same test images (test); see the
    module docstring. The returned ImageData's train/test are domain A; train_b/test_b domain B."""
    from bench import registry

    if cfg.transform not in TRANSFORMS:
        raise ValueError(f"domains: unknown transform {cfg.transform!r} (known: {', '.join(TRANSFORMS)})")
    base = registry.get("dataset", cfg.base)(cfg)
    if base.train.shape[1] != 1:
        raise ValueError(f"domains: base {cfg.base} is not single-channel")

    def build():
        perm = torch.randperm(len(base.train), generator=torch.Generator().manual_seed(cfg.stack_seed))
        a, b = perm[: len(perm) // 2], perm[len(perm) // 2:]
        t = TRANSFORMS[cfg.transform]
        return {"name": "domains", "train": base.train[a].contiguous(), "train_labels": base.train_labels[a],
                "test": base.test, "test_labels": base.test_labels, "num_classes": base.num_classes,
                "train_b": t(base.train[b]), "train_b_labels": base.train_labels[b], "test_b": t(base.test),
                "transform": cfg.transform, "domain_base": cfg.base, "train_index": a, "train_b_index": b}

    return _cached(f"domains-v{VERSION}-{cfg.transform}-s{cfg.stack_seed}-{base.key}", build)
