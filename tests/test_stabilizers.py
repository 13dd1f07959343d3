"""Stabilizers as sweepable pieces (issue 25): the penalties' values against closed forms, every piece trained packed
and alone alike, the named combinations (wgan-gp = critic loss + gp, r3gan = rpgan + R1 + R2) equal to their parts
bit for bit, and a configuration without them untouched (tests/test_golden.py pins that)."""

import math
from pathlib import Path

import pytest
import torch

from bench import penalties, registry
from bench.schema import TrialConfig, config_hash, variant_label

from conftest import run_rows

STEPS = 6
BASE = {"dataset": {"name": "ring8"}, "model": {"name": "mlp", "width": 16, "z_dim": 4},
        "train": {"steps": STEPS, "eval_every": 3, "batch_size": 32, "eval_samples": 200, "lr": 2e-3}}
TOL = {"rel": 2e-3, "abs": 2e-4}


def trial(variant=None, train=None, seed=0) -> dict:
    train = dict(train or {})
    model = train.pop("model", {})  # PIECES write model fields in the train slot as {"model": {...}}
    raw = {**BASE, "model": {**BASE["model"], **model}, "train": {**BASE["train"], **train}, "variant": variant or {},
           "seed": seed}
    cfg = TrialConfig.model_validate(raw).model_dump(mode="json")
    return {**cfg, "study": "stabilizers", "trial_id": config_hash(cfg), "variant_label": variant_label(cfg)}


# ----------------------------------------------------------------------------- closed forms
class Linear(torch.nn.Module):
    """D(x) = <a_k, x> per configuration k: its input gradient is a_k at every point."""

    def __init__(self, a):
        super().__init__()
        self.a = torch.nn.Parameter(a)  # [n, d]

    def forward(self, x):  # [n, B, d] -> [n, B]
        return (x * self.a[:, None, :]).sum(-1)


def test_penalties_on_a_linear_critic_match_their_closed_forms():
    a = torch.tensor([[3.0, 4.0], [0.6, 0.8]])  # gradient norms 5 and 1
    D = Linear(a)
    real, fake = torch.randn(2, 16, 2), torch.randn(2, 16, 2)
    draws = {"eps": torch.rand(2, 16), "perturb": torch.rand(2, 16, 2)}
    norm = a.norm(dim=1)
    value = lambda name: getattr(penalties, name)(D, real, fake, draws).tolist()  # noqa: E731
    assert value("gp") == pytest.approx(((norm - 1) ** 2).tolist(), abs=1e-5)      # [16, 0]
    assert value("dragan") == pytest.approx(((norm - 1) ** 2).tolist(), abs=1e-5)
    assert value("r1") == pytest.approx((0.5 * norm**2).tolist())                  # [12.5, 0.5]
    assert value("r2") == pytest.approx((0.5 * norm**2).tolist())
    # they train D: the penalty's gradient for a_k is d/da of (||a|| - 1)^2 = 2 (||a|| - 1) a / ||a||
    (g,) = torch.autograd.grad(penalties.gp(D, real, fake, draws).sum(), D.a)
    assert torch.allclose(g, 2 * (norm - 1)[:, None] * a / norm[:, None], atol=1e-5)
    # consensus: (1/2)||v||^2 of each configuration's gradients
    v = [torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[2.0], [3.0]])]
    assert penalties.consensus(v, 2).tolist() == [4.5, 4.5]


def test_r1_and_r2_look_at_the_data_and_at_the_generator_respectively():
    """A critic whose input gradient depends on x: R1 must take it at real points, R2 at fake ones."""
    D = lambda x: (x**2).sum(-1)  # noqa: E731 - grad = 2x, (1/2)||grad||^2 = 2||x||^2
    real, fake = torch.full((1, 4, 2), 1.0), torch.full((1, 4, 2), 3.0)
    assert penalties.r1(D, real, fake, {}).tolist() == pytest.approx([4.0])
    assert penalties.r2(D, real, fake, {}).tolist() == pytest.approx([36.0])


