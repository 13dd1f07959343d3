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


# ----------------------------------------------------------------------------- derived per-trial metrics
def test_derived_columns_by_hand_and_a_failed_run_is_never_fast():
    """final.auc:<m> and final.steps_to_within:<m> per trial, from its curve: the trapezoids over the evaluated steps
    divided by their span, and the first evaluated step within 10 % (or @fraction) of the run's own best. A run
    marked diverged or failed gets no value even where its curve, cut short, would make it look quick; so does a
    trial without a curve; names that are not derived metrics add nothing."""
    from bench.stats.convergence import derived_columns

    c = curves()
    c = pd.concat([c, pd.DataFrame({"trial_id": "f", "step": [0, 100], "fid": [95.0, 19.0]})], ignore_index=True)
    trials = pd.DataFrame({"trial_id": ["a", "b", "f", "none"], "status": ["ok", "diverged", "failed", "ok"]})
    out = derived_columns(trials, c, ["auc:fid", "steps_to_within:fid", "steps_to_within:fid@0.06", "fid",
                                      "steps_to_within:recall"]).set_index("trial_id")
    assert set(out.columns) == {"status", "final.auc:fid", "final.steps_to_within:fid", "final.steps_to_within:fid@0.06",
                                "final.steps_to_within:recall"}
    assert np.isclose(out.loc["a", "final.auc:fid"], (7000 + 3000 + 2050) / 300)
    assert out.loc["a", "final.steps_to_within:fid"] == 200       # 20 is the best; 21 is within 10 % but later
    assert out.loc["a", "final.steps_to_within:fid@0.06"] == 200
    # b's and f's curves end early near their best (b at step 100, f at step 100): a failure, not a fast run
    assert out.loc[["b", "f", "none"], ["final.auc:fid", "final.steps_to_within:fid"]].isna().all().all()
    assert out["final.steps_to_within:recall"].isna().all()  # no recall curve at all: no value, no error
    assert "final.auc:fid" not in trials  # the caller's table is left as it is
    # the step is the evaluation grid's: a curve evaluated every 100 steps never gives 150
    fine = pd.DataFrame({"trial_id": "g", "step": [0, 100, 200], "fid": [50.0, 10.5, 10.0]})
    g = derived_columns(pd.DataFrame({"trial_id": ["g"], "status": ["ok"]}), fine, ["steps_to_within:fid"])
    assert g["final.steps_to_within:fid"].item() == 100


def test_derived_metric_names_direction_bounds_and_scale():
    from bench.metrics import BOUNDS, INFO, bounds, default_scale, derived, derived_error, scale_error
    from bench.stats.common import is_higher_better

    d = derived("steps_to_within:fid@0.05")
    assert (d.kind, d.base, d.within) == ("steps_to_within", "fid", 0.05)
    assert derived("auc:recall").within == 0.1 and derived("fid") is None and derived("auc:nope") is None
    # the area keeps the metric's direction, bounds and default scale; steps are lower-better, >= 0, relative
    assert is_higher_better("final.auc:recall") and not is_higher_better("auc:fid")
    assert not is_higher_better("steps_to_within:recall")
    assert bounds("auc:modes_covered", "ring8") == (0.0, 8.0) and bounds("steps_to_within:recall") == (0.0, np.inf)
    assert BOUNDS["auc:fid"] == BOUNDS["fid"]
    assert (default_scale("auc:energy_distance"), default_scale("auc:hq_fraction"),
            default_scale("steps_to_within:hq_fraction")) == ("relative", "absolute", "relative")
    assert scale_error("steps_to_within:fid", "log") and scale_error("auc:fid", "log") is None
    assert "auc:energy_distance" in INFO["auc:energy_distance"][1]
    assert INFO.get("auc:nope") is None and "auc:nope" not in INFO
    # iterating the tables lists the recorded metrics only (the report's metric lists, the Parquet schema)
    assert all(":" not in m for m in INFO) and all(":" not in m for m in BOUNDS) and len(INFO) == len(BOUNDS)
    assert derived_error("speed:fid").startswith("unknown derived metric kind 'speed'")
    assert derived_error("auc:fdi").startswith("unknown base metric 'fdi' in 'auc:fdi' (known: modes_covered,")
    assert "for steps_to_within only" in derived_error("auc:fid@0.1")
    assert "must be a number in (0, 1]" in derived_error("steps_to_within:fid@0")
