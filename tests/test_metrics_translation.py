"""Translation metrics (bench.metrics.translation, issue 28) against known answers on the two-domain set: the right
answer T(x) scores 0, the identity map scores mean |T(x) - x| / 2, the evaluator reads T^-1 of a perfect
translation as well as it reads the test split."""

import math

import pytest
import torch

from bench import registry
from bench.data import domains as dom
from bench.data.images import ImageData
from bench.metrics import translation as tr
from bench.schema import DatasetCfg


@pytest.fixture(scope="module")
def test_pair():
    cfg = DatasetCfg(name="domains", base="digits", image_size=16, transform="invert")
    d = registry.get("dataset", "domains")(cfg)
    return cfg, d, ImageData.to_float(d.test), ImageData.to_float(d.test_b)


def test_the_right_answer_scores_zero_and_the_identity_its_known_error(test_pair):
    _, d, x, tx = test_pair
    assert tr.translation_error(tx, tx) == 0.0
    # inversion in [-1, 1] is x -> -x: the identity's error is mean |x - (-x)| / 2 = mean |x|
    assert math.isclose(tr.identity_error(x, tx), float(x.abs().mean()), rel_tol=1e-6)
    assert tr.cycle_error(x, dom.transform_float("invert", tx)) < 1e-6  # T^-1(T(x)) = x (float rounding only)


def test_class_preservation_of_a_perfect_translation_is_the_evaluators_accuracy(test_pair):
    from bench.metrics.evaluator import get_evaluator

    cfg, d, x, tx = test_pair
    base = registry.get("dataset", "digits")(cfg.model_copy(update={"name": "digits"}))
    ev = get_evaluator(base, cfg.model_copy(update={"name": "digits"}))
    back = dom.transform_float("invert", tx)  # T^-1 of the right answer: the source images
    read = ev.classes_from_logits(ev.embed(back)[1])
    own = ev.classes_from_logits(ev.embed(x)[1])
    assert tr.class_preservation(read, d.test_labels) == tr.class_preservation(own, d.test_labels) > 0.8
    # a translation that keeps the pixels but moves every image to another item's class scores 0
    assert tr.class_preservation((d.test_labels + 1) % 10, d.test_labels) == 0.0


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="shapes differ"):
        tr.translation_error(torch.zeros(2, 1, 4, 4), torch.zeros(3, 1, 4, 4))
