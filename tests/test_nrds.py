import itertools
import math

import pytest
import torch

from bench.metrics.nrds import ImageClassifier, NRDSResult, nrds, trapezoid_area

DISTANCES = (0.5, 1, 2, 4)
TOY = {"epochs": 10, "batch_size": 16}  # ~0.1 s per call on one thread


@pytest.fixture(autouse=True)
def one_thread():
    # tiny nets: extra threads only add contention (this machine is shared with long runs)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def toy(data_seed: int, n: int = 400):
    """The seed's toy check: real ~ N(0, I) in 2-D; fakes with the same covariance, means at growing
    distances from the real mean (along one direction)."""
    g = torch.Generator().manual_seed(data_seed)
    real = torch.randn(n, 2, generator=g)
    direction = torch.tensor([1.0, 1.0]) / math.sqrt(2)
    fakes = {f"d{d}": torch.randn(n, 2, generator=g) + d * direction for d in DISTANCES}
    return real, fakes


def check_basic(r: NRDSResult, names, epochs):
    assert list(r.scores) == list(names) == list(r.curves)
    assert abs(sum(r.scores.values()) - 1) < 1e-9
    assert all(0 < s < 1 and math.isfinite(s) for s in r.scores.values())
    assert len(r.real_curve) == epochs and all(len(c) == epochs for c in r.curves.values())
    assert all(0 <= v <= 1 for c in [r.real_curve, *r.curves.values()] for v in c)


@pytest.mark.parametrize("data_seed", [0, 1, 2])
def test_toy_nearer_mean_scores_strictly_higher(data_seed):
    real, fakes = toy(data_seed)
    r = nrds(real, fakes, seed=data_seed, **TOY)
    check_basic(r, fakes, TOY["epochs"])
    s = [r.scores[f"d{d}"] for d in DISTANCES]
    assert all(a > b for a, b in itertools.pairwise(s)), r.scores
    # after training the classifier rates the real samples above every model's samples
    assert all(r.real_curve[-1] > c[-1] for c in r.curves.values()), (r.real_curve[-1], r.curves)
    assert r.settings == {
        "epochs": 10, "batch_size": 16, "lr": 2e-4, "betas": [0.5, 0.999], "classifier": "mlp",
        "seed": data_seed, "device": "cpu", "steps_per_epoch": 25, "n_real": 400,
        "n_fake": {f"d{d}": 400 for d in DISTANCES},
    }


def test_scores_are_normalized_trapezoid_areas():
    assert trapezoid_area([1.0, 3.0, 2.0]) == 4.5  # (1+3)/2 + (3+2)/2
    real, fakes = toy(0)
    r = nrds(real, fakes, **TOY)
    areas = {k: sum((c[i] + c[i + 1]) / 2 for i in range(len(c) - 1)) for k, c in r.curves.items()}
    total = sum(areas.values())
    for k in fakes:
        assert r.areas[k] == pytest.approx(areas[k], rel=1e-12)
        assert r.scores[k] == pytest.approx(areas[k] / total, rel=1e-12)


def test_identical_sets_get_exactly_equal_scores():
    real, fakes = toy(0)
    same = {"a": fakes["d1"], "b": fakes["d1"], "copy": fakes["d1"].clone(), "far": fakes["d4"]}
    r = nrds(real, same, **TOY)
    check_basic(r, same, TOY["epochs"])
    assert r.scores["a"] == r.scores["b"] == r.scores["copy"]
    assert r.curves["a"] == r.curves["copy"]
    assert r.scores["far"] < r.scores["a"]


def test_two_draws_of_one_distribution_score_about_equal():
    g = torch.Generator().manual_seed(5)
    real = torch.randn(400, 2, generator=g)
    fakes = {"x": torch.randn(400, 2, generator=g) + 1, "y": torch.randn(400, 2, generator=g) + 1}
    r = nrds(real, fakes, **TOY)
    assert abs(r.scores["x"] - r.scores["y"]) < 0.05, r.scores  # ~0.5 each; 10 data seeds: max gap 0.023


