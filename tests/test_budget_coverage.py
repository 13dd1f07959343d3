"""Coverage of issue 23's intervals, simulated: budget_curve's band (the expected best of k configurations) and
tolerance_success's Wilson interval. Many simulated random searches at once, through the helpers the functions
themselves use (bench.stats.budget._band), checked against budget_curve on a few studies.

The budget band's estimand is E[best of k configurations drawn from the whole space] (the population, not the N
observed points), computed here by numerical integration of the population's distribution."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from bench.stats import budget_curve, expected_best, tolerance_success, wilson_interval
from bench.stats.budget import _band, _cumulative, _curve_and_se, _positions

LN_MU, LN_SIGMA, FAIL = math.log(40.0), 0.5, 300.0


def _normal(rng, shape):  # a FID-like metric, lower is better, symmetric
    return rng.normal(40.0, 8.0, shape)


def _lognormal(rng, shape):  # a FID-like metric, lower is better, right-skewed (the good side is light)
    return rng.lognormal(LN_MU, LN_SIGMA, shape)


def _modes(rng, shape):  # modes covered of 25, higher is better: 30 % collapse to 0, the rest Binomial(25, 0.8)
    return np.where(rng.random(shape) < 0.3, 0.0, rng.binomial(25, 0.8, shape).astype(float))


def _failures(rng, shape):  # lognormal FID, 20 % of configurations diverge and count at the worst value 300
    return np.where(rng.random(shape) < 0.2, FAIL, np.minimum(_lognormal(rng, shape), FAIL))


def _truth(name, k):
    """E[best of k draws from the population]: the integral of the survival function of the best."""
    if name == "normal":  # E[min of k] = -E[max of k] of the mirrored normal, over the quantile of the max
        return 40.0 - 8.0 * integrate.quad(lambda t: stats.norm.ppf(t ** (1 / k)), 0, 1, limit=200)[0]
    if name == "modes":
        v = np.arange(26)
        p = 0.7 * stats.binom.pmf(v, 25, 0.8)
        p[0] += 0.3
        F = np.cumsum(p)
        return float(np.sum(v * (F ** k - (F - p) ** k)))
    sf = lambda x: stats.lognorm.sf(x, LN_SIGMA, scale=math.exp(LN_MU))  # noqa: E731
    if name == "lognormal":
        return integrate.quad(lambda x: sf(x) ** k, 0, np.inf, limit=200)[0]
    return integrate.quad(lambda x: (0.2 + 0.8 * sf(x)) ** k, 0, FAIL, limit=200)[0]  # failures: min <= 300


DISTS = {"normal": (_normal, False), "lognormal": (_lognormal, False), "modes": (_modes, True),
         "failures": (_failures, False)}


def band_coverage(name, N, studies=400, n_boot=400, seed=0, chunk=50):
    """Two-sided coverage at k = 1 and N // 4 (the band's last two-sided k) and one-sided coverage of the bound
    kept beyond it at k = N // 2 and N, over `studies` simulated searches of N points."""
    draw, higher = DISTS[name]
    rng = np.random.default_rng([seed, N, len(name)])
    kmax = max(1, N // 4)
    ks = sorted({1, kmax})
    truth = np.array([_truth(name, k) for k in ks])
    x = draw(rng, (studies, N))
    x = np.sort(x, axis=1) if higher else -np.sort(x, axis=1)[:, ::-1]  # the band works with higher = better
    t = truth if higher else -truth
    _, lo, hi, _ = np.concatenate([_band(x[i:i + chunk], ks, n_boot, rng) for i in range(0, studies, chunk)], axis=1)
    two = ((lo <= t) & (t <= hi)).mean(axis=0)
    far = np.array([_truth(name, k) for k in (N // 2, N)])
    one = (lo[:, -1:] <= (far if higher else -far)).mean(axis=0)
    return dict(zip(ks, two)), dict(zip((N // 2, N), one))


# ----------------------------------------------------------------------------- budget_curve's band


def test_resample_curve_and_jackknife_by_brute_force():
    """_curve_and_se on a resample with repeated values: the curve is expected_best of the resample, the standard
    error the jackknife's over its N copies, each left out in turn (computed here the slow way)."""
    rng = np.random.default_rng(2)
    x = np.sort(rng.normal(size=11))
    c = np.bincount(rng.integers(0, 11, 11), minlength=11)
    sample = np.repeat(x, c)
    for k in (1, 3, 6, 10):
        g, gp = _cumulative(11, False)[k - 1], np.r_[_cumulative(10, False)[k - 1], 1.0]
        theta, se = _curve_and_se(x[None, None, :], c[None, None, :], _positions(c[None, None, :]), g, gp)
        loo = np.array([expected_best(np.delete(sample, i), True)[k - 1] for i in range(11)])
        assert theta[0, 0] == pytest.approx(expected_best(sample, True)[k - 1])
        assert se[0, 0] == pytest.approx(np.sqrt(10 / 11 * ((loo - loo.mean()) ** 2).sum()), abs=1e-12)


@pytest.mark.parametrize("higher", [True, False])
def test_the_simulated_band_is_budget_curves(higher):
    """The coverage below is measured on budget_curve's own numbers: the batched helper, fed the same sorted values
    and generator, gives budget_curve's lo / hi (failures at the failure value included)."""
    rng = np.random.default_rng(4)
    for N, fails in ((9, 0), (20, 3), (41, 5)):
        v = rng.lognormal(3.0, 0.5, N)
        v[:fails] = np.nan
        fail = 0.0 if higher else 500.0
        c = budget_curve(v, higher, n_boot=300, seed=7, failure_value=fail)
        x = np.sort(np.where(np.isnan(v), fail, v))
        x = x if higher else -x[::-1]
        kmax = max(1, N // 4)
        _, lo, hi, _ = _band(x[None, :], range(1, kmax + 1), 300, np.random.default_rng(7))[:, 0]
        lo, hi = (lo, hi) if higher else (-hi, -lo)
        assert c["lo"].iloc[:kmax].tolist() == pytest.approx(lo) and c["hi"].iloc[:kmax].tolist() == pytest.approx(hi)
        far = c.iloc[kmax:]
        good, none = ("lo", "hi") if higher else ("hi", "lo")
        assert (far[good] == c[good].iloc[kmax - 1]).all() and np.isinf(far[none]).all()
        assert far["reason"].str.contains(f"one-sided beyond k = {kmax}").all()
        assert c["reason"].iloc[:kmax].map(lambda r: r is None or "one-sided" not in r).all()


def test_band_edge_cases():
    # 39 values tie at the best: from k = 5 every leave-one-out curve is 5 and so is nearly every resample's (one
    # that drew the 1 five times or more: 0.4 %), a degenerate band
    c = budget_curve([5.0] * 39 + [1.0], True, n_boot=200)
    assert c["lo"].iloc[4:10].tolist() == pytest.approx([5.0] * 6) == c["hi"].iloc[4:10].tolist()
    assert c["reason"].iloc[4:10].str.startswith("degenerate").all() and c["lo"].iloc[0] < c["hi"].iloc[0]
    # 9 of 10: the jackknife sees no spread at k = 2, the resamples do (some draw the 1 twice): the percentile's band
    c = budget_curve([5.0] * 9 + [1.0], True, n_boot=200)
    assert c["lo"].iloc[1] < 4.9 and c["hi"].iloc[1] == pytest.approx(5.0) and c["reason"].iloc[1] is None
    # 2 or 3 values: the mean's Student t interval only, one-sided from k = 2
    two = budget_curve([1.0, 3.0], False, n_boot=200)
    h = stats.t.ppf(0.975, 1) * 1.0  # s / sqrt(2) = 1
    assert (two["lo"].iloc[0], two["hi"].iloc[0]) == pytest.approx((2.0 - h, 2.0 + h))
    assert two["lo"].iloc[1] == -np.inf and two["hi"].iloc[1] == two["hi"].iloc[0]


# two-sided coverage at k = 1 and N // 4 and one-sided at N // 2 and N, 400 studies with 400 resamples each. The
# measured numbers (2000 studies, 1000 resamples) are in budget_curve's docstring; over 5 seeds of this test's
# settings the lowest were 91.8-92.2 % (normal), 91.0 % (lognormal), 90.0 / 93.2 / 87.8 % (modes, N = 10 / 30 / 100)
# and 87.0 / 92.8 / 94.8 % (failures), the highest 97.2 %, the one-sided 100 %. Floors ~3 standard errors below.
FLOORS = {("normal", 10): 0.90, ("normal", 30): 0.90, ("normal", 100): 0.90,
          ("lognormal", 10): 0.87, ("lognormal", 30): 0.89, ("lognormal", 100): 0.89,
          ("modes", 10): 0.87, ("modes", 30): 0.90, ("modes", 100): 0.85,
          ("failures", 10): 0.84, ("failures", 30): 0.90, ("failures", 100): 0.90}


@pytest.mark.parametrize("name", list(DISTS))
def test_budget_band_covers_the_expected_best_of_the_space(name):
    for N in (10, 30, 100):
        two, one = band_coverage(name, N)
        assert all(FLOORS[(name, N)] <= c <= 0.99 for c in two.values()), (name, N, two)
        assert all(c >= 0.97 for c in one.values()), (name, N, one)


def test_a_percentile_bootstrap_of_the_best_of_all_undercovers():
    """Why the band stops at N // 4: at k = N the expected best is E[max of N], the percentile bootstrap's band
    (the old one) is the spread of resample maxima, never above the sample's own maximum: ~45 % coverage."""
    rng = np.random.default_rng(0)
    N, studies, B = 30, 1000, 400
    x = np.sort(rng.normal(size=(studies, N)), axis=1)
    truth = integrate.quad(lambda t: stats.norm.ppf(t ** (1 / N)), 0, 1)[0]
    top = x[np.arange(studies)[:, None], rng.integers(0, N, (studies, B, N)).max(axis=2)]  # each resample's max
    lo, hi = np.quantile(top, [0.025, 0.975], axis=1)
    assert 0.35 < np.mean((lo <= truth) & (truth <= hi)) < 0.6


# ----------------------------------------------------------------------------- tolerance_success


def wilson_table(n, z=stats.norm.ppf(0.975)):
    """Wilson bounds for 0..n successes of n, by the formula (the same as `wilson_interval`: checked below)."""
    p = np.arange(n + 1) / n
    c, h = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return np.clip(np.c_[c - h, c + h] / (1 + z * z / n), 0, 1)


def test_tolerance_success_uses_wilson():
    t = tolerance_success({"a": [1.0] * 3 + [0.0] * 7, "b": [1.0]}, True, 0.5).iloc[0]
    assert (t["successes"], t["n"]) == (3, 10) and (t["lo"], t["hi"]) == pytest.approx(wilson_table(10)[3])
    for n in (10, 37):
        assert np.allclose(wilson_table(n), [wilson_interval(x, n) for x in range(n + 1)], atol=1e-12)


def tolerance_coverage(n, p, studies=2000, seed=0):
    """Two variants, n points each, final values uniform on (0, 1), higher is better, tolerance p: the share of
    points within p of the best value ANY variant reached. Coverage of variant a's interval of (1) the share of its
    configurations above the threshold the study observed, 1 - (1 - p) * best (what the interval is conditional
    on), and (2) the share within p of the population's best, 1, which is p."""
    rng = np.random.default_rng([seed, n, int(p * 100)])
    x = rng.random((studies, 2, n))
    best = x.max(axis=(1, 2))
    thr = (1 - p) * best
    succ = (x[:, 0] >= thr[:, None]).sum(axis=1)
    lo, hi = wilson_table(n)[succ].T
    cond = 1 - thr
    return float(np.mean((lo <= cond) & (cond <= hi))), float(np.mean((lo <= p) & (p <= hi)))


def test_wilson_covers_a_fixed_threshold_exactly():
    """Binomial coverage of the Wilson interval, exact (summed over every count), n = 10..100: the interval given a
    threshold. Measured: p = 0.05 89.8 % (n = 11) to 98.1 %, mean 95.7 %; p = 0.2 92.6-98.2 %, mean 95.3 %; p = 0.5
    92.2-97.9 %, mean 95.0 %."""
    tables = {n: wilson_table(n).T for n in range(10, 101)}
    for p in (0.05, 0.2, 0.5):
        cov = [stats.binom.pmf(np.arange(n + 1), n, p)[(lo <= p) & (p <= hi)].sum() for n, (lo, hi) in tables.items()]
        assert min(cov) >= 0.89 and 0.945 <= np.mean(cov) <= 0.965, (p, min(cov), np.mean(cov))


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5])
def test_tolerance_interval_covers_the_share_above_the_observed_best(p):
    """Uniform values, two variants: the interval covers the share above the threshold the study observed at
    94.7-95.7 % (n = 10..100, 20000 studies); it is not an interval for the share within p of the space's best:
    with p = 0.05 that is covered 77 / 84 / 88 / 93 / 95 % at n = 10 / 20 / 30 / 50 / 100 (the observed best falls
    short of the space's, so the threshold is easier)."""
    for n in (10, 30, 100):
        cond, _ = tolerance_coverage(n, p)
        assert 0.93 <= cond <= 0.97, (n, cond)
    assert tolerance_coverage(10, 0.05)[1] < 0.85


def test_the_variant_that_set_the_best_gets_that_point_free():
    """Lognormal FIDs (lower is better), a weaker variant (median 40) and a stronger one (median 32, it holds the
    study's best 82-89 % of the time), tolerance 10 %: the share above the observed threshold is small (0.3-12 %) and
    the stronger variant's count includes the point that set the threshold, a success by construction, so its
    interval covers less. Measured (20000 studies, n = 10 / 30 / 100): weaker 90.6 / 91.6 / 91.7 %, stronger
    87.0 / 88.3 / 88.3 %; with a 30 % tolerance (shares 1-26 %) 93.5-94.0 % and 92.0-93.2 %."""
    for n in (10, 30, 100):
        rng = np.random.default_rng(n)
        a, b = rng.lognormal(math.log(40), 0.3, (4000, n)), rng.lognormal(math.log(32), 0.3, (4000, n))
        thr = np.minimum(a.min(axis=1), b.min(axis=1)) * 1.1
        lo_w, hi_w = wilson_table(n).T
        cov = []
        for x, median in ((a, 40), (b, 32)):
            succ = (x <= thr[:, None]).sum(axis=1)
            share = stats.lognorm.cdf(thr, 0.3, scale=median)
            cov.append(np.mean((lo_w[succ] <= share) & (share <= hi_w[succ])))
        assert cov[0] >= 0.88 and 0.84 <= cov[1] <= 0.92, (n, cov)
