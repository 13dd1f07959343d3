import math

import pytest
import torch
import torch.nn.functional as F

from bench import registry
from bench.objectives import Objective, classic
from bench.trial import run_trial, setup
from conftest import run_rows, without_wall


def test_same_config_and_seed_give_identical_numbers(tiny_config):
    cfg = tiny_config(variant={"objective": "wgan-gp", "lens": {"K": 50}})
    a, b = run_rows(cfg), run_rows(cfg)
    assert without_wall(a) == without_wall(b)
    assert a[-1]["status"] == "ok" and a[-1]["step"] == 100
    assert [r["step"] for r in a] == [0, 50, 100]


def test_different_seed_gives_different_numbers(tiny_config):
    a = run_rows(tiny_config(seed=0))[-1]
    b = run_rows(tiny_config(seed=1))[-1]
    assert a["energy_distance"] != b["energy_distance"]


def test_same_seed_same_initial_G_and_D_with_and_without_lens(tiny_config):
    plain = setup(tiny_config(), "cpu").nets
    lensed = setup(tiny_config(variant={"lens": {"schedule": "sine", "K": 10}}), "cpu").nets
    assert plain.lens is None and lensed.lens is not None
    for a, b in ((plain.G, lensed.G), (plain.D, lensed.D)):
        for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert na == nb and torch.equal(pa, pb)
    x = torch.randn(1, 16, 2)
    assert torch.equal(lensed.lens(x), x)  # the residual lens starts as the identity


def test_lens_trains_and_reports_lambda(tiny_config):
    rows = run_rows(tiny_config(variant={"lens": {"schedule": "sine", "K": 100}}))
    assert rows[0]["lambda"] == 1.0 and rows[-1]["lambda"] == 0.0
    assert math.isclose(rows[1]["lambda"], 1 - math.sin(50 * math.pi / 200))
    assert "loss_lens" in rows[-1] and math.isfinite(rows[-1]["loss_lens"])


def test_toy_samples_are_an_artifact_file(tiny_config, tmp_path):
    from bench import artifacts

    rows = run_rows(tiny_config(variant={"lens": {"schedule": "sine", "K": 100}}), tmp_path)
    last = rows[-1]
    pts = artifacts.read_npz(tmp_path, last["samples_path"])
    assert set(pts) == {"generated", "real", "lensed"} and last["samples_step"] == 100
    assert pts["lensed"].shape == pts["real"].shape == (500, 2)  # eval_samples 500 < N_SCATTER


def test_absurd_lr_ends_as_diverged_at_the_step_it_happened(tiny_config):
    rows = run_rows(tiny_config(train={"optimizer": "sgd", "lr": 1e12}, variant={"objective": "lsgan"}))
    last = rows[-1]
    assert last["status"] == "diverged" and last["final"] is True
    assert last["diverged_step"] < 100 and "non-finite" in last["error"]
    assert all(r["status"] == "running" for r in rows[:-1])  # evaluations before it are kept


def test_every_objective_and_optimizer_runs(tiny_config):
    from bench import registry

    for obj in registry.names("objective"):
        for opt in ("adam", "rmsprop", "sgd"):
            last = run_rows(tiny_config(variant={"objective": obj}, train={"optimizer": opt, "steps": 20, "eval_every": 20,
                                                                         "n_critic": 2, "lr": 1e-4}))[-1]
            assert last["status"] == "ok", (obj, opt, last.get("error"))
            assert math.isfinite(last["energy_distance"])


def test_wgan_clips_critic_weights(tiny_config):
    run = setup(tiny_config(variant={"objective": "wgan", "clip": 0.01}, train={"lr": 0.5}), "cpu")
    run.step(0)
    assert max(p.abs().max().item() for p in run.nets.D.parameters()) <= 0.01 + 1e-7


