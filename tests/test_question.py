"""The study's question (bench.report.question, issue 22 items 1, 2 and 7): answered per arm on the declared scale,
with a verdict only when every co-primary metric is significant in the same direction, mean differences compared
within an objective, and every "cannot be answered" branch.

The trials tables are built by hand so that the answer is known: seed values are exactly standardised normal draws
scaled to a chosen mean and std, so the spread ratios are exact numbers. The expected ratios and p-values are
computed here with numpy / scipy on the values (coefficient of variation by its definition, Brown-Forsythe as a
one-way ANOVA of the absolute deviations from the median, the t interval and the Wilcoxon test by scipy), not with
the bench.stats calls the report makes."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.report import question
from bench.report.fmt import fmt, interval, p_is
from bench.schema import QuestionCfg

N = 20  # seeds a side


def z(seed: int, n: int = N) -> np.ndarray:
    """n normal draws standardised to mean 0 and std (ddof=1) exactly 1."""
    x = np.random.default_rng(seed).standard_normal(n)
    return (x - x.mean()) / x.std(ddof=1)


def table(control: dict, treated: dict, objective: str = "ns", dataset: str = "ring8", seeds=None) -> pd.DataFrame:
    """One row per trial: `control` / `treated` map a metric to its values over the seeds (same length); the
    control has no lens, the treated has the sine lens with K = 500, same seeds (so pairs exist)."""
    n = len(next(iter(control.values())))
    seeds = list(range(n)) if seeds is None else list(seeds)
    rows = []
    for lens, values in ((None, control), ("sine", treated)):
        for i, s in enumerate(seeds):
            rows.append({"study": "q", "trial_id": f"{objective}-{lens}-{s}",
                         "variant": objective + ("+lens(sine K=500)" if lens else ""), "dataset.name": dataset,
                         "variant.objective": objective, "variant.lens.schedule": lens,
                         "variant.lens.K": 500.0 if lens else None, "seed": s, "status": "ok",
                         **{f"final.{m}": float(v[i]) for m, v in values.items()}})
    return pd.DataFrame(rows)


def cv(x) -> float:
    x = np.asarray(x, dtype=float)
    return x.std(ddof=1) / x.mean()


def bf_p(a, b) -> float:
    """Brown-Forsythe by its definition: one-way ANOVA of |x - median| between the two sides."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(sps.f_oneway(np.abs(a - np.median(a)), np.abs(b - np.median(b))).pvalue)


def ask(trials, **q) -> list[str]:
    lines, _ = question.answer(trials, QuestionCfg(compare="variant.lens", **q))
    return lines


ED, MODES = "energy distance to real", "modes covered"


# ----------------------------------------------------------------------------- seed spread: verdicts


def test_smaller_on_every_co_primary_metric():
    """(a) The lens makes the seed spread 10x smaller on energy distance (relative) and on modes covered
    (absolute): the one verdict, with both ratios in the sentence."""
    ed_a, ed_b = 1.0 + 0.2 * z(1), 1.0 + 0.02 * z(2)
    mc_a, mc_b = 4.0 + 1.5 * z(3), 7.0 + 0.15 * z(4)
    t = table({"energy_distance": ed_a, "modes_covered": mc_a}, {"energy_distance": ed_b, "modes_covered": mc_b})
    lines = ask(t, metric="energy_distance", co_primary=["modes_covered"])
    head = lines[0]
    assert (f"the spread is smaller with the lens on every co-primary metric ({ED} (relative), {MODES} (absolute))"
            in head), head
    # the primary on its declared (default) scale: the ratio of the coefficients of variation, 0.1 exactly
    ratio = cv(ed_b) / cv(ed_a)
    assert ratio == pytest.approx(0.1)
    assert f"the relative spread (std / mean) of the final {ED} across seeds is {fmt(ratio)}x" in head
    p = bf_p(ed_a / ed_a.mean(), ed_b / ed_b.mean())
    assert p < 1e-3 and f"Brown-Forsythe {p_is(p)}, {N} seeds x 1 settings" in head
    # the co-primary on its own (absolute) scale: std ratio 0.15 / 1.5
    assert f"; {MODES} (absolute) {fmt(mc_b.std(ddof=1) / mc_a.std(ddof=1))}x" in head
    # the other scales beside the relative one: absolute, and log (every value here is > 0)
    assert f"on the other scales: absolute {fmt(ed_b.std(ddof=1) / ed_a.std(ddof=1))}x" in head
    assert f", log {fmt(np.log(ed_b).std(ddof=1) / np.log(ed_a).std(ddof=1))}x" in head
    assert "the verdict is on the relative scale, and holds only where every co-primary metric agrees" in head


