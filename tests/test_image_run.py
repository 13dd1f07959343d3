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
    p = subprocess.run([GANBENCH, "run", str(study), "--results", str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
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
    assert (out / "figures" / "grids.png").exists() and (out / "figures" / "lens_progress.png").exists()
    assert "fid" in (out / "report.md").read_text()
