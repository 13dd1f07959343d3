"""Seed sensitivity (issue 13): bench.stats.seed on synthetic tables with a known truth, the study's
`question:` block, and the report answering it first."""

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench import stats as S
from bench.study import StudyError, expand, load_study

N_BOOT = 400
ROOT = Path(__file__).resolve().parents[1]


def table(std_a, std_b, n_seeds=30, objectives=(("ns", 1.0), ("wgan", 10.0)), seed=0, metric="final.energy_distance"):
    """Trials with and without the lens: per objective (metric scale `scale`), seed noise of std
    std_a * scale without the lens and std_b * scale with it."""
    rng = np.random.default_rng(seed)
    rows = []
    for obj, scale in objectives:
        for lens, sd in ((None, std_a), ("sine", std_b)):
            for s in range(n_seeds):
                rows.append({"variant": obj + ("+lens" if lens else ""), "dataset.name": "ring8",
                             "variant.objective": obj, "variant.lens.schedule": lens,
                             "variant.lens.K": 1000.0 if lens else np.nan, "seed": s, "status": "ok",
                             metric: scale * (1.0 + sd * rng.standard_normal())})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- seed_spread


def test_seed_spread_values_worst_seed_and_direction():
    vals = [0.3, 0.1, 0.9, 0.5, 0.2]
    t = pd.DataFrame({"variant": "ns", "dataset.name": "ring8", "train.lr": 1e-3, "seed": [10, 11, 12, 13, 14],
                      "status": "ok", "final.energy_distance": vals, "final.modes_covered": vals})
    lo = S.seed_spread(t, "energy_distance", n_boot=N_BOOT).iloc[0]  # lower is better: worst = max
    assert lo["n_seeds"] == 5 and lo["std"] == pytest.approx(np.std(vals, ddof=1))
    assert lo["iqr"] == pytest.approx(sps.iqr(vals)) and lo["range"] == pytest.approx(0.8)
    assert lo["worst"] == 0.9 and lo["worst_seed"] == 12 and lo["worst_hi"] == 0.9
    assert lo["std_lo"] < lo["std"] <= lo["std_hi"]
    hi = S.seed_spread(t, "modes_covered", n_boot=N_BOOT).iloc[0]  # higher is better: worst = min
    assert hi["worst"] == 0.1 and hi["worst_seed"] == 11 and hi["worst_lo"] == 0.1
    flipped = S.seed_spread(t, "energy_distance", n_boot=N_BOOT, higher_is_better=True).iloc[0]
    assert flipped["worst_seed"] == 11


@pytest.mark.parametrize("n", [3, 12])
def test_std_interval_covers_the_true_std_as_it_claims(n):
    """Normal seed noise, 2000 simulated studies: the chi-square interval holds the true std in 95 % of
    them; a percentile bootstrap of the same std in far fewer (the reason std_interval is not one)."""
    rng = np.random.default_rng(n)
    hit = boot_hit = 0
    for _ in range(2000):
        v = rng.standard_normal(n) * 2.0
        est, lo, hi, df = S.std_interval([v])
        assert df == n - 1 and est == pytest.approx(np.std(v, ddof=1)) and lo < est < hi
        hit += lo <= 2.0 <= hi
        b = v[rng.integers(0, n, size=(200, n))].std(axis=1, ddof=1)
        boot_hit += np.percentile(b, 2.5) <= 2.0 <= np.percentile(b, 97.5)
    assert 0.93 <= hit / 2000 <= 0.97
    assert boot_hit / 2000 < (0.5 if n == 3 else 0.85)