def test_a_shrinking_mean_is_not_a_smaller_spread():
    """(b) The grid25_long trap: with the lens the std falls 10x only because the mean falls 20x; the coefficient
    of variation doubles. On the declared relative scale the answer is not "smaller"; the absolute ratio is shown
    beside it; declared on the absolute scale the same data would say "smaller"."""
    ed_a = 1.0 + 0.1 * z(5)      # mean 1, std 0.1: CV 0.1
    ed_b = 0.05 + 0.01 * z(6)    # mean 0.05 (20x lower), std 0.01 (10x lower): CV 0.2
    t = table({"energy_distance": ed_a}, {"energy_distance": ed_b})
    head = ask(t, metric="energy_distance")[0]
    assert "the spread is smaller" not in head, head
    rel = cv(ed_b) / cv(ed_a)
    assert rel == pytest.approx(2.0)
    assert f"relative spread (std / mean) of the final {ED} across seeds is {fmt(rel)}x" in head
    p = bf_p(ed_a / ed_a.mean(), ed_b / ed_b.mean())
    verdict = "the spread is larger with the lens" if p <= 0.05 else "no significant difference at alpha 0.05"
    assert f": {verdict} (the study's question" in head, head
    assert f"on the other scales: absolute {fmt(0.1)}x" in head  # std ratio 0.01 / 0.1, shown, not deciding
    # what the old (absolute) reading said: "smaller" -- only when a question declares that scale
    absolute = ask(t, metric="energy_distance", scale="absolute")[0]
    assert f"the spread (std) of the final {ED} across seeds is {fmt(0.1)}x" in absolute
    assert ": the spread is smaller with the lens (the study's question" in absolute, absolute


def test_co_primary_metrics_that_disagree_give_no_verdict_and_name_both():
    """(c) Energy distance's spread shrinks, modes covered's grows: no verdict, each named with its direction."""
    ed_a, ed_b = 1.0 + 0.2 * z(1), 1.0 + 0.02 * z(2)
    mc_a, mc_b = 7.0 + 0.15 * z(3), 4.0 + 1.5 * z(4)
    t = table({"energy_distance": ed_a, "modes_covered": mc_a}, {"energy_distance": ed_b, "modes_covered": mc_b})
    head = ask(t, metric="energy_distance", co_primary=["modes_covered"])[0]
    assert (f"no verdict, the co-primary metrics do not agree (the spread is smaller with the lens: {ED} (relative); "
            f"the spread is larger with the lens: {MODES} (absolute))") in head, head
    assert "on every co-primary metric" not in head
    # one significant, the other not: still no verdict, the other named as not significant
    mc_same = 7.0 + 0.15 * z(4)
    t2 = table({"energy_distance": ed_a, "modes_covered": mc_a}, {"energy_distance": ed_b, "modes_covered": mc_same})
    assert bf_p(mc_a, mc_same) > 0.05
    head2 = ask(t2, metric="energy_distance", co_primary=["modes_covered"])[0]
    assert (f"no verdict, the co-primary metrics do not agree (the spread is smaller with the lens: {ED} (relative); "
            f"no significant difference: {MODES} (absolute))") in head2, head2


def test_no_significant_difference_on_any_co_primary_metric():
    """(d) The same deviations on both sides (values reversed): ratio 1, no difference on either metric."""
    za, zb = z(7), z(8)
    ed_a, ed_b = 1.0 + 0.2 * za, 1.0 + 0.2 * za[::-1]
    mc_a, mc_b = 5.0 + zb, 5.0 + zb[::-1]
    t = table({"energy_distance": ed_a, "modes_covered": mc_a}, {"energy_distance": ed_b, "modes_covered": mc_b})
    head = ask(t, metric="energy_distance", co_primary=["modes_covered"])[0]
    assert ": no significant difference at alpha 0.05 on any co-primary metric (the study's question" in head, head
    assert f"across seeds is {fmt(1.0)}x" in head
    assert bf_p(ed_a, ed_b) == pytest.approx(1.0)


