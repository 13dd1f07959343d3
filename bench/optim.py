"""Fused optimizers for a pack (HFTA, Wang et al. MLSys 2021): Adam, RMSprop and SGD over packed
parameters [K, ...] whose hyperparameters (lr, betas, eps, alpha, momentum, weight decay) differ per
configuration. Each is a [K, 1] tensor broadcast over every parameter seen as [K, n], so one update
covers the whole pack whatever the settings (a handful of tensor ops per parameter, not K optimizers).
K here is the pack's size (bench.structures.Pack.size), not the lens' horizon.

Each optimizer is built as `Kind(params, K, <hyperparameters>)`: `params` the packed parameters (dim 0
the configuration), each hyperparameter a number (the same for every configuration) or a sequence of K
(one per configuration, in pack order; betas: one pair, or K pairs). Like a torch optimizer it has
`zero_grad()`, `step()` (from the gradients in `.grad`; a parameter without one is skipped) and
`state_dict()` / `load_state_dict()`. bench.structures.PackOptimizer is what structures use; it picks a
fused optimizer only where the pack's settings differ.

The arithmetic is torch.optim's default one op for op (bias correction in float64 on the host, eps added
after the bias-corrected square root, weight decay added to the gradient), with torch's scalar factors
folded into a tensor operand of the same kernel (`addcmul_(g * w, g)` for `addcmul_(g, g, value=w)`): on
the CPU (x86-64, torch 2.14) every configuration ends bit-identical to torch.optim run on it alone
(tests/test_optim.py); on a GPU, where torch's default is its foreach implementation of the same
formulas, it should agree to float32 rounding (not measured yet). torch.compile is not used: inductor's
kernels round differently, and it made the toy pack slower (docs/scale-and-faults.md, "Packed trials")."""

from __future__ import annotations

import torch
from torch import Tensor

STATE = {"adam": ("exp_avg", "exp_avg_sq"), "rmsprop": ("square_avg", "momentum_buffer"), "sgd": ("momentum_buffer",)}


class Fused:
    """The shared part: parameters, per-configuration [K, 1] tensors, per-parameter state, checkpoints.
    The state dict is {"fused": kind, "state": [one dict per parameter: its step count (Adam, RMSprop), buffers
    shaped as the parameter]}; loading one of another kind or parameter count is a ValueError."""
    kind = ""

    def __init__(self, params, K: int, weight_decay=0.0):
        self.params, self.K = list(params), K
        self.state: list[dict] = [{} for _ in self.params]
        self.wd = self.col(weight_decay) if any(self.floats(weight_decay)) else None

    def floats(self, x) -> list[float]:
        """One Python float per configuration (a number: the same for all)."""
        return [float(v) for v in x] if isinstance(x, (list, tuple)) else [float(x)] * self.K

    def col(self, x) -> Tensor:
        """[K, 1] float32 on the parameters' device: rounded from float64 as torch rounds a Python scalar."""
        return torch.tensor(self.floats(x), dtype=torch.float32, device=self.params[0].device).view(self.K, 1)

    def views(self, p: Tensor, st: dict):
        """The parameter, its gradient (with weight decay) and its state, each as [K, n]."""
        P = p.detach().view(self.K, -1)
        g = p.grad.reshape(self.K, -1)
        if self.wd is not None:
            g = g.addcmul(P, self.wd)  # torch: grad.add(param, alpha=weight_decay)
        return P, g, {k: v.view(self.K, -1) for k, v in st.items() if isinstance(v, Tensor)}

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict:
        return {"fused": self.kind, "state": [dict(st) for st in self.state]}

    def load_state_dict(self, sd: dict) -> None:
        if sd.get("fused") != self.kind or len(sd["state"]) != len(self.params):
            raise ValueError(f"not the state of a fused {self.kind} over these parameters")
        self.state = [{k: v.to(p.device, p.dtype, copy=True) if isinstance(v, Tensor) else v for k, v in st.items()}
                      for p, st in zip(self.params, sd["state"])]


class Adam(Fused):
    """torch.optim.Adam (no amsgrad, weight decay added to the gradient) per configuration: lr, betas,
    eps, weight_decay each one or K."""
    kind = "adam"

    def __init__(self, params, K: int, lr, betas, eps=1e-8, weight_decay=0.0):
        super().__init__(params, K, weight_decay)
        self.lr = self.floats(lr)
        betas = list(betas) if isinstance(betas[0], (list, tuple)) else [betas] * K
        self.b1, self.b2 = [float(b[0]) for b in betas], [float(b[1]) for b in betas]
        self.w1, self.beta2 = self.col([1 - b for b in self.b1]), self.col(self.b2)
        self.w2, self.eps = self.col([1 - b for b in self.b2]), self.col(eps)

    @torch.no_grad()
    def step(self) -> None:
        at = {}  # step -> (-lr / bias correction 1, sqrt(bias correction 2)), computed as torch does
        for p, st in zip(self.params, self.state):
            if p.grad is None:
                continue
            if not st:
                st.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
            st["step"] += 1
            t = float(st["step"])
            if t not in at:
                at[t] = (self.col([-(lr / (1 - b1 ** t)) for lr, b1 in zip(self.lr, self.b1)]),
                         self.col([(1 - b2 ** t) ** 0.5 for b2 in self.b2]))
            neg_step, bc2 = at[t]
            P, g, s = self.views(p, st)
            adam_update(P, g, s["exp_avg"], s["exp_avg_sq"], self.w1, self.beta2, self.w2, neg_step, bc2, self.eps)


