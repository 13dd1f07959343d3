"""bench.stats on synthetic trials tables with known answers (fast: no training, no Ray, no torch)."""

import itertools
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench import stats as S

N_BOOT = 400  # enough for coverage checks on these tiny synthetic sets, keeps the file fast


def trial(i, **cols):
    base = {"study": "s", "trial_id": f"t{i}", "variant": "ns", "dataset.name": "ring8", "train.lr": 1e-3,
            "variant.objective": "ns", "variant.lens.schedule": None, "variant.lens.K": np.nan, "seed": 0,
            "status": "ok", "final.fid": np.nan, "final.modes_covered": np.nan}
    base.update(cols)
    return base


def grid(point_values: dict, axis="train.lr", metric="final.fid", **common):
    """One trial per (axis value, seed) with the given per-seed values."""
    rows = []
    for x, vals in point_values.items():
        for s, v in enumerate(vals):
            rows.append(trial(len(rows), **{axis: x, "seed": s, metric: v}, **common))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- 1. axis_spread

MEANS = {1e-5: 1.0, 1e-4: 2.0, 1e-3: 3.0, 1e-2: 4.0}


def known_means_grid(metric="final.fid"):
    # seeds symmetric around each point mean, so the point means are exactly 1, 2, 3, 4
    return grid({x: [m - 0.2, m, m + 0.2] for x, m in MEANS.items()}, metric=metric)


def test_axis_spread_exact_point_estimates_and_direction():
    sp = S.axis_spread(known_means_grid(), "fid", "train.lr", n_boot=N_BOOT).iloc[0]
    assert sp["n_points"] == 4 and sp["min_seeds"] == 3 and not sp["higher_is_better"]
    # the same seeds at every point, each seed shifting every point alike (a pure seed effect): paired, no
    # seed x point noise left, so the true spread is the spread of the means
    assert sp["paired"] and sp["noise_floor"] == pytest.approx(0, abs=1e-12)
    assert sp["std_means"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1)) == sp["std"]  # 1.2910
    # other seeds at every point: independent, the within-point variance (0.04, 3 seeds) taken out
    t = known_means_grid()
    t["seed"] = range(len(t))
    sp2 = S.axis_spread(t, "fid", "train.lr", n_boot=N_BOOT).iloc[0]
    assert not sp2["paired"] and sp2["noise_floor"] == pytest.approx(math.sqrt(0.04 / 3))
    assert sp2["std"] == pytest.approx(math.sqrt(np.var([1, 2, 3, 4], ddof=1) - 0.04 / 3))  # 1.2858
    assert sp["iqr"] == pytest.approx(3.25 - 1.75) and sp["range"] == pytest.approx(3.0)
    for s in ("iqr", "range"):
        assert sp[f"{s}_lo"] <= sp[s] <= sp[f"{s}_hi"] and sp[f"{s}_lo"] < sp[f"{s}_hi"]
    assert sp["std_lo"] == pytest.approx(sp["std"]) == sp["std_hi"]  # no noise: the means are the truth
    assert sp2["std_lo"] < sp2["std"] < sp2["std_hi"]
    # FID: lower is better, so the worst point is the largest mean
    assert (sp["worst"], sp["worst_at"]) == (pytest.approx(4.0), 1e-2)
    assert (sp["best"], sp["best_at"]) == (pytest.approx(1.0), 1e-5)
    assert pd.isna(sp["reason"])
    up = S.axis_spread(known_means_grid("final.modes_covered"), "modes_covered", "train.lr", n_boot=N_BOOT).iloc[0]
    assert up["higher_is_better"] and up["worst_at"] == 1e-5 and up["best_at"] == 1e-2


def test_axis_spread_constant_metric_is_zero_with_degenerate_interval():
    sp = S.axis_spread(grid({x: [7.0, 7.0, 7.0] for x in MEANS}), "fid", "train.lr", n_boot=N_BOOT).iloc[0]
    for s in ("std", "iqr", "range"):
        assert sp[s] == 0 and sp[f"{s}_lo"] == 0 and sp[f"{s}_hi"] == 0
    assert sp["reason"].startswith("degenerate")