def test_std_interval_pools_settings_of_different_scales():
    """Settings with their own seed noise: df = sum(n - 1) when the variances are equal, fewer
    (Satterthwaite) when one setting dominates; coverage of the pooled std stays near 95 %."""
    rng = np.random.default_rng(0)
    eq = [rng.standard_normal(12) for _ in range(4)]
    assert S.std_interval(eq)[3] == pytest.approx(44, rel=0.35)
    big = [rng.standard_normal(12) * s for s in (1, 1, 1, 10)]
    assert S.std_interval(big)[3] < 15
    hit = 0
    scales = np.array([1.0, 4.0, 7.0, 10.0])
    truth = math.sqrt((scales ** 2).mean())
    for _ in range(1000):
        _, lo, hi, _ = S.std_interval([rng.standard_normal(12) * s for s in scales])
        hit += lo <= truth <= hi
    assert 0.92 <= hit / 1000 <= 0.98
    assert all(math.isnan(x) for x in S.std_interval([np.array([1.0])]))
    assert S.std_interval([np.ones(4)])[:3] == (0.0, 0.0, 0.0)


def test_ratio_interval_covers_as_it_claims_with_few_seeds():
    """The ratio's percentile bootstrap (unlike a single std's) holds the true ratio about 95 % of the time
    even with 2 settings x 3 seeds: both sides' small-sample biases cancel (normal seeds, true ratio 1)."""
    from bench.stats.seed import _compare_cells

    rng = np.random.default_rng(1)
    hit = 0
    for r in range(300):
        a = [rng.standard_normal(3) * (1 + 3 * i) for i in range(2)]
        b = [rng.standard_normal(3) * (1 + 3 * i) for i in range(2)]
        out = _compare_cells(a, b, True, 400, np.random.default_rng(r), 0.95)
        hit += out["ratio_lo"] <= 1 <= out["ratio_hi"]
    assert 0.9 <= hit / 300 <= 0.99


def test_seed_spread_groups_by_setting_and_single_seed():
    t = table(0.1, 0.1, n_seeds=4)
    t.loc[(t["variant"] == "ns") & (t["seed"] > 0), "status"] = "diverged"
    out = S.seed_spread(t, "energy_distance", n_boot=N_BOOT)
    assert len(out) == 4 and "variant.objective" in out  # one row per variant and setting
    one = out[out["variant"] == "ns"].iloc[0]
    assert one["n_seeds"] == 1 and math.isnan(one["std"]) and math.isnan(one["std_lo"])
    assert "fewer than 2 seeds" in one["reason"] and one["worst"] == one["median"]


# ----------------------------------------------------------------------------- seed_spread_comparison


def test_half_the_spread_is_found():
    """B has half A's seed std in both settings (whose scales differ 10x): the ratio's CI holds 0.5 and
    excludes 1, and the Brown-Forsythe test rejects."""
    out = S.seed_spread_comparison(table(0.1, 0.05), "energy_distance", n_boot=N_BOOT)
    assert len(out) == 1
    r = out.iloc[0]
    assert r["n_settings"] == 2 and r["min_seeds"] == r["max_seeds"] == 30 and r["arm"] == "schedule=sine, K=1000"
    assert r["ratio_lo"] < 0.5 < r["ratio_hi"] < 1 and 0.35 < r["ratio"] < 0.7
    assert r["p_value"] < 0.05


def test_ratio_is_b_over_a_and_test_is_levene_on_median_deviations():
    t = table(0.1, 0.2, n_seeds=10, objectives=(("ns", 1.0),))
    r = S.seed_spread_comparison(t, "energy_distance", n_boot=N_BOOT, standardize=False).iloc[0]
    a = t.loc[t["variant.lens.schedule"].isna(), "final.energy_distance"].to_numpy()
    b = t.loc[t["variant.lens.schedule"].notna(), "final.energy_distance"].to_numpy()
    assert r["ratio"] == pytest.approx(np.std(b, ddof=1) / np.std(a, ddof=1))
    assert r["p_value"] == pytest.approx(sps.levene(a - np.median(a), b - np.median(b), center="median").pvalue)


