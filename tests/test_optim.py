"""The fused pack optimizers (bench.optim): K configurations with their own learning rates, betas,
momentum and weight decay updated at once end where torch.optim takes each configuration alone
(bit for bit on this CPU, float32 rounding anywhere), checkpoints continue identically (old per-run
checkpoints too), a pack of distinct settings is one optimizer, and a real packed trial with distinct
learning rates reports each configuration's unpacked numbers."""

import io
import platform

import pytest
import torch

from bench import optim, packing
from bench.structures import PackOptimizer
from bench.trial import setup
from test_packing import TOY_TRAIN, compare, config

pytestmark = pytest.mark.usefixtures("one_thread")

K = 4
# packed shapes: Linear weights and biases [K, out, in] / [K, out], a critic's one-output layer, a conv kernel
SHAPES = [(K, 16, 2), (K, 16), (K, 16, 16), (K, 1, 16), (K, 1), (K, 3, 2, 4, 4)]
LR = [1e-3, 3e-4, 2e-2, 5e-3]
CASES = {  # kind: per-configuration hyperparameters (momentum 0 next to momentum > 0 on purpose)
    "adam": {"lr": LR, "betas": [(0.5, 0.999), (0.0, 0.9), (0.9, 0.99), (0.3, 0.95)]},
    "adam-decay": {"lr": LR, "betas": [(0.5, 0.999)] * K, "weight_decay": [0.0, 1e-2, 1e-4, 0.1]},
    "rmsprop": {"lr": LR, "momentum": [0.0, 0.5, 0.9, 0.0]},
    "rmsprop-plain": {"lr": LR, "momentum": [0.0] * K},
    "rmsprop-momentum": {"lr": LR, "momentum": [0.9, 0.5, 0.3, 0.99], "weight_decay": [0.0, 1e-3, 0.0, 1e-2]},
    "sgd": {"lr": [1e-2, 3e-1, 2e-3, 5e-2], "momentum": [0.9, 0.0, 0.5, 0.99]},
    "sgd-plain": {"lr": [1e-2, 3e-1, 2e-3, 5e-2], "momentum": [0.0] * K, "weight_decay": [0.0, 1e-2, 0.0, 0.5]},
}
TORCH = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}
EXACT = platform.machine() in ("x86_64", "AMD64")  # the machine type the golden numbers are recorded on


def close(a, b, msg=""):
    """Equal to float32 rounding; bit for bit on this machine type (same kernels, same roundings)."""
    if EXACT:
        assert torch.equal(a, b), msg
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=msg)


def grad(p: torch.Tensor, t: int) -> torch.Tensor:
    """A gradient that depends on the parameter and the step, elementwise: a configuration alone gets
    the same gradient as inside the pack."""
    return torch.sin(3 * p + 0.1 * t) + 0.05 * p


def initial():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=g) for s in SHAPES]


def per_config(hp: dict, k: int) -> dict:
    return {name: v[k] for name, v in hp.items()}


def train(opt, params, steps, t0=0):
    for t in range(t0, t0 + steps):
        for p in params:
            p.grad = grad(p.detach(), t)
        opt.step()


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_fused_pack_ends_where_torch_takes_each_configuration_alone(case):
    kind, hp = case.split("-")[0], CASES[case]
    packed = [torch.nn.Parameter(x.clone()) for x in initial()]
    opt = optim.fused(packed, kind, K, **hp)
    train(opt, packed, 100)
    for k in range(K):
        alone = [torch.nn.Parameter(x[k:k + 1].clone()) for x in initial()]
        ref = TORCH[kind](alone, **per_config(hp, k))
        train(ref, alone, 100)
        for i, (a, p) in enumerate(zip(alone, packed)):
            close(p.detach()[k:k + 1], a.detach(), f"{case} config {k} parameter {i}")
            st = ref.state[a]
            for key, v in st.items():
                if key == "step":
                    assert opt.state[i]["step"] == int(v) == 100
                elif v is not None:
                    close(opt.state[i][key][k:k + 1], v, f"{case} config {k} parameter {i} {key}")
            assert kind == "adam" or hp["momentum"][k] > 0 or "momentum_buffer" not in st


def _saved(state):
    buf = io.BytesIO()
    torch.save(state, buf)  # as a checkpoint is stored and loaded (bench.checkpoints)
    return torch.load(io.BytesIO(buf.getvalue()), weights_only=True)


