"""The training loop every structure shares, and the Ray Tune trainable that runs it.

`run_trial(configs, report, artifacts)` trains a pack of K configurations (K = 1: one trial) of one
structure (bench.structures: build / batch / step / Evaluate). At every evaluation it reports one flat
row per configuration (a row of curves.parquet); artifacts (image grids, samples, outputs) are written
as files under `artifacts` by bench.artifacts and the rows carry their paths. The last row of each
configuration has `final=True` and its status: `ok`, or `diverged` at the step where a loss, a weight or
a sample became NaN/Inf: a result, not a crash. A diverged configuration stops reporting; the others
of its pack go on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

import torch

from bench import artifacts as art
from bench import registry
from bench.metrics import INFO
from bench.schema import trial_config
from bench.structures import Pack, Streams, finite_per_config


def device_for(config: dict, device: str | None = None) -> torch.device:
    gpu = config.get("resources", {}).get("gpu", 0) > 0
    return torch.device(device or ("cuda" if gpu and torch.cuda.is_available() else "cpu"))


@dataclass
class Setup:
    """A pack ready to train: its structure module, configurations, data, networks and random streams."""
    S: ModuleType
    pack: Pack
    data: object
    nets: object
    gens: list[dict]
    device: torch.device

    def step(self, t: int) -> dict:
        """One training iteration of every configuration: {loss name: [K] tensor}."""
        return self.S.step(self.nets, self.S.batch(self.pack, self.data, self.gens, self.device), self.pack, t)


def setup(configs: list[dict] | dict, device: str | torch.device | None = None) -> Setup:
    configs = [configs] if isinstance(configs, dict) else list(configs)
    dev = device_for(configs[0], device)
    pack = Pack([trial_config(c) for c in configs], dev)
    S = registry.get("structure", pack.cfg.variant.structure)
    data = registry.get("dataset", pack.cfg.dataset.name)(pack.cfg.dataset)
    streams = [Streams.of(c.seed) for c in pack.cfgs]
    nets = S.build(pack, data, streams, dev)
    return Setup(S, pack, data, nets, [s.generators() for s in streams], dev)


def run_trial(configs: list[dict] | dict, report: Callable[[dict], None], artifacts: str | Path,
              device: str | None = None, **final_extra) -> list[dict]:
    """Train the configurations, calling `report(row)` for each configuration at every evaluation.
    Returns each configuration's last row."""
    configs = [configs] if isinstance(configs, dict) else list(configs)
    torch.use_deterministic_algorithms(True, warn_only=True)
    run = setup(configs, device)
    S, pack, nets, dev = run.S, run.pack, run.nets, run.device
    cfg, K = pack.cfg, pack.K
    evaluate = S.Evaluate(pack, run.data, run.gens, dev)
    scalars = getattr(S, "scalars", lambda c, t: {})

    start = time.perf_counter()
    T, every = cfg.train.steps, cfg.train.eval_every
    ids = [c["trial_id"] for c in configs]
    losses: list[dict] = [{} for _ in range(K)]
    saved: list[dict] = [{} for _ in range(K)]  # each configuration's latest artifact paths
    last: list[dict | None] = [None] * K

    def row(k: int, t: int, metrics: dict, **extra) -> dict:
        return {"step": t, **scalars(pack.cfgs[k], t), **losses[k], **metrics,
                "wall_seconds": time.perf_counter() - start, **extra}

    def finish(k: int, t: int, metrics: dict, status: str, why: str | None = None) -> None:
        keep = {key: v for key, v in saved[k].items() if status == "ok" or key.startswith("samples")}
        last[k] = row(k, t, metrics, final=True, status=status, diverged_step=t if status == "diverged" else None,
                      error=why, torch_version=torch.__version__, device=str(dev), torch_threads=torch.get_num_threads(),
                      inception_skipped=getattr(evaluate, "inception_skipped", None), **final_extra, **keep)
        report({"config_id": ids[k], **last[k]})

    def diverge(k: int, t: int, why: str) -> None:
        finish(k, t, {m: math.nan for m in INFO}, "diverged", why)

    alive = list(range(K))
    for t in range(T + 1):
        if t % every == 0 or t == T:
            finite = finite_per_config(nets, K)
            for k in [k for k in alive if not finite[k]]:
                diverge(k, t, "non-finite weights")
            alive = [k for k in alive if finite[k]]
            results = evaluate(nets, final=t == T) if alive else []
            for k in list(alive):
                r = results[k]
                if r.diverged:
                    diverge(k, t, r.diverged)
                    alive.remove(k)
                    continue
                paths = art.save(artifacts, ids[k], t, r.artifacts)
                saved[k].update(paths)
                if t == T:
                    finish(k, t, r.metrics, "ok")
                else:
                    grids = {key: v for key, v in paths.items() if key.startswith("grid_")}
                    report({"config_id": ids[k], **row(k, t, r.metrics, final=False, status="running", **grids)})
            if t == T or not alive:
                break
        out = run.step(t)
        values = {name: v.tolist() for name, v in out.items()}  # one synchronisation per step
        for k in list(alive):
            losses[k] = {name: v[k] for name, v in values.items()}
            bad = [name for name, v in losses[k].items() if not math.isfinite(v)]
            if bad:
                diverge(k, t, f"non-finite {', '.join(bad)} at step {t}")
                alive.remove(k)
        if not alive:
            break
    return last


def train_trial(config: dict) -> None:
    """The Ray Tune trainable: one pack of configurations (`config["pack"]`). Torch threads are limited
    to the trial's CPU share."""
    import ray
    from ray import tune

    pack = config["pack"]
    torch.set_num_threads(max(1, int(pack[0].get("resources", {}).get("cpu", 1))))
    run_trial(pack, tune.report, config["artifacts"], ray_node_id=ray.get_runtime_context().get_node_id())
