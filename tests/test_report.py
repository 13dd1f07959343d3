import base64
import re
import subprocess
import sys

import pytest

from bench import results
from bench.schema import config_hash

STUDY_YAML = "name: test\ndescription: a <tiny> study & its report\n"


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """Six tiny real trials (ns x 2 seeds, ns+lens x 2 seeds, a single-seed lsgan, an ns run forced to
    diverge) and one failed ns trial with no curves or samples."""
    from conftest import train_into

    out = tmp_path_factory.mktemp("results") / "test"
    small = {"train": {"steps": 100, "eval_every": 50, "batch_size": 64, "eval_samples": 500}, "model": {"width": 32}}
    specs = [{"seed": 0}, {"seed": 1}, {"seed": 0, "variant": {"lens": {"K": 50}}},
             {"seed": 1, "variant": {"lens": {"K": 50}}}, {"seed": 0, "variant": {"objective": "lsgan"}},
             {"seed": 2, "train": {"optimizer": "sgd", "lr": 1e12}}]
    cfg = train_into(out, "test", small, specs, provenance={"git_commit": "abc"})[-1]
    failed = {**cfg, "seed": 3}
    failed["trial_id"] = config_hash(failed)
    results.upsert(out, *results.rows_from_reports(failed, [], status="failed", error="boom"))
    (out / results.STUDY).write_text(STUDY_YAML)
    return out


def test_report_files_and_content(results_dir, tmp_path):
    from bench.report import build_report

    paths = build_report(results_dir, tmp_path)
    assert paths == {"html": tmp_path / "report.html", "md": tmp_path / "report.md"}
    html, md = paths["html"].read_text(), paths["md"].read_text()

    # Self-contained: no external resources, every image an inline PNG.
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', html)
    assert len(srcs) == html.count("<img") > 0
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'\s(?:src|href)="(?!data:)', html)
    assert "<script" not in html and "<link" not in html

    pngs = sorted((tmp_path / "figures").glob("*.png"))
    assert len(pngs) == len(srcs)
    assert sorted(re.findall(r"\]\((figures/[^)]+\.png)\)", md)) == sorted(f"figures/{p.name}" for p in pngs)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)

    # Summary rows: every variant label, the single-seed variant has no CI, the counts include the
    # diverged and the failed run.
    summary = html.split("<h2>Summary</h2>", 1)[1].split("<h2>", 1)[0]
    for label in ("ns", "ns+lens(sine K=50)", "lsgan"):
        assert f"<td>{label}</td>" in summary
        assert f"| {label} |" in md
    lsgan_row = next(r for r in summary.split("<tr>") if "<td>lsgan</td>" in r)
    assert "no CI (n=1)" in lsgan_row
    ns_row = next(r for r in summary.split("<tr>") if "<td>ns</td>" in r)
    # dataset, variant, trials, ok, diverged, failed
    assert re.findall(r"<td>([^<]*)</td>", ns_row)[:6] == ["ring8", "ns", "4", "2", "1", "1"]
    assert "2 of 4 runs had no value" in ns_row
    # success rate: the failed trial counts as a failure (n = 4, not 3); successes counted here from the rows
    trials, _ = results.load(results_dir)
    ns = trials[trials["variant"] == "ns"]
    k = int(((ns["status"] == "ok") & (ns["final.modes_covered"] >= 4)).sum())
    row = next(l for l in md.splitlines() if l.startswith("| ring8 | ns | modes covered >= 4 of 8 |"))
    assert f"| {k} / 4 |" in row and row.split("|")[-3].strip() == "1", row  # ... | failed (counted) | note |
    assert "7 trials: 5 ok, 1 diverged, 1 failed." in html
    assert "&lt;tiny&gt; study &amp; its report" in html  # text is escaped
    assert "pool trials that also differ in train.lr, train.optimizer" in html
    assert "git_commit" in html and "abc" in html


