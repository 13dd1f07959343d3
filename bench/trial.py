"""The training loop every structure shares, and the Ray Tune trainable that runs it.

`run_trial(configs, report, artifacts)` trains a pack of K configurations (K = 1: one trial) of one
structure (bench.structures: build / batch / step / Evaluate). At every evaluation it reports one flat
row per configuration (a row of curves.parquet); artifacts (image grids, samples, outputs) are written
as files under `artifacts` by bench.artifacts and the rows carry their paths. The last row of each
configuration has `final=True` and its status: `ok`, or `diverged` at the step where a loss, a weight or
a sample became NaN/Inf: a result, not a crash. A diverged configuration stops reporting; the others
of its pack go on. Rows carry `wall_seconds` (the configuration's own share of the pack's wall time),
`pack_wall_seconds` and `pack_size`: the shares of a pack add up to its wall time, so summing rows never
counts a pack's time once per member.
"""

from __future__ import annotations

import math
import os
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
        """One training iteration of every configuration: {loss name: [K] tensor}. With train.precision
        bf16 the iteration runs under bfloat16 autocast (parameters and optimizer state stay float32)."""
        batch = self.S.batch(self.pack, self.data, self.gens, self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.pack.cfg.train.precision == "bf16"):
            return self.S.step(self.nets, batch, self.pack, t)


def deterministic(device: torch.device) -> None:
    """Deterministic kernels. On the CPU torch's deterministic mode (bit-identical reruns); on CUDA
    cuDNN's deterministic algorithms and a fixed cuBLAS workspace, without torch's global switch, which
    errors or warns on CUDA ops that have no deterministic version."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(False)
    else:
        torch.use_deterministic_algorithms(True, warn_only=True)
        # deterministic mode also fills every new tensor with NaN (to expose reads of uninitialised memory,
        # which no kernel here does): a second pass over every allocation, 28 % of a toy step
        torch.utils.deterministic.fill_uninitialized_memory = False
        keep_freed_memory()


def keep_freed_memory() -> None:
    """Keep freed memory in the process (glibc), instead of returning every tensor of 128 KiB or more to
    the OS at once and page-faulting it back in on the next allocation: a packed toy step allocates
    megabytes of activations and gradients, and those faults cost more than its matrix products
    (`python -m benchmarks.throughput k`). The heap then stays at its peak, which a trial process reaches anyway."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)  # allocations below 32 MiB (glibc's maximum) from the heap
        libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)  # (an int) shrink the heap only past 2 GiB of free memory
    except (OSError, AttributeError):  # not glibc (macOS, musl): the allocator keeps its own policy
        pass


def setup(configs: list[dict] | dict, device: str | torch.device | None = None) -> Setup:
    configs = [configs] if isinstance(configs, dict) else list(configs)
    dev = device_for(configs[0], device)
    deterministic(dev)
    pack = Pack([trial_config(c) for c in configs], dev)
    S = registry.get("structure", pack.cfg.variant.structure)
    data = registry.get("dataset", pack.cfg.dataset.name)(pack.cfg.dataset)
    streams = [Streams.of(c.seed) for c in pack.cfgs]
    nets = S.build(pack, data, streams, dev)
    return Setup(S, pack, data, nets, [s.generators(dev) for s in streams], dev)


CHECKPOINT_FORMAT = 1


