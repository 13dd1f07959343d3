"""Spreads on the absolute, relative and log scales (issue 22): bench.stats.scales, the scale columns of
seed_spread, seed_spread_comparison(scale=) and bounded_t_interval. Every interval's coverage is simulated
(vectorized over studies where the function allows it) against a known truth."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench import stats as S
from bench.metrics import SCALES, bounds
from bench.stats.scales import _cv_interval
from bench.stats.seed import _compare_cells, _ratio_interval

E = math.e


# ----------------------------------------------------------------------------- transform, notes


def test_transform_and_notes():
    v = [1.0, 2.0, 4.0]
    assert S.transform(v, "absolute").tolist() == v and S.transform(v, "relative").tolist() == v
    assert S.transform(v, "log") == pytest.approx(np.log(v))
    with pytest.raises(ValueError, match="'log'"):
        S.transform([1.0, 0.0], "log")
    with pytest.raises(ValueError, match="unknown scale 'ratio'"):
        S.transform(v, "ratio")
    assert S.scale_note("relative") == "relative: std / mean (coefficient of variation)"
    for s in SCALES:
        assert S.scale_note(s).startswith(f"{s}: ") and "\n" not in S.scale_note(s)


# ----------------------------------------------------------------------------- spread_interval by hand


def test_spread_interval_hand_computed():
    # x / mean - 1: [-1/2, 0, 1/2] and [-1/5, 0, 1/5]; squares sum to 0.5 + 0.08 over 2 + 2 df
    assert S.spread_interval([[1, 2, 3], [4, 5, 6]], "relative")[0] == pytest.approx(math.sqrt(0.58 / 4))
    assert S.spread_interval([[1, 2, 3], [2, 4, 6]], "relative")[0] == pytest.approx(0.5)  # both CVs 1/2
    assert S.spread_interval([[1, 2, 3]], "relative")[0] == pytest.approx(0.5)  # std 1 / mean 2
    # log: logs 0, 1, 2 (std 1) with the chi-square interval on 2 df
    est, lo, hi = S.spread_interval([[1, E, E ** 2]], "log")
    assert est == pytest.approx(1) and lo == pytest.approx(math.sqrt(2 / sps.chi2.ppf(0.975, 2)))
    assert hi == pytest.approx(math.sqrt(2 / sps.chi2.ppf(0.025, 2)))
    cells = [[1.0, 3.0, 2.5], [10.0, 12.0]]
    assert S.spread_interval(cells, "absolute") == S.std_interval(cells)[:3]


def test_relative_interval_one_setting_inverts_the_noncentral_t():
    """sqrt(n) mean / sd ~ noncentral t(n - 1, sqrt(n) / CV): the bounds are the CVs at which the observed
    statistic sits at the 97.5th and 2.5th percentile."""
    v = np.array([10.0, 11.0, 12.0, 13.0, 14.0])
    cv, lo, hi = S.spread_interval([v], "relative")
    t = math.sqrt(5) * 12 / np.std(v, ddof=1)
    assert cv == pytest.approx(np.std(v, ddof=1) / 12) and lo < cv < hi < 1
    assert sps.nct.cdf(t, 4, math.sqrt(5) / lo) == pytest.approx(0.025, abs=1e-6)
    assert sps.nct.cdf(t, 4, math.sqrt(5) / hi) == pytest.approx(0.975, abs=1e-6)
    assert S.spread_interval([[1, 2, 3]], "relative")[2] == math.inf  # 3 seeds, CV 1/2: the mean could be ~0
    # a tiny CV (t > 1000): McKay's chi-square, i.e. the std's interval over the mean
    v = 1 + 1e-5 * np.array([-1.0, 0.0, 1.0])
    cv, lo, hi = S.spread_interval([v], "relative")
    _, slo, shi, _ = S.std_interval([v])
    assert (lo, hi) == pytest.approx((slo, shi), rel=1e-6)


def test_relative_interval_several_settings_is_mckay_pooled():
    cells = [np.array([10.0, 11.0, 12.0]), np.array([20.0, 21.0, 23.0, 24.0])]
    n, df = np.array([3, 4]), np.array([2, 3])
    c2 = np.array([1 / 11 ** 2, np.var([20, 21, 23, 24], ddof=1) / 22 ** 2])
    u = df * c2 / (1 + df * c2 / n)
    A, h = u.sum() / 5, min(5, u.sum() ** 2 / (u ** 2 / df).sum())
    cv, lo, hi = S.spread_interval(cells, "relative")
    assert cv == pytest.approx(math.sqrt((df * c2).sum() / 5))
    a_lo, a_hi = A * h / sps.chi2.ppf(0.975, h), A * h / sps.chi2.ppf(0.025, h)
    assert (lo, hi) == pytest.approx((math.sqrt(a_lo / (1 - a_lo)), math.sqrt(a_hi / (1 - a_hi))))


def test_undefined_scales_are_nan_with_a_reason_and_never_raise():
    nan3 = lambda t: all(math.isnan(x) for x in t)
    assert nan3(S.spread_interval([[1.0, 0.0, 2.0]], "log"))
    assert nan3(S.spread_interval([[1.0, -3.0, 1.5]], "relative"))  # mean <= 0
    assert nan3(S.spread_interval([[1.0]], "relative")) and nan3(S.spread_interval([], "log"))
    assert S.spread_interval([[-1.0, 3.0]], "relative")[0] == pytest.approx(2 * math.sqrt(2))  # mean 1 > 0: defined
    for s in SCALES:  # a constant setting: zero spread, zero-width interval
        assert S.spread_interval([[2.0, 2.0, 2.0]], s) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        S.spread_interval([[1.0, 2.0]], "ratio")

    t = pd.DataFrame({"variant": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "seed": [0, 1, 2] * 3, "status": "ok",
                      "final.energy_distance": [0.1, 0.0, 0.2, -0.3, 0.1, 0.05, 0.2, 0.3, 0.4]})
    sp = S.seed_spread(t, "energy_distance", n_boot=50).set_index("variant")
    assert math.isnan(sp.loc["a", "log_std"]) and "no log std" in sp.loc["a", "reason"]
    assert sp.loc["a", "cv"] == pytest.approx(1.0) and sp.loc["a", "mean"] == pytest.approx(0.1)
    assert math.isnan(sp.loc["b", "cv"]) and "the mean is <= 0: no CV" in sp.loc["b", "reason"]
    assert pd.isna(sp.loc["c", "reason"]) and sp.loc["c", "log_std"] == pytest.approx(np.std(np.log([2, 3, 4]), ddof=1))
    assert (sp.loc["c", "cv_lo"] < sp.loc["c", "cv"] < sp.loc["c", "cv_hi"])

    cmp = pd.concat([t.assign(**{"variant.lens.schedule": None}),
                     t.assign(**{"variant.lens.schedule": "sine", "final.energy_distance": t["final.energy_distance"] + 1})])
    cmp["variant.objective"] = cmp["variant"]
    for scale, words in (("log", "a value is <= 0: no log scale"), ("relative", "mean is <= 0: no relative scale")):
        r = S.seed_spread_comparison(cmp, "energy_distance", scale=scale).iloc[0]
        assert r["scale"] == scale and math.isnan(r["ratio"]) and math.isnan(r["p_value"]) and words in r["reason"]
    ok = S.seed_spread_comparison(cmp[cmp["variant"] == "c"], "energy_distance", scale="log").iloc[0]
    assert np.isfinite(ok["ratio_lo"]) and list(ok.index[:3]) == ["arm", "scale", "n_settings"]


# ----------------------------------------------------------------------------- spread_interval coverage


@pytest.mark.parametrize("n", [2, 3, 5, 12])
def test_relative_interval_one_setting_covers(n):
    """Normal seed noise, CV 0.02-0.5, 2000 studies each: the noncentral-t interval holds the true CV in
    93-97 % (measured with 20000: 94.7-95.3 %; it is exact). A study whose mean is <= 0 (NaN interval) counts
    as a miss."""
    rng = np.random.default_rng(n)
    for cv in (0.02, 0.1, 0.3, 0.5):
        x = 5.0 * (1 + cv * rng.standard_normal((2000, n)))
        with np.errstate(invalid="ignore"):
            est, lo, hi = _cv_interval([x])
        ok = x.mean(axis=-1) > 0
        assert 0.93 <= np.mean(ok & (lo <= cv) & (cv <= hi)) <= 0.97, cv
        for i in range(3):  # the public function gives the same numbers
            assert S.spread_interval([x[i]], "relative") == pytest.approx((est[i], lo[i], hi[i]))


@pytest.mark.parametrize("k", [2, 4, 10])
def test_relative_interval_several_settings_covers(k):
    """Settings with their own means (0.1-10) and seed noise, 2000 studies each: the pooled McKay interval holds the
    true pooled CV sqrt(mean CV_i^2) (measured with 20000: one shared CV 0.02-0.5, 95.6-99.5 %, conservative with
    2-3 seeds; CVs 0.05 and 0.5 mixed, 92.9-98.3 %, lowest with 2 settings x 2-3 seeds)."""
    rng = np.random.default_rng(k)
    for n in (2, 3, 12):
        for cvs in ([0.1], [0.5], [0.05, 0.5]):
            kap, mu = np.resize(cvs, k), np.resize([1.0, 10.0, 0.1], k)
            cells = [mu[i] * (1 + kap[i] * rng.standard_normal((2000, n))) for i in range(k)]
            truth = math.sqrt((kap ** 2).mean())
            with np.errstate(invalid="ignore"):
                est, lo, hi = _cv_interval(cells)
            ok = np.all([c.mean(axis=-1) > 0 for c in cells], axis=0)
            floor = 0.91 if len(cvs) > 1 else 0.935
            assert floor <= np.mean(ok & (lo <= truth) & (truth <= hi)) <= 0.998, (n, cvs)
            assert S.spread_interval([c[0] for c in cells], "relative") == pytest.approx((est[0], lo[0], hi[0]))


@pytest.mark.parametrize("n", [2, 3, 12])
def test_log_interval_covers(n):
    """Lognormal seeds (log std 0.4), 800 studies: the log scale's chi-square interval holds 0.4 in 93-97 %
    with one setting; over 3 settings (different log means) Satterthwaite's df makes it conservative (<= 99.5 %)."""
    rng = np.random.default_rng(n)
    for k, top in ((1, 0.97), (3, 0.995)):
        hit = 0
        for _ in range(800):
            cells = [np.exp(m + 0.4 * rng.standard_normal(n)) for m in (0.0, 3.0, -2.0)[:k]]
            _, lo, hi = S.spread_interval(cells, "log")
            hit += lo <= 0.4 <= hi
        assert 0.93 <= hit / 800 <= top


