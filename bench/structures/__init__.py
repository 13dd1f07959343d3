"""What every training structure shares. A structure is one module (bench/structures/<name>.py, one
line in bench/registry.py) that supplies

    check(cfg)                         reject configurations it does not support (ValueError naming
                                       the field as "section.field: ..."), before any trial starts
    build(pack, data, streams, device) -> Nets: its networks for every configuration of the pack,
                                       each built from its own seed, packed, with their optimizers
    batch(pack, data, gens, device)    -> dict of tensors [.., n, B, ..]: one training iteration's
                                       randomness (data, noise), drawn from each configuration's streams
    step(nets, batch, pack, t)         -> {loss name: [n] tensor}: one training iteration
    Evaluate(pack, data, gens, device)(nets, final, alive) -> one `Result` per configuration (None for the
                                       configurations not in `alive`: they diverged)
    scalars(cfg, t)                    (optional) values logged with every row, e.g. the lens weight

and bench/trial.py runs the one loop they all share. A pack is n = `pack.size` configurations trained
together (bench.nets.packed, which calls it K); a single configuration is a pack of one. Shapes below
write it n. (`K` in a study file is the lens' horizon, variant.lens.K.)

Helpers for structures: `d_loss` (D's loss: objective + penalties, per configuration) and `d_step` (that
loss, an optimizer step and WGAN's clipping), `pack_nets` / `PackOptimizer`, `frozen`, `eval_mode`,
`evaluated`, `stacked`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import Tensor, nn


# ----------------------------------------------------------------------------- configurations
class Pack:
    """The configurations trained together. Fields that shape the computation (networks, data, steps,
    objective) are equal across them (bench.packing checks it); `cfg` is the first one, for those.
    Per-configuration numbers (loss weights, seeds, ...) come as [size] tensors from `vec`."""

    def __init__(self, cfgs: list, device: torch.device):
        self.cfgs, self.device = list(cfgs), device
        self.cfg = self.cfgs[0]
        self._vecs: dict = {}

    @property
    def size(self) -> int:
        """How many configurations the pack trains."""
        return len(self.cfgs)

    def vec(self, get: Callable[[Any], float], key: Optional[str] = None) -> Tensor:
        """[size] float32 tensor of get(cfg) per configuration on the pack's device (cached under `key`)."""
        if key is not None and key in self._vecs:
            return self._vecs[key]
        v = torch.tensor([float(get(c)) for c in self.cfgs], dtype=torch.float32, device=self.device)
        if key is not None:
            self._vecs[key] = v
        return v

    def variant(self, name: str) -> Tensor:
        """[size] tensor of cfg.variant.<name>."""
        return self.vec(lambda c: getattr(c.variant, name), key=f"variant.{name}")


@dataclass(frozen=True)
class Streams:
    """A configuration's independent random streams, from its seed: `init` (networks), `data`, `noise`,
    `eval` (the fixed evaluation batch) and `extra` (networks built apart from the others: the lens,
    G_res), so adding a network never changes the others' initial weights."""
    init: int
    data: int
    noise: int
    eval: int
    extra: int

    @classmethod
    def of(cls, seed: int) -> "Streams":
        return cls(*[int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(5)])

    def generators(self, device="cpu") -> dict[str, torch.Generator]:
        """The training streams on the training device (data and noise are drawn there: no copy per step
        on a GPU); the evaluation stream on the CPU (used once, for the fixed evaluation batch)."""
        device = torch.device(device)
        return {"data": torch.Generator(device).manual_seed(self.data),
                "noise": torch.Generator(device).manual_seed(self.noise),
                "eval": torch.Generator().manual_seed(self.eval)}


def stacked(draw: Callable[[dict], Tensor], gens: list[dict], device) -> Tensor:
    """Each configuration's draw from its own generators, stacked on dim 0 and moved to the device."""
    return torch.stack([draw(g) for g in gens]).to(device)