def test_report_link_images_points_at_the_written_figures(results_dir, tmp_path):
    """`ganbench report --link-images` (published folders): the same page, images linked from figures/."""
    from bench.report import build_report

    inline = build_report(results_dir, tmp_path / "a")["html"].read_text()
    linked = build_report(results_dir, tmp_path / "b", link_images=True)["html"].read_text()
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', linked)
    assert srcs and len(srcs) == len(re.findall(r'<img[^>]*\ssrc="data:', inline))
    assert sorted(srcs) == sorted(f"figures/{p.name}" for p in (tmp_path / "b" / "figures").glob("*.png"))
    assert len(linked) < len(inline) / 2
    assert re.sub(r'src="[^"]*"', "", linked) == re.sub(r'src="[^"]*"', "", inline)


def test_report_is_reproducible_and_defaults_to_results_dir(results_dir):
    from bench.report import build_report

    a = build_report(results_dir)["md"].read_text()
    b = build_report(results_dir)["md"].read_text()
    assert a == b and (results_dir / "report.html").exists() and (results_dir / "figures").is_dir()


def test_report_single_trial_without_samples(tmp_path, results_dir):
    """One trial, one seed, no samples, no study.yaml: a report all the same."""
    from bench.report import build_report

    trials, curves = results.load(results_dir)
    one = trials[trials["status"] == "ok"].head(1)
    results.write_parquet(one, tmp_path / results.TRIALS)
    results.write_parquet(curves[curves["trial_id"].isin(one["trial_id"])], tmp_path / results.LEGACY_CURVES)
    html = build_report(tmp_path)["html"].read_text()
    assert "No samples were stored." in html and "no CI (n=1)" in html and "1 trials: 1 ok" in html


def test_report_does_not_import_torch(results_dir, tmp_path):
    from conftest import report_without_torch

    report_without_torch(results_dir, tmp_path)


# ----------------------------------------------------------------------------- headline findings (issue 5)
# Synthetic results folders (no training): the numbers in the report are checked against bench.stats
# called independently here.


def _synthetic(out, objectives=("ns", "lsgan"), lens=True, lrs=(1e-3,), batches=(256,), seeds=(0, 1, 2),
               study="syn", diverge=(), extra=None, grids=False, noise=0.0):
    """A results folder with one row per config; final energy distance = f(objective, lens, lr, seed), plus
    `noise` x a fixed seed-by-setting term (so that the seed noise is not the same at every setting)."""
    import numpy as np
    import pandas as pd

    rows, curves = [], []
    for obj in objectives:
        for ln in ((None, "sine") if lens else (None,)):
            for lr in lrs:
                for bs in batches:
                    for s in seeds:
                        tid = f"{obj}-{ln}-{lr}-{bs}-{s}"
                        ed = 0.1 + 0.05 * (obj == "lsgan") - (0.02 + 0.01 * s) * (ln is not None) \
                            + 0.3 * abs(np.log10(lr) + 3) + 0.001 * bs / 256 + 0.013 * ((s * 7) % 3) \
                            + noise * np.sin(100 * s + 10 * np.log10(lr) + bs)
                        status = "diverged" if (obj, ln, s) in diverge else "ok"
                        rows.append({"study": study, "trial_id": tid, "variant": obj + ("+lens(sine K=50)" if ln else ""),
                                     "dataset.name": "ring8", "train.lr": lr, "train.batch_size": bs,
                                     "variant.objective": obj, "variant.lens.schedule": ln,
                                     "variant.lens.K": 50.0 if ln else None, "seed": s, "status": status,
                                     "wall_seconds": 2.0, "final.energy_distance": ed if status == "ok" else np.nan,
                                     "final.modes_covered": float(2 + 2 * s + (ln is not None)) if status == "ok" else np.nan,
                                     "torch_version": "2.x", "hostname": "h", "device": "cpu", "torch_threads": 1,
                                     "git_commit": "abc", **(extra or {})})
                        curves += [{"study": study, "trial_id": tid, "step": st, "energy_distance": ed + 1.0 / (st + 1),
                                    "modes_covered": 3.0,
                                    **({"grid_generated": f"grids/{tid}/{st}_generated.png"} if grids else {})}
                                   for st in (0, 50, 100)]
    out.mkdir(parents=True, exist_ok=True)
    if grids:  # image studies keep PNG sample grids under the results folder (paths relative to it)
        import matplotlib.image as mpimg

        for c in curves:
            f = out / c["grid_generated"]
            f.parent.mkdir(parents=True, exist_ok=True)
            mpimg.imsave(f, np.random.default_rng(0).random((16, 16)), cmap="gray")
    results.write_parquet(pd.DataFrame(rows), out / results.TRIALS)
    results.write_parquet(pd.DataFrame(curves), out / results.LEGACY_CURVES)
    (out / results.STUDY).write_text(f"name: {study}\n")
    return out