# ----------------------------------------------------------------------------- the ratio on the log / relative scale


def test_ratio_by_hand_on_both_scales():
    # relative: CVs 1/2 and 1/5 -> 0.4; log: log stds 1 and 1/2 -> 0.5, F interval on (2, 2) df
    r = _compare_cells([np.array([1.0, 2.0, 3.0])], [np.array([4.0, 5.0, 6.0])], True, 100, None, 0.95, "relative")
    assert (r["std_a"], r["std_b"], r["ratio"]) == pytest.approx((0.5, 0.2, 0.4))
    p = sps.levene([-0.5, 0, 0.5], [-0.2, 0, 0.2], center="median").pvalue  # deviations of x / mean from its median
    assert r["p_value"] == pytest.approx(p)
    r = _compare_cells([np.array([1, E, E ** 2])], [np.array([1, E ** 0.5, E])], True, 100, None, 0.95, "log")
    assert r["ratio"] == pytest.approx(0.5)
    assert r["ratio_lo"] == pytest.approx(0.5 / math.sqrt(sps.f.ppf(0.975, 2, 2)))
    assert r["ratio_hi"] == pytest.approx(0.5 / math.sqrt(sps.f.ppf(0.025, 2, 2)))
    flat = _compare_cells([np.array([2.0, 2.0])], [np.array([1.0, 3.0])], True, 100, None, 0.95, "log")
    assert flat["ratio"] == math.inf and math.isnan(flat["ratio_lo"]) and "control does not vary" in flat["reason"]


