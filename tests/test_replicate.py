"""The replication ledger (bench/replicate.py, `ganbench replicate`): rebuilt from the committed rows it equals
results/REPLICATION.md; verdicts follow the interval; its intervals cover; bad claims exit 2 and write nothing."""

import subprocess
import textwrap

import numpy as np
import pytest
from scipy import stats as sps

from bench import replicate
from bench.replicate import ClaimTest, Measure, verdict
from bench.stats import newcombe_interval
from bench.study import StudyError
from conftest import GANBENCH, ROOT

RESULTS = ROOT / "results"


def test_ledger_is_rebuilt_from_the_committed_rows_without_drift(tmp_path):
    out = tmp_path / "REPLICATION.md"
    r = subprocess.run([GANBENCH, "replicate", "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == (RESULTS / "REPLICATION.md").read_text(), \
        "results/REPLICATION.md drifted from the rows: run `ganbench replicate` and commit it"
    claims = replicate.load_claims(RESULTS / "claims.yaml")
    text = out.read_text()
    assert all(f"**{c.id}**" in text for c in claims)
    counts = {v: text.count(f"| **{v}** |") for v in replicate.VERDICTS}
    assert sum(counts.values()) == len(claims)
    assert r.stdout.strip().endswith("; ".join(f"{n} {v}" for v, n in counts.items()))


def test_readme_states_the_ledgers_counts():
    import re

    text = (RESULTS / "REPLICATION.md").read_text()
    counts = [text.count(f"| **{v}** |") for v in replicate.VERDICTS]
    m = re.search(r"(\d+) reproduce, (\d+) same\s+direction but not significant, (\d+) contradict.*?, (\d+) not "
                  r"testable", (ROOT / "README.md").read_text(), re.S)
    assert m and [int(g) for g in m.groups()] == counts, "README's ledger counts are stale"


def test_published_nrds_toy_rows_are_recomputed_exactly():
    import pandas as pd

    from bench import nrds_toy

    committed = pd.read_parquet(RESULTS / "nrds_toy" / nrds_toy.SCORES)
    assert nrds_toy.SCORES == replicate.SCORES
    got = pd.DataFrame(nrds_toy.rows(3))
    want = committed[committed["seed"] == 3].reset_index(drop=True)
    assert list(got["trial_id"]) == list(want["trial_id"])
    assert np.allclose(got["final.nrds"], want["final.nrds"], rtol=0, atol=1e-6)


def _t(expect, statistic="paired_difference", margin=None):
    return ClaimTest(statistic=statistic, metric="fid", treated={"a": 1}, control={"a": 0}, expect=expect, margin=margin,
                     axis="w" if statistic == "spread_ratio" else None)


@pytest.mark.parametrize("est, lo, hi, expect, want", [
    (-3.0, -5.0, -1.0, "lower", "reproduces"),
    (-3.0, -5.0, 1.0, "lower", "same direction, not significant"),
    (3.0, -1.0, 5.0, "lower", "contradicts"),           # the other side, not significant: still contradicts
    (3.0, 1.0, 5.0, "lower", "contradicts"),
    (3.0, 1.0, 5.0, "higher", "reproduces"),
    (0.0, -1.0, 1.0, "higher", "contradicts"),          # on the null is not on the predicted side
    (1.0, -2.5, 2.5, "within", "same direction, not significant"),
    (1.0, 0.5, 1.5, "within", "reproduces"),
    (3.0, 2.5, 3.5, "within", "contradicts"),
    (-3.0, np.nan, np.nan, "lower", "not testable at this scale"),  # no interval: the design cannot tell
])
def test_verdict_follows_the_interval(est, lo, hi, expect, want):
    t = _t(expect, margin=2.0 if expect == "within" else None)
    assert verdict(Measure(est, lo, hi, 0.0, "d", "n"), t) == want


def test_ratio_verdicts_use_one_and_a_multiplicative_margin():
    lower = _t("lower", "spread_ratio")
    assert verdict(Measure(0.2, 0.1, 0.5, 1.0, "r", "n"), lower) == "reproduces"
    # [0, inf] spans every ratio (2 seeds, the control's spread within its seed noise): no information
    assert verdict(Measure(np.inf, 0.0, np.inf, 1.0, "r", "n", floor=0.0), lower) == "not testable at this scale"
    assert verdict(Measure(np.inf, 2.0, np.inf, 1.0, "r", "n", floor=0.0), lower) == "contradicts"
    within = ClaimTest(statistic="spread_ratio", metric="fid", axis="w", treated={"a": 1}, control={"a": 0},
                     expect="within", margin=0.25)
    assert verdict(Measure(1.1, 0.85, 1.2, 1.0, "r", "n"), within) == "reproduces"   # inside [0.8, 1.25]
    assert verdict(Measure(1.1, 0.7, 1.2, 1.0, "r", "n"), within) == "same direction, not significant"


def test_newcombe_interval_covers_exactly_computed():
    """Exact coverage (every outcome weighted by its binomial probability) over a grid of true rates: the hybrid
    score interval is near 95 % on average and dips to about 90 % in corners (Newcombe 1998 reports the same)."""
    for n1, n2 in [(12, 12), (12, 6)]:
        covs = []
        for p1 in np.linspace(0.05, 0.95, 7):
            for p2 in np.linspace(0.05, 0.95, 7):
                w1, w2 = sps.binom.pmf(np.arange(n1 + 1), n1, p1), sps.binom.pmf(np.arange(n2 + 1), n2, p2)
                cov = sum(w1[a] * w2[b] for a in range(n1 + 1) for b in range(n2 + 1)
                          if newcombe_interval(a, n1, b, n2)[0] <= p1 - p2 <= newcombe_interval(a, n1, b, n2)[1])
                covs.append(cov)
        assert np.mean(covs) >= 0.945 and min(covs) >= 0.90, (n1, n2, np.mean(covs), min(covs))


def test_welch_interval_covers_with_three_against_twelve():
    """mean_difference's Welch interval at the ledger's smallest design (3 AGE seeds vs 12 GAN seeds, unequal
    spreads), by simulation."""
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(4000):
        a, b = rng.normal(5.0, 3.0, 3), rng.normal(0.0, 1.0, 12)
        lo, hi = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
        hits += lo <= 5.0 <= hi
    assert 0.935 <= hits / 4000 <= 0.965


CLAIM = """\
claims:
  - id: {id}
    paper: P
    source: S
    claim: C
    paper_value: V
    paper_setting: X
    study: {study}
    test:
      statistic: {statistic}
      metric: {metric}
      treated: {{{treated}}}
      {control}expect: {expect}
"""


def _claims(tmp_path, **kw):
    f = tmp_path / "claims.yaml"
    args = dict(id="x", study="lens_fmnist_seeds", statistic="paired_difference", metric="fid",
                treated="variant.lens.schedule: sine", expect="lower",
                control="" if kw.get("statistic") == "rate" else "control: {variant.lens.schedule: null}\n      ")
    f.write_text(CLAIM.format(**{**args, **kw}))
    return f


def test_a_small_ledger_from_one_study(tmp_path):
    out = tmp_path / "L.md"
    f = _claims(tmp_path, expect="higher")
    path, counts = replicate.build(f, RESULTS, out)
    text = out.read_text()
    assert path == out and sum(counts.values()) == 1
    # the lens raised the FID (4.75 [-0.11, 9.6]): "higher" is on the estimate's side but not significant
    assert "| **same direction, not significant** |" in text and "12 pairs" in text and "12 seeds" in text
    early = tmp_path / "e"
    early.mkdir()
    replicate.build(_claims(early, metric="fid\n      at_step: 250"), RESULTS, out)  # a speed claim's early point
    assert "mean paired difference in fid at step 250 (treated - control; paired t); 12 pairs" in out.read_text()
    rate = tmp_path / "r"
    rate.mkdir()
    f = _claims(rate, statistic="rate", metric="null\n      against: 0.5", expect="lower")
    replicate.build(f, RESULTS, out)  # by the report's rule (recall >= 0.1) none of the 12 lens trials trained
    assert "| **reproduces** |" in out.read_text() and "0 of 12 trials trained" in out.read_text()
    # a claim's own rule for "trained" (final FID <= 3/4 of step 0's, from curves.parquet): all 24 trained
    f = _claims(rate, statistic="rate_difference", metric="null\n      success: {metric: fid, of_start: 0.75}")
    replicate.build(f, RESULTS, out)
    assert "0 [-0.242, 0.242]" in out.read_text() and "12 of 12 vs 12 of 12 trials trained" in out.read_text()


@pytest.mark.parametrize("kw, field, message", [
    ({"study": "no_such_study"}, "claims[0] (x): study", "has no trials.parquet"),
    ({"metric": "fidd"}, "claims[0] (x): test.metric", "fidd: no value in the study's rows"),
    ({"treated": "variant.lens.shedule: sine"}, "claims[0] (x): test.treated", "no column 'variant.lens.shedule'"),
    ({"treated": "variant.lens.schedule: cosine"}, "claims[0] (x): test.treated", "matches no row"),
    ({"statistic": "t_test"}, "claims[0] (x): test.statistic", "Input should be"),
    ({"expect": "within"}, "claims[0] (x): test", "expect: within needs a margin"),
    ({"treated": "variant.lens.schedule: null"}, "claims[0] (x): test", "treated and control are the same filter"),
    ({"statistic": "paired_difference\n      axis: seed"}, "claims[0] (x): test", "axis is not used by paired_difference"),
    ({"metric": "auc:fidd"}, "claims[0] (x): test.metric", "fidd"),
    ({"metric": "fid\n      at_step: 251"}, "claims[0] (x): test.at_step", "no evaluation of fid at step 251"),
    ({"statistic": "rate_difference", "metric": "null\n      success: {metric: recall, of_start: 0.5}"},
     "claims[0] (x): test.success",
     "'recall' is not a recorded lower-is-better metric"),
])
def test_bad_claims_are_one_line_errors_naming_the_claim(tmp_path, kw, field, message):
    f = _claims(tmp_path, **kw)
    with pytest.raises(StudyError) as e:
        replicate.build(f, RESULTS, tmp_path / "L.md")
    assert field in str(e.value) and message in str(e.value), str(e.value)
    assert not (tmp_path / "L.md").exists()


def test_duplicate_ids_and_a_missing_plan_file(tmp_path):
    f = tmp_path / "claims.yaml"
    one = CLAIM.format(id="x", study="lens_fmnist_seeds", statistic="paired_difference", metric="fid",
                       treated="variant.lens.schedule: sine", expect="lower",
                       control="control: {variant.lens.schedule: null}\n      ")
    f.write_text(one + one.split("claims:\n", 1)[1])
    with pytest.raises(StudyError, match=r"claims\[1\] \(x\): id: duplicate claim id 'x'"):
        replicate.load_claims(f)
    f.write_text(textwrap.dedent("""\
        claims:
          - {id: y, paper: P, source: S, claim: C, paper_value: V, paper_setting: X,
             plan: {study: studies/nope.yaml, gpu_hours: "1", basis: b}}
        """))
    with pytest.raises(StudyError, match=r"claims\[0\] \(y\): plan.study: studies/nope.yaml: no such study file"):
        replicate.build(f, RESULTS, tmp_path / "L.md")
    f.write_text(textwrap.dedent("""\
        claims:
          - {id: y, paper: P, source: S, claim: C, paper_value: V, paper_setting: X,
             plan: {study: studies/lens_paper.yaml, gpu_hours: "1", basis: b}, queued: [studies/nope.yaml]}
        """))
    with pytest.raises(StudyError, match=r"claims\[0\] \(y\): queued\[0\]: studies/nope.yaml: no such study file"):
        replicate.build(f, RESULTS, tmp_path / "L.md")


def test_cli_bad_claim_exits_2_with_one_line_and_writes_nothing(tmp_path):
    f = _claims(tmp_path, study="no_such_study")
    out = tmp_path / "L.md"
    r = subprocess.run([GANBENCH, "replicate", "--claims", str(f), "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "claims[0] (x): study:" in r.stderr and not out.exists()