def draws(gens: list[dict], device, fn: Callable[..., Tensor], *args, stream: str = "noise") -> Tensor:
    """`fn(*args)` (torch.randn, rand, randint) from each configuration's own `stream` generator ("noise" or
    "data", on that generator's device), stacked on dim 0: packed configurations draw what each would alone."""
    return stacked(lambda g: fn(*args, generator=g[stream], device=g[stream].device), gens, device)


# ----------------------------------------------------------------------------- optimizers
def _settings(train, critic: bool) -> tuple:
    """(kind, lr, betas, momentum) of a network; critics (D, D_z) use train.d_optimizer / d_lr where set."""
    kind = (train.d_optimizer if critic else None) or train.optimizer
    lr = (train.d_lr if critic else None) or train.lr
    return kind, lr, tuple(train.betas), train.momentum


def torch_optimizer(params, kind: str, lr: float, betas: tuple, momentum: float) -> torch.optim.Optimizer:
    from bench import registry

    cls = registry.get("optimizer", kind)
    return cls(params, lr=lr, betas=betas) if kind == "adam" else cls(params, lr=lr, momentum=momentum)


def _spans(settings: list[tuple]) -> list[tuple[int, int]]:
    """[a, b) of each run of consecutive configurations with equal settings."""
    cuts = [0] + [b for b in range(1, len(settings)) if settings[b] != settings[b - 1]] + [len(settings)]
    return list(zip(cuts[:-1], cuts[1:]))


class PackOptimizer:
    """One network's optimizer for every configuration of a pack: `zero_grad()`, then backward of the
    summed losses, then `step()`, as with a torch optimizer; each configuration's update sees only its own
    slice of the gradients, so a pack trains as its configurations would alone.

    PackOptimizer(params, settings, per_run=False)
      params    the packed network's parameters (`net.parameters()` of a bench.nets.packed network), each
                [n, ...]: dim 0 is the configuration.
      settings  one tuple per configuration, n in all, in pack order: (kind, lr, betas, momentum), where
                kind is an optimizer name of bench.registry ("adam", "rmsprop", "sgd"), betas Adam's
                (beta1, beta2) and momentum RMSprop's / SGD's (each kind ignores the other's). pack_nets
                builds them from each configuration's train section (`_settings`: critics take
                train.d_optimizer / train.d_lr where set).
      per_run   give each run of equal settings its own torch optimizer even where one fused update
                could serve (the implementation before bench.optim, kept for benchmarks/fused_optim.py).

    How it updates: settings equal across the pack (a pack of one, or seeds of one setting) get torch's
    own optimizer over the whole packed tensors; settings that differ in numbers only (lr, betas,
    momentum) get one fused update for the pack (bench.optim), which on the CPU gives each configuration
    exactly torch's arithmetic for it alone; kinds that differ (Adam and SGD; bench.packing keeps them
    apart) give each run of consecutive equal settings torch's optimizer over its slice of the parameters.

      zero_grad()       drops every parameter's gradient (sets `.grad` to None), for all configurations.
      step()            one update of every configuration from the gradients in `.grad` (a parameter
                        without a gradient is left alone, as torch does).
      state_dict()      a list with one entry per optimizer it runs (`optimizers`): torch's state dicts,
                        or bench.optim's {"fused": kind, "state": [...]}; part of a trial's checkpoint.
      load_state_dict(states)  restores that list; a fused optimizer also takes the per-run torch states
                        of a checkpoint written before packs were fused (bench.optim.from_torch).
      optimizers        the optimizers it runs (torch.optim ones or a bench.optim.Fused).
      settings, spans   the settings as given, and [a, b) of each run of equal consecutive settings."""

    def __init__(self, params, settings: list[tuple], per_run: bool = False):
        from bench import optim

        self.params, self.settings = list(params), list(settings)
        self.spans = _spans(self.settings)
        self.fused = None
        if len(self.spans) == 1:
            self.runs = [(None, self.params, torch_optimizer(self.params, *self.settings[0]))]
        elif not per_run and len({s[0] for s in self.settings}) == 1:
            kind, lr, betas, momentum = zip(*self.settings)
            hp = {"lr": lr, "betas": betas} if kind[0] == "adam" else {"lr": lr, "momentum": momentum}
            self.fused = optim.fused(self.params, kind[0], len(self.settings), **hp)
            self.runs = [(None, self.params, self.fused)]
        else:
            self.runs = []  # (span, views of the parameters' slices, torch optimizer over them)
            for a, b in self.spans:
                views = [p.data[a:b] for p in self.params]
                self.runs.append(((a, b), views, torch_optimizer(views, *self.settings[a])))

    @property
    def optimizers(self) -> list:
        return [opt for _, _, opt in self.runs]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        for span, views, opt in self.runs:
            if span is not None:
                for v, p in zip(views, self.params):
                    v.grad = None if p.grad is None else p.grad[span[0]:span[1]]
            opt.step()

    def state_dict(self) -> list:
        return [opt.state_dict() for _, _, opt in self.runs]

    def load_state_dict(self, states: list) -> None:
        from bench import optim

        if self.fused is not None and "fused" not in states[0]:  # a checkpoint of per-run torch optimizers
            states = [optim.from_torch(self.fused.kind, states, self.spans, self.params)]
        for (_, _, opt), s in zip(self.runs, states):
            opt.load_state_dict(s)


