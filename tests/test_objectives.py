"""Each objective's losses against values worked out by hand on two-element batches. D's outputs are
[K, B] (K packed configurations); every loss is one value per configuration [K]."""

import math

import pytest
import torch

from bench import registry
from bench.objectives import classic, relativistic
from bench.objectives import gradient_penalty

R = [0.5, -1.0]  # D's outputs on real data
F_ = [2.0, 0.0]  # D's outputs on fake data


def t(xs):
    """One configuration's D outputs: [1, B]."""
    return torch.tensor([xs], dtype=torch.float64)


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def mean(xs):
    return sum(xs) / len(xs)


def check(obj, d, g, lens):
    assert obj.d(t(R), t(F_)).item() == pytest.approx(d, rel=1e-12, abs=1e-12)
    # G's loss needs D(real) only for a relativistic objective
    assert obj.g(t(R) if obj.relativistic else None, t(F_)).item() == pytest.approx(g, rel=1e-12, abs=1e-12)
    # the lens acts on D's outputs for lensed *real* data
    assert obj.lens(t(R), t(F_)).item() == pytest.approx(lens, rel=1e-12, abs=1e-12)


def test_minimax():
    d = mean([-math.log(sig(r)) for r in R]) + mean([-math.log(1 - sig(f)) for f in F_])
    g = mean([math.log(1 - sig(f)) for f in F_])  # G minimizes log(1 - D(G(z)))
    lens = mean([-math.log(1 - sig(r)) for r in R])
    check(classic.minimax, d, g, lens)
    # the numbers, spelled out: log(1 - sigmoid(2)) = -log(1 + e^2), log(1 - sigmoid(0)) = -log 2
    assert g == pytest.approx(-(math.log(1 + math.exp(2)) + math.log(2)) / 2)
    assert g < 0


def test_non_saturating():
    d = mean([-math.log(sig(r)) for r in R]) + mean([-math.log(1 - sig(f)) for f in F_])
    g = mean([-math.log(sig(f)) for f in F_])
    lens = mean([-math.log(1 - sig(r)) for r in R])
    check(classic.ns, d, g, lens)
    # ns and minimax share D and the lens but not G
    assert classic.ns.g(None, t(F_)).item() != pytest.approx(classic.minimax.g(None, t(F_)).item())


def test_lsgan():
    d = mean([(0.5 - 1) ** 2, (-1.0 - 1) ** 2]) + mean([2.0**2, 0.0**2])  # (0.25 + 4)/2 + 4/2
    g = mean([(2.0 - 1) ** 2, (0.0 - 1) ** 2])
    lens = mean([0.5**2, (-1.0) ** 2])
    assert (d, g, lens) == (pytest.approx(4.125), pytest.approx(1.0), pytest.approx(0.625))
    check(classic.lsgan, d, g, lens)


@pytest.mark.parametrize("obj", [classic.wgan, classic.wgan_gp], ids=["wgan", "wgan-gp"])
def test_wasserstein(obj):
    d = mean(F_) - mean(R)  # 1.0 - (-0.25)
    assert d == pytest.approx(1.25)
    check(obj, d, -mean(F_), mean(R))


def test_hinge():
    d = mean([max(0.0, 1 - 0.5), max(0.0, 1 - (-1.0))]) + mean([max(0.0, 1 + 2.0), max(0.0, 1 + 0.0)])
    assert d == pytest.approx(1.25 + 2.0)
    check(classic.hinge, d, -mean(F_), mean(R))


def test_hinge_margin_is_flat_beyond_it():
    # confident D outputs (r > 1, f < -1) cost D nothing under hinge
    assert classic.hinge.d(t([3.0, 1.5]), t([-2.0, -4.0])).item() == 0.0


def test_gan_losses_are_stable_for_large_logits():
    big = t([80.0, -80.0])
    for obj in (classic.minimax, classic.ns):
        assert torch.isfinite(obj.d(big, big))
        assert torch.isfinite(obj.g(None, big))
        assert torch.isfinite(obj.lens(big, big))
    # -log sigmoid(-80) = 80 (to double precision): softplus, not log(sigmoid)
    assert classic.ns.g(None, t([-80.0])).item() == pytest.approx(80.0)


def test_relativistic_average_gan():
    """RaGAN (Jolicoeur-Martineau 2018): each side judged against the other side's mean logit."""
    cr = [r - mean(F_) for r in R]  # C(x_r) - E C(x_f), mean(F_) = 1
    cf = [f - mean(R) for f in F_]  # C(x_f) - E C(x_r), mean(R) = -0.25
    d = mean([-math.log(sig(c)) for c in cr]) + mean([-math.log(1 - sig(c)) for c in cf])
    g = mean([-math.log(sig(c)) for c in cf]) + mean([-math.log(1 - sig(c)) for c in cr])
    check(relativistic.ragan, d, g, g)  # the lens minimises G's relativistic loss through the real side
    assert relativistic.ragan.relativistic


