"""DupGAN (bench.structures.dupgan, issue 28) on the two-domain digits: it trains its source classifier, its
pseudo-label rate follows the threshold, and it refuses what it does not support. Packed vs alone and the declared
columns: tests/test_contract.py."""

import pytest
import torch

from bench.schema import TrialConfig
from conftest import run_rows


def _cfg(steps=300, **variant):
    base = {"dataset": {"name": "domains", "base": "digits", "image_size": 16, "transform": "rot90"},
            "model": {"name": "dcgan", "width": 16, "z_dim": 16},
            "train": {"steps": steps, "eval_every": steps, "batch_size": 64, "lr": 1e-3},
            "variant": {"structure": "dupgan", **variant}}
    cfg = TrialConfig.model_validate(base).model_dump(mode="json")
    return {**cfg, "study": "test", "trial_id": f"dupgan-{sorted(variant.items())}", "variant_label": "dupgan"}


def _last(cfg, root):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = run_rows(cfg, root)
    finally:
        torch.set_num_threads(n)
    assert rows[-1]["status"] == "ok", rows[-1].get("error")
    return rows[-1]


def test_it_learns_the_source_and_pseudo_labels_by_its_threshold(tmp_path):
    """Measured at 300 steps on rotated digits: source accuracy 0.96, target 0.16 (chance 0.1), 73 % of the target
    pseudo-labelled at threshold 0.95; at threshold 0 every target image is."""
    last = _last(_cfg(), tmp_path / "a")
    assert last["source_accuracy"] >= 0.85 and 0 < last["pseudo_label_rate"] < 1, last
    assert _last(_cfg(steps=20, dupgan_threshold=0.0), tmp_path / "b")["pseudo_label_rate"] == 1.0


@pytest.mark.parametrize("over, match", [
    ({"dataset": {"name": "digits"}}, "dataset.name: structure 'dupgan' trains on domains"),
    ({"variant": {"structure": "dupgan", "dupgan_threshold": 1.5}}, "dupgan_threshold"),
    ({"model": {"name": "mlp"}}, "model.name: structure 'dupgan' needs model.name dcgan"),
])
def test_what_dupgan_refuses(over, match):
    base = {"dataset": {"name": "domains", "base": "digits", "image_size": 16}, "model": {"name": "dcgan"},
            "variant": {"structure": "dupgan"}}
    for k, v in over.items():
        base[k] = {**base[k], **v}
    with pytest.raises(ValueError, match=match):
        TrialConfig.model_validate(base)
