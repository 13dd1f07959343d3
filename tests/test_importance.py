"""Hyperparameter importance (issue 23, item 2): fANOVA through optuna finds the knob the metric depends on."""

import numpy as np
import pandas as pd
import pytest

from bench.stats.importance import importance, partial_dependence


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


# ----------------------------------------------------------------------------- partial dependence


def bowl(n=120, seed=1):
    """The metric peaks at lr = 1e-3 on a log scale, y = -(log10(lr) + 3)^2 + noise (higher is better); beta1,
    the width and the activation do nothing."""
    rng = np.random.default_rng(seed)
    lr = 10 ** rng.uniform(-5, -1, n)
    y = -(np.log10(lr) + 3) ** 2 + rng.normal(0, 0.2, n)
    return pd.DataFrame({"train.lr": lr, "train.beta1": rng.uniform(0, 0.9, n),
                         "model.width": rng.choice([64, 128, 256], n),
                         "model.act": rng.choice(["relu", "lrelu", "elu"], n), "score": y})


KNOBS = ["train.lr", "train.beta1", "model.width", "model.act"]


def test_partial_dependence_recovers_the_bowl_and_a_flat_knob():
    p = bowl()
    lr = partial_dependence(p, "train.lr", "score", True, KNOBS, grid=21, repeats=3)
    assert list(lr.columns[:6]) == ["knob", "value", "mean", "lo", "hi", "n_points"] and len(lr) == 21
    # the grid is even on the log scale (lr is log-uniform: found without being told) and spans the sample
    assert np.allclose(np.diff(np.log10(lr["value"])), np.diff(np.log10(lr["value"]))[0])
    assert (lr["value"].min(), lr["value"].max()) == pytest.approx((p["train.lr"].min(), p["train.lr"].max()))
    peak = lr.loc[lr["mean"].idxmax(), "value"]
    assert 10 ** -3.5 <= peak <= 10 ** -2.5
    assert lr["mean"].max() - lr["mean"].min() > 2.5  # the bowl drops by 4 at the ends
    assert (lr["lo"] <= lr["mean"]).all() and (lr["mean"] <= lr["hi"]).all() and (lr["n_points"] == 120).all()
    beta = partial_dependence(p, "train.beta1", "score", True, KNOBS, grid=10, repeats=3)
    assert np.allclose(np.diff(beta["value"]), np.diff(beta["value"])[0])  # uniform from near 0: a linear grid
    flat = 0.2 * (lr["mean"].max() - lr["mean"].min())
    assert beta["mean"].max() - beta["mean"].min() < flat
    act = partial_dependence(p, "model.act", "score", True, KNOBS, repeats=3)
    assert list(act["value"]) == ["elu", "lrelu", "relu"]  # one row per category
    width = partial_dependence(p, "model.width", "score", True, KNOBS, repeats=3)
    assert list(width["value"]) == [64, 128, 256]  # a numeric knob sampled from 3 values: those 3
    assert act["mean"].max() - act["mean"].min() < flat and width["mean"].max() - width["mean"].min() < flat
    t = importance(p, KNOBS, "score", higher_is_better=True, repeats=3)
    assert t.loc[0, "knob"] == "train.lr" and t.loc[0, "importance"] > 0.8


def test_partial_dependence_counts_failures_and_is_reproducible():
    p = bowl()
    worst = p["score"].min()
    p.loc[p["train.lr"] > 10 ** -1.5, "score"] = np.nan  # the largest rates diverge
    d = partial_dependence(p, "train.lr", "score", True, KNOBS, repeats=2)
    assert (d["n_failed"] == int(p["score"].isna().sum())).all() and d["n_failed"].iloc[0] > 5
    # a failure enters at the worst finished value: the top of the grid sits near it, not at the bowl's -2.25..-4
    assert d["mean"].iloc[-1] < worst + 1.5
    low = partial_dependence(p, "train.lr", "score", True, KNOBS, repeats=2, failure_value=-20.0)
    assert low["mean"].iloc[-1] < d["mean"].iloc[-1] - 5
    pd.testing.assert_frame_equal(d, partial_dependence(p, "train.lr", "score", True, KNOBS, repeats=2))
    lin = partial_dependence(p, "train.lr", "score", True, KNOBS, repeats=2, log=[])  # told: not a log knob
    assert np.allclose(np.diff(lin["value"]), np.diff(lin["value"])[0])


def test_partial_dependence_says_when_it_cannot():
    with pytest.raises(ValueError, match="at least 8 sampled points"):
        partial_dependence(bowl(6), "train.lr", "score", True, KNOBS)
    p = bowl().assign(**{"train.beta1": 0.5})
    with pytest.raises(ValueError, match="not one of the knobs that vary"):
        partial_dependence(p, "train.beta1", "score", True, KNOBS)
    with pytest.raises(ValueError, match="every point failed"):
        partial_dependence(bowl().assign(score=np.nan), "train.lr", "score", True, KNOBS)