# ----------------------------------------------------------------------------- packed and alone
PIECES = {
    "gp": ({"penalty": {"gp": 1.0}}, None, {"penalty": {"gp": 5.0}}),
    "dragan": ({"penalty": {"dragan": 1.0}}, None, {"penalty": {"dragan": 4.0}}),
    "r1": ({"penalty": {"r1": 1.0}}, None, {"penalty": {"r1": 0.1}}),
    "r2": ({"penalty": {"r2": 1.0}}, None, {"penalty": {"r2": 0.1}}),
    "r1+r2": ({"penalty": {"r1": 1.0, "r2": 1.0}}, None, {"penalty": {"r1": 0.3, "r2": 2.0}}),
    "noise": ({"noise": {"sigma": 0.3, "K": 4}}, None, {"noise": {"sigma": 0.1, "K": 6, "schedule": "sine"}}),
    "simultaneous": ({}, {"updates": "simultaneous"}, {}),
    "simultaneous-n_critic": ({}, {"updates": "simultaneous", "n_critic": 2}, {}),
    "consensus": ({"penalty": {"consensus": 1.0}}, {"updates": "simultaneous"}, {"penalty": {"consensus": 0.1}}),
    "r3gan": ({"objective": "r3gan", "gp_weight": 1.0}, None, {"objective": "r3gan", "gp_weight": 0.2}),
    "D spectral": ({}, {"model": {"d_norm": "spectral"}}, {}),
    "D layer": ({}, {"model": {"d_norm": "layer"}}, {}),
    "D batch": ({}, {"model": {"d_norm": "batch"}}, {}),
    "ema": ({}, {"ema": 0.9}, {}),
    "noise+lens": ({"noise": {"sigma": 0.2, "K": 6}, "lens": {"K": 4}}, None,
                   {"noise": {"sigma": 0.2, "K": 6}, "lens": {"K": 4, "lam": 0.5}}),
}


@pytest.mark.parametrize("piece", list(PIECES))
def test_each_piece_trains_packed_as_alone(piece, one_thread):
    first, train, second = PIECES[piece]
    a, b = trial(first, train, seed=0), trial({**first, **second}, train, seed=1)
    alone = run_rows(b)
    packed = [r for r in run_rows([a, b]) if r.get("config_id", b["trial_id"]) == b["trial_id"]]
    assert alone[-1]["status"] == "ok", alone[-1].get("error")
    assert [r["step"] for r in packed] == [r["step"] for r in alone]
    off = [(r["step"], k, v, p[k]) for r, p in zip(alone, packed) for k, v in r.items()
           if (k.startswith("loss_") or k in ("energy_distance", "modes_covered")) and isinstance(v, float)
           and not math.isnan(v) and p[k] != pytest.approx(v, **TOL)]
    assert not off, off


def test_a_piece_changes_the_training():
    """Each piece is on: its rows differ from the plain configuration's (a weight that is read nowhere would not)."""
    plain = run_rows(trial())
    for piece, (first, train, _) in PIECES.items():
        if piece in ("simultaneous-n_critic", "noise+lens", "ema"):  # ema changes the evaluation only (below)
            continue
        rows = run_rows(trial(first, train))
        assert rows[-1]["loss_d"] != pytest.approx(plain[-1]["loss_d"], rel=1e-6), piece


# ----------------------------------------------------------------------------- named combinations
def _losses(rows):
    return [(r["step"], r.get("loss_d"), r.get("loss_g")) for r in rows]


def test_wgan_gp_is_the_critic_loss_plus_gp_bit_for_bit(one_thread):
    """WGAN-GP at gp_weight w trains exactly as WGAN-GP at gp_weight 0 with variant.penalty.gp = w: the objective's
    own penalty and the sweepable one are the same code (published wgan-gp rows stay reproducible: test_golden)."""
    a = trial({"objective": "wgan-gp", "gp_weight": 5.0})
    b = trial({"objective": "wgan-gp", "gp_weight": 0.0, "penalty": {"gp": 5.0}})
    assert a["trial_id"] != b["trial_id"]
    assert _losses(run_rows(a)) == _losses(run_rows(b))


def test_r3gan_is_rpgan_with_r1_and_r2_bit_for_bit(one_thread):
    a = trial({"objective": "r3gan", "gp_weight": 0.5})
    b = trial({"objective": "rpgan", "penalty": {"r1": 0.5, "r2": 0.5}})
    assert _losses(run_rows(a)) == _losses(run_rows(b))