def test_one_line_per_arm_and_secondary_metrics_do_not_decide():
    """Two lens arms (K = 500, K = 2000): one sentence each. A secondary metric is reported beside the verdict and
    cannot turn it (hq_fraction's spread grows here, the verdict still says smaller)."""
    ed_a, hq_a = 1.0 + 0.2 * z(1), 0.5 + 0.01 * z(3)
    t = table({"energy_distance": ed_a, "hq_fraction": hq_a},
              {"energy_distance": 1.0 + 0.02 * z(2), "hq_fraction": 0.5 + 0.2 * z(4)})
    k2000 = t[t["variant.lens.schedule"].notna()].assign(**{"variant.lens.K": 2000.0,
                                                            "final.energy_distance": 1.0 + 0.04 * z(9)})
    k2000["trial_id"] = k2000["trial_id"] + "-2000"
    t = pd.concat([t, k2000], ignore_index=True)
    lines = ask(t, metric="energy_distance", secondary=["hq_fraction"])
    arms = [line for line in lines if line.startswith("Seed sensitivity (")]
    by_k = {a.split(")", 1)[0].removeprefix("Seed sensitivity ("): a for a in arms}
    assert sorted(by_k) == ["schedule=sine, K=2000", "schedule=sine, K=500"], lines
    by_k = {k.split(", ")[1]: a for k, a in by_k.items()}
    assert f"is {fmt(0.1)}x" in by_k["K=500"] and f"is {fmt(0.2)}x" in by_k["K=2000"]
    for a in arms:
        assert ": the spread is smaller with the lens" in a, a
        assert "; secondary high-quality fraction (within 3 std of a mode) (absolute)" in a
    assert any(line.startswith("Power (80% at alpha 0.05, 1 settings, simulated)") for line in lines)


# ----------------------------------------------------------------------------- mean difference: never pooled


def test_mean_difference_is_compared_within_each_objective():
    """(e) ns and wgan, whose energy distances differ tenfold: two lines, one per objective, each paired over its
    own 8 seeds; never one test over 16 pairs."""
    n = 8
    rows = []
    expected = {}
    for obj, level, seed in (("ns", 0.1, 10), ("wgan", 1.0, 20)):
        c = level * (1 + 0.1 * z(seed, n))
        t = c - level * (0.1 + 0.02 * z(seed + 1, n))  # the lens lowers it by about 10 %, every seed
        rows.append(table({"energy_distance": c}, {"energy_distance": t}, objective=obj))
        d = t - c
        half = sps.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n)
        expected[obj] = (d.mean(), d.mean() - half, d.mean() + half, sps.wilcoxon(d).pvalue)
    trials = pd.concat(rows, ignore_index=True)
    lines = ask(trials, metric="energy_distance", statistic="mean_difference")
    md = [line for line in lines if line.startswith("Mean difference")]
    assert len(md) == 2, lines
    for obj, (m, lo, hi, p) in expected.items():
        line = next(x for x in md if x.startswith(f"Mean difference (ring8, {obj}):"))
        assert (f"with the lens minus without the lens, the final {ED} changes by {interval(m, lo, hi)} (paired over "
                f"{n} pairs, Wilcoxon {p_is(p)})") in line, line
        assert ": better with the lens" in line
    assert not any("16 pairs" in x for x in lines)
    assert "compared within each dataset.name, variant.objective" in md[0]