def test_deterministic_per_seed_and_leaves_global_state_alone():
    real, fakes = toy(1, n=200)
    rng = torch.get_rng_state()
    det = torch.are_deterministic_algorithms_enabled()
    a = nrds(real, fakes, seed=3, epochs=4, batch_size=16)
    b = nrds(real, fakes, seed=3, epochs=4, batch_size=16)
    c = nrds(real, fakes, seed=4, epochs=4, batch_size=16)
    assert a == b  # dataclass equality: scores, curves, real curve, areas, settings
    assert a.curves != c.curves and a.real_curve != c.real_curve
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.are_deterministic_algorithms_enabled() == det


def test_tiny_images_run_with_scaled_down_width():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(64, 1, 32, 32, generator=g) * 2 - 1
    fakes = {"uniform": torch.rand(64, 1, 32, 32, generator=g) * 2 - 1,
             "dark": torch.rand(64, 1, 32, 32, generator=g) - 1}
    r = nrds(real, fakes, epochs=3, batch_size=16, width=0.125)
    check_basic(r, fakes, 3)
    assert r.settings["classifier"] == "conv(width=0.125)"
    net = ImageClassifier((1, 32, 32), width=0.25)
    assert [m.out_channels for m in net.features if isinstance(m, torch.nn.Conv2d)] == [16, 32, 64, 128]
    assert net(real[:5]).shape == (5,)


def test_custom_classifier_callable():
    real, fakes = toy(2, n=200)

    def tiny(shape):
        return torch.nn.Sequential(torch.nn.Linear(shape[0], 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    r = nrds(real, fakes, classifier=tiny, epochs=3, batch_size=32)
    check_basic(r, fakes, 3)
    assert r.settings["classifier"] == "tiny"


def _pts(n, d=2):
    return torch.zeros(n, d)


@pytest.mark.parametrize("real, fakes, kwargs, message", [
    (_pts(50), {"only": _pts(50)}, {}, "at least 2 models"),
    (_pts(50), {}, {}, "at least 2 models"),
    (_pts(0), {"a": _pts(50), "b": _pts(50)}, {}, "real is empty"),
    (_pts(50), {"a": _pts(50), "b": _pts(0)}, {}, "'b' is empty"),
    (_pts(50), {"a": _pts(50), "b": _pts(50, 3)}, {}, "'b' has samples of shape [3]"),
    (torch.zeros(50, 1, 8, 8), {"a": torch.zeros(50, 1, 8, 8), "b": torch.zeros(50, 3, 8, 8)}, {},
     "shape [3, 8, 8], but the real samples have shape [1, 8, 8]"),
    (_pts(50), {"a": _pts(50), "b": torch.full((50, 2), math.nan)}, {}, "NaN or Inf"),
    (torch.zeros(50), {"a": torch.zeros(50), "b": torch.zeros(50)}, {}, "shape [N, ...]"),
    (torch.zeros(50, 4, 4), {"a": torch.zeros(50, 4, 4), "b": torch.zeros(50, 4, 4)}, {}, "points [N, D] or images"),
    (_pts(50), {"a": _pts(50), "b": _pts(50)}, {"epochs": 1}, "epochs must be an integer >= 2"),
    (_pts(50), {"a": _pts(50), "b": _pts(50)}, {"batch_size": 0}, "batch_size must be a positive"),
    (_pts(50), {"a": _pts(50), "b": _pts(50)}, {"batch_size": 51}, "larger than min(#real, #pooled fake)"),
    (_pts(50), {"a": _pts(50), "b": _pts(50)}, {"classifier": "resnet"}, "unknown classifier 'resnet'"),
])
def test_bad_input_raises_clear_value_error(real, fakes, kwargs, message):
    with pytest.raises(ValueError) as e:
        nrds(real, fakes, **{"batch_size": 10, **kwargs})
    assert message in str(e.value)
