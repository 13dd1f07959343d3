"""CycleGAN and DiscoGAN (bench.structures.translation, issue 28) on the two-domain digits: they learn the known
mapping (translation error far below the identity map's), their rows carry the known-answer metrics, and they
refuse a one-domain dataset. Packed vs alone and the declared columns: tests/test_contract.py."""

import pytest
import torch

from bench.schema import TrialConfig
from conftest import run_rows


def _cfg(structure, steps=300, **variant):
    base = {"dataset": {"name": "domains", "base": "digits", "image_size": 16, "transform": "invert"},
            "model": {"name": "dcgan", "width": 16},
            "train": {"steps": steps, "eval_every": steps, "batch_size": 32, "lr": 2e-4, "eval_samples": 300},
            "variant": {"structure": structure, "objective": "lsgan", **variant}}
    cfg = TrialConfig.model_validate(base).model_dump(mode="json")
    return {**cfg, "study": "test", "trial_id": f"{structure}-{sorted(variant.items())}", "variant_label": structure}


def _last(cfg, root):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = run_rows(cfg, root)
    finally:
        torch.set_num_threads(n)
    assert rows[-1]["status"] == "ok", rows[-1].get("error")
    return rows[0], rows[-1]


def test_discogan_learns_the_inversion(tmp_path):
    """Measured at 300 steps: translation error 0.11 against the identity map's 0.67, class preservation 0.71
    (chance 0.1); at step 0 the untrained translator scores about 0.32 and 0.1."""
    first, last = _last(_cfg("discogan"), tmp_path)
    assert last["identity_error"] == first["identity_error"] > 0.5  # the baseline does not move
    assert last["translation_error"] < 0.35 * last["identity_error"], last
    assert last["translation_error"] < 0.6 * first["translation_error"], (first, last)
    assert last["class_preservation"] > 0.4 and last["cycle_error"] < 0.2, last
    # the image metrics of the translations against domain B (read through T^-1 by the base evaluator)
    assert last["fid"] < 0.5 * first["fid"] and last["recall"] > first["recall"], (first["fid"], last["fid"])
    print(f"FID of the translations: {first['fid']:.1f} at step 0, {last['fid']:.1f} at 300")


@pytest.mark.parametrize("structure", ["cyclegan", "discogan"])
def test_translation_needs_two_domains(structure):
    with pytest.raises(ValueError, match=f"dataset.name: structure '{structure}' trains on domains"):
        TrialConfig.model_validate({"dataset": {"name": "digits"}, "model": {"name": "dcgan"},
                                    "variant": {"structure": structure}})
    with pytest.raises(ValueError, match="cycle_weight"):
        TrialConfig.model_validate({"dataset": {"name": "domains"}, "model": {"name": "dcgan"},
                                    "variant": {"structure": structure, "cycle_weight": -1.0}})
