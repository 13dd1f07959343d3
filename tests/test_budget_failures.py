"""Budget curves count a failed configuration as an outcome (issue 22, item 3): a diverged or failed trial enters
Lucic et al.'s expected-best curve at the worst value, never dropped. Expected values are worked out by hand here
(or by enumerating every subset with itertools), not with the closed form bench.stats.budget uses."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from bench.stats import budget_curve


def by_enumeration(values, k, higher_is_better):
    """E[best of k drawn without replacement]: the mean over every k-subset (an independent route)."""
    best = max if higher_is_better else min
    subsets = list(itertools.combinations(values, k))
    return sum(best(s) for s in subsets) / len(subsets)


def test_a_failure_counts_at_the_failure_value_by_hand():
    # lower is better; the NaN (a diverged run) counts as 3, the worst value: the values are {1, 2, 3, 3}
    c = budget_curve([1.0, 2.0, np.nan, 3.0], higher_is_better=False, n_boot=200, failure_value=3.0)
    assert list(c["k"]) == [1, 2, 3, 4]
    # k = 1: the mean of 1, 2, 3, 3
    assert c["expected_best"].iloc[0] == pytest.approx((1 + 2 + 3 + 3) / 4)
    # k = 2: the 6 pairs' minima 1, 1, 1, 2, 2, 3
    assert c["expected_best"].iloc[1] == pytest.approx((1 + 1 + 1 + 2 + 2 + 3) / 6)
    # k = 3: leave one out: without 1 -> 2, without 2 -> 1, without either 3 -> 1
    assert c["expected_best"].iloc[2] == pytest.approx((2 + 1 + 1 + 1) / 4)
    assert c["expected_best"].iloc[3] == pytest.approx(1.0)
    # one failure in four: all k draws failed with probability 1/4 at k = 1, never with 2 or more
    assert c["p_all_failed"].tolist() == pytest.approx([0.25, 0.0, 0.0, 0.0])
    assert (c["n"] == 4).all() and (c["n_failed"] == 1).all() and (c["failure_value"] == 3.0).all()
    assert "1 failed configuration(s) counted at 3" in c["reason"].iloc[0]


def test_default_failure_value_is_the_worst_finished_value():
    """Without a failure_value the worst finite value stands for a failure (max when lower is better)."""
    c = budget_curve([1.0, 2.0, np.nan, 3.0], higher_is_better=False, n_boot=100)
    assert c["failure_value"].iloc[0] == 3.0
    assert c["expected_best"].iloc[0] == pytest.approx(9 / 4)
    h = budget_curve([5.0, np.nan, 7.0], higher_is_better=True, n_boot=100)
    assert h["failure_value"].iloc[0] == 5.0  # min when higher is better
    assert h["expected_best"].iloc[0] == pytest.approx((5 + 5 + 7) / 3)


def test_higher_is_better_with_two_failures_at_the_bound():
    # modes covered (higher is better), two diverged runs counted at 0 modes: {8, 0, 6, 0}
    c = budget_curve([8.0, np.nan, 6.0, np.nan], higher_is_better=True, n_boot=100, failure_value=0.0)
    assert c["expected_best"].iloc[0] == pytest.approx(14 / 4)
    # pairs' maxima: (8,0) 8, (8,6) 8, (8,0) 8, (0,6) 6, (0,0) 0, (6,0) 6
    assert c["expected_best"].iloc[1] == pytest.approx(36 / 6)
    # P(all k failed): 2/4 at k = 1; C(2,2)/C(4,2) = 1/6 at k = 2; 0 beyond
    assert c["p_all_failed"].tolist() == pytest.approx([0.5, 1 / 6, 0.0, 0.0])


def test_with_replacement_p_all_failed_is_the_power():
    c = budget_curve([8.0, np.nan, 6.0, np.nan], higher_is_better=True, n_boot=100, failure_value=0.0, replace=True)
    assert c["p_all_failed"].tolist() == pytest.approx([0.5 ** k for k in (1, 2, 3, 4)])
    # with replacement, E[max of 1] is still the mean
    assert c["expected_best"].iloc[0] == pytest.approx(14 / 4)
    # E[max of 2 with replacement] over the 16 ordered pairs of {8, 0, 6, 0}
    vals = [8.0, 0.0, 6.0, 0.0]
    assert c["expected_best"].iloc[1] == pytest.approx(np.mean([max(a, b) for a in vals for b in vals]))


@pytest.mark.parametrize("higher", [True, False])
def test_closed_form_matches_enumeration_with_failures(higher):
    rng = np.random.default_rng(3)
    x = rng.normal(5, 2, size=7)
    x[[1, 4]] = np.nan
    fail = (np.nanmin(x) - 1) if higher else (np.nanmax(x) + 1)
    c = budget_curve(x, higher_is_better=higher, n_boot=100, failure_value=fail)
    filled = [fail if math.isnan(v) else v for v in x]
    for k in range(1, 8):
        assert c["expected_best"].iloc[k - 1] == pytest.approx(by_enumeration(filled, k, higher))
        fails = sum(1 for s in itertools.combinations(range(7), k) if all(math.isnan(x[i]) for i in s))
        assert c["p_all_failed"].iloc[k - 1] == pytest.approx(fails / math.comb(7, k))


def test_a_variant_that_often_diverges_looks_worse_than_a_stable_one():
    """Same finished values; one variant diverged in half of its trials. Counted as failures, it is worse at small
    budgets; dropped (the old behaviour, nan_policy='drop') it would look exactly as good."""
    stable = [1.0, 2.0, 1.0, 2.0]
    flaky = [1.0, 2.0, np.nan, np.nan]
    fail = 5.0  # the worst value of the comparison, shared by both variants
    s = budget_curve(stable, higher_is_better=False, n_boot=100, failure_value=fail)
    f = budget_curve(flaky, higher_is_better=False, n_boot=100, failure_value=fail)
    assert s["expected_best"].iloc[0] == pytest.approx(1.5)
    assert f["expected_best"].iloc[0] == pytest.approx((1 + 2 + 5 + 5) / 4)
    assert f["expected_best"].iloc[0] > s["expected_best"].iloc[0]
    assert f["p_all_failed"].iloc[0] == pytest.approx(0.5) and s["p_all_failed"].iloc[0] == 0
    # k = 2: the flaky one fails both draws with probability C(2,2)/C(4,2) = 1/6
    assert f["p_all_failed"].iloc[1] == pytest.approx(1 / 6)
    assert (f["expected_best"].to_numpy() >= s["expected_best"].to_numpy() - 1e-12).all()
    dropped = budget_curve(flaky, higher_is_better=False, n_boot=100, nan_policy="drop")
    assert dropped["expected_best"].iloc[0] == pytest.approx(s["expected_best"].iloc[0])


def test_drop_reproduces_the_old_curve():
    c = budget_curve([1.0, 2.0, np.nan, 3.0], higher_is_better=False, n_boot=100, nan_policy="drop")
    # only the 3 finished values: mean 2; pairs' minima 1, 1, 2; best of all 1
    assert c["expected_best"].tolist() == pytest.approx([2.0, 4 / 3, 1.0])
    assert (c["n"] == 3).all() and (c["n_failed"] == 0).all() and (c["p_all_failed"] == 0).all()
    assert c["failure_value"].isna().all()


def test_a_failure_value_better_than_a_finished_value_raises():
    with pytest.raises(ValueError, match="failure_value"):
        budget_curve([1.0, 2.0, np.nan, 3.0], higher_is_better=False, failure_value=2.5)
    with pytest.raises(ValueError, match="failure_value"):
        budget_curve([8.0, np.nan, 6.0], higher_is_better=True, failure_value=7.0)
    with pytest.raises(ValueError, match="non-finite"):
        budget_curve([1.0, np.nan], higher_is_better=False, nan_policy="raise")
    with pytest.raises(ValueError, match="nan_policy"):
        budget_curve([1.0, 2.0], higher_is_better=False, nan_policy="ignore")


def test_every_configuration_failed():
    """All failed: with a failure value the curve is that value and p_all_failed 1 at every k; without one there
    is no value to stand for a failure, so no curve."""
    c = budget_curve([np.nan, np.nan, np.nan], higher_is_better=True, n_boot=50, failure_value=0.0)
    assert c["expected_best"].tolist() == [0.0, 0.0, 0.0]
    assert c["p_all_failed"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert budget_curve([np.nan, np.nan], higher_is_better=True).empty


def test_no_failure_keeps_the_plain_curve():
    c = budget_curve([3.0, 1.0, 2.0], higher_is_better=False, n_boot=100, failure_value=10.0)
    assert c["expected_best"].tolist() == pytest.approx([2.0, 4 / 3, 1.0])
    assert (c["n_failed"] == 0).all() and (c["p_all_failed"] == 0).all()


# ----------------------------------------------------------------------------- the report's failure value


def _table():
    """ring8: variant a stable, b diverging in two of four runs (NaN metrics), c with an ok run whose modes are
    undefined (an ok trial without a value is not a failure)."""
    rows = []
    for v, eds, modes, status in (("a", [0.2, 0.3, 0.25, 0.35], [8, 7, 8, 6], ["ok"] * 4),
                                  ("b", [0.1, 0.9, np.nan, np.nan], [8, 2, np.nan, np.nan],
                                   ["ok", "ok", "diverged", "failed"]),
                                  ("c", [0.4, 0.5, 0.45], [5, np.nan, 6], ["ok"] * 3)):
        for s, (e, m, st) in enumerate(zip(eds, modes, status)):
            rows.append({"variant": v, "dataset.name": "ring8", "seed": s, "status": st,
                         "final.energy_distance": e, "final.modes_covered": m})
    return pd.DataFrame(rows)


def test_report_budget_uses_the_bound_or_the_worst_value_on_the_dataset():
    from bench.report import _budget

    t = _table()
    ed = _budget(t, "energy_distance", ["a", "b", "c"])
    # energy distance has no upper bound: a failure counts at the worst finished value of ANY variant on ring8 (0.9)
    b = ed[("ring8", "b")]
    assert b["failure_value"].iloc[0] == pytest.approx(0.9)
    assert b["expected_best"].iloc[0] == pytest.approx((0.1 + 0.9 + 0.9 + 0.9) / 4)
    assert b["p_all_failed"].iloc[0] == pytest.approx(0.5)  # the diverged and the failed run
    assert ed[("ring8", "a")]["expected_best"].iloc[0] == pytest.approx(np.mean([0.2, 0.3, 0.25, 0.35]))
    modes = _budget(t, "modes_covered", ["a", "b", "c"])
    # modes covered is bounded below by 0: a failure covers no mode
    mb = modes[("ring8", "b")]
    assert mb["failure_value"].iloc[0] == 0.0
    assert mb["expected_best"].iloc[0] == pytest.approx((8 + 2 + 0 + 0) / 4)
    # c's ok run without a value is left out (not a failure): 2 values, none failed
    mc = modes[("ring8", "c")]
    assert (mc["n"] == 2).all() and (mc["n_failed"] == 0).all()
    assert mc["expected_best"].iloc[0] == pytest.approx(5.5)