def test_dcgan_same_initial_G_and_D_with_and_without_the_conv_lens(tiny_config):
    base = {"dataset": {"name": "digits", "image_size": 16}, "model": {"name": "dcgan", "width": 8, "z_dim": 16,
                                                                         "init": "xavier"}}
    plain = setup(tiny_config(**base), "cpu").nets
    lensed = setup(tiny_config(**base, variant={"lens": {"K": 10, "width": 4}}), "cpu").nets
    assert len(lensed.lens.blocks) == 8  # the paper's 8 residual blocks by default
    for a, b in ((plain.G, lensed.G), (plain.D, lensed.D)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.rand(1, 4, 1, 16, 16) * 2 - 1
    assert torch.equal(lensed.lens(x), x)  # starts as the identity
    # WGAN-GP's critic has no batch norm; the GAN's has
    from bench.nets.packed import BatchNorm2d

    wgp = setup(tiny_config(**base, variant={"objective": "wgan-gp"}), "cpu").nets
    assert not any(isinstance(m, BatchNorm2d) for m in wgp.D.modules())
    assert any(isinstance(m, BatchNorm2d) for m in plain.D.modules())


def test_lens_recon_sum_or_mean_over_pixels(tiny_config):
    """lens.recon: 'sum' is the paper's per-sample ||x - L(x)||^2; 'mean' divides it by the entries per
    sample (here 1 x 16 x 16). With lambda = 0 (schedule none) the lens loss is that term alone."""
    base = {"dataset": {"name": "digits", "image_size": 16}, "model": {"name": "dcgan", "width": 8, "z_dim": 16}}
    losses = {}
    for recon in ("sum", "mean"):
        run = setup(tiny_config(**base, variant={"lens": {"schedule": "none", "width": 4, "recon": recon}}), "cpu")
        with torch.no_grad():  # move the lens off the identity so the reconstruction error is not 0
            for p in run.nets.lens.parameters():
                p.add_(0.05)
        losses[recon] = run.step(0)["loss_lens"].item()
    assert losses["sum"] > 0
    assert math.isclose(losses["sum"] / losses["mean"], 16 * 16, rel_tol=1e-4)


# ----------------------------------------------------------------------------- code errors, shapes, d_loss
def per_sample_d(r, f):  # forgets the batch mean: [n, B], not [n]
    return F.softplus(-r) + F.softplus(f)


def raising_d(r, f):
    raise TypeError("unsupported operand type(s) for +: 'Tensor' and 'NoneType'")


def oserror_d(r, f):
    raise OSError("the dataset's disk went away")


persample = Objective("persample", per_sample_d, g=classic.ns.g, lens=classic.ns.lens)
raising = Objective("raising", raising_d, g=classic.ns.g, lens=classic.ns.lens)
oserror = Objective("oserror", oserror_d, g=classic.ns.g, lens=classic.ns.lens)


@pytest.fixture
def broken(monkeypatch):
    ours = {n: f"test_trial:{n}" for n in ("persample", "raising", "oserror")}
    monkeypatch.setitem(registry.REGISTRY, "objective", {**registry.REGISTRY["objective"], **ours})


def pack_of_two(tiny_config, **over):
    return [{**tiny_config(seed=s, **over), "trial_id": f"seed{s}"} for s in (0, 1)]


def test_a_per_sample_objective_names_itself_and_the_shapes(broken, tiny_config):
    with pytest.raises(ValueError) as e:
        run_rows(pack_of_two(tiny_config, variant={"objective": "persample"}))
    assert str(e.value).startswith("objective 'persample': its D loss d(r, f) has shape [2, 64] for D outputs of "
                                   "shape [2, 64]; a loss is one value per configuration, shape [2]")


def test_a_structure_loss_of_the_wrong_shape_names_the_structure(tiny_config, monkeypatch):
    from bench.structures import gan

    step = gan.step

    def per_sample(nets, batch, pack, t):
        out = step(nets, batch, pack, t)
        return {**out, "loss_g": out["loss_g"][:, None].expand(-1, 3)}

    monkeypatch.setattr(gan, "step", per_sample)
    with pytest.raises(ValueError, match=r"^structure 'gan': step returned loss_g of shape \[2, 3\]; each loss is one "
                                         r"value per configuration of the pack, shape \[2\]$"):
        run_rows(pack_of_two(tiny_config))


def test_a_code_error_ends_every_live_configuration_failed_when_reporting_failures(broken, tiny_config, tmp_path):
    cfgs = pack_of_two(tiny_config, variant={"objective": "raising"})
    with pytest.raises(TypeError):  # in-process callers see the exception
        run_rows(cfgs)
    rows = []
    last = run_trial(cfgs, rows.append, tmp_path, report_failures=True, pack_id="p")
    assert [(r["config_id"], r["status"]) for r in rows] == [("seed0", "running"), ("seed1", "running"),
                                                             ("seed0", "failed"), ("seed1", "failed")]
    assert last == [{k: v for k, v in r.items() if k != "config_id"} for r in rows[2:]]
    for r in rows[2:]:
        assert r["final"] and r["step"] == 0 and r["pack_id"] == "p"
        assert r["error"] == ("TypeError: unsupported operand type(s) for +: 'Tensor' and 'NoneType' "
                              f"(at tests/test_trial.py:{raising_d.__code__.co_firstlineno + 1}, in raising_d)")
        assert "Traceback" in r["traceback"] and "raising_d" in r["traceback"]
        assert math.isnan(r["energy_distance"])


def test_machine_errors_and_report_errors_still_propagate(broken, tiny_config, tmp_path):
    with pytest.raises(OSError):  # retried by Ray: a file system, not the code
        run_trial(pack_of_two(tiny_config, variant={"objective": "oserror"}), lambda r, state=None: None, tmp_path,
                  report_failures=True)

    def report(row, state=None):
        raise ValueError("Ray's storage refused the report")

    with pytest.raises(ValueError, match="storage refused"):
        run_trial(pack_of_two(tiny_config), report, tmp_path, report_failures=True)


def test_d_loss_is_d_steps_loss_without_the_step(tiny_config):
    from bench.structures import d_loss, d_step

    run = setup(tiny_config(variant={"objective": "wgan-gp"}), "cpu")
    nets, pack = run.nets, run.pack
    obj = registry.get("objective", "wgan-gp")
    real, fake, eps = torch.randn(1, 64, 2), torch.randn(1, 64, 2), torch.rand(1, 64)
    before = [p.detach().clone() for p in nets.D.parameters()]
    loss = d_loss(nets.D, obj, pack, real, fake, eps)
    assert loss.shape == (1,) and loss.requires_grad
    assert all(torch.equal(a, b) for a, b in zip(before, nets.D.parameters()))
    assert torch.equal(d_step(nets.D, nets.opt["D"], obj, pack, real, fake, eps), loss.detach())
    assert not all(torch.equal(a, b) for a, b in zip(before, nets.D.parameters()))


def test_pack_size_and_its_deprecated_name(tiny_config):
    pack = setup(pack_of_two(tiny_config), "cpu").pack
    assert pack.size == 2 and not hasattr(pack, "K")  # K is the lens horizon only
