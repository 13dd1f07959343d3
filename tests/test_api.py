"""The Python API (bench.api) and its example, docs/examples/api_example.py."""

import subprocess
import sys

import pytest

from conftest import ROOT

EXAMPLE = ROOT / "docs" / "examples" / "api_example.py"


def test_import_bench_stays_light():
    code = ("import bench, sys; assert 'torch' not in sys.modules and 'ray' not in sys.modules; "
            "from bench import load_study, run, load_results; import bench.api; "
            "assert 'torch' not in sys.modules and 'ray' not in sys.modules; "
            "assert bench.run is bench.api.run and callable(bench.api.report); print('ok')")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


def test_load_study_and_results():
    from bench import api
    from bench.study import StudyError

    study = api.load_study(ROOT / "studies" / "quickstart.yaml", ["train.steps=20", "sweep.axes.seed=[0, 1]"])
    assert study.name == "quickstart" and study.train.steps == 20 and study.sweep.axes["seed"] == [0, 1]
    with pytest.raises(StudyError, match="train.steps"):
        api.load_study(ROOT / "studies" / "quickstart.yaml", ["train.steps=-3"])
    with pytest.raises(ValueError, match="overrides"):
        api.run(study, "/nonexistent", ["train.steps=5"])

    trials, curves = api.load_results(ROOT / "results" / "stabilizers_dirac")  # a published folder
    assert len(trials) > 0 and trials["trial_id"].is_unique and {"status", "variant", "config"} <= set(trials)
    assert set(curves["trial_id"]) <= set(trials["trial_id"]) and "step" in curves
    with pytest.raises(FileNotFoundError):
        api.load_results(ROOT / "studies")


# ~25-40 s (a Ray run of 8 tiny trials, then the report): in the default suite (issue 26: the example runs in a
# test), listed as e2e in conftest (make test-fast leaves it out)
def test_api_example_runs(tmp_path):
    out = tmp_path / "quickstart"
    p = subprocess.run([sys.executable, str(EXAMPLE), str(out)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "8 trials (8 ok), 24 curve rows" in p.stdout
    assert "final energy distance by variant" in p.stdout and "ns+lens(sine K=1000)" in p.stdout
    assert f"report: {out / 'report.html'}" in p.stdout
    for f in ("trials.parquet", "study.yaml", "report.html", "report.md"):
        assert (out / f).exists(), f

    from bench import api

    trials, curves = api.load_results(out)
    assert len(trials) == 8 and (trials["status"] == "ok").all() and (trials["train.steps"] == 20).all()
    assert sorted(trials["seed"].unique()) == [0, 1] and trials["variant"].nunique() == 4
    assert curves.groupby("trial_id")["step"].apply(sorted).map(tuple).unique().tolist() == [(0, 10, 20)]
    assert curves["energy_distance"].notna().all()
    lens = trials.loc[trials["variant.lens.schedule"] == "sine", "trial_id"]
    assert (curves.loc[curves["trial_id"].isin(lens), "lambda"] < 1).any()
