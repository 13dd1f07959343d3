"""train_trial(config): the one function Ray Tune runs. Build, loop, evaluate, report.

Every evaluation is reported as one flat dict (a row of curves.parquet). The last report carries
`done=True`, the trial's status (`ok` or `diverged`), and a few samples for the report's scatter plots.
A NaN/Inf loss, weight or sample ends the run as status `diverged` at the step it happened: a result,
not a crash.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch

from bench import registry
from bench.metrics import INFO
from bench.metrics.toy import toy_metrics
from bench.nets.mlp import build_lens
from bench.structures.gan import Nets, lens_weight, step
from bench.study import trial_config

N_SCATTER = 1000  # points per kind kept for the report's real-vs-generated plots


def _streams(seed: int, n: int) -> list[int]:
    """Independent integer seeds for the trial's random streams (init, data, noise, eval, lens)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def make_optimizer(params, train, lr: float) -> torch.optim.Optimizer:
    if train.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(train.betas))
    if train.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=train.momentum)
    return torch.optim.SGD(params, lr=lr, momentum=train.momentum)


def build(cfg, device: torch.device):
    """Data, networks and optimizers for a trial. G and D depend only on the seed, so the same seed
    gives the same initial G and D with and without a lens (the paired comparison)."""
    s_init, s_data, s_noise, s_eval, s_lens = _streams(cfg.seed, 5)
    data = registry.get("dataset", cfg.dataset.name)(cfg.dataset)
    torch.manual_seed(s_init)
    G, D = registry.get("network", cfg.model.name)(cfg.model, data.dim)
    lens = None
    if cfg.variant.lens is not None:
        torch.manual_seed(s_lens)
        lens = build_lens(cfg.variant.lens, cfg.model, data.dim).to(device)
    G, D = G.to(device), D.to(device)
    t = cfg.train
    nets = Nets(G, D, make_optimizer(G.parameters(), t, t.lr), make_optimizer(D.parameters(), t, t.d_lr or t.lr),
                lens, make_optimizer(lens.parameters(), t, t.lr) if lens is not None else None)
    gens = {k: torch.Generator().manual_seed(s) for k, s in (("data", s_data), ("noise", s_noise), ("eval", s_eval))}
    return data, nets, gens


def sample_batch(data, cfg, gens, device) -> dict:
    t, nc = cfg.train, cfg.train.n_critic
    real = data.sample(nc * t.batch_size, gens["data"]).reshape(nc, t.batch_size, -1)
    z = torch.randn(nc + 1, t.batch_size, cfg.model.z_dim, generator=gens["noise"])
    eps = torch.rand(nc, t.batch_size, generator=gens["noise"])
    return {"real": real.to(device), "z": z.to(device), "eps": eps.to(device)}


def _finite_weights(nets: Nets) -> bool:
    mods = [nets.G, nets.D] + ([nets.lens] if nets.lens is not None else [])
    return all(bool(torch.isfinite(p).all()) for m in mods for p in m.parameters())


@torch.no_grad()
def evaluate(data, nets: Nets, fixed: dict) -> tuple[dict, dict]:
    nets.G.eval()
    fake = nets.G(fixed["z"]).float().cpu()
    nets.G.train()
    metrics = toy_metrics(fake, fixed["real"], data.modes, data.std)
    samples = {"generated": fake[:N_SCATTER], "real": fixed["real"][:N_SCATTER]}
    if nets.lens is not None:
        samples["lensed"] = nets.lens(fixed["real"][:N_SCATTER].to(fixed["z"].device)).float().cpu()
    return metrics, samples


def run_trial(config: dict, report: Callable[[dict], None], device: str | None = None, **final_extra) -> dict:
    """Train one configuration, calling `report(row)` at every evaluation. Returns the last row."""
    cfg = trial_config(config)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() and config.get("resources", {}).get("gpu", 0) > 0
                                  else "cpu"))
    torch.use_deterministic_algorithms(True, warn_only=True)
    data, nets, gens = build(cfg, dev)
    n_eval = cfg.train.eval_samples
    fixed = {"z": torch.randn(n_eval, cfg.model.z_dim, generator=gens["eval"]).to(dev),
             "real": data.sample(n_eval, gens["eval"])}
    start = time.perf_counter()
    T, every = cfg.train.steps, cfg.train.eval_every
    losses: dict = {}
    last_samples: dict = {}
    samples_step = 0

    def row(t: int, metrics: dict, **extra) -> dict:
        return {"step": t, "lambda": lens_weight(cfg, t) if cfg.variant.lens else math.nan,
                **{k: float(v) for k, v in losses.items()}, **metrics,
                "wall_seconds": time.perf_counter() - start, **extra}

    def diverged(t: int, why: str) -> dict:
        last = row(t, {m: math.nan for m in INFO}, done=True, status="diverged", diverged_step=t, error=why,
                   torch_version=torch.__version__, device=str(dev), torch_threads=torch.get_num_threads(), **final_extra,
                   samples={k: v.tolist() for k, v in last_samples.items()}, samples_step=samples_step)
        report(last)
        return last

    for t in range(T + 1):
        if t % every == 0 or t == T:
            if not _finite_weights(nets):
                return diverged(t, "non-finite weights")
            try:
                metrics, samples = evaluate(data, nets, fixed)
            except FloatingPointError as e:
                return diverged(t, str(e))
            last_samples, samples_step = samples, t
            if t == T:
                last = row(t, metrics, done=True, status="ok", diverged_step=None, error=None,
                           torch_version=torch.__version__, device=str(dev),
                           torch_threads=torch.get_num_threads(), **final_extra, samples_step=t,
                           samples={k: v.tolist() for k, v in samples.items()})
                report(last)
                return last
            report(row(t, metrics, done=False, status="running"))
        out = step(nets, sample_batch(data, cfg, gens, dev), cfg, t)
        losses = {k: v.item() for k, v in out.items()}
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        if bad:
            return diverged(t, f"non-finite {', '.join(bad)} at step {t}")
    raise AssertionError("unreachable")


def train_trial(config: dict) -> None:
    """The Ray Tune trainable. Torch threads are limited to the trial's CPU share."""
    from ray import tune

    import ray

    torch.set_num_threads(max(1, int(config.get("resources", {}).get("cpu", 1))))
    run_trial(config, tune.report, ray_node_id=ray.get_runtime_context().get_node_id())