def test_axis_spread_single_seed_gives_nan_interval_with_reason():
    t = grid({x: [m] for x, m in MEANS.items()})
    sp = S.axis_spread(t, "fid", "train.lr", n_boot=N_BOOT).iloc[0]
    assert sp["std"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))  # the estimate is still reported
    assert all(math.isnan(sp[f"{s}_{b}"]) for s in ("std", "iqr", "range") for b in ("lo", "hi"))
    assert "fewer than 2 seeds" in sp["reason"]
    one_point = S.axis_spread(grid({1e-3: [1.0, 2.0]}), "fid", "train.lr", n_boot=N_BOOT).iloc[0]
    assert math.isnan(one_point["std"]) and math.isnan(one_point["std_lo"])
    assert "fewer than 2 axis points" in one_point["reason"]


def test_axis_spread_reproducible_and_independent_of_other_groups():
    t = known_means_grid()
    a = S.axis_spread(t, "fid", "train.lr", n_boot=N_BOOT, seed=3)
    pd.testing.assert_frame_equal(a, S.axis_spread(t, "fid", "train.lr", n_boot=N_BOOT, seed=3))
    assert a["iqr_lo"].iloc[0] != S.axis_spread(t, "fid", "train.lr", n_boot=N_BOOT, seed=4)["iqr_lo"].iloc[0]
    other = known_means_grid().assign(variant="lsgan", trial_id=lambda d: "u" + d["trial_id"])
    both = S.axis_spread(pd.concat([other, t]), "fid", "train.lr", n_boot=N_BOOT, seed=3).set_index("variant")
    assert both.loc["ns", "std_lo"] == a["std_lo"].iloc[0] and both.loc["ns", "std_hi"] == a["std_hi"].iloc[0]


def test_axis_spread_empty_point_left_out():
    t = known_means_grid()
    t.loc[len(t)] = trial(99, **{"train.lr": 0.1, "status": "diverged"})
    sp = S.axis_spread(t, "fid", "train.lr", n_boot=N_BOOT).iloc[0]
    assert sp["n_points"] == 4 and sp["n_points_empty"] == 1 and "without a finite value" in sp["reason"]


# ----------------------------------------------------------------------------- 2. success rate


def test_wilson_against_hand_computed_values():
    # 8 of 10: z = 1.959964; centre = (0.8 + z^2/20) / (1 + z^2/10) = 0.716742;
    # half = z / (1 + z^2/10) * sqrt(0.016 + z^2/400) = 0.226577
    lo, hi = S.wilson_interval(8, 10)
    assert lo == pytest.approx(0.4901625, abs=1e-6) and hi == pytest.approx(0.9433178, abs=1e-6)
    for k, n in [(0, 5), (5, 5), (3, 17), (40, 50)]:  # the closed form at another level
        z, p = sps.norm.ppf(0.95), k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        assert S.wilson_interval(k, n, level=0.9) == pytest.approx((centre - half, centre + half), abs=1e-12)
    # no successes / all successes: the bound at the edge is exactly 0 / 1, the other one is not
    assert S.wilson_interval(0, 5)[0] == 0.0 and 0 < S.wilson_interval(0, 5)[1] < 1
    assert S.wilson_interval(5, 5)[1] == 1.0 and 0 < S.wilson_interval(5, 5)[0] < 1
    assert all(math.isnan(x) for x in S.wilson_interval(1, 1))