def test_mean_difference_verdict_needs_every_co_primary_metric():
    n = 8
    c = 0.5 * (1 + 0.1 * z(30, n))
    better = c - 0.05 * (1 + 0.1 * z(31, n))       # lower energy distance: better
    mc = 5.0 + 0.5 * z(32, n)
    more, fewer = mc + 1.0 + 0.1 * z(33, n), mc - 1.0 - 0.1 * z(34, n)  # more modes: better; fewer: worse
    agree = table({"energy_distance": c, "modes_covered": mc}, {"energy_distance": better, "modes_covered": more})
    head = ask(agree, metric="energy_distance", co_primary=["modes_covered"], statistic="mean_difference")[0]
    assert f": better with the lens on every co-primary metric ({ED}, {MODES})" in head, head
    m = (more - mc).mean()
    assert f"; {MODES} {fmt(m)} [" in head
    clash = table({"energy_distance": c, "modes_covered": mc}, {"energy_distance": better, "modes_covered": fewer})
    head = ask(clash, metric="energy_distance", co_primary=["modes_covered"], statistic="mean_difference")[0]
    assert (f": no verdict, the co-primary metrics do not agree (worse with the lens: {MODES}; better with the lens: "
            f"{ED})") in head, head


# ----------------------------------------------------------------------------- cannot be answered


def _simple():
    return table({"energy_distance": 1.0 + 0.2 * z(1, 6)}, {"energy_distance": 1.0 + 0.1 * z(2, 6)})


def test_cannot_be_answered_without_a_final_metric():
    t = _simple()
    assert ask(t, metric="fid") == ["The study's question cannot be answered: no trial has a final fid."]
    t["final.fid"] = np.nan  # a column with no finite value is the same
    assert ask(t, metric="fid", text="Does it?") == \
        ['The study\'s question ("Does it?") cannot be answered: no trial has a final fid.']


def test_cannot_be_answered_without_the_compared_column():
    lines, blocks = question.answer(_simple(), QuestionCfg(compare="variant.w", metric="energy_distance"))
    assert lines == ["The study's question cannot be answered: no column variant.w in the trials table."]
    assert blocks == []


def test_cannot_be_answered_with_three_levels_and_no_levels_named():
    t = pd.concat([_simple().assign(**{"train.lr": lr}) for lr in (1e-4, 1e-3, 1e-2)], ignore_index=True)
    lines, _ = question.answer(t, QuestionCfg(compare="train.lr", metric="energy_distance"))
    assert lines == ["The study's question cannot be answered: train.lr takes 3 values: name the two compared in "
                     "question.levels."]


def test_cannot_be_answered_without_treated_trials():
    t = _simple()
    t = t[t["variant.lens.schedule"].isna()]
    t = pd.concat([t.assign(**{"train.lr": 1e-3}), t.assign(**{"train.lr": 1e-4})], ignore_index=True)
    # the treated level names a value no trial has
    lines, _ = question.answer(t, QuestionCfg(compare="train.lr", levels=[1e-3, 1e-2], metric="energy_distance"))
    assert lines == ["The study's question cannot be answered: no treated trials."]


def test_axis_spread_cannot_be_answered_without_levels_or_axis():
    t = _simple()
    lines, _ = question.answer(t, QuestionCfg(compare="variant.lens", metric="energy_distance",
                                              statistic="axis_spread", axis="train.lr"))
    assert lines == ["The study's question cannot be answered: axis_spread compares two values of a column: give "
                     "question.levels."]
    t = pd.concat([t.assign(**{"train.optimizer": o}) for o in ("adam", "sgd")], ignore_index=True)
    lines, _ = question.answer(t, QuestionCfg(compare="train.optimizer", levels=["adam", "sgd"],
                                              metric="energy_distance", statistic="axis_spread", axis="train.lr"))
    assert lines == ["The study's question cannot be answered: no column train.lr in the trials table."]


def test_mean_difference_cannot_be_answered_without_pairs():
    """No treated trial at the named level: no pairs at all."""
    t = pd.concat([_simple().assign(**{"train.lr": lr}) for lr in (1e-4, 1e-3)], ignore_index=True)
    lines, _ = question.answer(t, QuestionCfg(compare="train.lr", levels=[1e-3, 1e-2], metric="energy_distance",
                                              statistic="mean_difference"))
    assert lines == ["The study's question cannot be answered: no pairs."]