def test_relativistic_average_lsgan():
    cr = [r - mean(F_) for r in R]
    cf = [f - mean(R) for f in F_]
    d = mean([(c - 1) ** 2 for c in cr]) + mean([(c + 1) ** 2 for c in cf])
    g = mean([(c - 1) ** 2 for c in cf]) + mean([(c + 1) ** 2 for c in cr])
    assert d == pytest.approx(mean([2.25, 9.0]) + mean([(2.25 + 1) ** 2, 1.25**2]))
    check(relativistic.ralsgan, d, g, g)


def test_losses_are_per_configuration():
    """Two configurations in one pack: each gets the loss of its own outputs alone."""
    r2, f2 = [1.0, 3.0], [-0.5, 0.5]
    both_r, both_f = torch.tensor([R, r2], dtype=torch.float64), torch.tensor([F_, f2], dtype=torch.float64)
    for name in registry.names("objective"):
        obj = registry.get("objective", name)
        d = obj.d(both_r, both_f)
        assert d.shape == (2,)
        assert d[0].item() == pytest.approx(obj.d(t(R), t(F_)).item()) and d[1].item() == pytest.approx(obj.d(t(r2), t(f2)).item())


def test_flags():
    assert classic.wgan.clip_weights and not classic.wgan.gradient_penalty
    assert classic.wgan_gp.gradient_penalty and not classic.wgan_gp.clip_weights
    for obj in (classic.minimax, classic.ns, classic.lsgan, classic.hinge):
        assert not obj.clip_weights and not obj.gradient_penalty, obj.name


def test_registry_names_match():
    for name in registry.REGISTRY["objective"]:
        assert registry.get("objective", name).name == name


@pytest.mark.parametrize("eps", [0.0, 0.3, 1.0, "random"])
def test_gradient_penalty_of_a_linear_critic(eps):
    # D(x) = w . x with ||w|| = 3 has gradient w everywhere, so the penalty is (3 - 1)^2 = 4
    D = torch.nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        D.weight.copy_(torch.tensor([[2.0, 2.0, 1.0]], dtype=torch.float64))
    real, fake = torch.randn(1, 5, 3, dtype=torch.float64), torch.randn(1, 5, 3, dtype=torch.float64)
    e = torch.rand(1, 5, dtype=torch.float64) if eps == "random" else torch.full((1, 5), eps, dtype=torch.float64)
    gp = gradient_penalty(D, real, fake, e)
    assert gp.item() == pytest.approx(4.0, rel=1e-12)
    # and it is differentiable w.r.t. D's weights (create_graph): d/dw (||w|| - 1)^2 = 2(||w|| - 1) w/||w||
    gp.backward()
    assert D.weight.grad[0].tolist() == pytest.approx([2 * 2 * 2 / 3, 2 * 2 * 2 / 3, 2 * 2 * 1 / 3])


def test_gradient_penalty_is_zero_for_a_unit_norm_critic():
    D = torch.nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():
        D.weight.copy_(torch.tensor([[0.6, 0.8]], dtype=torch.float64))
    real, fake = torch.randn(1, 4, 2, dtype=torch.float64), torch.randn(1, 4, 2, dtype=torch.float64)
    assert gradient_penalty(D, real, fake, torch.rand(1, 4, dtype=torch.float64)).item() == pytest.approx(0.0, abs=1e-12)


def test_a_loss_of_the_wrong_shape_names_the_objective_and_the_shapes():
    import re

    import torch.nn.functional as F

    from bench.objectives import Objective, mean

    bad = Objective("persample", d=lambda r, f: F.softplus(-r) + F.softplus(f), g=lambda r, f: mean(f),
                    lens=lambda r, f: r.sum())
    x = torch.zeros(3, 8)
    with pytest.raises(ValueError, match=re.escape(
            "objective 'persample': its D loss d(r, f) has shape [3, 8] for D outputs of shape [3, 8]; a loss is one "
            "value per configuration, shape [3]")):
        bad.d(x, x)
    with pytest.raises(ValueError, match=re.escape("'persample': its lens loss lens(r, f) has shape [] for D outputs")):
        bad.lens(x, x)
    assert bad.g(None, x).shape == (3,)
    again = Objective("again", bad.d, bad.g, bad.lens)  # a checked loss is not wrapped twice
    assert again.g is bad.g
