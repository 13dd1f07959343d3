import base64
import re
import subprocess
import sys

import pytest

from bench import results
from bench.study import config_hash, variant_label
from bench.trial import run_trial

STUDY_YAML = "name: test\ndescription: a <tiny> study & its report\n"


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """Six tiny real trials (ns x 2 seeds, ns+lens x 2 seeds, a single-seed lsgan, an ns run forced to
    diverge) and one failed ns trial with no curves or samples."""
    from bench.study import TrialConfig

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
        run_trial(cfg, reps.append)
        results.upsert(out, *results.rows_from_reports(cfg, reps, provenance={"git_commit": "abc"}))
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
    results.write_parquet(curves[curves["trial_id"].isin(one["trial_id"])], tmp_path / results.CURVES)
    html = build_report(tmp_path)["html"].read_text()
    assert "No samples were stored." in html and "no CI (n=1)" in html and "1 trials: 1 ok" in html


def test_report_does_not_import_torch(results_dir, tmp_path):
    code = ("import sys; from bench.report import build_report; "
            f"build_report({str(results_dir)!r}, {str(tmp_path)!r}); "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('bench.trial', 'bench.nets', "
            "'bench.structures', 'bench.objectives', 'bench.metrics.toy'))]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