def test_ratio_is_scale_free_and_uses_each_sides_own_mean():
    """The treated side's metric is 20x lower with the same CV: on the absolute scale it looks 20x more robust,
    on the relative and log scales it is not (the issue's misleading 'robust to the seed')."""
    rng = np.random.default_rng(0)
    rows = []
    for lens, level in ((None, 1.0), ("sine", 0.05)):
        for obj, m in (("ns", 1.0), ("wgan", 3.0)):
            for s in range(12):
                rows.append({"variant": obj, "variant.objective": obj, "variant.lens.schedule": lens, "seed": s,
                             "status": "ok", "final.energy_distance": level * m * np.exp(0.2 * rng.standard_normal())})
    t = pd.DataFrame(rows)
    absolute = S.seed_spread_comparison(t, "energy_distance", n_boot=200, standardize=False).iloc[0]
    assert absolute["ratio_hi"] < 0.2
    for scale in ("relative", "log"):
        r = S.seed_spread_comparison(t, "energy_distance", scale=scale).iloc[0]
        assert r["ratio_lo"] < 1 < r["ratio_hi"] and 0.6 < r["ratio"] < 1.6, scale
        # same numbers as the batched helper the coverage tests use
        a = [t[(t["variant.lens.schedule"].isna()) & (t["variant"] == o)]["final.energy_distance"].to_numpy()
             for o in ("ns", "wgan")]
        b = [t[(t["variant.lens.schedule"] == "sine") & (t["variant"] == o)]["final.energy_distance"].to_numpy()
             for o in ("ns", "wgan")]
        f = (lambda c: c / c.mean()) if scale == "relative" else np.log
        assert (r["ratio"], r["ratio_lo"], r["ratio_hi"]) == pytest.approx(
            tuple(map(float, _ratio_interval([f(c) for c in a], [f(c) for c in b], scale, 0.95))))
    assert S.seed_spread_comparison(t, "energy_distance", scale="relative")["std_a"].iloc[0] == pytest.approx(
        S.spread_interval(a, "relative")[0])


