import math

import torch

from bench.trial import setup
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