def test_equal_spreads_are_rarely_significant():
    p = [S.seed_spread_comparison(table(0.1, 0.1, n_seeds=10, seed=i), "energy_distance", n_boot=50).iloc[0]["p_value"]
         for i in range(40)]
    assert np.mean(np.array(p) < 0.05) <= 0.15


def test_settings_are_matched_and_differences_between_settings_do_not_count():
    # a huge difference between the objectives' centres, equal seed noise: no spread difference
    t = table(0.1, 0.1, n_seeds=12)
    t.loc[t["variant.objective"] == "wgan", "final.energy_distance"] += 100.0
    t = t[~((t["variant.objective"] == "wgan") & t["variant.lens.schedule"].notna())]  # wgan: no lens arm
    r = S.seed_spread_comparison(t, "energy_distance", n_boot=N_BOOT).iloc[0]
    assert r["n_settings"] == 1 and r["n_settings_dropped"] == 1 and 0.5 < r["ratio"] < 2


def test_two_seeds_in_one_setting_has_no_test():
    t = table(0.1, 0.05, n_seeds=2, objectives=(("ns", 1.0),))
    r = S.seed_spread_comparison(t, "energy_distance", n_boot=N_BOOT).iloc[0]
    assert np.isfinite(r["ratio"]) and math.isnan(r["p_value"]) and "Brown-Forsythe undefined" in r["reason"]


def test_power_grows_with_the_effect():
    n_half, p_half = S.seed_spread_power(0.5, n_settings=2, n_sim=400)
    n_small, _ = S.seed_spread_power(0.8, n_settings=2, n_sim=400)
    assert n_half is not None and p_half >= 0.8 and (n_small is None or n_small > n_half)
    assert S.seed_spread_power(1.0) == (None, S.seed_spread_power(1.0)[1])  # no effect: no number of seeds
    more, _ = S.seed_spread_power(0.5, n_settings=12, n_sim=400)
    assert more < n_half


def test_two_seeds_of_one_setting_are_never_enough():
    """Two seeds deviate from their median by +-a: the Brown-Forsythe F is infinite whatever the spreads, so a
    simulation that counted those p = 0 as detections claimed 2 seeds suffice for any ratio (even 0.9)."""
    n, _ = S.seed_spread_power(0.5, n_settings=1, n_sim=400)
    assert n is not None and n > 10
    n_small, _ = S.seed_spread_power(0.9, n_settings=1, n_sim=400)
    assert n_small is None or n_small > 50


# ----------------------------------------------------------------------------- the question block

BASE = """\
    name: q
    variant: {objective: ns, lens: null}
    sweep:
      axes:
        variant.lens: [null, {schedule: sine, K: 1000}]
        seed: [0, 1]
    """


def study(tmp_path, question: str):
    p = tmp_path / "q.yaml"
    p.write_text(textwrap.dedent(BASE) + textwrap.dedent(question))
    return p


def test_question_block_loads_and_does_not_change_trial_ids(tmp_path):
    plain = {t["trial_id"] for t in expand(load_study(study(tmp_path, "")))}
    s = load_study(study(tmp_path, """\
        question:
          text: Robust to the seed?
          compare: variant.lens
          metric: energy_distance
          statistic: seed_spread
        """))
    assert s.question.compare == "variant.lens" and s.question.statistic == "seed_spread"
    assert {t["trial_id"] for t in expand(s)} == plain and len(plain) == 4
    for name in ("quickstart", "lens_toy", "edgan_fmnist"):
        assert load_study(ROOT / "studies" / f"{name}.yaml").question is not None


