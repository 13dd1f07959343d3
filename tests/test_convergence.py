"""Convergence speed (issue 23, item 2): steps to a target, to within a fraction of the run's own best, and the
normalised area under the curve, worked out by hand on small curves."""

import numpy as np
import pandas as pd

from bench import stats


def curves():
    # a: FID-like (lower is better) 100 -> 40 -> 20 -> 21; b: diverges after its second evaluation (NaN)
    return pd.DataFrame({"trial_id": ["a"] * 4 + ["b"] * 3, "step": [0, 100, 200, 300, 0, 100, 200],
                         "fid": [100.0, 40.0, 20.0, 21.0, 90.0, 60.0, np.nan]})


def test_steps_and_auc_by_hand():
    t = stats.convergence(curves(), "fid", target=30, within=0.1).set_index("trial_id")
    a, b = t.loc["a"], t.loc["b"]
    assert a["best"] == 20 and a["best_step"] == 200
    assert a["steps_to_within"] == 200      # 21 is within 10 % of 20 too, but 200 comes first
    assert a["steps_to_target"] == 200 and a["reached_target"]
    # trapezoids: (100+40)/2*100 + (40+20)/2*100 + (20+21)/2*100 = 7000+3000+2050 over 300 steps
    assert np.isclose(a["auc"], (7000 + 3000 + 2050) / 300)
    # the diverged run: its NaN evaluation is left out, and it never reaches the target (not counted as fast)
    assert b["n_evals"] == 2 and b["last_step"] == 100 and not b["reached_target"] and np.isnan(b["steps_to_target"])
    assert np.isclose(b["auc"], (90 + 60) / 2)


def test_higher_is_better_and_within():
    c = pd.DataFrame({"trial_id": "r", "step": [0, 10, 20, 30], "recall": [0.1, 0.45, 0.5, 0.2]})
    r = stats.convergence(c, "recall", target=0.4, within=0.2).iloc[0]
    assert r["best"] == 0.5 and r["best_step"] == 20
    assert r["steps_to_within"] == 10       # |0.45 - 0.5| <= 0.2 * 0.5
    assert r["steps_to_target"] == 10
    r = stats.convergence(c, "recall", target=0.9).iloc[0]
    assert not r["reached_target"] and np.isnan(r["steps_to_target"])


def test_overtaking_budget_by_hand():
    # lower is better: a starts worse (mean of a wide spread) but its best is better from k = 3 on
    a = pd.DataFrame({"expected_best": [5.0, 3.5, 2.5, 2.0]})
    b = pd.DataFrame({"expected_best": [4.0, 3.0, 2.8, 2.6]})
    assert stats.overtaking_budget(a, b, higher_is_better=False) == 3
    assert stats.overtaking_budget(b, a, higher_is_better=False) is None
    assert stats.overtaking_budget(b, a, higher_is_better=True) == 3  # the same numbers read higher-is-better


def test_tolerance_success_counts_failures_and_uses_the_best_of_any_variant():
    t = stats.tolerance_success({"x": [10.0, 10.5, 30.0, np.nan], "y": [12.0, 11.2, 10.9]},
                                higher_is_better=False, tolerance=0.1).set_index("variant")
    # best of any variant: 10; within 10 %: <= 11
    assert t.loc["x", "threshold"] == 11 and t.loc["x", "successes"] == 2 and t.loc["x", "n"] == 4
    assert t.loc["x", "failed"] == 1 and t.loc["x", "rate"] == 0.5
    assert t.loc["y", "successes"] == 1 and np.isclose(t.loc["y", "rate"], 1 / 3)
    # the Wilson interval by its formula
    z, n, p = 1.959963984540054, 4, 0.5
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert np.isclose(t.loc["x", "lo"], c - h) and np.isclose(t.loc["x", "hi"], c + h)


def test_seed_share_by_hand_and_its_coverage():
    space = [10.0, 14.0, 18.0, 22.0]          # variance 26.67 (hyperparameters + seed)
    retrain = [[10.0, 12.0], [20.0, 21.0, 22.0]]  # pooled within-point variance (2 + 2) / 3
    r = stats.seed_share(space, retrain)
    assert np.isclose(r["var_space"], np.var(space, ddof=1)) and np.isclose(r["var_seed"], 4 / 3)
    assert np.isclose(r["share"], (4 / 3) / np.var(space, ddof=1)) and r["lo"] < r["share"] < r["hi"]
    # coverage of the F interval: seed std 1, stage-1 variance 1 + 3 (hyperparameters), 20 points, 3 x 8 seeds
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        s = stats.seed_share(rng.normal(0, 2, 20), rng.normal(0, 1, (3, 8)))
        hits += s["lo"] <= 0.25 <= s["hi"]
    assert 0.93 <= hits / 2000 <= 0.97