def _coverage(scale, k, n, case, rng, studies=2000):
    """Share of simulated studies whose ratio interval holds the true ratio (a study with a mean <= 0 misses)."""
    if scale == "relative":  # normal seed noise; each side and setting has its own mean
        ka, kb = {"half": ([0.2], [0.1]), "big": ([0.5], [0.25]), "mixed": ([0.1, 0.3], [0.05, 0.15])}[case]
        ka, kb, ma, mb = np.resize(ka, k), np.resize(kb, k), np.resize([1.0, 5.0], k), np.resize([0.05, 2.0], k)
        a = [ma[i] * (1 + ka[i] * rng.standard_normal((studies, n))) for i in range(k)]
        b = [mb[i] * (1 + kb[i] * rng.standard_normal((studies, n))) for i in range(k)]
        ok = np.all([c.mean(axis=-1) > 0 for c in a + b], axis=0)
        a, b = [c / c.mean(axis=-1, keepdims=True) for c in a], [c / c.mean(axis=-1, keepdims=True) for c in b]
    else:  # lognormal seeds: the log values are normal
        ka, kb = {"half": ([0.3], [0.15]), "same": ([0.2], [0.2]), "mixed": ([0.1, 0.3], [0.05, 0.15])}[case]
        ka, kb, mu = np.resize(ka, k), np.resize(kb, k), np.resize([0.0, 3.0, -2.0], k)
        a = [mu[i] + ka[i] * rng.standard_normal((studies, n)) for i in range(k)]
        b = [mu[i] + 1 + kb[i] * rng.standard_normal((studies, n)) for i in range(k)]
        ok = True
    truth = math.sqrt((kb ** 2).mean() / (ka ** 2).mean())
    with np.errstate(invalid="ignore", divide="ignore"):
        _, lo, hi = _ratio_interval(a, b, scale, 0.95)
    return float(np.mean(ok & (lo <= truth) & (truth <= hi)))


