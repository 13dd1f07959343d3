"""The lens weight lambda(t)."""

import math

import pytest

from bench import schedules
from bench.schedules import constant, linear, lam, none, sine

K = 40


@pytest.mark.parametrize("fn", [sine, linear], ids=["sine", "linear"])
def test_decaying_schedules_start_at_1_and_reach_0_at_K(fn):
    assert fn(0, K) == pytest.approx(1.0)
    assert fn(K, K) == pytest.approx(0.0, abs=1e-12)
    for t in (K + 1, 2 * K, 10 * K):
        assert fn(t, K) == 0.0
    values = [fn(t, K) for t in range(0, 2 * K + 1)]
    assert all(a >= b for a, b in zip(values, values[1:])), values
    assert all(0.0 <= v <= 1.0 for v in values)
    # strictly decreasing before K: the lens actually fades
    assert all(a > b for a, b in zip(values[: K + 1], values[1: K + 1]))


def test_sine_midpoint():
    assert sine(K // 2, K) == pytest.approx(1 - math.sin(math.pi / 4))
    assert sine(K // 2, K) == pytest.approx(1 - math.sqrt(2) / 2)


def test_sine_closed_form():
    for t in (1, 7, 13, 39):
        assert sine(t, K) == pytest.approx(1 - math.sin(t * math.pi / (2 * K)))


def test_linear_values():
    assert linear(K // 2, K) == pytest.approx(0.5)
    assert linear(10, K) == pytest.approx(0.75)


def test_sine_decays_faster_than_linear_early():
    # 1 - sin(x) < 1 - 2x/pi on (0, pi/2): sine is below the straight line
    for t in range(1, K):
        assert sine(t, K) < linear(t, K)


def test_constant_and_none():
    for t in (0, 1, K, 5 * K):
        assert constant(t, K, lam=0.7) == 0.7
        assert constant(t, K) == 1.0
        assert none(t, K) == 0.0
        assert none(t, K, lam=3.0) == 0.0


@pytest.mark.parametrize("name", ["sine", "linear", "constant"])
def test_lam_scales(name):
    for t in (0, 5, K // 2, K - 1, K, 2 * K):
        assert lam(name, t, K, 2.5) == pytest.approx(2.5 * lam(name, t, K, 1.0))
    assert lam(name, 0, K, 2.5) == pytest.approx(2.5)


def test_lookup_by_name():
    from bench import registry
    from bench.schema import LensCfg

    assert registry.names("schedule") == ["constant", "dann", "linear", "none", "sine"]
    assert lam("sine", K // 2, K) == sine(K // 2, K)
    assert lam("none", 0, K, 5.0) == 0.0
    # every schedule a study may name has an implementation, and the study accepts exactly those
    for name in registry.names("schedule"):
        assert callable(registry.get("schedule", name)) and LensCfg(schedule=name).schedule == name
    with pytest.raises(ValueError, match="unknown schedule"):
        LensCfg(schedule="cosine")