# ----------------------------------------------------------------------------- networks
class Nets:
    """A structure's packed networks by name (`nets.G`) and an optimizer for each trained one
    (`nets.opt["G"]`)."""

    def __init__(self, modules: dict[str, nn.Module], opt: dict[str, PackOptimizer]):
        self.__dict__["_modules"] = modules
        self.opt = opt

    def __getattr__(self, name):
        try:
            return self.__dict__["_modules"][name]
        except KeyError:
            raise AttributeError(name) from None

    def has(self, name: str) -> bool:
        return self._modules.get(name) is not None

    def modules(self) -> list[nn.Module]:
        return [m for m in self._modules.values() if m is not None]

    def named(self) -> dict[str, nn.Module]:
        return {k: m for k, m in self._modules.items() if m is not None}

    def state_dict(self) -> dict:
        return {"nets": {k: m.state_dict() for k, m in self.named().items()},
                "opt": {k: o.state_dict() for k, o in self.opt.items()}}

    def load_state_dict(self, state: dict) -> None:
        for k, m in self.named().items():
            m.load_state_dict(state["nets"][k])
        for k, o in self.opt.items():
            o.load_state_dict(state["opt"][k])


def pack_nets(per_config: list[dict[str, Optional[nn.Module]]], pack: Pack, device, critics=("D", "D_z"),
              fixed=()) -> Nets:
    """Join each configuration's networks (each built alone under its own seed) into packed networks on
    the device, with one PackOptimizer per network (critics take D's optimizer settings; `fixed`
    networks get none)."""
    from bench.nets.packed import stack

    modules = {}
    for name in per_config[0]:
        parts = [m[name] for m in per_config]
        modules[name] = None if parts[0] is None else stack(parts).to(device)
    opt = {name: PackOptimizer(m.parameters(), [_settings(c.train, name in critics) for c in pack.cfgs])
           for name, m in modules.items() if m is not None and name not in fixed}
    return Nets(modules, opt)


def finite_per_config(nets: Nets, n: int) -> Tensor:
    """[n] bool: every weight of every network of each of the pack's n configurations finite."""
    ok = torch.ones(n, dtype=torch.bool)
    for m in nets.modules():
        for p in m.parameters():
            ok &= torch.isfinite(p.detach().reshape(n, -1)).all(1).cpu()
    return ok


@contextlib.contextmanager
def frozen(*nets: nn.Module):
    """No gradients for these networks' weights inside (a loss for one player through another's net)."""
    for n in nets:
        n.requires_grad_(False)
    try:
        yield
    finally:
        for n in nets:
            n.requires_grad_(True)


@torch.no_grad()
def evaluated(net: Callable, *xs: Tensor, device, batch: int = 1024) -> Tensor:
    """net(*xs) without gradients, in chunks of `batch` samples along
    dim 1 (xs: [n, N, ...]), returned on the CPU as float. Call it inside `eval_mode`."""
    out = [net(*(x[:, i:i + batch].to(device) for x in xs)).float().cpu() for i in range(0, xs[0].shape[1], batch)]
    return torch.cat(out, 1)


