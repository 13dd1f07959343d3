"""The two-stage random-search protocol (issue 23, item 1): `sweep.variants` (the compared axis, every variant with
the same sampled points), conditional and ratio priors, `sweep.retrain` (stage 2: each variant's best points rerun
over seeds), the `stage` / `sample` / `knobs` columns, one `run_study` doing both stages and resuming either."""

import json
import math
import subprocess
import sys
import textwrap
from collections import Counter

import pandas as pd
import pytest

from bench import results
from bench.schema import config_hash
from bench.study import StudyError, expand, load_study, retrain_trials, select_retrain
from conftest import GANBENCH, ROOT

STUDY = """\
name: proto
description: a toy two-stage study
dataset: {name: ring8}
model: {width: 16}
train: {steps: 100, batch_size: 64, eval_every: 50, eval_samples: 300, lr: 1.0e-3, d_lr: 1.0e-3}
question: {compare: variant.lens, metric: energy_distance}
sweep:
  method: random
  num_samples: 6
  sample_seed: 3
  variants:
    zip: [{variant.objective: [ns, wgan-gp, wgan], train.n_critic: [1, 5, 5]}]
    cases: [{variant.lens: null}, {variant.lens: {schedule: sine, K: 50}}]
  axes:
    train.lr: {dist: loguniform, low: 1.0e-4, high: 1.0e-2}
    train.d_lr: {dist: loguniform, low: 0.25, high: 4, times: train.lr}
    train.betas.0: {dist: uniform, low: 0.0, high: 0.9}
    train.betas.1: {dist: uniform, low: 0.9, high: 0.999}
    train.n_critic: {dist: randint, low: 1, high: 5, when: {variant.objective: [wgan, wgan-gp]}}
    variant.gp_weight: {dist: loguniform, low: 1, high: 100, when: {variant.objective: [wgan-gp]}}
    variant.clip: {dist: loguniform, low: 0.001, high: 0.1, when: {variant.objective: [wgan]}}
    variant.lens.K: {dist: randint, low: 10, high: 90, when: {variant.lens: not_null}}
    model.width: [8, 16, 32]
  retrain: {top: 2, seeds: [0, 1, 2]}
"""
SHARED = ("train.lr", "train.d_lr/train.lr", "train.betas.0", "train.betas.1", "model.width")


