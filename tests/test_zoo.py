"""The zoo's conditional and code structures (issue 12): CGAN, ACGAN (bench.structures.cgan) and InfoGAN
(bench.structures.infogan); their metrics (bench.metrics.conditional) on known answers; their weights in
the schema (trial ids of existing studies unchanged); packing; short trainings on `digits` that must
learn something measurable."""

import math

import numpy as np
import pytest
import torch

from bench.metrics.conditional import class_accuracy, class_fid, code_accuracy, code_nmi
from bench.schema import TrialConfig, config_hash
from conftest import digits_config, run_rows, trained

STRUCTURES = ("cgan", "acgan", "infogan")


# ----------------------------------------------------------------------------- metrics (known answers)
def test_code_agreement_of_perfect_permuted_and_random_codes():
    rng = np.random.default_rng(0)
    classes = rng.integers(10, size=5000)
    perm = rng.permutation(10)
    assert code_accuracy(classes, classes) == 1.0
    assert code_accuracy(perm[classes], classes) == 1.0
    assert code_nmi(classes, classes) == pytest.approx(1.0)
    assert code_nmi(perm[classes], classes) == pytest.approx(1.0)
    random = rng.integers(10, size=5000)
    assert 0.1 <= code_accuracy(random, classes) < 0.13  # the best map over noise is a little above chance
    assert code_nmi(random, classes) < 0.01


def test_code_accuracy_is_the_best_one_to_one_map():
    # codes 0 -> class 1 (3 of 4), code 1 -> class 0 (2 of 2); a many-to-one map would not be allowed
    codes = [0, 0, 0, 0, 1, 1]
    classes = [1, 1, 1, 0, 0, 0]
    assert code_accuracy(codes, classes) == pytest.approx(5 / 6)
    # two codes for one class: only one of them may map to it
    assert code_accuracy([0, 1, 0, 1], [0, 0, 0, 0]) == pytest.approx(0.5)
    assert math.isnan(code_accuracy([], []))


def test_class_accuracy_and_class_fid():
    assert class_accuracy(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 2, 3])) == 0.75
    with pytest.raises(ValueError):
        class_accuracy([0, 1], [0])
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 400)
    means = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    real = means[labels] + rng.normal(size=(1200, 2))
    fake = means[labels] + rng.normal(size=(1200, 2))
    assert class_fid(real, labels, fake, labels) < 0.05
    # samples of the wrong class: each class's FID is the squared distance of the means (25 or 50)
    swapped = (labels + 1) % 3
    assert class_fid(real, labels, fake, swapped) == pytest.approx((25 + 50 + 25) / 3, rel=0.05)


# ----------------------------------------------------------------------------- schema
def _cfg(structure="cgan", **over):
    return digits_config(structure, 600, 500, **over)


def test_new_weights_enter_the_trial_id_only_when_set():
    plain = TrialConfig().model_dump(mode="json")
    old = {k: dict(v) if isinstance(v, dict) else v for k, v in plain.items()}
    for f in ("lambda_cls", "lambda_info"):
        old["variant"].pop(f)
    assert config_hash(plain) == config_hash(old)  # a config written before the fields existed
    cfg = _cfg("acgan")
    assert config_hash(cfg) != config_hash(_cfg("acgan", variant={"lambda_cls": 0.5}))
    assert config_hash(_cfg("infogan")) != config_hash(_cfg("infogan", variant={"lambda_info": 2.0}))


@pytest.mark.parametrize("structure", STRUCTURES)
def test_structures_reject_what_they_do_not_support(structure):
    with pytest.raises(ValueError, match="dataset.name: .*needs an image set with 10 classes"):
        TrialConfig.model_validate({"variant": {"structure": structure}})  # ring8
    for name in ("celeba", "stacked"):
        with pytest.raises(ValueError, match="dataset.name"):
            TrialConfig.model_validate({"dataset": {"name": name}, "model": {"name": "dcgan"},
                                        "variant": {"structure": structure}})
    with pytest.raises(ValueError, match="model.name: .*needs model.name dcgan"):
        TrialConfig.model_validate({"dataset": {"name": "digits"}, "variant": {"structure": structure}})
    with pytest.raises(ValueError, match="variant.lens"):
        TrialConfig.model_validate({"dataset": {"name": "digits"}, "model": {"name": "dcgan"},
                                    "variant": {"structure": structure, "lens": {"K": 10}}})
    with pytest.raises(ValueError, match=f"task: not an option of structure '{structure}'"):
        TrialConfig.model_validate({"dataset": {"name": "digits"}, "model": {"name": "dcgan"},
                                    "variant": {"structure": structure, "task": "inpaint"}})


# ----------------------------------------------------------------------------- networks, streams, packs
def _setup(cfgs):
    from bench import registry
    from bench.trial import setup

    return setup(cfgs, "cpu"), registry