def test_registry_lists_every_penalty_the_schema_accepts():
    assert set(registry.names("penalty")) == set(type(TrialConfig().variant.penalty).model_fields)
    assert set(penalties.INPUT) | {"consensus"} == set(registry.names("penalty"))


# ----------------------------------------------------------------------------- generator weight averaging
def test_ema_is_the_exponential_average_of_g_and_is_scored_in_the_same_row(one_thread):
    from bench.trial import setup

    run = setup(trial(train={"ema": 0.75}))
    before = [p.detach().clone() for p in run.nets.G.parameters()]
    assert all(torch.equal(e, b) for e, b in zip(run.nets.G_ema.parameters(), before))  # starts as G
    run.step(0)
    for e, b, p in zip(run.nets.G_ema.parameters(), before, run.nets.G.parameters()):
        assert torch.allclose(e, 0.75 * b + 0.25 * p, atol=1e-7)
    assert not any(p.requires_grad for p in run.nets.G_ema.parameters())
    rows = run_rows(trial(train={"ema": 0.9}))
    last = rows[-1]
    for m in ("energy_distance", "modes_covered", "hq_fraction", "mode_kl"):
        assert math.isfinite(last[f"{m}_ema"]) == math.isfinite(last[m]), m
    assert last["energy_distance_ema"] != last["energy_distance"]
    assert "energy_distance_ema" not in run_rows(trial())[-1]  # only with train.ema


# ----------------------------------------------------------------------------- the published study's design
def test_stabilizers_toy_samples_each_penalty_weight_only_where_its_variant_turns_it_on():
    from bench.study import expand, load_study

    trials = expand(load_study(Path(__file__).resolve().parents[1] / "studies" / "stabilizers_toy.yaml"))
    assert len(trials) == 24 * 12
    for t in trials:
        pen, label = t["variant"]["penalty"], t["variant_label"]
        for name in ("gp", "dragan", "r1"):
            on = f"+{name} " in label
            assert (pen[name] > 0) == on, (label, pen)
        assert ("D spectral" in label) == (t["model"]["d_norm"] == "spectral")
    gp = {t["variant"]["penalty"]["gp"] for t in trials if t["sample"] > 0 and t["variant"]["penalty"]["gp"] > 0}
    assert len(gp) == 11 and all(0.1 <= w <= 100 for w in gp)  # drawn per point, shared across the gp variants
    assert {t["train"]["updates"] for t in trials} == {"alternating", "simultaneous"}


def test_a_penalty_that_overflows_marks_the_row_diverged():
    rows = run_rows(trial({"penalty": {"r1": 1e38}}, {"lr": 1.0, "optimizer": "sgd"}))
    assert rows[-1]["status"] == "diverged" and "non-finite" in rows[-1]["error"], rows[-1]


@pytest.mark.parametrize("structure", [s for s, d in __import__("bench.catalog", fromlist=["catalog"]).catalog().items()
                                       if "penalty" in d.uses and s not in ("gan", "dirac")])
def test_penalties_on_every_structure_that_declares_them_train_packed_as_alone(structure, one_thread):
    """The contract's configuration of each structure (tests/test_contract.py), with R1 and the gradient penalty on
    in both of its pack's configurations: the second one's rows, packed and alone, agree."""
    from test_contract import plan, trial as contract_trial

    p = plan(structure)
    on = [contract_trial({**c, "variant": {**c["variant"], "penalty": {"r1": 1.0, "gp": 0.5 + k}}})
          for k, c in enumerate(p.pack[:2])]
    alone = run_rows(on[1])
    packed = [r for r in run_rows(on) if r.get("config_id") == on[1]["trial_id"]]
    assert alone[-1]["status"] == "ok", alone[-1].get("error")
    off = [(r["step"], k, v, q[k]) for r, q in zip(alone, packed) for k, v in r.items()
           if k.startswith("loss_") and isinstance(v, float) and not math.isnan(v) and q[k] != pytest.approx(v, **TOL)]
    assert len(packed) == len(alone) and not off, off
