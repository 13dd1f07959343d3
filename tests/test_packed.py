"""Packed layers (bench.nets.packed): K = 1 draws torch's own initial weights and computes torch's
outputs; a K-pack computes each configuration as its own K = 1 network would. (That whole trials are
bit-identical to the implementation before packing is tests/test_golden.py's job.)"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.nets import dcgan, mlp
from bench.nets import packed as P


pytestmark = pytest.mark.usefixtures("one_thread")


def _grads(module):
    return [p.grad.clone() for p in module.parameters()]


@pytest.mark.parametrize("kind", ["linear", "conv", "convT"])
def test_one_configuration_is_torchs_layer_bit_for_bit(kind):
    torch.manual_seed(0)
    ref = {"linear": lambda: nn.Linear(7, 5), "conv": lambda: nn.Conv2d(3, 4, 4, 2, 1),
           "convT": lambda: nn.ConvTranspose2d(3, 4, 4, 2, 1)}[kind]()
    torch.manual_seed(0)
    packed = {"linear": lambda: P.Linear(1, 7, 5), "conv": lambda: P.Conv2d(1, 3, 4, 4, 2, 1),
              "convT": lambda: P.ConvTranspose2d(1, 3, 4, 4, 2, 1)}[kind]()
    # the same initial draws from the RNG
    assert all(torch.equal(a, b[0]) for a, b in zip(ref.parameters(), packed.parameters()))
    x = torch.randn(16, 7) if kind == "linear" else torch.randn(16, 3, 8, 8)
    y_ref = ref(x)
    y = packed(x[None]) if kind == "linear" else packed(x)  # one configuration: [1, B, F] / grouped layout
    assert torch.equal(y_ref, y[0] if kind == "linear" else y)
    F.softplus(y_ref).mean().backward()
    F.softplus(y).mean().backward()
    for a, b in zip(_grads(ref), _grads(packed)):  # batched matrix products may round differently
        torch.testing.assert_close(a, b[0], rtol=1e-6, atol=1e-7)


def test_batch_norm_one_configuration_matches_torch():
    for ref, packed, shape in ((nn.BatchNorm1d(6), P.BatchNorm1d(1, 6), (32, 6)),
                               (nn.BatchNorm2d(6), P.BatchNorm2d(1, 6), (32, 6, 4, 4))):
        x = torch.randn(*shape)
        y = packed(x[None]) [0] if len(shape) == 2 else packed(x)
        assert torch.equal(ref(x), y)
        assert torch.equal(ref.running_mean, packed.running_mean[0]) and torch.equal(ref.running_var, packed.running_var[0])
        ref.eval(), packed.eval()
        y = packed(x[None])[0] if len(shape) == 2 else packed(x)
        assert torch.equal(ref(x), y)


def _build(net, seed, K=1):
    torch.manual_seed(seed)
    return net()


@pytest.mark.parametrize("name", ["mlp", "dcgan_g", "dcgan_d", "lens"])
def test_a_pack_computes_each_configuration_as_its_own_network(name):
    """Three networks built under three seeds, stacked: each configuration's outputs and gradients are its
    own network's (the MLP's outputs bit for bit on this CPU; the rest within float32 rounding)."""
    cfg = type("M", (), {"z_dim": 8, "width": 8, "depth": 2, "batch_norm": True, "d_batch_norm": True,
                         "init": "xavier"})
    make = {"mlp": lambda: mlp.mlp(1, 2, 2, 16, 2),
            "dcgan_g": lambda: dcgan.build(cfg, (1, 16, 16))[0],
            "dcgan_d": lambda: dcgan.build(cfg, (1, 16, 16))[1],
            "lens": lambda: dcgan.ConvLens(1, 4, 2)}[name]
    singles = [_build(make, s) for s in (0, 1, 2)]
    pack = P.stack([_build(make, s) for s in (0, 1, 2)])
    g = torch.Generator().manual_seed(5)
    shape = {"mlp": (3, 32, 2), "dcgan_g": (3, 32, 8), "dcgan_d": (3, 32, 1, 16, 16), "lens": (3, 32, 1, 16, 16)}[name]
    x = torch.randn(*shape, generator=g)
    if name == "lens":  # move the lens off the identity (its output conv starts at zero)
        for m in singles + [pack]:
            with torch.no_grad():
                m.out.weight.add_(0.1)
    y = pack(x)
    y.square().sum().backward()
    exact = name == "mlp"
    for k, net in enumerate(singles):
        yk = net(x[k:k + 1])
        yk.square().sum().backward()
        if exact:
            assert torch.equal(yk[0], y[k])
        else:
            torch.testing.assert_close(yk[0], y[k], rtol=1e-5, atol=1e-6)
        # the network's gradient scale: a bias before batch norm has a gradient that is rounding noise around 0
        scale = max(float(p.grad.abs().max()) for p in net.parameters())
        for (n, a), b in zip(net.named_parameters(), pack.parameters()):
            torch.testing.assert_close(a.grad[0], b.grad[k], rtol=1e-4, atol=1e-5 * scale, msg=f"{name} {n} config {k}")