@pytest.mark.parametrize("block, field, words", [
    ("question: {compare: variant.lens, metric: fid_typo}", "question.metric", "unknown metric"),
    ("question: {compare: variant.lens, metric: fid, statistic: median}", "question.statistic", ""),
    ("question: {compare: variant.lense, metric: energy_distance}", "question.compare", "not a field"),
    ("question: {compare: variant.lens, metric: energy_distance, statistic: axis_spread}", "question.axis",
     "needs the axis"),
    ("question: {compare: variant.lens, metric: energy_distance, statistic: axis_spread, axis: train.lrr}",
     "question.axis", "not a field"),
    ("question: {compare: variant.lens, metric: fid, colour: red}", "question.colour", ""),
    ("question: {compare: variant.lens, metric: energy_distance, statistic: axis_spread, axis: [train.lr, train.d_lr]}",
     "question.axis", "two axes are one per level"),
    ("question: {compare: variant.lens, levels: [null, sine], metric: energy_distance, statistic: axis_spread, "
     "axis: [train.lr, train.lrr]}", "question.axis", "'train.lrr' is not a field"),
    ("question: {metric: fid}", "question.compare", ""),
])
def test_bad_question_names_the_field(tmp_path, block, field, words):
    with pytest.raises(StudyError) as e:
        load_study(study(tmp_path, block + "\n"))
    assert e.value.field == field and words in e.value.message
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- the report


def _lens_results(tmp_path, question: str = "", std_a=0.1, std_b=0.05, n_seeds=8):
    from bench import results

    t = table(std_a, std_b, n_seeds=n_seeds)
    t["study"], t["trial_id"] = "syn", [f"t{i}" for i in range(len(t))]
    t["final.modes_covered"] = 8.0
    t["wall_seconds"] = 1.0
    out = tmp_path / "syn"
    out.mkdir()
    results.write_parquet(t, out / results.TRIALS)
    curves = pd.DataFrame({"study": "syn", "trial_id": t["trial_id"], "step": 100,
                           "energy_distance": t["final.energy_distance"]})
    results.write_parquet(curves, out / results.LEGACY_CURVES)
    (out / results.STUDY).write_text("name: syn\n" + textwrap.dedent(question))
    return out, t


def _first_headlines(path):
    import html as h
    import re

    from bench.report import build_report

    html = build_report(path)["html"].read_text()
    sec = html.split("<h2>Headline findings</h2>", 1)[1].split("<h2>", 1)[0]
    return [h.unescape(x) for x in re.findall(r"<li>(.*?)</li>", sec)], html


def test_report_answers_the_seed_question_first(tmp_path):
    from bench.report.fmt import fmt, p_is

    d, t = _lens_results(tmp_path, """\
        question:
          text: Does the lens make training robust to the seed?
          compare: variant.lens
          metric: energy_distance
          statistic: seed_spread
        """)
    heads, html = _first_headlines(d)
    # energy distance is judged on the relative scale (std / mean; bench.metrics.default_scale), absolute beside it
    r = S.seed_spread_comparison(t, "energy_distance", scale="relative").iloc[0]
    a = S.seed_spread_comparison(t, "energy_distance", n_boot=2000, seed=0).iloc[0]
    first = heads[0]
    assert first.startswith("Seed sensitivity: with the lens the relative spread (std / mean) of the final energy "
                            f"distance to real across seeds is {fmt(r['ratio'])}x (95 % CI {fmt(r['ratio_lo'])} to "
                            f"{fmt(r['ratio_hi'])}) that without the lens (Brown-Forsythe {p_is(r['p_value'])}, 8 seeds "
                            "x 2 settings)"), first
    assert (f"absolute {fmt(a['ratio'])}x (95 % CI {fmt(a['ratio_lo'])} to {fmt(a['ratio_hi'])}) ({p_is(a['p_value'])})"
            in first), first
    assert '"Does the lens make training robust to the seed?"' in first and "not Holm-adjusted" in first
    assert r["p_value"] < 0.05 and "the spread is smaller with the lens" in first
    assert heads[1].startswith("Power (80% at alpha 0.05, 2 settings, simulated)") and "a ratio of 0.5 needs" in heads[1]
    assert "<h3>Seed sensitivity (final energy_distance)</h3>" in html
    assert html.index("Seed sensitivity (final") < html.index("<h3>Success rate")