def test_mean_difference_without_a_matching_pair_cannot_be_answered():
    """Treated and control trials exist but share no seed (nothing to pair): the question cannot be answered; it
    must not print a 'paired over 0 pairs' sentence with an n/a difference as if it had been asked."""
    t = table({"energy_distance": 1.0 + 0.2 * z(1, 6)}, {"energy_distance": 1.0 + 0.1 * z(2, 6)})
    t.loc[t["variant.lens.schedule"].notna(), "seed"] += 100
    lines, _ = question.answer(t, QuestionCfg(compare="variant.lens", metric="energy_distance",
                                              statistic="mean_difference"))
    assert lines == ["The study's question cannot be answered: no pairs."], lines


def test_a_block_that_does_not_validate_is_named():
    q, why = question.resolve(_simple(), {"compare": "variant.lens", "metric": "energy_distance", "scale": "cubic"},
                              "energy_distance")
    assert q is None and why.startswith("The study's question block is not valid (scale:")
    # no block, a lens study: the lens question with the toy co-primary metrics the trials record
    t = _simple().assign(**{"final.modes_covered": 8.0})
    q, why = question.resolve(t, None, "energy_distance")
    assert why is None and q.metric == "energy_distance" and q.co_primary == ["modes_covered"]
    assert q.statistic == "seed_spread" and q.compare == "variant.lens"


# ----------------------------------------------------------------------------- convergence speed as a question metric
# (issue 23 item 2): auc:<m> and steps_to_within:<m> validate in a study's question, are computed at report load from
# the curves, and are answered (and ranked in the leaderboard) like any final metric.
STUDY = "name: bad\ntrain: {steps: 10, eval_every: 5}\n"


@pytest.mark.parametrize("block, field, message", [
    ("metric: auc:energy_distanc", "question.metric",
     "unknown base metric 'energy_distanc' in 'auc:energy_distanc' (known: modes_covered, hq_fraction,"),
    ("metric: speed:energy_distance", "question.metric",
     "unknown derived metric kind 'speed' in 'speed:energy_distance' (derived metrics: auc:<metric>, "
     "steps_to_within:<metric>[@<fraction>])"),
    ("metric: energy_distance, co_primary: [steps_to_within:fid]", "question.co_primary",
     "'steps_to_within:fid' needs the curve of 'fid', which is not recorded by gan trials on ring8"),
    ("metric: energy_distance, secondary: [steps_to_within:energy_distance@1.5]", "question.secondary",
     "'steps_to_within:energy_distance@1.5': the fraction after @ must be a number in (0, 1]"),
    ("metric: energy_distance, secondary: [auc:energy_distance@0.5]", "question.secondary",
     "'auc:energy_distance@0.5': a @<fraction> is for steps_to_within only"),
    ("metric: auc:energy_distance, scale: {auc:energy_distance: log}", "question.scale.auc:energy_distance",
     "a log scale needs a strictly positive metric; auc:energy_distance can be zero or negative"),
    ("metric: steps_to_within:energy_distance, scale: log", "question.scale",
     "a log scale needs a strictly positive metric; steps_to_within:energy_distance can be zero or negative"),
])
def test_a_bad_convergence_metric_in_the_question_is_named(tmp_path, block, field, message):
    from bench.study import StudyError, load_study

    f = tmp_path / "study.yaml"
    f.write_text(STUDY + f"question: {{compare: variant.lens, {block}}}\n")
    with pytest.raises(StudyError) as e:
        load_study(f)
    assert (e.value.field, e.value.message[:len(message)]) == (field, message), str(e.value)
    assert "\n" not in str(e.value)


