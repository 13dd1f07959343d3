"""The report page of a two-stage random study (issue 23, item 3), checked against a planted truth: a results folder
written through the real row path (bench.results.rows_from_reports + upsert, the study's own expansion and stage-2
selection) whose final energy distance is a known function of the sampled learning rate, the lens and the seed,
with the wgan points at large learning rates diverged. The page must find the planted lens effect, rank the
learning rate first, count the diverged points as failures, and never analyse sampled values as grid points."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from bench import results
from bench.report import blocks
from bench.study import expand, load_study, retrain_trials

from conftest import report_without_torch
from test_protocol import STUDY

PLANTED = STUDY.replace("num_samples: 6", "num_samples: 12")
LENS_GAIN = 0.05  # the lens lowers the energy distance by this much at every point


def truth(cfg: dict, rng) -> tuple[str, float]:
    """(status, final energy distance): a bowl in log10(lr) around 1e-3, the lens better, a little seed noise;
    wgan diverges above lr 3e-3."""
    lr = cfg["train"]["lr"]
    if cfg["variant"]["objective"] == "wgan" and lr > 3e-3:
        return "diverged", np.nan
    ed = 0.1 + 0.2 * (np.log10(lr) + 3) ** 2 - (LENS_GAIN if cfg["variant"]["lens"] else 0.0)
    return "ok", float(ed + rng.normal(0, 0.005))


def write(folder, trials, rng):
    for t in trials:
        status, ed = truth(t, rng)
        reps = [{"step": 0, "energy_distance": ed + 0.3, "modes_covered": 2.0},
                {"step": 100, "energy_distance": ed, "modes_covered": 6.0, "final": True, "status": status,
                 **({"diverged_step": 60} if status != "ok" else {})}]
        if status != "ok":
            reps = reps[:1] + [{"step": 60, "final": True, "status": status, "diverged_step": 60}]
        row, curves, samples = results.rows_from_reports(t, reps, root=folder)
        results.upsert(folder, row, curves, samples)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("planted")
    (d / "study.yaml").write_text(PLANTED)
    study = load_study(d / "study.yaml")
    out = d / "res"
    out.mkdir()
    shutil.copy(d / "study.yaml", out / results.STUDY)
    rng = np.random.default_rng(0)
    stage1 = expand(study)
    write(out, stage1, rng)
    stage2, _notes = retrain_trials(study, stage1, results.load(out)[0])
    write(out, stage2, rng)
    return out


@pytest.fixture(scope="module")
def page(folder):
    return blocks(folder)[1]


def text(bl) -> str:
    return "\n".join(str(b[1]) if b[0] != "ul" else "\n".join(b[1]) for b in bl if b[0] in ("p", "ul", "h2", "h3"))


def test_the_answer_finds_the_planted_lens_gain_averaged_over_the_bases(page):
    lines = next(b[1] for b in page if b[0] == "ul")
    answer = next(x for x in lines if x.startswith("The study's question"))
    assert "averaged over the 3 bases per point" in answer
    assert "better with the lens" in answer
    diff = float(answer.split("final energy distance to real ")[1].split(" ")[0])
    assert diff == pytest.approx(-LENS_GAIN, abs=0.01)


def test_diverged_points_are_failures_never_dropped(folder, page):
    t = results.load(folder)[0]
    n_div = int(((t["stage"] == 1) & (t["status"] == "diverged")).sum())
    assert n_div > 0
    table = next(b for b in page if b[0] == "table" and "points" in b[1])
    wgan = [r for r in table[2] if r[1] in ("wgan", "wgan+lens(sine)")]
    assert sum(r[3] for r in wgan) == n_div and all(r[2] == 12 for r in wgan)
    # a failure counts at the worst finished value: the wgan medians are no better than the finished ones' worst
    lines = "\n".join(next(b[1] for b in page if b[0] == "ul"))
    assert "failed points counted at the worst value" in lines


def test_learning_rate_is_the_most_important_knob(page):
    lines = next(b[1] for b in page if b[0] == "ul")
    imp = next(x for x in lines if x.startswith("Which knobs matter"))
    assert "train.lr is the most important knob for 6 of 6 variants" in imp


def test_stage_2_and_seed_share(page):
    t2 = next(b for b in page if b[0] == "table" and "seed share [95 % F]" in b[1])
    assert len(t2[2]) == 6 * 2 and all(r[4] == 3 for r in t2[2])  # 2 points x 3 seeds (seed 0 = stage 1)
    lines = next(b[1] for b in page if b[0] == "ul")
    assert any(x.startswith("Seed against hyperparameters") for x in lines)


def test_sampled_values_are_never_grid_points(page):
    t = text(page)
    for grid_word in ("Sensitivity to", "axis point", "Swept axes", "heatmap"):
        assert grid_word not in t
    names = [b[1] for b in page if b[0] == "img"]
    assert {"space_energy_distance", "budget_energy_distance", "paired_energy_distance", "importance"} <= set(names)


def test_unfinished_study_says_so_and_too_few_points_get_no_importance(folder, tmp_path):
    part = tmp_path / "part"
    shutil.copytree(folder, part)
    t = results.load(part)[0]
    keep = t[(t["stage"] == 1) & (t["sample"] < 5)]
    results.write_parquet(keep, part / results.TRIALS, results.trial_columns())
    bl = blocks(part)[1]
    s = text(bl)
    assert "The study is unfinished" in s and "30 of 72 trials" in s
    assert "importance needs at least 8 sampled points, not 5" in s
    assert not any(x.startswith("Which knobs matter") for x in next(b[1] for b in bl if b[0] == "ul"))


def test_the_page_is_written_without_importing_torch(folder, tmp_path):
    report_without_torch(folder, tmp_path)
    md = (tmp_path / "report.md").read_text()  # and it wrote the page
    assert "Per variant over the sampled space" in md
    assert {"importance.png", "partial_dependence.png", "seed_share.png"} <= {p.name for p in (tmp_path / "figures").iterdir()}


def test_sweep_importance_restricts_the_knobs(folder, tmp_path):
    d = tmp_path / "only"
    shutil.copytree(folder, d)
    text_ = (d / results.STUDY).read_text().replace("  retrain:", "  importance: [train.lr, train.d_lr]\n  retrain:")
    (d / results.STUDY).write_text(text_)
    load_study(d / results.STUDY)  # valid
    table = next(b for b in blocks(d)[1] if b[0] == "table" and "share of variance" in b[1])
    assert {r[2] for r in table[2]} == {"train.lr", "train.d_lr/train.lr"}


PLAIN = """\
name: plain
dataset: {name: ring8}
model: {width: 16}
train: {steps: 100, batch_size: 64, eval_every: 50, eval_samples: 300}
sweep:
  method: random
  num_samples: 10
  seeds: [0, 1]
  axes:
    train.lr: {dist: loguniform, low: 1.0e-4, high: 1.0e-2}
    train.betas.0: {dist: uniform, low: 0.0, high: 0.9}
    variant.objective: [ns, lsgan]