def test_success_rate_dict_rule_statuses_and_failed():
    rows = []
    # ring8 (8 modes): success when >= 4 modes; 10 trials: 6 good, 2 collapsed, 2 diverged, + 1 failed
    for i, (status, modes) in enumerate([("ok", 8)] * 6 + [("ok", 2)] * 2 + [("diverged", np.nan)] * 2
                                        + [("failed", np.nan)]):
        rows.append(trial(i, status=status, **{"final.modes_covered": modes, "seed": i}))
    # images: recall >= 0.1
    for i, r in enumerate([0.5, 0.05, 0.2]):
        rows.append(trial(100 + i, **{"dataset.name": "fashion_mnist", "final.recall": r, "seed": i}))
    t = pd.DataFrame(rows)
    rule = {"ring8": ("final.modes_covered", ">=", 4), "*": ("final.recall", ">=", 0.1)}
    sr = S.success_rate(t, rule).set_index("dataset.name")
    ring = sr.loc["ring8"]
    assert (ring["successes"], ring["n"], ring["n_failed"], ring["diverged"]) == (6, 10, 1, 2)
    assert ring["rate"] == 0.6 and (ring["lo"], ring["hi"]) == pytest.approx(S.wilson_interval(6, 10))
    assert ring["diverged_rate"] == 0.2
    assert (ring["diverged_lo"], ring["diverged_hi"]) == pytest.approx(S.wilson_interval(2, 10))
    assert "1 failed" in ring["reason"]
    assert sr.loc["fashion_mnist", "successes"] == 2 and sr.loc["fashion_mnist", "n"] == 3
    assert S.success_rate(t, rule, count_failed=True).set_index("dataset.name").loc["ring8", "n"] == 11
    # a callable rule gives the same answer
    cal = S.success_rate(t, lambda d: (d["final.modes_covered"] >= 4) | (d["final.recall"] >= 0.1))
    pd.testing.assert_frame_equal(cal, S.success_rate(t, rule))
    with pytest.raises(KeyError, match="fashion_mnist"):
        S.success_rate(t, {"ring8": ("final.modes_covered", ">=", 4)})
    single = S.success_rate(t.iloc[:1], rule).iloc[0]
    assert single["n"] == 1 and math.isnan(single["lo"]) and "fewer than 2" in single["reason"]


# ----------------------------------------------------------------------------- 3. budget curve


def brute_force(values, k, best, replace=False):
    draws = itertools.product(values, repeat=k) if replace else itertools.combinations(values, k)
    return np.mean([best(d) for d in draws])


@pytest.mark.parametrize("replace", [False, True])
def test_budget_closed_form_matches_enumeration(replace):
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0]  # includes a tie
    for higher, best in ((True, max), (False, min)):
        e = S.expected_best(values, higher, replace=replace)
        for k in range(1, len(values) + 1):
            assert e[k - 1] == pytest.approx(brute_force(values, k, best, replace)), (higher, k)


def test_budget_curve_endpoints_band_and_edge_cases():
    rng = np.random.default_rng(0)
    v = rng.normal(30, 5, size=20)
    for higher in (True, False):
        bc = S.budget_curve(v, higher, n_boot=N_BOOT, seed=1)
        assert list(bc["k"]) == list(range(1, 21))
        assert bc["expected_best"].iloc[0] == pytest.approx(v.mean())
        assert bc["expected_best"].iloc[-1] == pytest.approx(v.max() if higher else v.min())
        diffs = np.diff(bc["expected_best"])
        assert np.all(diffs >= -1e-9) if higher else np.all(diffs <= 1e-9)  # more budget never hurts
        assert np.all(bc["lo"] <= bc["hi"]) and bc["lo"].iloc[0] < v.mean() < bc["hi"].iloc[0]
    again = S.budget_curve(v, False, n_boot=N_BOOT, seed=1)
    pd.testing.assert_frame_equal(again, S.budget_curve(v, False, n_boot=N_BOOT, seed=1))
    dropped = S.budget_curve(np.r_[v, np.nan], False, n_boot=N_BOOT, seed=1, nan_policy="drop")
    assert len(dropped) == 20 and (dropped["n_failed"] == 0).all()
    assert dropped["expected_best"].tolist() == pytest.approx(again["expected_best"].tolist())
    failed = S.budget_curve(np.r_[v, np.nan], False, n_boot=N_BOOT)  # a failure is an outcome, the worst value
    assert len(failed) == 21 and (failed["n_failed"] == 1).all() and (failed["failure_value"] == v.max()).all()
    with pytest.raises(ValueError):
        S.budget_curve([1.0, np.nan], True, nan_policy="raise")
    one = S.budget_curve([2.5], True)
    assert one["expected_best"].tolist() == [2.5] and one["lo"].isna().all() and "fewer than 2" in one["reason"].iloc[0]
    const = S.budget_curve([4.0] * 5, True, n_boot=N_BOOT)
    assert const["expected_best"].tolist() == pytest.approx([4.0] * 5)
    assert const["lo"].tolist() == pytest.approx([4.0] * 5) and const["reason"].iloc[0].startswith("degenerate")


