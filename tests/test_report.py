import base64
import re
import subprocess
import sys

import pytest

from bench import results
from bench.schema import config_hash, variant_label
from bench.trial import run_trial

STUDY_YAML = "name: test\ndescription: a <tiny> study & its report\n"


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """Six tiny real trials (ns x 2 seeds, ns+lens x 2 seeds, a single-seed lsgan, an ns run forced to
    diverge) and one failed ns trial with no curves or samples."""
    from bench.schema import TrialConfig

    out = tmp_path_factory.mktemp("results") / "test"
    small = {"train": {"steps": 100, "eval_every": 50, "batch_size": 64, "eval_samples": 500}, "model": {"width": 32}}
    specs = [{"seed": 0}, {"seed": 1}, {"seed": 0, "variant": {"lens": {"K": 50}}},
             {"seed": 1, "variant": {"lens": {"K": 50}}}, {"seed": 0, "variant": {"objective": "lsgan"}},
             {"seed": 2, "train": {"optimizer": "sgd", "lr": 1e12}}]
    for spec in specs:
        raw = {**small, **spec, "train": {**small["train"], **spec.get("train", {})}}
        cfg = TrialConfig.model_validate(raw).model_dump(mode="json")
        cfg = {**cfg, "study": "test", "trial_id": config_hash(cfg), "variant_label": variant_label(cfg)}
        reps = []
        run_trial(cfg, reps.append, out)
        results.upsert(out, *results.rows_from_reports(cfg, reps, provenance={"git_commit": "abc"}, root=out))
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
    code = ("import sys; from bench.report import build_report; "
            f"build_report({str(results_dir)!r}, {str(tmp_path)!r}); "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('bench.trial', 'bench.nets', "
            "'bench.structures', 'bench.objectives', 'bench.metrics.toy'))]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- headline findings (issue 5)
# Synthetic results folders (no training): the numbers in the report are checked against bench.stats
# called independently here.


def _synthetic(out, objectives=("ns", "lsgan"), lens=True, lrs=(1e-3,), batches=(256,), seeds=(0, 1, 2),
               study="syn", diverge=(), extra=None, grids=False):
    """A results folder with one row per config; final energy distance = f(objective, lens, lr, seed)."""
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
                            + 0.3 * abs(np.log10(lr) + 3) + 0.001 * bs / 256 + 0.013 * ((s * 7) % 3)
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


def test_lens_headline_numbers_match_bench_stats(tmp_path):
    import numpy as np

    from bench import stats
    from bench.report import build_report
    from bench.report.fmt import fmt, p_is

    d = _synthetic(tmp_path / "lens")
    html = build_report(d)["html"].read_text()
    trials, _ = results.load(d)
    by = ["variant.objective", "dataset.name"]
    ed = stats.paired_difference(trials, "energy_distance", treatment="variant.lens.schedule", by=by).summary
    mc = stats.paired_difference(trials, "modes_covered", treatment="variant.lens.schedule", by=by).summary
    holm = stats.holm(np.r_[ed["p_value"], mc["p_value"]])  # the family: every test of the paired table
    heads = _headlines(html)
    for i, r in ed.iterrows():
        s = next(h for h in heads if h.startswith(f"With the lens (sine K=50), {r['variant.objective']}'s final energy"))
        assert (f"changes by {fmt(r['mean_diff'])} [{fmt(r['lo'])}, {fmt(r['hi'])}] (paired over 3 seeds, "
                f"Wilcoxon {p_is(r['p_value'])}, Holm-adjusted {p_is(holm[i])}, "
                f"rank-biserial r = {r['rank_biserial']:.2f}") in s, s
    # the tables, the rules in words, and the order of the sections
    assert "Lens vs no lens, paired" in html and "Success rate" in html
    assert "same seed gives the same initial generator and discriminator" in html
    assert "at least half of the modes covered (ring8: &gt;= 4 of 8" in html
    order = ["Headline findings", "Summary", "Statistics", "Final metrics per seed", "Budget curves",
             "Paired differences", "Learning curves", "Study file", "Environment"]
    pos = [html.index(f"<h2>{t}") for t in order]
    assert pos == sorted(pos)
    assert "GPU-hours" in html and "0 (no GPU resources recorded)" in html and "torch_threads" in html


def test_success_rates_with_wilson_intervals(tmp_path):
    from bench import stats
    from bench.report import build_report
    from bench.report.fmt import interval

    d = _synthetic(tmp_path / "succ", objectives=("ns",), diverge={("ns", None, 2)})
    md = build_report(d)["md"].read_text()
    # ns: seeds 0, 1, 2 -> modes 2, 4, (diverged): 1 success of 3, 1 diverged
    lo, hi = stats.wilson_interval(1, 3)
    row = next(l for l in md.splitlines() if l.startswith("| ring8 | ns | modes covered >= 4 of 8 |"))
    assert f"| 1 / 3 | {interval(1 / 3, lo, hi)} | 1 |" in row
    assert "1 pair(s) dropped" in md


def test_swept_axes_sentences_tables_and_plots(tmp_path):
    from bench import stats
    from bench.report import build_report
    from bench.report.fmt import fmt

    d = _synthetic(tmp_path / "lr", objectives=("lsgan",), lens=False, lrs=(1e-4, 1e-3, 1e-2), batches=(64, 256),
                   seeds=(0, 1))
    paths = build_report(d)
    html = paths["html"].read_text()
    trials, _ = results.load(d)
    sp = stats.axis_spread(trials, "energy_distance", "train.lr", by=["variant", "dataset.name", "train.batch_size"])
    r = sp.loc[sp["std"].idxmax()]  # with another swept axis the headline names the largest spread
    s = next(h for h in _headlines(html) if h.startswith("Across train.lr"))
    assert s.startswith("Across train.lr in [0.0001, 0.01] (3 values), the spread (of the true per-point means, seed noise taken out) of lsgan's "
                        "final energy distance to real (the largest of its 2 settings of train.batch_size, at "
                        f"train.batch_size = {r['train.batch_size']})")
    assert f"is {fmt(r['std'])} [{fmt(r['std_lo'])}, {fmt(r['std_hi'])}]" in s
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