def run_trial(configs: list[dict] | dict, report: Callable[..., None], artifacts: str | Path,
              device: str | None = None, resume: dict | None = None, **final_extra) -> list[dict]:
    """Train the configurations, calling `report(row)` for each configuration at every evaluation, and
    `report(row, state=...)` at a checkpoint (every `train.checkpoint_every` steps, at the next evaluation):
    the whole pack's state, from which `resume=state` continues exactly as if never interrupted.
    Returns each configuration's last row."""
    configs = [configs] if isinstance(configs, dict) else list(configs)
    run = setup(configs, device)
    S, pack, nets, dev = run.S, run.pack, run.nets, run.device
    cfg, K = pack.cfg, pack.K
    evaluate = S.Evaluate(pack, run.data, run.gens, dev)
    scalars = getattr(S, "scalars", lambda c, t: {})

    T, every, ckpt_every = cfg.train.steps, cfg.train.eval_every, cfg.train.checkpoint_every
    ids = [c["trial_id"] for c in configs]
    # what a checkpoint holds besides the networks, optimizers and random streams
    st = {"t": 0, "elapsed": 0.0, "attempt": 1, "resumed_from_step": 0, "last_checkpoint": 0,
          "alive": list(range(K)), "losses": [{} for _ in range(K)], "saved": [{} for _ in range(K)],
          "rows": [[] for _ in range(K)], "last": [None] * K, "share": [0.0] * K}
    if resume is not None:
        if resume["ids"] != ids or resume["format"] != CHECKPOINT_FORMAT:
            raise ValueError("the checkpoint is of another pack of configurations")
        nets.load_state_dict(resume["nets"])
        for gk, saved in zip(run.gens, resume["gens"]):
            for name, g in gk.items():
                g.set_state(saved[name])
        torch.set_rng_state(resume["torch_rng"])
        st = {**resume["loop"], "attempt": resume["loop"]["attempt"] + 1, "resumed_from_step": resume["loop"]["t"]}
        for k in st["alive"]:  # what this configuration reported before: its curve, for a driver that restarted too
            for r in st["rows"][k]:
                report({"config_id": ids[k], **r, "attempt": st["attempt"], "replayed": True})
    start = time.perf_counter() - st["elapsed"]
    losses, saved, alive, last = st["losses"], st["saved"], st["alive"], st["last"]
    st.setdefault("share", [0.0] * K)  # (a checkpoint written before shares were kept)
    share, clock = st["share"], [time.perf_counter()]

    def tick() -> None:
        """Each configuration's share of the pack's wall time: every interval split equally among the
        configurations still training in it, so the shares of a pack add up to its wall time."""
        now = time.perf_counter()
        for k in alive:
            share[k] += (now - clock[0]) / len(alive)
        clock[0] = now

    def row(k: int, t: int, metrics: dict, **extra) -> dict:
        tick()
        return {"step": t, **scalars(pack.cfgs[k], t), **losses[k], **metrics,
                "wall_seconds": share[k], "pack_wall_seconds": time.perf_counter() - start, "pack_size": K,
                "attempt": st["attempt"], "resumed_from_step": st["resumed_from_step"], **extra}

    def finish(k: int, t: int, metrics: dict, status: str, why: str | None = None) -> None:
        keep = {key: v for key, v in saved[k].items() if status == "ok" or key.startswith("samples")}
        last[k] = row(k, t, metrics, final=True, status=status, diverged_step=t if status == "diverged" else None,
                      error=why, torch_version=torch.__version__, device=str(dev), torch_threads=torch.get_num_threads(),
                      inception_skipped=getattr(evaluate, "inception_skipped", None), **final_extra, **keep)
        alive.remove(k)
        report({"config_id": ids[k], **last[k]})

    def diverge(k: int, t: int, why: str) -> None:
        finish(k, t, {m: math.nan for m in INFO}, "diverged", why)

    def state(t: int) -> dict:
        return {"format": CHECKPOINT_FORMAT, "ids": ids, "nets": nets.state_dict(),
                "gens": [{name: g.get_state() for name, g in gk.items()} for gk in run.gens],
                "torch_rng": torch.get_rng_state(), "loop": {**st, "t": t, "elapsed": time.perf_counter() - start,
                                                             "share": list(share)}}

    # Divergence is tracked on the device (no synchronisation per step on a GPU): the first step at which
    # a configuration's losses were not all finite, and their values then; read every `sync` steps.
    sync = 1 if dev.type == "cpu" else 25
    div_step, div_vals, names, vals = torch.full((K,), -1, device=dev), None, [], None

    def check_losses() -> None:
        if vals is None:
            return
        steps = div_step.tolist()
        current = vals.tolist()
        for k in list(alive):
            if steps[k] >= 0:
                losses[k] = dict(zip(names, div_vals[:, k].tolist()))
                bad = [n for n, v in losses[k].items() if not math.isfinite(v)]
                diverge(k, steps[k], f"non-finite {', '.join(bad)} at step {steps[k]}")
            else:
                losses[k] = {n: current[i][k] for i, n in enumerate(names)}

    t0 = st["t"]
    for t in range(t0, T + 1):
        if (t % every == 0 or t == T) and not (resume is not None and t == t0):  # (the checkpoint's was reported)
            check_losses()
            finite = finite_per_config(nets, K)
            for k in [k for k in alive if not finite[k]]:
                diverge(k, t, "non-finite weights")
            results = evaluate(nets, final=t == T, alive=list(alive)) if alive else []
            ckpt = t < T and t - st["last_checkpoint"] >= ckpt_every
            reports = []
            for k in list(alive):
                r = results[k]
                if r.diverged:
                    diverge(k, t, r.diverged)
                    continue
                paths = art.save(artifacts, ids[k], t, r.artifacts)
                saved[k].update(paths)
                if t == T:
                    finish(k, t, r.metrics, "ok")
                else:
                    grids = {key: v for key, v in paths.items() if key.startswith("grid_")}
                    st["rows"][k].append(row(k, t, r.metrics, final=False, status="running", **grids))
                    reports.append({"config_id": ids[k], **st["rows"][k][-1]})
            if ckpt and reports:
                st["last_checkpoint"] = t
            for i, rep in enumerate(reports):  # the last row of a checkpoint step carries the pack's state
                report(rep, state=state(t)) if ckpt and i == len(reports) - 1 else report(rep)
            if t == T or not alive:
                break
        out = run.step(t)
        names, vals = list(out), torch.stack([v.detach() for v in out.values()])
        new = ~torch.isfinite(vals).all(0) & (div_step < 0)
        div_step = torch.where(new, t, div_step)
        div_vals = vals if div_vals is None else torch.where(new, vals, div_vals)
        if (t + 1) % sync == 0:
            check_losses()
            if not alive:
                break
    return last


def train_trial(config: dict) -> None:
    """The Ray Tune trainable: one pack of configurations (`config["pack"]`), resumed from its latest
    checkpoint when there is one (Ray's retry, or an earlier run of the study). Torch threads are limited
    to the trial's CPU share."""
    import tempfile

    import ray
    from ray import tune

    from bench import checkpoints

    pack = config["pack"]
    torch.set_num_threads(max(1, int(pack[0].get("resources", {}).get("cpu", 1))))
    resume = checkpoints.resume_state(tune.get_checkpoint(), config["storage"], config["pack_id"])

    def report(row: dict, state: dict | None = None) -> None:
        if state is None:
            return tune.report(row)
        with tempfile.TemporaryDirectory() as d:  # Ray copies it to the storage before report returns
            checkpoints.write(state, d)
            tune.report(row, checkpoint=tune.Checkpoint.from_directory(d))

    run_trial(pack, report, config["artifacts"], resume=resume, ray_node_id=ray.get_runtime_context().get_node_id(),
              pack_id=config["pack_id"])
