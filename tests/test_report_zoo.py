"""The report's section per zoo variant (issue 12; bench.report.zoo) on real tiny trials: ACGAN at two
values of lambda_cls x 2 seeds and InfoGAN x 2 seeds on digits. Every number checked here is recomputed
from trials.parquet."""

import re

import numpy as np
import pytest

from bench import results
from bench.report.fmt import fmt, interval
from bench.schema import config_hash, variant_label
from bench.trial import run_trial
from conftest import ROOT, digits_config


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    import torch

    out = tmp_path_factory.mktemp("results") / "zoo"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    specs = [("acgan", {"lambda_cls": w}, s) for w in (0.3, 3.0) for s in (0, 1)] + \
            [("infogan", {}, s) for s in (0, 1)]
    for structure, variant, seed in specs:
        cfg = digits_config(structure, 40, 200, variant=variant, seed=seed)
        cfg = {**cfg, "trial_id": config_hash(cfg), "variant_label": variant_label(cfg)}
        reps = []
        run_trial(cfg, reps.append, out)
        results.upsert(out, *results.rows_from_reports(cfg, reps, root=out))
    torch.set_num_threads(n)
    (out / results.STUDY).write_text("name: zoo\n")
    return out


@pytest.fixture(scope="module")
def report(zoo_dir, tmp_path_factory):
    from bench.report import build_report

    d = tmp_path_factory.mktemp("report")
    build_report(zoo_dir, d)
    return d, (d / "report.md").read_text()


def test_a_section_per_variant_names_its_weight_in_words(report):
    _, md = report
    assert "## ACGAN: sensitivity to its own weights" in md
    assert "## InfoGAN: sensitivity to its own weights" in md
    # the schema's description of lambda_cls, not just the column name
    assert "`variant.lambda_cls` over {0.3, 3}: weight of the auxiliary class loss" in md or \
        "`variant.lambda_cls` in [0.3, 3] (2 values): weight of the auxiliary class loss" in md
    assert "Judged by its own metrics (class_accuracy, class_fid, d_class_accuracy)" in md
    assert "Judged by its own metrics (code_accuracy, code_nmi)" in md


def test_per_weight_cells_and_spread_are_the_statistics_of_the_trials(zoo_dir, report, by_hand):
    """Recomputed by hand from trials.parquet (not with the bench.stats calls the report makes): each weight's cell
    is the mean over its 2 seeds with the Student t interval, kept inside the metric's range [0, 1]; the spread
    across lambda_cls is that of the true per-weight means (two-way ANOVA over seeds x weights, noncentral F)."""
    _, md = report
    trials, _ = results.load(zoo_dir)
    ac = trials[(trials["variant.structure"] == "acgan") & (trials["status"] == "ok")]
    cols = {}
    for w in (0.3, 3.0):
        v = ac.loc[ac["variant.lambda_cls"] == w].sort_values("seed")["final.class_accuracy"].astype(float).to_numpy()
        assert len(v) == 2
        cols[w] = v
        m, lo, hi = by_hand.t_interval(v)
        cell = f"{fmt(v[0])} (all 2 equal)" if v[0] == v[1] else interval(m, max(lo, 0.0), min(hi, 1.0))
        row = next(line for line in md.splitlines() if line.startswith(f"| {w:g} |") and "/ 2 |" in line)
        assert cell in row, (cell, row)
    Y = np.column_stack([cols[0.3], cols[3.0]])  # seeds x weights
    std, lo, hi = by_hand.true_spread(Y)
    assert f"has a spread (of the true per-value means, seed noise taken out) of {interval(std, lo, hi)}" in md
    # the headline names the variant, the weight in words and the best / worst value
    head = next(line for line in md.splitlines() if line.startswith("- ACGAN: across variant.lambda_cls"))
    assert "weight of the auxiliary class loss" in head and "best" in head and "worst" in head
    means = {w: v.mean() for w, v in cols.items()}
    best = max(means, key=means.get)  # class accuracy: higher is better
    assert f"best {fmt(means[best])}" in head


def test_zoo_trials_are_judged_by_recall_not_by_the_encoder_decoder_rule(report):
    _, md = report
    table = md[md.index("### Success rate"):].split("\n\n")[2].splitlines()[2:]
    assert len(table) == 2 and all("| recall >= 0.1 |" in row for row in table)  # acgan, infogan


def test_the_variants_own_images_and_metric_figures(report):
    d, md = report
    figs = {p.name for p in (d / "figures").glob("zoo_*.png")}
    assert {"zoo_acgan_0_metrics.png", "zoo_acgan_0_images.png", "zoo_infogan_images.png"} <= figs
    assert re.search(r"!\[InfoGAN: the images it saved.*\]\(figures/zoo_infogan_images\.png\)", md)
    from matplotlib.image import imread

    # InfoGAN's figure holds its generated grid and both latent traversals: 3 rows of images
    img = imread(d / "figures" / "zoo_infogan_images.png")
    acgan = imread(d / "figures" / "zoo_acgan_0_images.png")  # one row (generated), two columns (weights)
    assert img.shape[0] > 2.5 * acgan.shape[0]
    assert np.isfinite(img).all()


def test_own_weights_section_reads_declared_and_toy_metrics():
    """A structure's own metrics come from its declaration (bench.catalog); on toy data the sample-quality metrics
    are the toys' (the section once said 'No finite final metric' for a toy run with an energy distance of 0.04)."""
    import pandas as pd

    from bench.report import zoo

    sub = pd.DataFrame({"final.energy_distance": [0.04, 0.05], "final.modes_covered": [7.0, 8.0],
                        "final.code_kl": [0.1, 0.2], "final.l1": [0.3, 0.2]})
    own, sample = zoo.own_metrics(sub, "age")
    assert own == ["l1", "code_kl"] and sample == ["modes_covered", "energy_distance"]
    assert zoo._sectioned("age") and not zoo._sectioned("gan") and not zoo._sectioned("ed//gan")
    assert zoo._sectioned("a-structure-removed-since")


def test_a_section_lists_each_metric_once_and_only_real_spreads():
    """On the published adaptation study (DANN's three swept axes, DupGAN's diagnostic pseudo-label rate): a metric
    both declared and new appears once per table, a setting with one value of the weight gets no spread row ('n/a'
    rows filled the tables), a diagnostic has no better direction (no arrow, no spread), and the declared headline
    metric's sentence is not repeated beside the report's own line for the same axis."""
    from bench.report import load, zoo

    data = load([ROOT / "results" / "adaptation_fmnist"])
    heads, blocks = zoo.blocks(data.trials, data.curves)
    tables = [b for b in blocks if b[0] == "table"]
    assert tables
    for _, header, rows in tables:
        assert len(header) == len(set(header)), header
        assert all("n/a" not in row for row in rows), rows
    assert any("pseudo_label_rate" in header for _, header, _ in tables)
    assert not any(h.startswith("pseudo_label_rate ") for _, header, _ in tables for h in header)
    assert not any(str(row[0]).startswith("pseudo_label_rate") for _, header, rows in tables
                   if header[0] == "metric" for row in rows)
    assert not any("target accuracy" in h or "target domain" in h for h in heads), heads  # DANN's, DupGAN's headline