def write(tmp_path, text, name="study.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def edit(old: str, new: str) -> str:
    assert old in STUDY, old
    return STUDY.replace(old, new)


@pytest.fixture
def trials(tmp_path):
    return expand(load_study(write(tmp_path, STUDY)))


# ----------------------------------------------------------------------------- bad input
BAD = {
    "prior-low-not-below-high": (edit("low: 1.0e-4, high: 1.0e-2", "low: 1.0e-2, high: 1.0e-2"), "sweep.axes.train.lr",
                                 "loguniform needs low < high (got low 0.01, high 0.01)"),
    "log-prior-bound-not-positive": (edit("low: 1.0e-4, high: 1.0e-2", "low: 0, high: 1.0e-2"), "sweep.axes.train.lr",
                                     "loguniform needs bounds > 0"),
    "uniform-reversed": (edit("low: 0.0, high: 0.9", "low: 0.9, high: 0.0"), "sweep.axes.train.betas.0",
                         "uniform needs low < high"),
    "axis-not-a-field": (edit("model.width: [8", "model.widht: [8"), "sweep.axes.model.widht",
                         "'model.widht' is not a field of the trial config"),
    "index-past-the-tuple": (edit("train.betas.1:", "train.betas.2:"), "sweep.axes.train.betas.2",
                             "'train.betas.2' is not a field"),
    "when-not-a-field": (edit("when: {variant.objective: [wgan-gp]}", "when: {variant.objectiv: [wgan-gp]}"),
                         "sweep.axes.variant.gp_weight.when.variant.objectiv",
                         "'variant.objectiv' is not a field of the trial config"),
    "when-on-a-sampled-knob": (edit("when: {variant.objective: [wgan-gp]}", "when: {model.width: [8]}"),
                               "sweep.axes.variant.gp_weight.when.model.width", "'model.width' is sampled"),
    "when-matches-no-variant": (edit("when: {variant.objective: [wgan-gp]}", "when: {variant.objective: [hinge]}"),
                                "sweep.axes.variant.gp_weight.when", "matches no variant"),
    "lens-knob-without-when": (edit("{dist: randint, low: 10, high: 90, when: {variant.lens: not_null}}",
                                    "{dist: randint, low: 10, high: 90}"),
                               "sweep.axes.variant.lens.K", "'variant.lens' is null here"),
    "times-not-a-field": (edit("times: train.lr", "times: train.lrr"), "sweep.axes.train.d_lr.times",
                          "'train.lrr' is not a field of the trial config"),
    "compared-axis-sampled": (edit("    model.width: [8, 16, 32]", "    variant.objective: [ns, hinge]"),
                              "sweep.axes.variant.objective", "the compared axis belongs in sweep.variants"),
    "top-above-num-samples": (edit("top: 2", "top: 7"), "sweep.retrain.top",
                              "top 7 is more than the 6 points sampled per variant"),
    "retrain-empty-seeds": (edit("seeds: [0, 1, 2]", "seeds: []"), "sweep.retrain.seeds", "empty list of seeds"),
    "retrain-seed-twice": (edit("seeds: [0, 1, 2]", "seeds: [0, 1, 1]"), "sweep.retrain.seeds", "seed 1 is listed twice"),
    "retrain-metric-not-recorded": (edit("seeds: [0, 1, 2]}", "seeds: [0, 1, 2], metric: fid}"),
                                    "sweep.retrain.metric", "'fid' is not recorded by ns trials on ring8"),
    "retrain-without-a-metric": (edit("question: {compare: variant.lens, metric: energy_distance}\n", ""),
                                 "sweep.retrain.metric", "no metric to rank the points by"),
    "stage-1-with-several-seeds": (edit("  retrain:", "  seeds: [0, 1]\n  retrain:"), "sweep.seeds",
                                   "with sweep.retrain, stage 1 runs one seed per point"),
    "variants-beside-cases": (edit("  retrain:", "  cases: [{seed: 1}]\n  retrain:"), "sweep.cases",
                              "with sweep.variants, the compared axis's zip and cases go under sweep.variants"),
    "variant-not-a-field": (edit("cases: [{variant.lens: null}", "cases: [{variant.lenz: null}"),
                            "sweep.variants.cases[0].variant.lenz", "'variant.lenz' is not a field"),
    "retrain-on-a-grid": ("name: g\nquestion: {compare: variant.lens, metric: energy_distance}\n"
                          "sweep:\n  axes: {train.lr: [1.0e-3, 1.0e-4]}\n  retrain: {top: 1, seeds: [0, 1]}\n",
                          "sweep.retrain", "a retrain reruns each variant's best sampled points: it needs method: "
                                           "random with sweep.variants (this study is grid)"),
    "variants-on-a-grid": ("name: g\nsweep:\n  axes: {train.lr: [1.0e-3]}\n  variants: [{variant.lens: null}]\n",
                           "sweep.variants", "variants are for method: random"),
    "importance-one-numeric-knob": (edit("  retrain:", "  importance: [train.lr, model.width]\n  retrain:")
                                    .replace("model.width: [8, 16, 32]", "model.width: [a, b]"),
                                    "sweep.importance", "needs at least 2 sampled numeric knobs, not 1 (train.lr)"),
    "importance-not-sampled": (edit("  retrain:", "  importance: [train.lr, train.steps]\n  retrain:"),
                               "sweep.importance", "'train.steps' is not a sampled knob"),
    "when-without-variants": ("name: r\nsweep:\n  method: random\n  num_samples: 2\n  axes:\n"
                              "    variant.gp_weight: {dist: uniform, low: 1, high: 2, when: {variant.objective: [ns]}}\n",
                              "sweep.axes.variant.gp_weight.when", "conditional priors need sweep.variants"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_protocol_input_names_its_field(tmp_path, case):
    text, field, message = BAD[case]
    with pytest.raises(StudyError) as e:
        load_study(write(tmp_path, text))
    assert e.value.field == field, str(e.value)
    assert message in e.value.message, str(e.value)


@pytest.mark.parametrize("case", ["prior-low-not-below-high", "top-above-num-samples", "retrain-on-a-grid",
                                  "when-not-a-field", "importance-one-numeric-knob"])
def test_bad_input_exits_2_with_one_line_before_anything_is_written(tmp_path, case):
    text, field, message = BAD[case]
    study, out = write(tmp_path, text), tmp_path / "res"
    p = subprocess.run([GANBENCH, "run", str(study), "--results", str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {study}: {field}: "), p.stderr
    assert message in lines[0]
    assert not out.exists() and not p.stdout


# ----------------------------------------------------------------------------- expansion
def test_every_variant_gets_the_same_points_default_first(trials):
    by_variant = Counter(t["variant_label"] for t in trials)
    assert by_variant == {v: 6 for v in ("ns", "wgan-gp", "wgan", "ns+lens(sine)", "wgan-gp+lens(sine)",
                                         "wgan+lens(sine)")}
    assert all(t["stage"] == 1 for t in trials) and all(t["seed"] == 0 for t in trials)
    assert len({t["trial_id"] for t in trials}) == len(trials)
    for t in trials:  # the protocol's keys are not part of the trial id
        assert t["trial_id"] == config_hash(t)
    points = {}
    for t in trials:
        points.setdefault(t["sample"], []).append(t)
    assert sorted(points) == list(range(6))
    for i, group in points.items():  # paired: point i's shared knobs are the same in every variant
        for knob in SHARED:
            assert len({json.dumps(t["knobs"][knob]) for t in group}) == 1, (i, knob)
        assert len({t["train"]["lr"] for t in group}) == 1 and len({tuple(t["train"]["betas"]) for t in group}) == 1
    default = {t["variant_label"]: t for t in points[0]}  # point 0: each variant's own config, nothing drawn
    assert default["ns"]["train"]["lr"] == 1e-3 and default["ns"]["train"]["betas"] == [0.5, 0.999]
    assert default["ns"]["train"]["n_critic"] == 1 and default["wgan-gp"]["train"]["n_critic"] == 5
    assert default["ns+lens(sine)"]["variant"]["lens"]["K"] == 50
    assert default["ns"]["knobs"]["train.d_lr/train.lr"] == 1.0 and default["wgan"]["knobs"]["train.n_critic"] == 5


def test_sampled_values_follow_their_priors(trials):
    for t in (t for t in trials if t["sample"] > 0):
        k, train = t["knobs"], t["train"]
        assert 1e-4 <= train["lr"] <= 1e-2 and train["lr"] == k["train.lr"]
        assert 0.25 <= k["train.d_lr/train.lr"] <= 4 and train["d_lr"] == pytest.approx(k["train.d_lr/train.lr"] * train["lr"])
        assert 0 <= train["betas"][0] <= 0.9 and 0.9 <= train["betas"][1] <= 0.999
        assert train["betas"] == [k["train.betas.0"], k["train.betas.1"]]
        assert t["model"]["width"] in (8, 16, 32)


def test_conditional_knobs_apply_only_where_their_condition_holds(trials):
    for t in trials:
        v, k = t["variant"], t["knobs"]
        assert ("variant.gp_weight" in k) == (v["objective"] == "wgan-gp")
        assert ("variant.clip" in k) == (v["objective"] == "wgan")
        assert ("train.n_critic" in k) == (v["objective"] in ("wgan", "wgan-gp"))
        assert ("variant.lens.K" in k) == (v["lens"] is not None)
        if v["objective"] != "wgan-gp":
            assert v["gp_weight"] == 10.0  # the base value where the prior does not apply
        if v["objective"] == "ns":
            assert t["train"]["n_critic"] == 1
        if v["lens"] is not None and t["sample"] > 0:
            assert 10 <= v["lens"]["K"] <= 90 and v["lens"]["K"] == k["variant.lens.K"]
    # a conditional knob is drawn once per point and shared by the variants it applies to
    ks = {}
    for t in trials:
        if t["variant"]["lens"] is not None:
            ks.setdefault(t["sample"], set()).add(t["variant"]["lens"]["K"])
    assert all(len(s) == 1 for s in ks.values())


def test_draws_do_not_depend_on_the_variants(tmp_path, trials):
    """Every prior is drawn for every point whatever its condition, so another variant leaves the others' points."""
    more = expand(load_study(write(tmp_path, edit("[ns, wgan-gp, wgan], train.n_critic: [1, 5, 5]",
                                                  "[ns, wgan-gp, wgan, hinge], train.n_critic: [1, 5, 5, 1]"),
                                   "more.yaml")))
    assert {t["trial_id"] for t in trials} < {t["trial_id"] for t in more}
    assert len(more) == len(trials) + 12


def test_an_old_random_study_keeps_its_trial_ids(tmp_path):
    text = ("name: r\nsweep:\n  method: random\n  num_samples: 5\n  axes:\n"
            "    train.lr: {dist: loguniform, low: 1.0e-5, high: 1.0e-2}\n    model.width: [16, 32]\n")
    trials = expand(load_study(write(tmp_path, text)))
    # ids as before; the rows now say which sampled point they are (the report's random-search page reads them)
    assert len(trials) == 5 and [t["sample"] for t in trials] == list(range(5)) and {t["stage"] for t in trials} == {1}
    assert [t["trial_id"] for t in trials][0] == config_hash(load_study(write(tmp_path, "name: r\n", "b.yaml")).base_config())


# ----------------------------------------------------------------------------- stage 2: selection
def table(rows):
    return pd.DataFrame(rows, columns=["variant", "sample", "status", "final.energy_distance"])


def test_selection_top_m_diverged_and_failed_never_ties_by_sample_index():
    t = table([("a", 0, "ok", 0.30), ("a", 1, "diverged", 0.01), ("a", 2, "ok", 0.20), ("a", 3, "failed", 0.02),
               ("a", 4, "ok", 0.20), ("a", 5, "ok", 0.50), ("a", 6, "ok", math.nan),
               ("b", 0, "ok", 0.9), ("b", 1, "diverged", math.nan), ("b", 2, "failed", math.nan)])
    chosen, notes = select_retrain(t, 3, "energy_distance", "min")
    assert chosen == {"a": [2, 4, 0], "b": [0]}  # 2 and 4 tie: the lower sample index first
    assert len(notes) == 1 and notes[0].startswith("b: only 1 of 3 points finished") and "retraining 1 instead of 3" in notes[0]
    chosen, _ = select_retrain(t, 2, "energy_distance", "max")
    assert chosen == {"a": [5, 0], "b": [0]}


def stage1_rows(trials, metric=None, status=None):
    """A trials table for the stage-1 trials: energy distance = a given function of (variant, sample)."""
    return pd.DataFrame([{"trial_id": t["trial_id"], "status": (status or (lambda t: "ok"))(t),
                          "final.energy_distance": metric(t)} for t in trials])


def test_retrain_trials_rerun_the_best_points_with_every_seed(trials):
    study = load_study_text(STUDY)
    assert retrain_trials(study, trials, stage1_rows(trials[:-1], lambda t: 1.0)) is None  # a stage-1 trial has no row
    # the best points: sample 4 then 2 everywhere, except that ns's sample 4 diverged
    score = {4: 0.1, 2: 0.2, 5: 0.3}
    rows = stage1_rows(trials, lambda t: score.get(t["sample"], 1.0) + t["sample"] * 1e-9,
                       lambda t: "diverged" if (t["variant_label"], t["sample"]) == ("ns", 4) else "ok")
    new, notes = retrain_trials(study, trials, rows)
    assert not notes
    by = {}
    for t in new:
        by.setdefault(t["variant_label"], set()).add((t["sample"], t["seed"]))
    assert by["ns"] == {(2, 1), (2, 2), (5, 1), (5, 2)}
    assert by["wgan-gp+lens(sine)"] == {(4, 1), (4, 2), (2, 1), (2, 2)}  # seed 0 is the stage-1 trial itself
    assert len(new) == 6 * 2 * 2 and all(t["stage"] == 2 for t in new)
    first = {(t["variant_label"], t["sample"]): t for t in trials}
    for t in new:  # the point's config with another seed, its knobs, never a stage-1 id
        f = first[(t["variant_label"], t["sample"])]
        assert {k: v for k, v in t.items() if k not in ("seed", "trial_id", "stage")} == \
               {k: v for k, v in f.items() if k not in ("seed", "trial_id", "stage")}
        assert t["trial_id"] == config_hash(t) and t["trial_id"] not in {x["trial_id"] for x in trials}
    again, _ = retrain_trials(study, trials, rows.sample(frac=1, random_state=0))  # a function of the rows alone
    assert [t["trial_id"] for t in again] == [t["trial_id"] for t in new]


def load_study_text(text):
    import tempfile
    from pathlib import Path

    p = Path(tempfile.mkdtemp()) / "s.yaml"
    p.write_text(text)
    return load_study(p)


def test_rows_carry_stage_sample_and_knobs(trials):
    t = trials[7]
    row, _, _ = results.rows_from_reports(t, [{"step": 100, "final": True, "status": "ok", "energy_distance": 0.5}])
    assert (row["stage"], row["sample"]) == (1, t["sample"]) and row["knobs"] == t["knobs"]
    assert not {"stage", "sample", "knobs"} & set(json.loads(row["config"]))  # the config column stays the config
    table = results.to_table(pd.DataFrame([row]), results.trial_columns())
    assert str(table.schema.field("stage").type) == "int64" and str(table.schema.field("sample").type) == "int64"
    assert json.loads(table.column("knobs")[0].as_py()) == t["knobs"]


# ----------------------------------------------------------------------------- end to end on Ray
TINY = """\
name: proto_tiny
dataset: {name: ring8}
model: {width: 16}
train: {steps: 100, batch_size: 64, eval_every: 50, eval_samples: 300}
question: {compare: variant.lens, metric: energy_distance}
sweep:
  method: random
  num_samples: 3
  variants: [{variant.lens: null}, {variant.lens: {schedule: sine, K: 50}}]
  axes:
    train.lr: {dist: loguniform, low: 1.0e-4, high: 1.0e-2}
    variant.lens.K: {dist: randint, low: 10, high: 90, when: {variant.lens: not_null}}
  retrain: {top: 1, seeds: [0, 1]}
"""

RUN = textwrap.dedent("""
    import json, sys, time
    from bench import results
    from bench.runner import run_study
    from bench.study import load_study

    study, out = load_study(sys.argv[1]), sys.argv[2]
    got = {"first": run_study(study, out, show_progress=False, num_cpus=2)}
    rows = results.load(out)[0]
    got["rows"] = json.loads(rows.to_json(orient="records"))
    got["again"] = run_study(study, out, show_progress=False, num_cpus=2)
    # a folder where only stage 1 finished (stage 2's rows gone): only stage 2 runs
    stage1 = rows[rows["stage"] == 1]
    results.write_parquet(stage1, results.Path(out) / results.TRIALS, results.trial_columns())
    got["stage2_only"] = run_study(study, out, show_progress=False, num_cpus=2)
    got["after"] = json.loads(results.load(out)[0].to_json(orient="records"))
    print(json.dumps(got))
""")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("proto")
    (d / "study.yaml").write_text(TINY)
    out = d / "res"
    p = subprocess.run([sys.executable, "-c", RUN, str(d / "study.yaml"), str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return out, json.loads(p.stdout.strip().splitlines()[-1]), p.stderr


def test_one_run_does_both_stages(tiny_run):
    out, got, err = tiny_run
    assert got["first"] == {"ok": 8, "diverged": 0, "failed": 0}
    rows = pd.DataFrame(got["rows"])
    assert rows["trial_id"].is_unique and len(rows) == 8
    assert Counter(rows["stage"]) == {1: 6, 2: 2}
    s1, s2 = rows[rows["stage"] == 1], rows[rows["stage"] == 2]
    assert sorted(s1["sample"]) == [0, 0, 1, 1, 2, 2] and (s1["seed"] == 0).all()
    # stage 2: each variant's best stage-1 point, with seed 1 (seed 0 is that stage-1 trial)
    for variant, g in s1.groupby("variant"):
        best = g.sort_values(["final.energy_distance", "sample"]).iloc[0]
        two = s2[s2["variant"] == variant]
        assert two["sample"].tolist() == [best["sample"]] and two["seed"].tolist() == [1]
        assert json.loads(two["knobs"].item()) == json.loads(best["knobs"])
        assert two["train.lr"].item() == best["train.lr"]
    assert "stage 2: the best 1 point(s) of each variant" in err
    status = subprocess.run([GANBENCH, "status", str(out)], capture_output=True, text=True, timeout=60)
    assert "8/8 done (8 ok, 0 diverged)" in status.stdout


def test_a_rerun_runs_nothing_and_a_folder_with_stage_1_runs_only_stage_2(tiny_run):
    out, got, err = tiny_run
    assert got["again"] == {"ok": 0, "diverged": 0, "failed": 0, "skipped": 8}
    assert got["stage2_only"] == {"ok": 2, "diverged": 0, "failed": 0}
    before = pd.DataFrame(got["rows"]).set_index("trial_id").sort_index()
    after = pd.DataFrame(got["after"]).set_index("trial_id").sort_index()
    assert after.index.tolist() == before.index.tolist()
    assert (after["stage"] == before["stage"]).all() and (after["sample"] == before["sample"]).all()
    # the rerun stage-2 trials end with the numbers of the first run (same configs, same seeds)
    assert after["final.energy_distance"].tolist() == before["final.energy_distance"].tolist()
    assert len(results.read_runs(out)) == 2  # the run with nothing to do records no run


# ----------------------------------------------------------------------------- a kill during stage 2
KILLED = """\
name: proto_kill
dataset: {name: ring8}
model: {width: 32}
train: {steps: 3000, batch_size: 64, eval_every: 250, eval_samples: 300, checkpoint_every: 500}
question: {compare: variant.lens, metric: energy_distance}
sweep:
  method: random
  num_samples: 2
  variants: [{variant.lens: null}, {variant.lens: {schedule: sine, K: 500}}]
  axes:
    train.lr: {dist: loguniform, low: 1.0e-4, high: 1.0e-2}
  retrain: {top: 1, seeds: [0, 1]}
  pack: off
resources: {cpu: 1}
"""


@pytest.mark.slow  # ~2 min: the driver's process group SIGKILLed while stage 2 trains, then the study rerun
def test_driver_killed_in_stage_2_then_rerun_finishes_both_stages(tmp_path):
    import contextlib
    import os
    import signal

    import torch

    from bench.trial import run_trial
    from test_faults import checkpointed, start, wait_for, workers

    study = write(tmp_path, KILLED)
    out = tmp_path / "res"
    stage1 = expand(load_study(study))
    ids1 = {t["trial_id"] for t in stage1}
    proc = start(study, out, "--max-concurrent", "1")
    try:
        def in_stage_2():
            expected = set(results.read_progress(out).get("expected", []))
            return (expected - ids1) & set(checkpointed(out, at_least=2)) - results.finished_ids(out)
        wait_for(in_stage_2, timeout=400)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    wait_for(lambda: not workers(proc.pid), timeout=60)
    assert set(results.finished_ids(out)) >= ids1
    again = subprocess.run([GANBENCH, "run", str(study), "--results", str(out), "--no-report", "--max-concurrent", "1"],
                           cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 of 6 trials already finished, running 2" in again.stderr or "running 1" in again.stderr
    trials, curves = results.load(out)
    assert trials["trial_id"].is_unique and len(trials) == 6 and (trials["status"] == "ok").all()
    assert Counter(trials["stage"]) == {1: 4, 2: 2}
    assert not curves.duplicated(["trial_id", "step"]).any()
    resumed = trials[trials["resumed_from_step"] > 0]
    assert len(resumed) >= 1 and (resumed["stage"] == 2).all() and (resumed["attempts"] == 2).all()
    # the resumed trial ends with the numbers of an uninterrupted run
    new, _ = retrain_trials(load_study(study), stage1, trials)
    cfg = next(t for t in new if t["trial_id"] == resumed["trial_id"].iloc[0])
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        last = run_trial(cfg, lambda row, state=None: None, tmp_path / "ref")[0]
    finally:
        torch.set_num_threads(n)
    assert resumed["final.energy_distance"].iloc[0] == last["energy_distance"]
