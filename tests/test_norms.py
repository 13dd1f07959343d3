"""Normalization of the discriminator (model.d_norm: batch, layer, spectral) in the MLP and DCGAN nets: a
pack of K configurations trains each as its own network would, spectral normalization divides each
configuration's weights by their own largest singular value and checkpoints its power-iteration state, and
an unset d_norm builds exactly the networks from before it existed."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.nets import dcgan, mlp
from bench.nets import packed as P


pytestmark = pytest.mark.usefixtures("one_thread")

NETS = {"mlp": (mlp, 2, (32, 2)), "dcgan": (dcgan, (1, 16, 16), (32, 1, 16, 16))}  # module, data_dim, batch shape


def _cfg(**over):
    base = {"z_dim": 8, "width": 8, "depth": 2, "batch_norm": True, "d_batch_norm": False, "d_norm": None,
            "init": "xavier"}
    return SimpleNamespace(**(base | over))


def _D(net: str, seed: int, **over) -> nn.Module:
    torch.manual_seed(seed)
    module, data_dim, _ = NETS[net]
    return module.build(_cfg(**over), data_dim)[1]


def _data(net: str, steps: int, K: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return [torch.randn(K, *NETS[net][2], generator=g) for _ in range(steps)]


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("norm", ["batch", "layer", "spectral"])
def test_a_pack_trains_each_configuration_as_its_own_network(net, norm):
    """Three D built under three seeds and stacked, trained 3 SGD steps: each configuration's outputs,
    gradients, buffers (running statistics, u) and eval-mode outputs are those of its own network."""
    singles = [_D(net, s, d_norm=norm) for s in (0, 1, 2)]
    pack = P.stack([_D(net, s, d_norm=norm) for s in (0, 1, 2)])
    kinds = {"batch": (P.BatchNorm1d, P.BatchNorm2d), "layer": (P.LayerNorm, P.LayerNorm2d),
             "spectral": (P.SpectralLinear, P.SpectralConv2d)}[norm]
    assert any(isinstance(m, kinds) for m in pack.modules())
    opts = [torch.optim.SGD(m.parameters(), lr=0.05) for m in singles + [pack]]
    for x in _data(net, 3):
        for o in opts:
            o.zero_grad()
        y = pack(x)
        F.softplus(y).mean(1).sum().backward()  # the sum of each configuration's own loss
        for k, single in enumerate(singles):
            yk = single(x[k:k + 1])
            F.softplus(yk).mean().backward()
            torch.testing.assert_close(yk[0], y[k], rtol=1e-5, atol=1e-5)
            scale = max(float(p.grad.abs().max()) for p in single.parameters())
            for (n, a), b in zip(single.named_parameters(), pack.parameters()):
                torch.testing.assert_close(a.grad[0], b.grad[k], rtol=1e-4, atol=1e-5 * scale, msg=f"{n} config {k}")
        for o in opts:
            o.step()
    x = _data(net, 1)[0]
    for m in singles + [pack]:
        m.eval()
    y = pack(x)
    for k, single in enumerate(singles):
        for (n, a), b in zip(single.named_buffers(), pack.buffers()):
            if a.dim():  # not BatchNorm's num_batches_tracked
                torch.testing.assert_close(a[0], b[k], rtol=1e-4, atol=1e-6, msg=f"{n} config {k}")
        torch.testing.assert_close(single(x[k:k + 1])[0], y[k], rtol=1e-4, atol=1e-5)


def test_layer_norm_is_torchs_per_configuration():
    """Each configuration of a pack normalises as torch's LayerNorm(c) (vectors) / GroupNorm(1, c) (grouped
    images) with that configuration's affine."""
    torch.manual_seed(0)
    K, B, c = 3, 5, 4
    for packed, shape in ((P.LayerNorm(K, c), (K, B, c)), (P.LayerNorm2d(K, c), (B, K * c, 6, 6))):
        with torch.no_grad():
            packed.weight.normal_(1, 0.5), packed.bias.normal_()
        x = 3 * torch.randn(*shape) + 1
        y = packed(x)
        for k in range(K):
            ref = nn.LayerNorm(c) if x.dim() == 3 else nn.GroupNorm(1, c)
            with torch.no_grad():
                ref.weight.copy_(packed.weight[k]), ref.bias.copy_(packed.bias[k])
            if x.dim() == 3:
                torch.testing.assert_close(y[k], ref(x[k]))
            else:
                torch.testing.assert_close(y[:, k * c:(k + 1) * c], ref(x[:, k * c:(k + 1) * c]))


def _spectral(m: nn.Module) -> list[P._Spectral]:
    return [l for l in m.modules() if isinstance(l, P._Spectral)]


