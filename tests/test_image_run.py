"""The image track end to end on a real local Ray: DCGAN with and without the convolutional lens on
scikit-learn's digits (tiny, real), evaluator metrics, sample grids on disk, the report's grid figures."""

import subprocess

from bench import results
from conftest import GANBENCH, ROOT

STUDY = """
name: images_micro
dataset: {name: digits, image_size: 32}
model: {name: dcgan, width: 8, z_dim: 32, init: xavier}
train: {steps: 40, batch_size: 32, eval_every: 20, eval_samples: 300, lr: 2.0e-4}
variant: {objective: ns}
sweep:
  axes:
    variant.lens: [null, {schedule: sine, K: 20, width: 4, depth: 2}]
resources: {cpu: 1}
"""


def test_image_study_saves_grids_and_metrics(tmp_path):
    study = tmp_path / "images.yaml"
    study.write_text(STUDY)
    out = tmp_path / "res"
    store = tmp_path / "store"  # a --storage every node reaches: artifacts are written there, copied to out
    p = subprocess.run([GANBENCH, "run", str(study), "--results", str(out), "--storage", str(store)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    trials, curves = results.load(out)
    assert sorted(trials["status"]) == ["ok", "ok"]
    assert trials["evaluator"].tolist() == ["digits-lenet"] * 2
    assert (trials["evaluator_accuracy"] > 0.9).all()
    for m in ("fid", "kid_mean", "precision", "recall", "density", "coverage", "modes_covered"):
        assert trials[f"final.{m}"].notna().all(), m
    assert len(curves) == 2 * 3
    for col in ("grid_generated", "grid_real"):
        for rel in curves[col]:
            assert (out / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lensed = trials.loc[trials["variant.lens.schedule"].notna(), "trial_id"].item()
    assert curves.loc[curves.trial_id == lensed, "grid_lensed"].notna().all()
    assert curves.loc[curves.trial_id != lensed, "grid_lensed"].isna().all()
    assert len(list((store / "images_micro" / "artifacts" / "grids").glob("*/*.png"))) == len(list(out.glob("grids/*/*.png"))) == 2 * 3 * 2 + 3
    assert (out / "figures" / "grids.png").exists() and (out / "figures" / "lens_progress.png").exists()
    assert "fid" in (out / "report.md").read_text()
    # ganbench.log: every phase with its time, what the evaluator task was doing before the trials started
    log = (out / "ganbench.log").read_text()
    for phase in ("phase: Ray started in", "preparing: loading digits at 32 px", "phase: evaluators ready (1) in",
                  "trials in", "phase: finished after"):
        assert phase in log, phase

    # publish: the copy to commit holds the tables and the grids the report draws, and rebuilds the same report
    before = {f: f.stat().st_mtime_ns for f in out.rglob("*")}
    pub = tmp_path / "published"
    p = subprocess.run([GANBENCH, "publish", str(out), str(pub)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert {f: f.stat().st_mtime_ns for f in out.rglob("*")} == before  # SRC is only read
    assert not any((pub / x).exists() for x in ("ray", "outputs", "curves", "samples", "progress.json"))
    ptrials, pcurves = results.load(pub)
    assert ptrials.equals(trials) and len(pcurves) == len(curves)
    assert (pub / "report.md").read_text() == (out / "report.md").read_text()
    assert 'src="figures/' in (pub / "report.html").read_text()
    published = {str(f.relative_to(pub)) for f in pub.glob("grids/*/*.png")}
    named = {r for col in ("grid_generated", "grid_real", "grid_lensed") for r in pcurves[col].dropna()}
    assert named == published  # every grid named is published, and nothing else
    # no lens: its last evaluation's grids only; the lens trial: all three (it keeps up to six)
    assert pcurves.loc[(pcurves.trial_id != lensed) & (pcurves.step < 40), "grid_generated"].isna().all()
    assert pcurves.loc[pcurves.trial_id == lensed, "grid_lensed"].notna().sum() == 3
    # the real images are the same in both trials: stored once
    assert pcurves.loc[pcurves.step == 40, "grid_real"].nunique() == 1


def test_evaluator_is_trained_once_and_installed_elsewhere(tmp_path, monkeypatch):
    """prepare() (the runner's one Ray task) returns the cache files; install() puts them in another
    node's cache, where get_evaluator then loads the same weights without training."""
    from bench.metrics import evaluator as ev
    from bench.schema import DatasetCfg

    cfg = {"name": "digits", "image_size": 32}
    ev._MEMO.clear()  # this process may hold the evaluator from an earlier test
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "a"))
    files = ev.prepare([cfg, cfg])
    assert len(files) == 1
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "b"))
    ev._MEMO.clear()
    ev.install(files)

    from bench import registry

    data = registry.get("dataset", "digits")(DatasetCfg.model_validate(cfg))
    got = ev.get_evaluator(data, DatasetCfg.model_validate(cfg))
    assert f"{got.key}.pt" in files and (tmp_path / "b" / "evaluators" / f"{got.key}.pt").read_bytes() == files[f"{got.key}.pt"]
    assert not list((tmp_path / "b" / "evaluators").glob("*.lock"))  # the cache only locks to build: it never did
    ev._MEMO.clear()