"""


def test_a_plain_random_study_gets_the_page_too(tmp_path):
    """Without sweep.variants (what a new user writes first): the rows still say stage / sample / knobs, so the
    sampled values are never grid points; the objective drawn at random gives unequal budgets, which the table
    shows instead of hiding."""
    (tmp_path / "study.yaml").write_text(PLAIN)
    trials = expand(load_study(tmp_path / "study.yaml"))
    assert all(t["stage"] == 1 for t in trials) and {t["sample"] for t in trials} == set(range(10))
    assert all(set(t["knobs"]) <= {"train.lr", "train.betas.0", "variant.objective"} for t in trials)
    out = tmp_path / "res"
    out.mkdir()
    shutil.copy(tmp_path / "study.yaml", out / results.STUDY)
    write(out, trials, np.random.default_rng(0))
    bl = blocks(out)[1]
    assert "Swept axes" not in text(bl) and "axis point" not in text(bl)
    table = next(b for b in bl if b[0] == "table" and "points" in b[1])
    n = {r[1]: r[2] for r in table[2]}
    assert set(n) == {"ns", "lsgan"} and sum(n.values()) == len(trials) == 20


def test_publish_keeps_samples_of_the_drawn_points_only(folder):
    """A random study's published copy keeps the per-trial extras (toy samples, grids) of each variant's default
    point and of its stage-2 points (lowest seed, which may be the stage-1 trial), not of every sampled point."""
    from bench.publish import _lowest_seed_ids

    trials = results.read_parquet(folder / results.TRIALS)
    kept = trials[trials["trial_id"].isin(_lowest_seed_ids(trials))]
    point = lambda df: set(zip(df["variant"], pd.to_numeric(df["sample"])))
    default = {(v, pd.to_numeric(trials["sample"]).min()) for v in trials["variant"].unique()}
    assert point(kept) == default | point(trials[trials["stage"] == 2])
    assert len(kept) == len(point(kept))  # one trial per drawn point
    for _, k in kept.iterrows():  # ... its lowest seed
        same = trials[(trials["variant"] == k["variant"]) & (trials["sample"] == k["sample"])]
        assert k["seed"] == same["seed"].min()
    assert len(kept) < len(trials) / 3


def test_a_comparison_leaves_a_random_study_out_of_the_grid_analysis(folder):
    """`ganbench report results/*` with a random-search study among grid studies: its sampled values as grid axes
    made a heatmap of hundreds of cells (19 GB, killed by the OOM killer); it is left out of the grid comparison
    and named."""
    from conftest import ROOT

    grid = ROOT / "results" / "relativistic_toy"
    name, bl = blocks([grid, folder])
    body = text(bl)
    assert "Left out of this comparison: " + str(folder) in body
    assert not any(b[0] == "img" and b[1].startswith("heatmap") for b in bl)
    assert "train.lr" not in body  # the planted study's sampled knob is no axis here