@pytest.mark.parametrize("net", NETS)
def test_spectral_norm_divides_each_configuration_by_its_largest_singular_value(net):
    pack = P.stack([_D(net, s, d_norm="spectral") for s in (0, 1, 2)])
    layers = _spectral(pack)
    assert len(layers) == 3  # every linear layer / every conv and the final linear
    with torch.no_grad():  # each configuration's weights on another scale: one sigma for the pack would fail
        for l in layers:
            l.weight.mul_(torch.tensor([3.0, 0.1, 10.0]).view(-1, *[1] * (l.weight.dim() - 1)))
    x = _data(net, 1)[0]
    u0 = [l.u.clone() for l in layers]
    for _ in range(20):
        pack(x)
    # training-mode forwards iterate (a single output's u is 1 throughout)
    assert all(not torch.equal(a, l.u) for a, l in zip(u0, layers) if l.u.shape[1] > 1)
    pack.eval()
    u1 = [l.u.clone() for l in layers]
    y = pack(x)
    assert all(torch.equal(a, l.u) for a, l in zip(u1, layers))  # eval mode reuses u
    for l in layers:
        w = l.weight.detach().flatten(2)
        top = torch.linalg.matrix_norm(w, ord=2)
        assert (top - 1).abs().min() > 0.5  # the raw weights are far from normalised
        torch.testing.assert_close(l.sigma().detach(), top, rtol=2e-2, atol=0)
        normed = torch.linalg.matrix_norm(l.normalized_weight().detach().flatten(2), ord=2)
        torch.testing.assert_close(normed, torch.ones(3), rtol=0, atol=2e-2)
    # gradients flow through sigma: the outputs are invariant to each weight's scale, so (Euler) each
    # configuration's weight gradient is orthogonal to its weight
    F.softplus(y).sum().backward()
    for l in layers:
        w, g = l.weight.detach().flatten(1), l.weight.grad.flatten(1)
        assert ((w * g).sum(1).abs() < 1e-4 * w.norm(dim=1) * g.norm(dim=1)).all()
        assert (g.norm(dim=1) > 0).all()
    # the outputs don't depend on the weights' scale: the unscaled networks give the same logits
    ref = P.stack([_D(net, s, d_norm="spectral") for s in (0, 1, 2)])
    ref.load_state_dict({k: v for k, v in pack.state_dict().items() if k.endswith(".u")}, strict=False)
    torch.testing.assert_close(ref.eval()(x), y, rtol=1e-4, atol=1e-5)


def test_spectral_sigma_is_float32_under_autocast():
    """bf16 autocast (train.precision) leaves the power iteration and sigma in float32."""
    torch.manual_seed(0)
    layers = {False: P.SpectralConv2d(3, 4, 8, 4, 2, 1), True: P.SpectralConv2d(3, 4, 8, 4, 2, 1)}
    layers[True].load_state_dict(layers[False].state_dict())
    x = torch.randn(2, 12, 8, 8)
    for bf16, l in layers.items():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            l(x)
            l.sigma()
    assert torch.equal(layers[False].u, layers[True].u)


@pytest.mark.parametrize("net", NETS)
def test_spectral_state_round_trips_through_a_checkpoint(net):
    """u is a buffer: a D restored from its state_dict computes the same outputs (and the same next
    power iterations) as the one saved."""
    pack = P.stack([_D(net, s, d_norm="spectral") for s in (0, 1, 2)])
    opt = torch.optim.SGD(pack.parameters(), lr=0.05)
    for x in _data(net, 5):
        opt.zero_grad()
        pack(x).square().mean().backward()
        opt.step()
    state = {k: v.clone() for k, v in pack.state_dict().items()}
    assert sum(k.endswith(".u") for k in state) == 3 and all(state[k].shape[0] == 3 for k in state)
    restored = P.stack([_D(net, s, d_norm="spectral") for s in (3, 4, 5)])
    restored.load_state_dict(state)
    x = _data(net, 1)[0]
    for mode in (True, True, False):
        pack.train(mode), restored.train(mode)
        assert torch.equal(pack(x), restored(x))
    # without the saved u the outputs differ: the test above would catch a u missing from the checkpoint
    fresh = P.stack([_D(net, s, d_norm="spectral") for s in (3, 4, 5)]).eval()
    fresh.load_state_dict({k: v for k, v in state.items() if not k.endswith(".u")}, strict=False)
    assert not torch.equal(pack(x), fresh(x))


def test_mlp_d_unset_or_none_is_the_network_from_before():
    """d_norm None / "none": torch's own Linear layers' draws (G's, then D's), the same keys, no buffers, the
    same RNG state after building (so the lens and training draw what they drew before)."""
    torch.manual_seed(0)
    [nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 2)]  # G's draws
    ref = [nn.Linear(2, 8), nn.Linear(8, 8), nn.Linear(8, 1)]
    rng = torch.get_rng_state()
    for norm in (None, "none"):
        D = _D("mlp", 0, d_norm=norm)
        assert torch.equal(torch.get_rng_state(), rng)
        assert list(D.state_dict()) == [f"net.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")]
        for r, (n, p) in zip([t for l in ref for t in l.parameters()], D.named_parameters()):
            assert torch.equal(r, p[0]), n
    # the toys' default d_batch_norm=True is ignored by the MLP critic, as before
    assert list(_D("mlp", 0, d_batch_norm=True).state_dict()) == list(D.state_dict())


@pytest.mark.parametrize("batch_norm", [True, False])
def test_dcgan_d_norm_batch_or_none_is_d_batch_norm(batch_norm):
    """d_norm "batch" / "none" builds (and draws) exactly what d_batch_norm True / False builds."""
    old = _D("dcgan", 0, d_batch_norm=batch_norm)
    rng = torch.get_rng_state()
    new = _D("dcgan", 0, d_batch_norm=not batch_norm, d_norm="batch" if batch_norm else "none")
    assert torch.equal(torch.get_rng_state(), rng)
    assert [type(m) for m in old.modules()] == [type(m) for m in new.modules()]
    assert sum(isinstance(m, P.BatchNorm2d) for m in new.modules()) == (1 if batch_norm else 0)  # 16x16: 2 convs
    assert old.state_dict().keys() == new.state_dict().keys()
    assert all(torch.equal(v, new.state_dict()[k]) for k, v in old.state_dict().items())
    x = _data("dcgan", 1, K=1)[0]
    assert torch.equal(old(x), new(x))


def test_unknown_norm_is_refused():
    with pytest.raises(ValueError):
        _D("mlp", 0, d_norm="weight")
    with pytest.raises(ValueError):
        _D("dcgan", 0, d_norm="weight")