def test_budget_band_stays_within_the_metric_bounds():
    """A bimodal accuracy (chance-level arms and an oracle at 0.87: adaptation_fmnist's first report) drove the
    studentized band to 9 for a metric in [0, 1]; with `bounds` its finite ends stay inside, the curve unchanged."""
    v = np.r_[np.full(9, 0.05), np.full(3, 0.87)] + np.linspace(0, 0.01, 12)
    free = S.budget_curve(v, True, n_boot=N_BOOT, seed=0)
    kept = S.budget_curve(v, True, n_boot=N_BOOT, seed=0, bounds=(0.0, 1.0))
    assert free["hi"].max() > 1  # what the bound is for
    fin = np.isfinite(kept["hi"]) & np.isfinite(kept["lo"])
    assert ((kept.loc[fin, ["lo", "hi"]] >= 0) & (kept.loc[fin, ["lo", "hi"]] <= 1)).all().all()
    pd.testing.assert_series_equal(kept["expected_best"], free["expected_best"])


def test_budget_weights_large_n_are_finite():
    e = S.expected_best(np.arange(1500.0), True)
    assert np.isfinite(e).all() and e[0] == pytest.approx(749.5) and e[-1] == pytest.approx(1499.0)


# ----------------------------------------------------------------------------- 4. paired difference


def lens_pairs(control_values, shift, lrs=(1e-3,), K=1000.0, start_id=0):
    """A no-lens and a lens trial per seed (and lr): same config except the lens columns."""
    rows = []
    for lr in lrs:
        for s, c in enumerate(control_values):
            common = {"seed": s, "train.lr": lr}
            rows.append(trial(start_id + len(rows), **common, **{"final.fid": c}))
            rows.append(trial(start_id + len(rows), variant=f"ns+lens(sine K={K:g})",
                              **common, **{"final.fid": c + shift, "variant.lens.schedule": "sine",
                                           "variant.lens.K": K}))
    return pd.DataFrame(rows)


def test_paired_constant_shift_recovers_shift():
    rng = np.random.default_rng(1)
    t = lens_pairs(rng.normal(50, 10, size=8), shift=-5.0)
    r = S.paired_difference(t, "fid", n_boot=N_BOOT)
    s = r.summary.iloc[0]
    assert (s["n_pairs"], s["n"], s["n_treated_unpaired"], s["n_control_unpaired"]) == (8, 8, 0, 0)
    assert s["arm"] == "schedule=sine, K=1000"
    assert s["mean_diff"] == pytest.approx(-5.0) and s["lo"] <= -5.0 + 1e-9 and s["hi"] >= -5.0 - 1e-9
    assert s["p_value"] == pytest.approx(2 / 2**8) and s["p_value"] < 0.01  # exact: all 8 signs agree
    assert s["rank_biserial"] == -1.0 and s["d_z"] == -math.inf
    assert s["frac_better"] == 1.0 and s["frac_worse"] == 0.0  # lower FID is better
    assert s["reason"].startswith("degenerate")  # a constant shift has a zero-width (true) band
    assert len(r.pairs) == 8 and np.allclose(r.pairs["diff"], -5.0)
    assert set(r.pairs["treated_id"]) & set(r.pairs["control_id"]) == set()


def test_paired_noisy_shift_ci_covers_and_pairs_within_other_config():
    rng = np.random.default_rng(2)
    t = lens_pairs(rng.normal(50, 10, size=10), shift=3.0, lrs=(1e-4, 1e-3))
    noise = rng.normal(0, 0.5, size=len(t))
    t["final.fid"] += np.where(t["variant.lens.schedule"].notna(), noise, 0.0)
    s = S.paired_difference(t, "fid", n_boot=N_BOOT).summary.iloc[0]
    assert s["n_pairs"] == 20  # paired within lr: a seed's two lrs are not crossed
    assert s["lo"] < 3.0 < s["hi"] and s["p_value"] < 1e-3 and s["rank_biserial"] > 0.9
    assert s["d_z"] == pytest.approx(s["mean_diff"] / s["sd_diff"])
    # pairing on seed alone would cross lrs and make every key ambiguous
    with pytest.raises(ValueError, match="several"):
        S.paired_difference(t, "fid", pair_on=["seed"], by=(), n_boot=N_BOOT)