def test_lens_study_without_a_question_still_leads_with_the_seed_spread(tmp_path):
    d, _ = _lens_results(tmp_path, std_b=0.1, n_seeds=6)
    heads, _ = _first_headlines(d)
    assert heads[0].startswith("Seed sensitivity: with the lens") and "no significant difference" in heads[0]


def test_report_axis_spread_question(tmp_path):
    from bench import results

    rows = []
    rng = np.random.default_rng(0)
    for st, slope in (("ed+gan", 1.0), ("ed//gan", 0.05)):
        for w in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
            for s in range(3):
                rows.append({"study": "e", "trial_id": f"{st}{w}{s}", "variant": st, "dataset.name": "fashion_mnist",
                             "variant.structure": st, "variant.w": w, "seed": s, "status": "ok", "wall_seconds": 1.0,
                             "final.l1": 0.1 + slope * 0.02 * np.log10(w) ** 2 + 0.001 * rng.standard_normal()})
    d = tmp_path / "e"
    d.mkdir()
    results.write_parquet(pd.DataFrame(rows), d / results.TRIALS)
    results.write_parquet(pd.DataFrame({"study": "e", "trial_id": [r["trial_id"] for r in rows], "step": 1,
                                        "l1": 0.1}), d / results.LEGACY_CURVES)
    (d / results.STUDY).write_text("name: e\nquestion: {compare: variant.structure, levels: [ed+gan, ed//gan], "
                                   "metric: l1, statistic: axis_spread, axis: variant.w}\n")
    from bench.report.fmt import fmt, p_is

    heads, _ = _first_headlines(d)
    r = S.spread_comparison(pd.DataFrame(rows), "l1", "variant.w", "variant.structure", "ed//gan", "ed+gan", by=(),
                            n_boot=2000).iloc[0]
    assert heads[0].startswith("Sensitivity to variant.w: the spread (std) across variant.w of the per-point mean "
                               "final L1")
    assert (f"with variant.structure = ed//gan is {fmt(r['ratio'])}x (95 % CI {fmt(r['ratio_lo'])} to "
            f"{fmt(r['ratio_hi'])}) that with variant.structure = ed+gan (Brown-Forsythe on 5 vs 5 point means, "
            f"{p_is(r['p_value'])})") in heads[0], heads[0]
    assert r["ratio"] < 0.1 and "less sensitive" in heads[0] and "the primary test" in heads[0]


def test_k_spread_sentence():
    from bench.report.fmt import fmt
    from bench.report.question import k_spread

    t = table(0.1, 0.05, n_seeds=6)
    k2 = t[t["variant.lens.schedule"].notna()].assign(**{"variant.lens.K": 2000.0})
    k2["final.energy_distance"] += np.where(k2["variant.objective"] == "wgan", 3.0, 0.3)  # wgan moves most with K
    t = pd.concat([t, k2], ignore_index=True)
    (line,) = k_spread(t, "energy_distance")
    sp = S.axis_spread(t[t["variant.lens.schedule"].notna()], "energy_distance", "variant.lens.K",
                       by=["variant.lens.schedule", "variant.objective"], n_boot=2000)
    r = sp.loc[sp["std"].idxmax()]
    assert r["variant.objective"] == "wgan" and r["std"] == pytest.approx(3.0 / np.sqrt(2), rel=0.2)
    assert line.startswith(f"Across the lens K in {{1000, 2000}} (sine), the spread (of the true per-K means, seed noise taken out) of the final "
                           f"energy distance to real is at most {fmt(r['std'])} [{fmt(r['std_lo'])}, "
                           f"{fmt(r['std_hi'])}] (at variant.objective = wgan; 2 setting(s)"), line
    assert k_spread(table(0.1, 0.1, n_seeds=3), "energy_distance") == []  # one K: nothing to say