def test_convergence_metrics_validate_and_stage_2_never_ranks_by_one(tmp_path):
    import subprocess

    from bench.study import StudyError, load_study
    from conftest import GANBENCH, ROOT

    f = tmp_path / "study.yaml"
    f.write_text(STUDY + "question: {compare: variant.lens, metric: auc:energy_distance, co_primary: "
                         "[steps_to_within:energy_distance@0.05, modes_covered], secondary: [auc:modes_covered], "
                         "scale: {auc:modes_covered: absolute}}\n")
    q = load_study(f).question
    assert q.deciding == ["auc:energy_distance", "steps_to_within:energy_distance@0.05", "modes_covered"]
    assert [q.scale_of(m) for m in q.metrics] == ["relative", "relative", "absolute", "absolute"]
    # a retrain ranks the stage-1 points while the study runs, by a recorded final metric: never a derived one
    f.write_text("name: bad\ntrain: {steps: 10, eval_every: 5}\nquestion: {compare: variant.lens, metric: "
                 "auc:energy_distance}\nsweep: {method: random, num_samples: 2, variants: [{variant.lens: null}, "
                 "{variant.lens: {schedule: sine, K: 50}}], axes: {train.lr: [0.001, 0.0001]}, "
                 "retrain: {top: 1, seeds: [0, 1]}}\n")
    with pytest.raises(StudyError) as e:
        load_study(f)
    assert e.value.field == "sweep.retrain.metric" and "name one here (the question's is derived)" in e.value.message
    # at the command line: exit 2, one line naming the file and the field
    f.write_text(STUDY + "question: {compare: variant.lens, metric: auc:energy_distanc}\n")
    p = subprocess.run([GANBENCH, "validate", str(f)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == "", (p.stdout, p.stderr)
    assert p.stderr.splitlines() == [p.stderr.strip()]
    assert p.stderr.startswith(f"error: {f}: question.metric: unknown base metric 'energy_distanc'")


CONVERGENCE_QUESTION = """\
name: speed
question:
  text: Does the lens change how fast toy training gets there?
  compare: variant.lens
  metric: auc:energy_distance
  co_primary: [steps_to_within:energy_distance]
  statistic: mean_difference
"""


@pytest.fixture(scope="module")
def speed_folder(tmp_path_factory):
    """A tiny real study (in process, no Ray, about 1 s a trial): ns and ns with the sine lens (K = 50), seeds 0-2
    (three pairs), and an ns run forced to diverge (sgd, lr 1e12); its question asks about auc:energy_distance."""
    from bench import results
    from conftest import train_into

    out = tmp_path_factory.mktemp("speed") / "speed"
    small = {"train": {"steps": 100, "eval_every": 25, "batch_size": 64, "eval_samples": 300}, "model": {"width": 16}}
    specs = [{"seed": s, **lens} for lens in ({}, {"variant": {"lens": {"K": 50}}}) for s in (0, 1, 2)]
    specs.append({"seed": 0, "train": {"optimizer": "sgd", "lr": 1e12}})
    train_into(out, "speed", small, specs)
    (out / results.STUDY).write_text(CONVERGENCE_QUESTION)
    return out


def test_a_convergence_question_is_answered_from_the_curves(speed_folder):
    """The report's load() computes final.auc:energy_distance and final.steps_to_within:energy_distance per trial
    from its curve (checked here with numpy's trapezoid rule and a scan for the first step within 10 % of the run's
    own best), the diverged run has neither, and the question's mean difference names the metric in its verdict
    line; the paired differences are checked by hand."""
    from bench import results
    from bench.report import load

    data = load(speed_folder)
    t = data.trials.set_index("trial_id")
    _, curves = results.load(speed_folder)
    diverged = t.index[t["status"] == "diverged"]
    assert len(diverged) == 1 and len(t) == 7
    assert t.loc[diverged, ["final.auc:energy_distance", "final.steps_to_within:energy_distance"]].isna().all().all()
    for tid, c in curves.groupby("trial_id"):
        if tid in diverged:
            assert np.isfinite(c["energy_distance"].astype(float)).any()  # its curve has values: NaN by status
            continue
        c = c.sort_values("step")
        s, v = c["step"].to_numpy(float), c["energy_distance"].to_numpy(float)
        assert list(s) == [0, 25, 50, 75, 100]
        area = sum((v[i] + v[i + 1]) / 2 * (s[i + 1] - s[i]) for i in range(len(s) - 1)) / (s[-1] - s[0])
        assert t.loc[tid, "final.auc:energy_distance"] == pytest.approx(area, rel=1e-12)
        first = next(si for si, vi in zip(s, v) if abs(vi - v.min()) <= 0.1 * abs(v.min()))
        assert t.loc[tid, "final.steps_to_within:energy_distance"] == first and first % 25 == 0

    q, why = question.resolve(data.trials, data.question, None)
    assert why is None and q.metric == "auc:energy_distance"
    lines, _ = question.answer(data.trials, q)
    head = ("Mean difference (ring8): with the lens minus without the lens, the normalised area under the learning "
            "curve of energy distance to real (auc:energy_distance) changes by ")
    assert lines[0].startswith(head), lines[0]
    ok = data.trials[data.trials["status"] == "ok"]
    by_seed = {lens: g.set_index("seed")["final.auc:energy_distance"]
               for lens, g in ok.groupby(ok["variant.lens.schedule"].notna())}
    diff = (by_seed[True] - by_seed[False]).dropna()
    assert len(diff) == 3 and lines[0][len(head):].startswith(fmt(diff.mean()))
    p = sps.wilcoxon(diff.to_numpy()).pvalue
    assert f"paired over 3 pairs, Wilcoxon {p_is(p)}" in lines[0]
    # the verdict: with three pairs the exact Wilcoxon p is at least 0.25, so no verdict either way; the
    # co-primary steps_to_within is named beside it
    assert "steps to come within 10 % of the run's own best energy distance to real " \
           "(steps_to_within:energy_distance; on the evaluation grid)" in lines[0]
    assert lines[0].endswith(f"no significant difference at alpha 0.05 on any co-primary metric (the study's "
                             f"question (\"{q.text}\"); the primary test, alpha 0.05, not Holm-adjusted with the "
                             f"tables; compared within each dataset.name, a verdict only where every co-primary "
                             f"metric agrees)."), lines[0]


def test_the_leaderboard_ranks_a_convergence_metric_the_question_names(speed_folder):
    from bench.report import leaderboard as L

    out = L.lines([speed_folder])
    heads = [x for x in out if not x.startswith("  ")][1:]
    assert heads == ["ring8, generation, auc:energy_distance (lower is better): success rate, then relative seed "
                     "spread (std / mean), most robust first",
                     "ring8, generation, final energy_distance (lower is better): success rate, then relative seed "
                     "spread (std / mean), most robust first",
                     "ring8, generation, steps_to_within:energy_distance (lower is better): success rate, then "
                     "relative seed spread (std / mean), most robust first"], out
    i = out.index(heads[0])
    body = [x.strip() for x in out[i + 1:i + 3]]
    assert sorted(x.split(": ")[0][3:] for x in body) == ["ns [speed]", "ns+lens(sine K=50) [speed]"], body
    assert any("success" in x and "/4" in x for x in body)  # ns: the diverged run counts as a failure


def test_axis_spread_across_each_levels_own_axis():
    """Two structures that each sweep a weight of their own (CycleGAN's cycle weight, DiscoGAN's reconstruction
    weight): question.axis names one axis per level and the spread of each level is taken across its own. Planted:
    the per-point means of A spread 10x more than B's (exact: 0.05 * 5 points vs 0.005 * ..), seed noise tiny."""
    rows = []
    for structure, own, other, step in (("cyclegan", "variant.cycle_weight", "variant.recon_weight", 0.01),
                                        ("discogan", "variant.recon_weight", "variant.cycle_weight", 0.1)):
        for i, w in enumerate((0.0, 1.0, 3.0, 10.0, 30.0)):
            for s in range(3):
                rows.append({"study": "q", "trial_id": f"{structure}-{w}-{s}", "variant": structure,
                             "dataset.name": "domains", "variant.structure": structure, own: w, other: 1.0,
                             "seed": s, "status": "ok", "final.translation_error": 0.2 + step * i + 1e-4 * s})
    trials = pd.DataFrame(rows)
    q = QuestionCfg(compare="variant.structure", levels=["cyclegan", "discogan"], metric="translation_error",
                    statistic="axis_spread", axis=["variant.cycle_weight", "variant.recon_weight"], scale="absolute")
    lines, _ = question.answer(trials, q)
    first = lines[0]
    assert "Sensitivity to variant.cycle_weight / variant.recon_weight" in first, first
    assert "with variant.structure = discogan is 10x" in first, first