def _headlines(html: str) -> list[str]:
    import html as h

    sec = html.split("<h2>Headline findings</h2>", 1)[1].split("<h2>", 1)[0]
    return [h.unescape(x) for x in re.findall(r"<li>(.*?)</li>", sec)]


def test_lens_headline_numbers_by_hand(tmp_path, by_hand):
    """The paired lens sentences, recomputed from the trials table by hand: pairs = the lens trial and the trial
    without it of the same objective and seed; mean difference with its t interval, Wilcoxon p (scipy), Holm over
    every test of the paired table (2 objectives x 2 metrics), rank-biserial from the signed ranks."""
    import numpy as np
    from scipy import stats as sps

    from bench.report import build_report
    from bench.report.fmt import fmt, p_is

    d = _synthetic(tmp_path / "lens")
    html = build_report(d)["html"].read_text()
    trials, _ = results.load(d)
    diffs, ps = {}, {}
    for obj in ("ns", "lsgan"):
        for m in ("energy_distance", "modes_covered"):
            sub = trials[(trials["variant.objective"] == obj) & (trials["status"] == "ok")]
            lens = sub[sub["variant.lens.schedule"].notna()].set_index("seed")[f"final.{m}"]
            plain = sub[sub["variant.lens.schedule"].isna()].set_index("seed")[f"final.{m}"]
            dd = (lens - plain.reindex(lens.index)).dropna().to_numpy()
            diffs[obj, m] = dd
            ps[obj, m] = sps.wilcoxon(dd).pvalue
    keys = list(ps)
    holm = dict(zip(keys, by_hand.holm([ps[k] for k in keys])))
    heads = _headlines(html)
    for obj in ("ns", "lsgan"):
        dd = diffs[obj, "energy_distance"]
        assert dd.tolist() == pytest.approx([-0.02, -0.03, -0.04])  # the lens term of the fixture, seeds 0, 1, 2
        mean, lo, hi = by_hand.t_interval(dd)
        ranks = sps.rankdata(np.abs(dd))
        r = (ranks[dd > 0].sum() - ranks[dd < 0].sum()) / ranks.sum()
        s = next(h for h in heads if h.startswith(f"With the lens (sine K=50), {obj}'s final energy"))
        assert (f"changes by {fmt(mean)} [{fmt(lo)}, {fmt(hi)}] (paired over 3 seeds, "
                f"Wilcoxon {p_is(ps[obj, 'energy_distance'])}, Holm-adjusted {p_is(holm[obj, 'energy_distance'])}, "
                f"rank-biserial r = {r:.2f}; lower is better, better in 3 of 3)") in s, s
    # the tables, the rules in words, and the order of the sections
    assert "Lens vs no lens, paired" in html and "Success rate" in html
    assert "same seed gives the same initial generator and discriminator" in html
    assert "at least half of the modes covered (ring8: &gt;= 4 of 8" in html
    order = ["Headline findings", "Summary", "Statistics", "Final metrics per seed", "Budget curves",
             "Paired differences", "Learning curves", "Study file", "Environment"]
    pos = [html.index(f"<h2>{t}") for t in order]
    assert pos == sorted(pos)
    assert "GPU-hours" in html and "0 (no GPU resources)" in html and "torch_threads" in html


