"""The two-domain image set (bench.data.domains, issue 28): B = T(images) of the other half of the training split
(no image in both domains), a paired test split with a known answer, exact inverses, validation of the name."""

import pytest
import torch

from bench import registry
from bench.data import domains as dom
from bench.data.images import ImageData
from bench.schema import DatasetCfg


@pytest.fixture(scope="module", params=registry.DOMAIN_TRANSFORMS)
def pair(request):
    cfg = DatasetCfg(name="domains", transform=request.param)
    base = registry.get("dataset", "fashion_mnist")(cfg)
    return request.param, registry.get("dataset", "domains")(cfg), base


def test_the_registry_names_every_transform():
    assert set(registry.DOMAIN_TRANSFORMS) == set(dom.TRANSFORMS) == set(dom.INVERSES)


def test_training_halves_are_disjoint_and_cover_the_base(pair):
    name, d, base = pair
    a, b = d.train_index, d.train_b_index
    assert len(a) + len(b) == len(base.train) and not set(a.tolist()) & set(b.tolist())
    assert torch.equal(d.train, base.train[a]) and torch.equal(d.train_labels, base.train_labels[a])
    assert torch.equal(d.train_b, dom.transform(name, base.train[b]))
    assert torch.equal(d.train_b_labels, base.train_labels[b])


def test_the_test_split_is_paired_and_the_inverse_is_exact(pair):
    name, d, base = pair
    assert torch.equal(d.test, base.test) and torch.equal(d.test_b, dom.transform(name, base.test))
    assert torch.equal(dom.inverse(name, d.test_b), d.test)
    assert not torch.equal(d.test_b, d.test)  # T moves pixels or values: the identity map is not the answer
    # the networks' [-1, 1] view of T agrees with T on bytes
    assert torch.allclose(ImageData.to_float(d.test_b[:64]), dom.transform_float(name, ImageData.to_float(d.test[:64])), atol=1e-6)


def test_the_split_follows_its_seed():
    one = registry.get("dataset", "domains")(DatasetCfg(name="domains", stack_seed=1))
    zero = registry.get("dataset", "domains")(DatasetCfg(name="domains"))
    assert not torch.equal(one.train_index, zero.train_index)


def test_unknown_transform_is_refused():
    with pytest.raises(ValueError, match="unknown transform 'blur' \\(known: invert, rot90\\)"):
        DatasetCfg(name="domains", transform="blur")