def test_paired_edge_cases():
    zero = S.paired_difference(lens_pairs([1.0, 2.0, 3.0], shift=0.0), "fid", n_boot=N_BOOT).summary.iloc[0]
    assert zero["mean_diff"] == 0 and zero["p_value"] == 1.0 and "all differences are zero" in zero["reason"]
    assert zero["rank_biserial"] == 0.0 and math.isnan(zero["d_z"])
    one = S.paired_difference(lens_pairs([1.0], shift=1.0), "fid", n_boot=N_BOOT).summary.iloc[0]
    assert one["n"] == 1 and math.isnan(one["lo"]) and math.isnan(one["p_value"])
    assert "fewer than 2 pairs" in one["reason"]
    # a diverged lens trial: its pair is counted but not used; an unmatched lens trial is counted
    t = lens_pairs([1.0, 2.0, 3.0, 4.0], shift=1.0)
    t.loc[1, ["status", "final.fid"]] = ["diverged", np.nan]
    t.loc[len(t)] = trial(50, seed=9, **{"final.fid": 1.0, "variant.lens.schedule": "sine", "variant.lens.K": 1000.0})
    s = S.paired_difference(t, "fid", n_boot=N_BOOT).summary.iloc[0]
    assert (s["n_pairs"], s["n"], s["n_dropped"], s["n_treated_unpaired"]) == (4, 3, 1, 1)
    assert "1 pair(s) dropped" in s["reason"]