@pytest.mark.parametrize("scale", ["relative", "log"])
def test_ratio_interval_covers_with_few_seeds(scale):
    """2-12 seeds x 1-4 settings, true ratio 0.5 or 1, 2000 studies each. Measured with 20000: 94.4-99.2 % (log
    and relative; up to 99 % over 4 settings with 2-3 seeds, Satterthwaite's df); relative with CVs 0.5 vs 0.25
    in one setting, 2 / 3 seeds: 91.9 / 93.3 %; settings whose spreads differ 3x ("mixed"), 5-12 seeds: 93.2-94.6 %."""
    rng = np.random.default_rng(len(scale))
    cases = ("half", "big", "mixed") if scale == "relative" else ("half", "same", "mixed")
    for k in (1, 2, 4):
        for n in (2, 3, 5, 12):
            for case in cases:
                if case == "mixed" and k == 1:
                    continue
                cov = _coverage(scale, k, n, case, rng)
                floor = 0.895 if (case == "big" and k == 1 and n <= 3) else 0.915 if case == "mixed" else 0.925
                assert floor <= cov <= 0.998, (k, n, case, cov)


def test_the_bootstrap_had_no_interval_with_two_seeds():
    """Why the log / relative ratio has an F interval: with 2 seeds some bootstrap resample has no spread on either
    side, so the percentile bootstrap (the absolute scale's) gives none; the F interval does."""
    rng = np.random.default_rng(0)
    a, b = [rng.lognormal(0, 0.3, 2) for _ in range(2)], [rng.lognormal(0, 0.15, 2) for _ in range(2)]
    boot = _compare_cells(a, b, False, 2000, np.random.default_rng(1), 0.95)
    assert math.isnan(boot["ratio_lo"]) and "no interval" in boot["reason"]
    for scale in ("relative", "log"):
        r = _compare_cells(a, b, False, 2000, None, 0.95, scale)
        assert 0 < r["ratio_lo"] < r["ratio"] < r["ratio_hi"] < math.inf


# ----------------------------------------------------------------------------- bounded means


@pytest.mark.parametrize("metric, dataset, draw", [
    ("recall", None, lambda rng, n: rng.binomial(200, 0.01, n) / 200),          # a proportion near 0
    ("precision", None, lambda rng, n: 1 - rng.binomial(200, 0.02, n) / 200),   # near 1
    ("modes_covered", "ring8", lambda rng, n: 8.0 - rng.binomial(1, 0.3, n)),  # 7 or 8 of 8 modes
])
def test_bounded_t_interval_stays_in_range_and_keeps_coverage(metric, dataset, draw):
    """3-5 seeds near a bound: the clipped interval never leaves the metric's range and holds the true mean in
    exactly the studies the t interval does (the true mean is in the range). Measured with 10000 studies, 3 / 5
    seeds: recall 94.9 / 93.8 % (t below 0 in 76 / 32 % of them), precision 94.9 / 94.8 %; modes covered
    (7 or 8 of 8) only 62 / 83 %, t's own weakness on a metric that sits on its bound (every seed 8: a
    zero-width interval)."""
    lo_b, hi_b = bounds(metric, dataset)
    rng = np.random.default_rng(0)
    truth = {"recall": 0.01, "precision": 0.98, "modes_covered": 7.7}[metric]
    for n in (3, 5):
        hit = hit_t = clipped = 0
        for _ in range(1500):
            v = draw(rng, n)
            lo, hi = S.bounded_t_interval(v, lo_b, hi_b)
            tlo, thi = S.t_interval(v)
            assert lo_b <= lo <= hi <= hi_b
            hit += lo <= truth <= hi
            hit_t += tlo <= truth <= thi
            clipped += (tlo < lo_b) or (thi > hi_b)
        assert hit == hit_t and clipped > 40
    assert all(math.isnan(x) for x in S.bounded_t_interval([0.5], 0, 1))
    assert S.bounded_t_interval([0.2, 0.4, 0.3]) == S.t_interval([0.2, 0.4, 0.3])  # unbounded: as is
    assert S.bounded_t_interval([-0.3, -0.2, -0.25], *bounds("energy_distance")) == (0.0, 0.0)  # wholly below 0
