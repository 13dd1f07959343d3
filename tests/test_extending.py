"""Adding a variant is one new file plus one registry line: a throwaway objective and a throwaway
structure, defined here (as a user's own file would define them), registered, validated and trained."""

import math

import pytest

from bench import registry
from bench.objectives import Objective, mean
from bench.schema import TrialConfig
from conftest import run_rows

# ----------------------------------------------------------------------------- a new objective
# least squares with targets a = -1 (fake), b = 1 (real), c = 0 for G (Mao et al.'s first variant)
lsgan_m11 = Objective("lsgan-m11", d=lambda r, f: mean((r - 1) ** 2) + mean((f + 1) ** 2),
                      g=lambda r, f: mean(f**2), lens=lambda r, f: mean((r + 1) ** 2))


# ----------------------------------------------------------------------------- a new structure
# a user's own module, as its own file: the training functions and the DECLARE the catalog reads (bench.catalog)
TWO_G = """
import torch

from bench import registry
from bench.structures import d_step, frozen, gan

DECLARE = {"two-g": {"title": "two-G GAN", "doc": "the GAN with two generator updates per iteration (D once)",
                     "uses": ["objective", "clip", "gp_weight"], "losses": ["loss_d", "loss_g2"],
                     "grids": ["generated", "real"], "headline": "energy_distance", "sections": []}}


def step(nets, batch, pack, t):
    obj = registry.get("objective", pack.cfg.variant.objective)
    with torch.no_grad():
        fake = nets.G(batch["z"][0])
    out = {"loss_d": d_step(nets.D, nets.opt["D"], obj, pack, batch["real"][0], fake, batch["eps"][0])}
    with frozen(nets.D):
        for _ in range(2):
            d_real = nets.D(batch["real"][0]) if obj.relativistic else None
            loss_g = obj.g(d_real, nets.D(nets.G(batch["z"][-1])))
            nets.opt["G"].zero_grad()
            loss_g.sum().backward()
            nets.opt["G"].step()
    out["loss_g2"] = loss_g.detach()
    return out


def check(cfg):
    gan.check(cfg)
    if cfg.variant.lens is not None or cfg.train.n_critic != 1:
        raise ValueError("variant.lens: two-g trains no lens and one critic step")


build, batch, Evaluate = gan.build, gan.batch, gan.Evaluate
"""


@pytest.fixture
def registered(monkeypatch, tmp_path):
    from bench import catalog

    (tmp_path / "two_g_plugin.py").write_text(TWO_G)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.REGISTRY, "objective", {**registry.REGISTRY["objective"],
                                                         "lsgan-m11": "test_extending:lsgan_m11"})
    monkeypatch.setitem(registry.REGISTRY, "structure", {**registry.REGISTRY["structure"], "two-g": "two_g_plugin"})
    catalog.catalog.cache_clear()
    yield
    catalog.catalog.cache_clear()


def test_a_new_objective_trains(registered, tiny_config):
    rows = run_rows(tiny_config(variant={"objective": "lsgan-m11", "lens": {"K": 50}}))
    assert rows[-1]["status"] == "ok" and math.isfinite(rows[-1]["energy_distance"])
    assert {"loss_d", "loss_g", "loss_lens"} <= set(rows[-1])


def test_a_new_structure_trains_with_any_objective(registered, tiny_config):
    for objective in ("ns", "lsgan-m11", "ragan"):
        rows = run_rows(tiny_config(variant={"structure": "two-g", "objective": objective}))
        assert rows[-1]["status"] == "ok", rows[-1].get("error")
        assert "loss_g2" in rows[-1] and math.isfinite(rows[-1]["loss_g2"])


def test_a_structure_rejects_what_it_does_not_support_before_training(registered):
    with pytest.raises(ValueError, match="two-g trains no lens"):
        TrialConfig.model_validate({"variant": {"structure": "two-g", "lens": {"K": 10}}})


def test_unknown_names_list_the_registry():
    with pytest.raises(ValueError, match="unknown structure 'nope'.*ed//gan.*gan"):
        TrialConfig.model_validate({"variant": {"structure": "nope"}})
    with pytest.raises(ValueError, match="unknown optimizer"):
        TrialConfig.model_validate({"train": {"optimizer": "adagrad"}})
    with pytest.raises(ValueError, match="unknown schedule"):
        TrialConfig.model_validate({"variant": {"lens": {"schedule": "cosine"}}})
