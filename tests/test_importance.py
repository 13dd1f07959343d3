"""Hyperparameter importance (issue 23, item 2): fANOVA through optuna finds the knob the metric depends on."""

import numpy as np
import pandas as pd
import pytest

from bench.stats.importance import importance


def points(n=60, seed=0):
    rng = np.random.default_rng(seed)
    lr = np.exp(rng.uniform(np.log(1e-5), np.log(1e-2), n))
    beta1 = rng.uniform(0, 0.9, n)
    width = rng.choice([64, 128, 256], n).astype(str)
    # the metric is the learning rate's distance from 1e-3 on a log scale; beta1 and width do nothing
    fid = 20 + 30 * np.abs(np.log10(lr) + 3) + rng.normal(0, 0.5, n)
    fid[:3] = np.nan  # three diverged points: failures, at the worst value
    return pd.DataFrame({"train.lr": lr, "train.beta1": beta1, "model.width": width, "fid": fid})


def test_the_knob_that_matters_gets_most_of_the_variance():
    t = importance(points(), ["train.lr", "train.beta1", "model.width"], "fid", higher_is_better=False, repeats=3)
    assert list(t["knob"])[0] == "train.lr" and t.loc[0, "importance"] > 0.6
    assert (t["lo"] <= t["importance"]).all() and (t["importance"] <= t["hi"]).all()
    assert np.isclose(t["importance"].sum(), 1.0) and t.loc[0, "n_failed"] == 3 and bool(t.loc[0, "log"])


def test_too_few_points_or_knobs_say_so():
    with pytest.raises(ValueError, match="at least 8 sampled points"):
        importance(points(5), ["train.lr", "train.beta1"], "fid", higher_is_better=False)
    p = points().assign(**{"train.beta1": 0.5})
    with pytest.raises(ValueError, match="at least 2 sampled knobs that vary"):
        importance(p, ["train.lr", "train.beta1"], "fid", higher_is_better=False)