@pytest.mark.parametrize("structure,weight", [("acgan", "lambda_cls"), ("infogan", "lambda_info")])
def test_the_same_seed_starts_every_weight_from_the_same_networks(structure, weight):
    a, _ = _setup(_cfg(structure, variant={weight: 0.1}))
    b, _ = _setup(_cfg(structure, variant={weight: 3.0}))
    for name in ("G", "D"):
        sa, sb = getattr(a.nets, name).state_dict(), getattr(b.nets, name).state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c, _ = _setup(_cfg(structure, variant={weight: 0.1}, seed=1))
    assert not torch.equal(a.nets.G.fc.weight, c.nets.G.fc.weight)


@pytest.mark.parametrize("structure,weight", [("cgan", None), ("acgan", "lambda_cls"), ("infogan", "lambda_info")])
def test_a_pack_steps_each_configuration_as_alone(structure, weight):
    """Two configurations (other seed, other weight) packed: one step gives each its own losses."""
    over = [{"seed": 0}, {"seed": 1, **({"variant": {weight: 0.3}} if weight else {})}]
    cfgs = [_cfg(structure, **o) for o in over]
    torch.manual_seed(0)
    packed, _ = _setup(cfgs)
    out = packed.step(0)
    for k, c in enumerate(cfgs):
        alone, _ = _setup(c)
        one = alone.step(0)
        assert set(one) == set(out)
        for name in one:
            torch.testing.assert_close(out[name][k], one[name][0], rtol=1e-4, atol=1e-5, msg=name)


# ----------------------------------------------------------------------------- short trainings on digits
def _train(structure, tmp_path, **over):
    return trained(_cfg(structure, **over), tmp_path)


def _grid_size(tmp_path, rel):
    from PIL import Image

    return Image.open(tmp_path / rel).size


def test_cgan_learns_to_draw_the_class_it_is_asked_for(tmp_path):
    rows, last = _train("cgan", tmp_path)
    assert rows[0]["class_accuracy"] < 0.3             # untrained: about chance
    assert last["class_accuracy"] > 0.5, last["class_accuracy"]  # measured 0.95 (600 steps)
    assert math.isfinite(last["class_fid"])
    assert "d_class_accuracy" not in last and "loss_cls" not in last
    w, h = _grid_size(tmp_path, last["grid_generated"])
    assert h > w  # a row per class: 10 rows of 8 samples


def test_acgan_learns_classes_in_g_and_in_d(tmp_path):
    rows, last = _train("acgan", tmp_path)
    assert last["d_class_accuracy"] > 0.5, last["d_class_accuracy"]  # measured 0.96
    assert last["class_accuracy"] > 0.5, last["class_accuracy"]      # measured 1.0
    assert "loss_cls" in last


def test_infogan_trains_and_scores_its_code(tmp_path):
    rows, last = _train("infogan", tmp_path)
    for m in ("code_accuracy", "code_nmi"):
        assert math.isfinite(last[m])
    assert 0.1 <= last["code_accuracy"] <= 1.0
    assert last["code_nmi"] > rows[0]["code_nmi"]  # the code means more than at the start (measured 0.32)
    for j in (1, 2):
        w, h = _grid_size(tmp_path, last[f"grid_traversal_c{j}"])
        assert h > w  # a row per categorical code


def test_a_packed_trial_reports_what_each_configuration_reports_alone():
    """A short InfoGAN trial of two weights packed together: each configuration's rows match its own
    trial's (losses and FID within float32 rounding, as for the DCGAN packs of tests/test_packing.py;
    metrics of predicted classes within a few samples' flips). (ACGAN's packed step: above.)"""
    structure, weight = "infogan", "lambda_info"
    short = {"steps": 10, "eval_every": 10, "eval_samples": 200}
    cfgs = [_cfg(structure, train=short, variant={weight: w}) for w in (0.3, 3.0)]
    cfgs = [{**c, "trial_id": f"{structure}-{i}"} for i, c in enumerate(cfgs)]
    packed: dict = {}
    from bench.trial import run_trial
    import tempfile

    run_trial(cfgs, lambda r, state=None: packed.setdefault(r["config_id"], []).append(r), tempfile.mkdtemp())
    names = ("loss_d", "loss_g", "loss_info", "fid")
    for c in cfgs:
        alone = run_rows(c)
        mine = packed[c["trial_id"]]
        assert [r["step"] for r in mine] == [r["step"] for r in alone]
        for a, b in zip(alone, mine):
            for k in names:
                if k in a:
                    assert b[k] == pytest.approx(a[k], rel=2e-3, abs=2e-4), (c["trial_id"], a["step"], k)
            for k in ("code_accuracy", "code_nmi"):  # 200 samples: a flip moves them by about 0.005
                assert b[k] == pytest.approx(a[k], abs=0.03), (c["trial_id"], a["step"], k)