def test_success_rates_with_wilson_intervals(tmp_path, by_hand):
    from bench.report import build_report
    from bench.report.fmt import interval

    d = _synthetic(tmp_path / "succ", objectives=("ns",), diverge={("ns", None, 2)})
    md = build_report(d)["md"].read_text()
    # ns: seeds 0, 1, 2 -> modes 2, 4, (diverged): 1 success of 3, 1 diverged; Wilson by its formula
    lo, hi = by_hand.wilson(1, 3)
    row = next(l for l in md.splitlines() if l.startswith("| ring8 | ns | modes covered >= 4 of 8 |"))
    assert f"| 1 / 3 | {interval(1 / 3, lo, hi)} | 1 |" in row
    # the lens variant: modes 3, 5, 7 -> 2 of 3
    lo, hi = by_hand.wilson(2, 3)
    row = next(l for l in md.splitlines() if l.startswith("| ring8 | ns+lens(sine K=50) | modes covered >= 4 of 8 |"))
    assert f"| 2 / 3 | {interval(2 / 3, lo, hi)} | 0 |" in row
    assert "1 pair(s) dropped" in md
    assert "On ring8, 3 of 6 trials succeeded (status ok and modes covered >= 4 of 8; 1 diverged)" in md


def test_swept_axes_sentences_tables_and_plots(tmp_path, by_hand):
    """The spread across lr, recomputed by hand from the trials table: per batch size, the seeds x lr values (a
    block design, seeds 0 and 1 at every lr), the spread of the true per-lr means with its noncentral-F interval
    (tests/conftest.py by_hand.true_spread, a two-way ANOVA); the headline names the batch size with the largest."""
    import numpy as np

    from bench.report import build_report
    from bench.report.fmt import fmt

    d = _synthetic(tmp_path / "lr", objectives=("lsgan",), lens=False, lrs=(1e-4, 1e-3, 1e-2), batches=(64, 256),
                   seeds=(0, 1), noise=0.02)
    paths = build_report(d)
    html = paths["html"].read_text()
    trials, _ = results.load(d)
    spread = {}
    for bs, sub in trials[trials["status"] == "ok"].groupby("train.batch_size"):
        Y = sub.pivot(index="seed", columns="train.lr", values="final.energy_distance").to_numpy()
        assert Y.shape == (2, 3)
        spread[bs] = by_hand.true_spread(Y)
    bs = max(spread, key=lambda b: spread[b][0])
    std, lo, hi = spread[bs]
    assert 0.1 < std < 0.25 and lo < std < hi  # the lr term: 0.3 x (1, 0, 1) has std 0.173; noise 0.02
    s = next(h for h in _headlines(html) if h.startswith("Across train.lr"))
    assert s.startswith("Across train.lr in [0.0001, 0.01] (3 values), the spread (of the true per-point means, seed noise taken out) of lsgan's "
                        "final energy distance to real (the largest of its 2 settings of train.batch_size, at "
                        f"train.batch_size = {bs})"), s
    assert f"is {fmt(std)} [{fmt(lo)}, {fmt(hi)}]" in s, s
    # best / worst per-lr mean (lower is better): lr 1e-3 best
    means = trials[(trials["train.batch_size"] == bs)].groupby("train.lr")["final.energy_distance"].mean()
    assert f"best {fmt(means.min())} at 0.001, worst {fmt(means.max())} at {means.idxmax():g}" in s, s
    assert "Sensitivity to train.lr" in html and "Sensitivity to train.batch_size" in html
    figs = {p.name for p in (paths["html"].parent / "figures").glob("*.png")}
    assert {"axis_0_energy_distance.png", "axis_1_energy_distance.png", "heatmap_energy_distance.png",
            "budget_energy_distance.png"} <= figs
    assert "Lens vs no lens" not in html  # no lens in this study: no pairs