@contextlib.contextmanager
def eval_mode(*nets: nn.Module):
    """Eval mode inside (batch norm on running statistics), each network's mode restored after."""
    was = [n.training for n in nets]
    for n in nets:
        n.eval()
    try:
        yield
    finally:
        for n, w in zip(nets, was):
            n.train(w)


def penalty_weights(obj, pack: Pack) -> dict[str, Tensor]:
    """{penalty name: [n] weights} of the input-gradient penalties on in any configuration of the pack (decided on
    the host): variant.penalty's weight, plus variant.gp_weight for the objective's own (wgan-gp's gp, r3gan's r1
    and r2)."""
    from bench.penalties import INPUT

    out = {}
    for name in INPUT:
        def weight(c, name=name):
            return getattr(c.variant.penalty, name) + (c.variant.gp_weight if name in obj.penalties else 0.0)

        if any(weight(c) > 0 for c in pack.cfgs):
            out[name] = pack.vec(weight, key=f"penalty.{name}")
    return out


def d_loss(D, obj, pack: Pack, real: Tensor, fake: Tensor, eps: Tensor, forward: Optional[Callable] = None,
           extra: Optional[Callable[[], Tensor]] = None, draws: Optional[dict] = None) -> Tensor:
    """D's loss of every configuration, [n], with its graph (nothing is stepped): the objective's D loss
    on forward(real), forward(fake), + `extra()`, + each penalty on (bench.penalties: variant.penalty, and the
    objective's own such as WGAN-GP's gp at gp_weight) times its weight. `forward` calls D with extra inputs
    (e.g. a conditional D); default D itself. `extra` (called after forward(real) and forward(fake)) returns more
    of D's loss [n], e.g. a class-head loss on outputs `forward` kept. `eps`: the interpolation weights [n, B] of
    gp and dragan; `draws`: the other draws a penalty needs (DRAGAN's `perturb`)."""
    f = forward or D
    loss = obj.d(f(real), f(fake))
    if extra is not None:
        loss = loss + extra()
    return loss + penalties(f, obj, pack, real, fake, eps, draws)


def penalties(D, obj, pack: Pack, real: Tensor, fake: Tensor, eps: Tensor, draws: Optional[dict] = None):
    """The weighted sum of the input-gradient penalties on in the pack, [n] (0 when none is)."""
    from bench import registry

    total = 0.0
    for name, w in penalty_weights(obj, pack).items():
        total = total + w * registry.get("penalty", name)(D, real, fake, {"eps": eps, **(draws or {})})
    return total


def clip_weights(D, clip: Tensor) -> None:
    """WGAN: each configuration's weights of D clamped to [-clip, clip] (clip: [n]), in place."""
    with torch.no_grad():
        for p in D.parameters():
            c = clip.reshape((-1,) + (1,) * (p.dim() - 1))
            p.copy_(torch.clamp(p, -c, c))


def d_step(D, opt: PackOptimizer, obj, pack: Pack, real: Tensor, fake: Tensor, eps: Tensor,
           forward: Optional[Callable] = None, extra: Optional[Callable[[], Tensor]] = None,
           draws: Optional[dict] = None) -> Tensor:
    """One discriminator update of every configuration: `d_loss` (same arguments), a step of `opt`, and
    WGAN's weight clipping when the objective clips. Returns the losses [n], detached."""
    loss = d_loss(D, obj, pack, real, fake, eps, forward, extra, draws)
    opt.zero_grad()
    loss.sum().backward()
    opt.step()
    if obj.clip_weights:
        clip_weights(D, pack.variant("clip"))
    return loss.detach()


@dataclass
class Result:
    """One configuration's evaluation: metrics, or the reason it diverged (NaN/Inf samples), and the
    artifacts to save (bench.artifacts: image grids, scatter samples, final outputs)."""
    metrics: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)
    diverged: Optional[str] = None