@pytest.mark.parametrize("kind", ["adam", "rmsprop", "sgd"])
def test_a_state_dict_round_trip_mid_run_continues_identically(kind):
    hp = CASES[kind]
    whole = [torch.nn.Parameter(x.clone()) for x in initial()]
    opt = optim.fused(whole, kind, K, **hp)
    train(opt, whole, 50)
    cut = [torch.nn.Parameter(p.detach().clone()) for p in whole]
    again = optim.fused(cut, kind, K, **hp)
    again.load_state_dict(_saved(opt.state_dict()))
    train(opt, whole, 50, t0=50)
    train(again, cut, 50, t0=50)
    for a, b in zip(whole, cut):
        assert torch.equal(a, b)


def _settings(kind: str, hp: dict) -> list[tuple]:
    betas = hp.get("betas", [(0.9, 0.999)] * K)
    return [(kind, hp["lr"][k], betas[k], hp.get("momentum", [0.0] * K)[k]) for k in range(K)]


@pytest.mark.parametrize("kind", ["adam", "rmsprop", "sgd"])
def test_a_checkpoint_of_per_run_optimizers_loads_into_the_fused_one(kind):
    """Checkpoints written before packs were fused hold one torch state per run of equal settings:
    PackOptimizer joins them along the pack dimension, and training goes on as it would have."""
    settings = _settings(kind, {"rmsprop": {"lr": LR, "momentum": [0.0, 0.0, 0.9, 0.5]}}.get(kind, CASES[kind]))
    old_params = [torch.nn.Parameter(x.clone()) for x in initial()]
    old = PackOptimizer(old_params, settings, per_run=True)
    assert len(old.optimizers) == K
    train(old, old_params, 30)
    new_params = [torch.nn.Parameter(p.detach().clone()) for p in old_params]
    new = PackOptimizer(new_params, settings)
    new.load_state_dict(_saved(old.state_dict()))
    train(old, old_params, 30, t0=30)
    train(new, new_params, 30, t0=30)
    for a, b in zip(old_params, new_params):
        close(b.detach(), a.detach())


# ----------------------------------------------------------------------------- in trials
def _cfgs(lrs, **train):
    return [config({}, TOY_TRAIN, s, train={"lr": lr, **train}) for s, lr in enumerate(lrs)]


def test_a_pack_of_distinct_learning_rates_is_one_optimizer():
    run = setup(_cfgs([1e-3, 3e-4, 2e-3, 1e-4]), "cpu")
    for name, opt in run.nets.opt.items():
        (o,) = opt.optimizers
        assert isinstance(o, optim.Adam), name
    assert [s[1] for s in run.nets.opt["G"].settings] == [1e-3, 3e-4, 2e-3, 1e-4]
    # the same learning rate (seeds of one setting): torch's own optimizer over the whole pack, as before
    (o,) = setup(_cfgs([1e-3] * 3), "cpu").nets.opt["G"].optimizers
    assert isinstance(o, torch.optim.Adam)


@pytest.mark.parametrize("train", [{}, {"optimizer": "sgd", "momentum": 0.5}, {"optimizer": "rmsprop"}],
                         ids=["adam", "sgd", "rmsprop"])
def test_a_toy_pack_of_three_learning_rates_trains_each_as_alone(train):
    lrs = [1e-3, 3e-4, 2e-3] if not train else [1e-2, 3e-3, 1e-3]
    cfgs = _cfgs(lrs, **train)
    if train.get("momentum"):  # and momentum differing too, with 0 among them
        cfgs = _cfgs(lrs[:2], **train) + _cfgs(lrs[2:], **{**train, "momentum": 0.0})
    assert len(packing.make_packs(cfgs, "auto", slots=1)) == 1
    compare(cfgs, exact=True)


def test_learning_rates_do_not_split_a_random_study_and_kinds_do(tmp_path):
    from bench.study import expand, load_study

    study = tmp_path / "r.yaml"
    study.write_text("name: r\ntrain: {steps: 100}\nsweep:\n  method: random\n  num_samples: 24\n  sample_seed: 0\n"
                     "  axes:\n    train.lr: {dist: loguniform, low: 1.0e-5, high: 1.0e-2}\n"
                     "    train.betas: [[0.5, 0.999], [0.0, 0.9]]\n    train.optimizer: [adam, sgd]\n")
    trials = expand(load_study(study))
    packs = packing.make_packs(trials, "auto", slots=1)
    by_kind = {}
    for t in trials:
        by_kind.setdefault(t["train"]["optimizer"], []).append(t)
    assert all(len({t["train"]["optimizer"] for t in p}) == 1 for p in packs)
    assert len(packs) == sum(-(-len(v) // packing.auto_cap(v[0])) for v in by_kind.values())  # cap 8: full packs
    assert any(len({t["train"]["lr"] for t in p}) == len(p) > 1 for p in packs)