def test_single_seed_says_no_interval(tmp_path):
    from bench.report import build_report

    d = _synthetic(tmp_path / "one", objectives=("ns",), lrs=(1e-4, 1e-2), seeds=(0,))
    heads = _headlines(build_report(d)["html"].read_text())
    lens = [h for h in heads if h.startswith("With the lens")]
    assert lens and all("no interval" in h and "[" not in h for h in lens), lens
    spread = [h for h in heads if h.startswith("Across train.lr")]
    assert spread and all("(no interval: fewer than 2 seeds" in h for h in spread), spread


def test_multi_study_report_via_cli(tmp_path):
    from conftest import GANBENCH

    a = _synthetic(tmp_path / "a", objectives=("ns",), study="alpha", grids=True)
    b = _synthetic(tmp_path / "b", objectives=("ns", "lsgan"), study="beta", extra={"resources.gpu": 0.5})
    out = tmp_path / "cmp"
    p = subprocess.run([GANBENCH, "report", str(a), str(b), "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    html = (out / "report.html").read_text()
    assert "ganbench report: alpha vs beta" in html
    assert "<td>alpha: ns</td>" in html and "<td>beta: ns</td>" in html  # clashing names are prefixed
    assert "<td>lsgan</td>" in html  # unique names are not
    assert "ns (alpha)&#x27;s final energy" in html and "ns (beta)&#x27;s final energy" in html
    assert "<h3>alpha (" in html and "<h3>beta (" in html  # both study files
    # GPU-hours = sum(wall_seconds x resources.gpu) / 3600 over the trials that have it: 12 x 2 s x 0.5
    assert f"<td>{12 * 2 * 0.5 / 3600:.3g}</td>" in html
    assert (out / "figures" / "grids.png").exists()  # sample grids found under their own study's folder


def test_success_rule_per_dataset():
    import numpy as np
    import pandas as pd

    from bench.report.analysis import success_rule

    t = pd.DataFrame({"dataset.name": ["ring8", "ring8", "grid25", "grid25", "fashion_mnist", "fashion_mnist"],
                      "final.modes_covered": [4, 3, 13, 12, np.nan, np.nan],
                      "final.recall": [np.nan, np.nan, np.nan, np.nan, 0.1, 0.09]})
    mask, words = success_rule(t)
    assert mask.tolist() == [True, False, True, False, True, False]
    assert words == {"ring8": "modes covered >= 4 of 8", "grid25": "modes covered >= 13 of 25",
                     "fashion_mnist": "recall >= 0.1"}


def test_metric_vs_axis_splits_a_small_second_axis_into_panels():
    """w vs FID with two optimizers: one panel per optimizer (pooling them would hide where w matters)."""
    import io

    import pandas as pd

    from PIL import Image

    from bench.report import plots

    rows = [{"variant": s, "dataset.name": "fashion_mnist", "variant.w": w, "train.optimizer": o, "seed": k,
             "final.fid": 100 + 50 * w * (o == "sgd") + k}
            for s in ("ed+gan", "ed//gan") for w in (1e-3, 1e-2, 1e-1, 1.0) for o in ("adam", "sgd") for k in (0, 1)]
    d = pd.DataFrame(rows)
    width = lambda png: Image.open(io.BytesIO(png)).size[0]  # noqa: E731
    one = plots.metric_vs_axis(d, "fid", "variant.w", ["ed+gan", "ed//gan"], True)
    two = plots.metric_vs_axis(d, "fid", "variant.w", ["ed+gan", "ed//gan"], True, ["train.optimizer"])
    assert width(two) > 1.6 * width(one)
    # an axis with more values than MAX_SPLIT is pooled (one panel), as before
    d["train.lr"] = d["seed"] + 10 * d["variant.w"].rank(method="dense")
    pooled = plots.metric_vs_axis(d, "fid", "variant.w", ["ed+gan", "ed//gan"], True, ["train.lr"])
    assert width(pooled) < 1.3 * width(one)


def test_paired_digest_and_wilcoxon_floor():
    """Many lens comparisons: counts plus the ones whose interval excludes 0, sorted by size and sided by
    the metric's direction (energy distance: lower is better); with <= 5 pairs no test can reach 0.05."""
    import pandas as pd

    from bench.report import analysis

    rows = [  # mean_diff, lo, hi, p, holm
        ("ns", -0.2, -0.3, -0.1, 0.0625, 1.0), ("lsgan", 0.5, 0.1, 0.9, 0.0625, 1.0),
        ("hinge", -0.05, -0.1, -0.01, 0.125, 1.0), ("wgan", 0.01, -0.1, 0.1, 0.8, 1.0)]
    prim = pd.DataFrame([{"metric": "energy_distance", "lens": "lens (sine K=500)", "variant.objective": o,
                          "mean_diff": d, "lo": lo, "hi": hi, "p_value": p, "holm_p": h, "n": 5}
                         for o, d, lo, hi, p, h in rows])
    out = analysis.paired_digest(prim, list(prim["variant.objective"]))
    assert out[0].startswith("4 lens-vs-no-lens comparisons") and "0 significant after Holm" in out[0]
    assert "3 of the 4 with an interval" in out[0]
    assert out[1].startswith("Interval excludes 0, lens better (2): lens (sine K=500) for ns: -0.2 [-0.3, -0.1]; "
                             "lens (sine K=500) for hinge")
    assert out[2].startswith("Interval excludes 0, lens worse (1): lens (sine K=500) for lsgan: 0.5 [0.1, 0.9]")
    assert "2 / 2^5 = 0.0625" in analysis.wilcoxon_floor_note(prim)
    # 6 pairs: one test can reach 2/64 < 0.05, but Holm over 4 tests cannot (4 x 2/64 = 0.125): 8 pairs can
    note = analysis.wilcoxon_floor_note(prim.assign(n=6))
    assert "4 x 2 / 2^6 = 0.125" in note and "at least 8 pairs" in note
    assert analysis.wilcoxon_floor_note(prim.assign(n=8)) is None  # 4 x 2/256 = 0.03125


def test_formatting():
    """bench.report.fmt: NaN is 'n/a', never 'nan'; an interval is never made up; mean_ci's t interval
    contains the mean and says when it cannot be had; a bound the data cannot give is said in words."""
    import re

    import numpy as np
    from scipy import stats

    from bench.report.fmt import fmt, fmt_p, hms, interval, mean_ci, p_is, show_value

    assert (fmt(0.123456), fmt(np.nan), fmt(-np.inf), fmt("ns")) == ("0.123", "n/a", "-inf", "ns")
    assert (fmt_p(0.0004), fmt_p(0.0123), p_is(0.0004), p_is(0.25), p_is(np.nan)) == \
        ("< 0.001", "0.012", "p < 0.001", "p = 0.25", "p = n/a")
    assert interval(1.0, 0.5, 2.0) == "1 [0.5, 2]"
    assert interval(1.0, np.nan, np.nan) == "1 (no interval)"
    assert interval(1.0, 0.5, np.inf) == "1 [0.5, no upper bound]"
    assert interval(1.0, np.nan, np.nan, "fewer than 2 seeds") == "1 (no interval: fewer than 2 seeds)"
    assert [show_value(v) for v in (1000.0, 1e-4, None, np.nan, (0.5, "adam"), 3)] == \
        ["1000", "0.0001", "null", "null", "(0.5, adam)", "3"]
    assert hms(3725.4) == "1:02:05"

    v = np.random.default_rng(0).normal(10, 2, size=8)
    text = mean_ci(np.r_[v, np.nan])  # a missing value is left out
    m, lo, hi = map(float, re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", text).groups())
    # an interval of the mean, so narrower than the values' range
    assert m == float(fmt(v.mean())) and lo < m < hi and hi - lo < np.ptp(v)
    lo_t, hi_t = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=v.std(ddof=1) / np.sqrt(len(v)))
    assert text == f"{fmt(v.mean())} [{fmt(lo_t)}, {fmt(hi_t)}]"  # Student t over the seeds
    assert (mean_ci([]), mean_ci([2.0, np.nan]), mean_ci([3.0] * 4)) == ("no value", "2, no CI (n=1)",
                                                                          "3 (all 4 equal)")


# ----------------------------------------------------------------------------- headline branches (issue 22)


def _ring(variants: dict, seeds=range(6)):
    """A trials table on ring8: variant -> (modes per seed, status per seed or None); energy distance 1 + seed/10."""
    import numpy as np
    import pandas as pd

    rows = []
    for v, (modes, status) in variants.items():
        for s in seeds:
            st = status[s] if status else "ok"
            rows.append({"study": "syn", "trial_id": f"{v}-{s}", "variant": v, "dataset.name": "ring8",
                         "variant.objective": v, "seed": s, "status": st,
                         "final.energy_distance": 1 + s / 10 if st == "ok" else np.nan,
                         "final.modes_covered": float(modes[s]) if st == "ok" else np.nan})
    return pd.DataFrame(rows)


def test_success_sentence_when_every_trial_succeeded():
    from bench.report import analysis

    t = _ring({"ns": ([8] * 6, None), "lsgan": ([4, 5, 6, 7, 8, 8], None)})
    heads = analysis.findings(t, ["energy_distance", "modes_covered"]).headlines
    assert "On ring8, all 12 trials succeeded (status ok and modes covered >= 4 of 8)." in heads


def test_success_sentence_when_no_trial_succeeded(by_hand):
    """None succeeded: collapsed (3 modes), diverged and failed trials all count; n and the Wilson upper bound by
    hand."""
    from bench.report import analysis
    from bench.report.fmt import fmt

    t = _ring({"ns": ([3] * 6, ["ok", "ok", "ok", "ok", "diverged", "failed"]),
               "lsgan": ([0] * 6, ["diverged"] * 6)})
    heads = analysis.findings(t, ["energy_distance", "modes_covered"]).headlines
    # n = 6 per variant, failed counted: the Wilson upper bound of 0 of 6
    hi = by_hand.wilson(0, 6)[1]
    assert (f"On ring8, none of the 12 trials succeeded (status ok and modes covered >= 4 of 8; 7 diverged): no "
            f"successes in any of its 2 variants (n = 6 each); the upper 95 % Wilson bounds reach at most "
            f"{fmt(hi)}.") in heads, heads


def test_success_sentence_when_some_succeeded_counts_failed_trials(by_hand):
    from bench.report import analysis
    from bench.report.fmt import interval

    t = _ring({"ns": ([8, 8, 2, 8, 8, 8], ["ok", "ok", "ok", "ok", "failed", "diverged"]),
               "lsgan": ([8] * 6, None)})
    heads = analysis.findings(t, ["energy_distance", "modes_covered"]).headlines
    # ns: seeds 0, 1, 3 succeed; seed 2 collapsed, 4 failed, 5 diverged: 3 of 6 (the failed one is not left out)
    parts = [f"ns 3/6 = {interval(3 / 6, *by_hand.wilson(3, 6))}", f"lsgan 6/6 = {interval(1.0, *by_hand.wilson(6, 6))}"]
    s = next(h for h in heads if h.startswith("On ring8,"))
    assert s.startswith("On ring8, 9 of 12 trials succeeded (status ok and modes covered >= 4 of 8; 1 diverged); "
                        "success rate per variant [95 % Wilson]: "), s
    assert all(p in s for p in parts), (s, parts)


def test_also_significant_after_holm(by_hand):
    """A non-headline metric significant after Holm over the paired table gets its own sentence; numbers by hand.
    8 seeds: the smallest exact Wilcoxon p is 2 / 2^8, and Holm over 2 tests doubles it: < 0.05."""
    import numpy as np
    import pandas as pd
    from scipy import stats as sps

    from bench.report import analysis
    from bench.report.fmt import interval, p_is

    seeds = range(8)
    rows = []
    for lens in (None, "sine"):
        for s in seeds:
            ed = 1 + 0.1 * s + (0.01 * ((s * 5) % 7 - 3) if lens else 0.0)  # no consistent lens effect
            modes = 4.0 + (s % 3) + ((1.0 + 0.1 * s) if lens else 0.0)  # the lens adds 1.0-1.7 modes, every seed
            rows.append({"study": "syn", "trial_id": f"{lens}-{s}", "variant": "ns" + ("+lens" if lens else ""),
                         "dataset.name": "ring8", "variant.objective": "ns", "variant.lens.schedule": lens,
                         "variant.lens.K": 500.0 if lens else None, "seed": s, "status": "ok",
                         "final.energy_distance": ed, "final.modes_covered": modes})
    t = pd.DataFrame(rows)
    heads = analysis.findings(t, ["energy_distance", "modes_covered"]).headlines
    d_modes = np.array([1.0 + 0.1 * s for s in seeds])
    d_ed = np.array([0.01 * ((s * 5) % 7 - 3) for s in seeds])
    p_modes, p_ed = sps.wilcoxon(d_modes).pvalue, sps.wilcoxon(d_ed).pvalue
    holm = by_hand.holm([p_ed, p_modes])
    assert p_modes == pytest.approx(2 / 256) and holm[1] <= 0.05 < holm[0]
    mean, lo, hi = by_hand.t_interval(d_modes)
    assert (f"Also significant after Holm: the lens changes ns's final modes covered by {interval(mean, lo, hi)} "
            f"(Holm-adjusted {p_is(holm[1])}).") in heads, heads
    # the headline metric is not repeated as 'also significant'
    assert not any(h.startswith("Also significant after Holm") and "energy distance" in h for h in heads)


def test_a_random_search_study_through_the_report(tmp_path):
    """A random search: every configuration its own learning rate (log-uniform draws), one seed each, one of them
    diverged. The report says there is no interval where one seed cannot give one, draws the budget curves, and
    the budget curve counts the diverged configuration at the worst finished value (checked by hand)."""
    import numpy as np

    from bench.report import _budget, build_report
    from bench.report.fmt import fmt

    lrs = tuple(float(x) for x in 10 ** np.random.default_rng(4).uniform(-4.5, -2, size=8))
    d = _synthetic(tmp_path / "random", objectives=("ns",), lens=False, lrs=lrs, seeds=(0,))
    t, _ = results.load(d)
    t.loc[t["train.lr"] == lrs[3], ["status", "final.energy_distance", "final.modes_covered"]] = ["diverged", np.nan,
                                                                                                   np.nan]
    results.write_parquet(t, d / results.TRIALS)
    paths = build_report(d)
    html = paths["html"].read_text()
    ok = t.loc[t["status"] == "ok", "final.energy_distance"].to_numpy()
    spread = [h for h in _headlines(html) if h.startswith("Across train.lr")]
    assert len(spread) == 1, spread
    # one seed per point: the std of the 7 finished points' values, with no interval, and saying why
    assert f"of ns's final energy distance to real is {fmt(ok.std(ddof=1))} (no interval: " in spread[0], spread
    assert "fewer than 2 seeds at axis point(s)" in spread[0]
    assert "1 axis point(s) had no finite value (diverged or failed)" in spread[0]
    assert (paths["html"].parent / "figures" / "budget_energy_distance.png").exists()
    curve = _budget(t, "energy_distance", ["ns"])[("ring8", "ns")]
    assert curve["expected_best"].iloc[0] == pytest.approx((ok.sum() + ok.max()) / 8)  # k = 1: the mean, failure = worst
    assert curve["expected_best"].iloc[-1] == pytest.approx(ok.min())
    assert curve["p_all_failed"].iloc[0] == pytest.approx(1 / 8)
    assert "8 trials: 7 ok, 1 diverged, 0 failed." in html
