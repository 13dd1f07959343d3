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
