"""train_trial(config): the one function Ray Tune runs. Build, loop, evaluate, report.

Every evaluation is reported as one flat dict (a row of curves.parquet). The last report carries
`done=True`, the trial's status (`ok` or `diverged`), and a few samples for the report's scatter plots
(toys); on images every evaluation carries PNG grids of generated, real and lensed samples.
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
    nets_module = registry.get("network", cfg.model.name)
    torch.manual_seed(s_init)
    G, D = nets_module.build(cfg.model, data.dim)
    lens = None
    if cfg.variant.lens is not None:
        torch.manual_seed(s_lens)
        lens = nets_module.build_lens(cfg.variant.lens, cfg.model, data.dim).to(device)
    G, D = G.to(device), D.to(device)
    t = cfg.train
    nets = Nets(G, D, make_optimizer(G.parameters(), t, t.lr), make_optimizer(D.parameters(), t, t.d_lr or t.lr),
                lens, make_optimizer(lens.parameters(), t, t.lr) if lens is not None else None)
    gens = {k: torch.Generator().manual_seed(s) for k, s in (("data", s_data), ("noise", s_noise), ("eval", s_eval))}
    return data, nets, gens


def sample_batch(data, cfg, gens, device) -> dict:
    t, nc = cfg.train, cfg.train.n_critic
    real = data.sample(nc * t.batch_size, gens["data"])
    real = real.reshape(nc, t.batch_size, *real.shape[1:])
    z = torch.randn(nc + 1, t.batch_size, cfg.model.z_dim, generator=gens["noise"])
    eps = torch.rand(nc, t.batch_size, generator=gens["noise"])
    return {"real": real.to(device), "z": z.to(device), "eps": eps.to(device)}


def _finite_weights(nets: Nets) -> bool:
    mods = [nets.G, nets.D] + ([nets.lens] if nets.lens is not None else [])
    return all(bool(torch.isfinite(p).all()) for m in mods for p in m.parameters())


@torch.no_grad()
def _apply(net, x: torch.Tensor, device, batch: int = 1024) -> torch.Tensor:
    """net(x) in eval mode (batch norm uses its running statistics), batched, on the CPU as float."""
    was = net.training
    net.eval()
    out = torch.cat([net(x[i:i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)])
    net.train(was)
    return out


def _png_grid(x: torch.Tensor) -> str:
    """64 images in [-1, 1] -> a base64 PNG grid (travels to the driver inside the report)."""
    import base64
    import io

    from torchvision.transforms.functional import to_pil_image
    from torchvision.utils import make_grid

    grid = make_grid(x[:64].clamp(-1, 1), nrow=8, normalize=True, value_range=(-1, 1), pad_value=1.0)
    if x.shape[1] == 1:
        grid = grid[:1]  # make_grid repeats one channel three times; a grey PNG is a third of the size
    buf = io.BytesIO()
    to_pil_image(grid).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode()


class Evaluation:
    """Metrics of G's samples from a fixed noise batch: toy metrics on 2-D mixtures, evaluator metrics on
    images. `payload` is what the report needs to show the samples: points for toys, image grids."""

    def __init__(self, data, cfg, gens, device):
        self.data, self.device = data, device
        n = cfg.train.eval_samples
        self.z = torch.randn(n, cfg.model.z_dim, generator=gens["eval"])
        self.images = isinstance(data.dim, tuple)
        if self.images:
            from bench.metrics.evaluator import get_evaluator

            from bench.metrics.images import inception_status

            self.evaluator = get_evaluator(data)
            self.real = data.sample(64, gens["eval"])
            # Inception FID/KID only with a local weights file; the reason it was skipped goes in the row
            self.inception_skipped = inception_status()
        else:
            self.real = data.sample(n, gens["eval"])

    def __call__(self, nets: Nets) -> tuple[dict, dict]:
        fake = _apply(nets.G, self.z, self.device)
        if not bool(torch.isfinite(fake).all()):
            raise FloatingPointError("generated samples contain NaN/Inf")
        if self.images:
            from bench.metrics.images import image_metrics

            from bench.metrics.images import inception_metrics

            metrics = {**image_metrics(self.evaluator, self.data, fake), **self.evaluator.columns()}
            if self.inception_skipped is None:
                metrics.update(inception_metrics(self.data, fake, device=self.device)[0])
            grids = {"generated": _png_grid(fake), "real": _png_grid(self.real)}
            if nets.lens is not None:
                grids["lensed"] = _png_grid(_apply(nets.lens, self.real, self.device))
            return metrics, {"grids": grids}
        metrics = toy_metrics(fake, self.real, self.data.modes, self.data.std)
        samples = {"generated": fake[:N_SCATTER], "real": self.real[:N_SCATTER]}
        if nets.lens is not None:
            samples["lensed"] = _apply(nets.lens, self.real[:N_SCATTER], self.device)
        return metrics, {"samples": {k: v.tolist() for k, v in samples.items()}}


def run_trial(config: dict, report: Callable[[dict], None], device: str | None = None, **final_extra) -> dict:
    """Train one configuration, calling `report(row)` at every evaluation. Returns the last row.
    Image grids ride on every evaluation's row; toy samples only on the last."""
    cfg = trial_config(config)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() and config.get("resources", {}).get("gpu", 0) > 0
                                  else "cpu"))
    torch.use_deterministic_algorithms(True, warn_only=True)
    data, nets, gens = build(cfg, dev)
    evaluate = Evaluation(data, cfg, gens, dev)
    start = time.perf_counter()
    T, every = cfg.train.steps, cfg.train.eval_every
    losses: dict = {}
    last_payload: dict = {}
    payload_step = 0

    def row(t: int, metrics: dict, **extra) -> dict:
        return {"step": t, "lambda": lens_weight(cfg, t) if cfg.variant.lens else math.nan,
                **{k: float(v) for k, v in losses.items()}, **metrics,
                "wall_seconds": time.perf_counter() - start, **extra}

    def final(t: int, metrics: dict, status: str, why: str | None = None) -> dict:
        last = row(t, metrics, done=True, status=status, diverged_step=t if status == "diverged" else None,
                   error=why, torch_version=torch.__version__, device=str(dev), torch_threads=torch.get_num_threads(),
                   samples_step=payload_step, inception_skipped=getattr(evaluate, "inception_skipped", None),
                   **final_extra, **last_payload)
        report(last)
        return last

    def diverged(t: int, why: str) -> dict:
        last_payload.pop("grids", None)  # those grids were reported with their own evaluation
        return final(t, {m: math.nan for m in INFO}, "diverged", why)

    for t in range(T + 1):
        if t % every == 0 or t == T:
            if not _finite_weights(nets):
                return diverged(t, "non-finite weights")
            try:
                metrics, payload = evaluate(nets)
            except FloatingPointError as e:
                return diverged(t, str(e))
            last_payload, payload_step = payload, t
            if t == T:
                return final(t, metrics, "ok")
            report(row(t, metrics, done=False, status="running", **({"grids": payload["grids"]} if "grids" in payload else {})))
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