def adam_update(P, g, m, v, w1, beta2, w2, neg_step, bc2, eps) -> None:
    """One Adam update of a packed parameter P [K, n] (the rest: [K, n] or [K, 1]), in place."""
    m.lerp_(g, w1)
    v.mul_(beta2).addcmul_(g * w2, g)
    P.addcdiv_(m * neg_step, (v.sqrt() / bc2).add_(eps))


class RMSprop(Fused):
    """torch.optim.RMSprop (not centered) per configuration: lr, momentum, alpha, eps, weight_decay each
    one or K; a momentum buffer (for every configuration) when any configuration has momentum."""
    kind = "rmsprop"

    def __init__(self, params, K: int, lr, momentum=0.0, alpha=0.99, eps=1e-8, weight_decay=0.0):
        super().__init__(params, K, weight_decay)
        m = self.floats(momentum)
        self.neg_lr, self.alpha, self.w = self.col([-x for x in self.floats(lr)]), self.col(alpha), \
            self.col([1 - a for a in self.floats(alpha)])
        self.eps, self.m = self.col(eps), self.col(m)
        self.with_m = torch.tensor(m, device=self.m.device).view(K, 1) > 0 if any(m) else None
        self.all_m = all(m)

    @torch.no_grad()
    def step(self) -> None:
        for p, st in zip(self.params, self.state):
            if p.grad is None:
                continue
            if not st:
                st.update(step=0, square_avg=torch.zeros_like(p))
                if self.with_m is not None:
                    st["momentum_buffer"] = torch.zeros_like(p)
            st["step"] += 1
            P, g, s = self.views(p, st)
            sq = s["square_avg"]
            sq.mul_(self.alpha).addcmul_(g * self.w, g)
            avg = sq.sqrt().add_(self.eps)
            if self.with_m is None:
                P.addcdiv_(g * self.neg_lr, avg)
                continue
            buf = s["momentum_buffer"].mul_(self.m).addcdiv_(g, avg)
            if self.all_m:
                P.addcmul_(buf, self.neg_lr)  # torch: param.add_(buf, alpha=-lr)
            else:  # torch's update without momentum is another rounding: each configuration gets its own
                P.copy_(torch.where(self.with_m, P.addcmul(buf, self.neg_lr), P.addcdiv(g * self.neg_lr, avg)))


class SGD(Fused):
    """torch.optim.SGD (no dampening, not Nesterov) per configuration: lr, momentum, weight_decay each
    one or K; the momentum buffer starts as the first gradient, as torch's does."""
    kind = "sgd"

    def __init__(self, params, K: int, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, K, weight_decay)
        self.neg_lr, self.m = self.col([-x for x in self.floats(lr)]), self.col(momentum)
        self.any_m = any(self.floats(momentum))

    @torch.no_grad()
    def step(self) -> None:
        for p, st in zip(self.params, self.state):
            if p.grad is None:
                continue
            P, g, s = self.views(p, st)
            if self.any_m:  # momentum 0 inside the pack: 0 * buf + g is g, torch's update without a buffer
                if "momentum_buffer" not in st:
                    st["momentum_buffer"] = g.detach().clone().view_as(p)
                else:
                    s["momentum_buffer"].mul_(self.m).add_(g)
                g = st["momentum_buffer"].view(self.K, -1)
            P.addcmul_(g, self.neg_lr)  # torch: param.add_(grad, alpha=-lr)


KINDS = {"adam": Adam, "rmsprop": RMSprop, "sgd": SGD}


def fused(params, kind: str, K: int, **hp) -> Fused:
    """The fused optimizer of a kind ("adam", "rmsprop", "sgd") over packed parameters of K configurations."""
    return KINDS[kind](params, K, **hp)


def from_torch(kind: str, states: list[dict], spans: list[tuple[int, int]], params: list[Tensor]) -> dict:
    """The state of torch optimizers each over one span [a, b) of the pack dimension (the per-run
    optimizers of a checkpoint written before packs were fused) as a fused optimizer's state dict. A
    buffer a span lacks (no momentum there) is zeros."""
    out = []
    for i, p in enumerate(params):
        per = [s["state"].get(i, {}) for s in states]
        if not any(per):
            out.append({})
            continue
        zeros = lambda a, b: torch.zeros(b - a, *p.shape[1:], dtype=p.dtype)  # noqa: E731
        st = {k: torch.cat([zeros(a, b) if x.get(k) is None else x[k] for x, (a, b) in zip(per, spans)])
              for k in STATE[kind] if any(x.get(k) is not None for x in per)}
        if kind != "sgd":
            st["step"] = int(max(float(x["step"]) for x in per if "step" in x))
        out.append(st)
    return {"fused": kind, "state": out}