def test_paired_two_arms_and_explicit_treatment():
    t = pd.concat([lens_pairs([1.0, 2.0, 3.0], shift=1.0, K=500.0),
                   lens_pairs([1.0, 2.0, 3.0], shift=2.0, K=2000.0, start_id=100)])
    t = t.drop_duplicates(subset=["seed", "variant.lens.K"])  # one shared no-lens control per seed
    summ = S.paired_difference(t, "fid", n_boot=N_BOOT).summary.set_index("arm")
    assert summ.loc["schedule=sine, K=500", "mean_diff"] == pytest.approx(1.0)
    assert summ.loc["schedule=sine, K=2000", "mean_diff"] == pytest.approx(2.0)
    # explicit (column, value) treatment and control: K=2000 vs K=500, pairing on seed
    two = S.paired_difference(t, "fid", treatment=("variant.lens.K", 2000.0), control=("variant.lens.K", 500.0),
                              treatment_columns=["variant.lens.K", "variant"], n_boot=N_BOOT).summary.iloc[0]
    assert two["n"] == 3 and two["mean_diff"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- 5. spread comparison


def test_spread_ratio_known_values_and_tests():
    a = [[0.9, 1.1], [1.0, 1.2], [0.8, 1.0], [1.05, 1.15]]  # point means 1.0, 1.1, 0.9, 1.1
    b = [[0.9, 1.1], [1.9, 2.1], [2.9, 3.1], [3.9, 4.1]]    # point means 1, 2, 3, 4
    r = S.spread_ratio(a, b, n_boot=N_BOOT, seed=0)
    expect = S.true_spread(a)[0] / S.true_spread(b)[0]  # the true spreads, seed noise taken out
    assert r.std_a == S.true_spread(a)[0] and r.std_b == S.true_spread(b)[0] < np.std([1, 2, 3, 4], ddof=1)
    assert r.ratio == pytest.approx(expect) and r.ratio_lo < expect < r.ratio_hi < 1
    bf = sps.levene([1.0, 1.1, 0.9, 1.1], [1, 2, 3, 4], center="median")
    assert r.test_on == "point_means" and r.p_value == pytest.approx(bf.pvalue)
    rt = S.spread_ratio(a, b, n_boot=N_BOOT, test_on="trials")
    assert rt.p_value == pytest.approx(sps.levene(np.ravel(a), np.ravel(b), center="median").pvalue)
    assert S.spread_ratio(a, b, n_boot=N_BOOT, seed=5) == S.spread_ratio(a, b, n_boot=N_BOOT, seed=5)
    flat = S.spread_ratio(a, [[2.0, 2.0]] * 4, n_boot=N_BOOT)
    assert flat.ratio == math.inf and "spread is 0" in flat.reason
    single = S.spread_ratio([[1.0], [2.0]], [[1.0], [3.0]], n_boot=N_BOOT)
    assert math.isnan(single.ratio_lo) and "fewer than 2 seeds" in single.reason
    assert math.isnan(single.p_value) and "Brown-Forsythe undefined" in single.reason  # 2 points a side
    both_flat = S.spread_ratio([[1.0, 1.0]] * 3, [[2.0, 2.0]] * 3, n_boot=N_BOOT)
    assert math.isnan(both_flat.p_value) and "neither side varies" in both_flat.reason


@pytest.mark.parametrize("seeds,tau", [(2, 0.0), (2, 1.0), (3, 0.1), (12, 1.0)])
def test_true_spread_covers_the_spread_of_the_true_means(seeds, tau):
    """Normal seed noise (std 1), 5 axis points whose true means have spread tau: the interval holds tau in
    at least 93 % of 600 simulated studies; the seed-resampling bootstrap of the std of the point means
    (what axis_spread reported before) held it far less often."""
    from bench.stats.spread import _boot_point_means

    rng = np.random.default_rng(seeds)
    mu = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    mu = mu / mu.std(ddof=1) * tau
    hit = boot_hit = 0
    for _ in range(600):
        pts = [m + rng.standard_normal(seeds) for m in mu]
        est, lo, hi, floor = S.true_spread(pts)
        assert lo <= hi and floor > 0
        hit += lo <= tau <= hi
        b = np.std(_boot_point_means(pts, 200, rng), axis=1, ddof=1)
        boot_hit += np.percentile(b, 2.5) <= tau <= np.percentile(b, 97.5)
    assert hit / 600 >= 0.93
    assert boot_hit / 600 < (0.85 if seeds <= 3 else 0.95)  # measured 0.0-0.77 with 2-3 seeds, 0.90 with 12


def test_true_spread_paired_by_seed():
    """A study's seeds are blocks: the same seed shifts every axis point alike (here by N(0, 1), ten times
    the seed x point noise 0.1). Paired, the shift cancels: the interval holds the true spread 0.3 in
    >= 95 % of simulated studies and is narrow; treated as independent seeds it would take the shift for
    noise (noise floor ~0.7, interval up to ~3)."""
    rng = np.random.default_rng(11)
    mu = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    mu = mu / mu.std(ddof=1) * 0.3
    hit, widths, floors = 0, [], []
    for _ in range(300):
        shift = rng.standard_normal(3)
        pts = [m + shift + 0.1 * rng.standard_normal(3) for m in mu]
        est, lo, hi, floor = S.true_spread(pts, paired=True)
        hit += lo <= 0.3 <= hi
        widths.append(hi - lo)
        floors.append(S.true_spread(pts)[3])
    assert hit / 300 >= 0.95 and np.median(widths) < 0.6 and np.median(floors) > 0.4


def test_axis_spread_pairs_on_the_seeds_every_point_has():
    """A seed that diverged at one point is left out of the paired spread (not the whole design treated as
    unpaired, whose within-point variance would count the seed effect as noise: 64-87 % coverage)."""
    rng = np.random.default_rng(3)
    hit = 0
    for r in range(200):
        shift = rng.standard_normal(4)
        vals = {x: m * 0.3 / 1.2909944 + shift + 0.1 * rng.standard_normal(4) for x, m in MEANS.items()}
        t = grid({x: list(v) for x, v in vals.items()})
        t.loc[(t["train.lr"] == 1e-3) & (t["seed"] == 3), "status"] = "diverged"
        sp = S.axis_spread(t, "fid", "train.lr", n_boot=50).iloc[0]
        assert sp["paired"] and "paired on the 3 seeds every point has: 3 trial(s)" in sp["reason"]
        hit += sp["std_lo"] <= 0.3 <= sp["std_hi"]
    assert hit / 200 >= 0.93


def test_true_spread_empty_interval_is_said():
    """Means that agree more closely than the seed noise predicts: the interval is empty ([0, 0]) and the
    reason says so instead of passing it off as certainty."""
    t = grid({1e-4: [25.0, 24.0, 25.0], 1e-3: [24.0, 25.0, 25.0], 1e-2: [25.0, 25.0, 24.0]})
    t["seed"] = range(len(t))  # other seeds at every point: unpaired
    sp = S.axis_spread(t, "fid", "train.lr", n_boot=50).iloc[0]
    assert (sp["std"], sp["std_lo"], sp["std_hi"]) == (0, 0, 0) and sp["noise_floor"] > 0
    assert "agree more closely than the seed noise predicts" in sp["reason"]
    with pytest.raises(ValueError, match="same seeds"):
        S.true_spread([[1.0, 2.0], [1.0]], paired=True)


def test_spread_ratio_interval_covers_when_one_side_is_mostly_noise():
    """ED//GAN-like: a's true spread (0.1) well under its seed noise (0.3), b's 1: the ratio's interval
    holds the true ratio 0.1 in >= 95 % of simulated studies (the bootstrap it replaces: about 26 %)."""
    rng = np.random.default_rng(7)
    base = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    base = base / base.std(ddof=1)
    hit = 0
    for _ in range(300):
        a = [m * 0.1 + 0.3 * rng.standard_normal(2) for m in base]
        b = [m * 1.0 + 0.3 * rng.standard_normal(2) for m in base]
        r = S.spread_ratio(a, b)
        hit += r.ratio_lo <= 0.1 <= r.ratio_hi
    assert hit / 300 >= 0.95


@pytest.mark.parametrize("n", [2, 3, 12])
def test_t_interval_covers_the_mean_as_it_claims(n):
    """Means over seeds and paired differences: the t interval holds the true mean in ~95 % of 2000
    simulated studies; a percentile bootstrap of the mean in far fewer with 2-3 seeds (51 %, 73 %)."""
    rng = np.random.default_rng(n)
    hit = 0
    for _ in range(2000):
        v = 1.0 + 0.5 * rng.standard_normal(n)
        lo, hi = S.t_interval(v)
        hit += lo <= 1.0 <= hi
    assert 0.93 <= hit / 2000 <= 0.97
    assert all(math.isnan(x) for x in S.t_interval([1.0]))


def test_spread_comparison_dataframe_level():
    rows = []
    for v, means in (("ED//GAN", [1.0, 1.1, 0.9, 1.1]), ("ED+GAN", [1.0, 2.0, 3.0, 4.0])):
        for w, m in zip((0.001, 0.01, 0.1, 1.0), means):
            for s, e in enumerate((-0.1, 0.1)):
                rows.append(trial(len(rows), variant=v, seed=s, **{"variant.w": w, "final.fid": m + e}))
    t = pd.DataFrame(rows)
    out = S.spread_comparison(t, "fid", "variant.w", "variant", "ED//GAN", "ED+GAN", n_boot=N_BOOT).iloc[0]
    assert out["dataset.name"] == "ring8" and out["n_points_a"] == 4 and out["n_points_b"] == 4
    means = {"ED//GAN": [1.0, 1.1, 0.9, 1.1], "ED+GAN": [1.0, 2.0, 3.0, 4.0]}
    spreads = [S.true_spread([[m - 0.1, m + 0.1] for m in means[v]], paired=True)[0] for v in means]
    assert out["ratio"] == pytest.approx(spreads[0] / spreads[1])
    assert out["ratio_lo"] <= out["ratio"] <= out["ratio_hi"]


# ----------------------------------------------------------------------------- 6. Holm


def test_wilcoxon_is_scipys_test_with_ties_and_zeros():
    """bench's Wilcoxon computes scipy's permutation null from the ranks (fast): the same statistic and
    p, float for float, where scipy permutes (ties or zeros, n <= 13) and where it does not."""
    from bench.stats.paired import wilcoxon

    rng = np.random.default_rng(7)
    for _ in range(80):
        n = int(rng.choice([2, 3, 4, 5, 6, 7, 8, 9, 14, 15]))  # 13 and fewer: scipy permutes (slowly)
        d = rng.integers(-3, 4, n) * rng.choice([1.0, 0.5, 0.1])
        if not d.any():
            continue
        w = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        assert wilcoxon(d) == (float(w.statistic), float(w.pvalue)), d
    assert wilcoxon(np.array([1.0, 1.0, 2.0, -0.5, 0.0, 3.0]))[1] == 0.125  # ranks 2.5 2.5 4 1 5: R- <= 1 in 2 of 32 flips, x 2 sides


def test_holm_hand_computed_example():
    # sorted: 0.005*4 = 0.02; 0.01*3 = 0.03; 0.03*2 = 0.06; 0.04*1 = 0.04 -> monotone 0.06
    assert S.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert S.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    got = S.holm(pd.Series([0.01, np.nan, 0.02], index=["a", "b", "c"]))
    assert list(got.index) == ["a", "b", "c"] and math.isnan(got["b"])
    assert got["a"] == pytest.approx(0.02) and got["c"] == pytest.approx(0.02)  # m = 2: NaN not counted
    assert S.holm([]).shape == (0,)


def test_no_torch_import():
    code = "import sys, bench.stats; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
