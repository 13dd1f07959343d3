"""The training loop every structure shares, and the Ray Tune trainable that runs it.

`run_trial(configs, report, artifacts)` trains a pack of configurations (one configuration: one trial)
of one structure (bench.structures: build / batch / step / Evaluate). At every evaluation it reports one
flat row per configuration (a row of curves.parquet); artifacts (image grids, samples, outputs) are
written as files under `artifacts` by bench.artifacts and the rows carry their paths. The last row of
each configuration has `final=True` and its status: `ok`; `diverged` at the step where a loss, a weight
or a sample became NaN/Inf (a result, not a crash: the others of its pack go on); or, in a Ray trial,
`failed` when the training code raised (`code_error`; not retried). Rows carry `wall_seconds` (the
configuration's own share of the pack's wall time), `pack_wall_seconds` and `pack_size`: the shares of a
pack add up to its wall time, so summing rows never counts a pack's time once per member.

The pieces: `_train` (the loop), `evaluation` (one evaluation's rows and checkpoint), `Divergence` (the
losses and the step they went non-finite, tracked on the device), `Rows` (what each configuration
reports, and the loop state a checkpoint keeps), `checkpoint` / `restore`.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
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
        """One training iteration of every configuration: {loss name: [pack.size] tensor}. With train.precision
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
              device: str | None = None, resume: dict | None = None, report_failures: bool = False,
              **final_extra) -> list[dict]:
    """Train the configurations, calling `report(row)` for each configuration at every evaluation, and
    `report(row, state=...)` at a checkpoint (every `train.checkpoint_every` steps, at the next evaluation):
    the whole pack's state, from which `resume=state` continues exactly as if never interrupted.
    Returns each configuration's last row.

    With `report_failures`, an exception of the training code (`code_error`: a bug in ganbench or in a
    plug-in, which a retry would only repeat) ends every configuration still training with a final row
    of status `failed`, its one-line `error` and its `traceback`, instead of propagating; exceptions that
    say the machine failed, and any raised by `report` itself, propagate (Ray Tune retries those)."""
    configs = [configs] if isinstance(configs, dict) else list(configs)
    rows = Rows([c["trial_id"] for c in configs], report, final_extra)
    try:
        _train(configs, rows, artifacts, device, resume)
    except Exception as err:
        if not (report_failures and code_error(err)) or rows.reporting:
            raise
        rows.fail(err)
    return rows.last


def _train(configs: list[dict], rows: "Rows", artifacts: str | Path, device, resume: dict | None) -> None:
    """The loop every structure shares: evaluate (and report) every `eval_every` steps and at the end,
    train one step in between."""
    run = setup(configs, device)
    evaluate = run.S.Evaluate(run.pack, run.data, run.gens, run.device)
    rows.attach(run, evaluate, restore(run, rows.ids, resume) if resume is not None else None)
    steps, every = run.pack.cfg.train.steps, run.pack.cfg.train.eval_every
    losses = Divergence(run.pack.size, run.device, run.pack.cfg.variant.structure)
    t0 = rows.loop["t"]
    for t in range(t0, steps + 1):
        rows.t = t
        if (t % every == 0 or t == steps) and not (resume is not None and t == t0):  # (the checkpoint's was reported)
            losses.read(rows)
            evaluation(run, evaluate, rows, artifacts, t)
            if t == steps or not rows.alive:
                return
        losses.record(t, run.step(t))
        if losses.due(t):
            losses.read(rows)
            if not rows.alive:
                return


def evaluation(run: Setup, evaluate, rows: "Rows", artifacts: str | Path, t: int) -> None:
    """The evaluation at step t: a configuration whose weights or samples are not finite diverges; the
    others save their artifacts and report a row (the final one at the last step), the last of them with
    the pack's state when a checkpoint is due."""
    train = run.pack.cfg.train
    final = t == train.steps
    finite = finite_per_config(run.nets, run.pack.size)
    for k in [k for k in rows.alive if not finite[k]]:
        rows.diverge(k, t, "non-finite weights")
    results = evaluate(run.nets, final=final, alive=list(rows.alive)) if rows.alive else []
    running = []
    for k in list(rows.alive):
        r = results[k]
        if r.diverged:
            rows.diverge(k, t, r.diverged)
            continue
        paths = art.save(artifacts, rows.ids[k], t, r.artifacts)
        rows.saved[k].update(paths)
        if final:
            rows.finish(k, t, r.metrics, "ok")
        else:
            grids = {key: v for key, v in paths.items() if key.startswith("grid_")}
            running.append(rows.running(k, t, r.metrics, grids))
    if not final and running and t - rows.loop["last_checkpoint"] >= train.checkpoint_every:
        rows.loop["last_checkpoint"] = t
        rows.send(running, checkpoint(run, rows, t))
    else:
        rows.send(running)


class Divergence:
    """Each configuration's losses, and the first step at which they were not all finite (with their
    values then), tracked on the device: no synchronisation per step on a GPU; read every `sync` steps."""

    def __init__(self, size: int, device: torch.device, structure: str):
        self.size, self.structure = size, structure
        self.sync = 1 if device.type == "cpu" else 25
        self.step = torch.full((size,), -1, device=device)
        self.at, self.names, self.vals = None, [], None

    def record(self, t: int, out: dict) -> None:
        wrong = {name: list(v.shape) for name, v in out.items() if v.shape != (self.size,)}
        if wrong:  # (torch.stack would only say "stack expects each tensor to be equal size")
            raise ValueError(f"structure '{self.structure}': step returned "
                             f"{', '.join(f'{n} of shape {s}' for n, s in wrong.items())}; each loss is one value "
                             f"per configuration of the pack, shape [{self.size}]")
        self.names, self.vals = list(out), torch.stack([v.detach() for v in out.values()])
        new = ~torch.isfinite(self.vals).all(0) & (self.step < 0)
        self.step = torch.where(new, t, self.step)
        self.at = self.vals if self.at is None else torch.where(new, self.vals, self.at)

    def due(self, t: int) -> bool:
        return (t + 1) % self.sync == 0

    def read(self, rows: "Rows") -> None:
        """Each live configuration's latest losses into its rows; one whose losses went non-finite diverges
        at the step that happened, with the losses of that step."""
        if self.vals is None:
            return
        steps, current = self.step.tolist(), self.vals.tolist()
        for k in list(rows.alive):
            if steps[k] >= 0:
                rows.losses[k] = dict(zip(self.names, self.at[:, k].tolist()))
                bad = [n for n, v in rows.losses[k].items() if not math.isfinite(v)]
                rows.diverge(k, steps[k], f"non-finite {', '.join(bad)} at step {steps[k]}")
            else:
                rows.losses[k] = {n: current[i][k] for i, n in enumerate(self.names)}


class Rows:
    """What each configuration reports: a row per evaluation (kept, and replayed after a restart), its
    latest losses and artifact paths, its share of the pack's wall time, its final row. `loop` is what a
    checkpoint keeps of the loop (plain data)."""

    def __init__(self, ids: list[str], report: Callable[..., None], final_extra: dict):
        n = len(ids)
        self.ids, self.report, self.final_extra = ids, report, final_extra
        self.loop = {"t": 0, "elapsed": 0.0, "attempt": 1, "resumed_from_step": 0, "last_checkpoint": 0,
                     "alive": list(range(n)), "losses": [{} for _ in range(n)], "saved": [{} for _ in range(n)],
                     "rows": [[] for _ in range(n)], "last": [None] * n, "share": [0.0] * n}
        self.t, self.reporting = 0, False  # the step being trained; inside `report`
        self.scalars, self.cfgs, self.device, self.inception_skipped = (lambda c, t: {}), [None] * n, None, None
        self._start_clock()

    def attach(self, run: Setup, evaluate, loop: dict | None = None) -> None:
        """The pack being trained; `loop`: a checkpoint's (bench.trial.restore), whose rows are replayed."""
        self.scalars = getattr(run.S, "scalars", lambda c, t: {})
        self.cfgs, self.device = run.pack.cfgs, run.device
        self.inception_skipped = getattr(evaluate, "inception_skipped", None)
        if loop is not None:
            self.loop = loop
            self.loop.setdefault("share", [0.0] * len(self.ids))  # (a checkpoint written before shares were kept)
            for k in self.alive:  # what it reported before: its curve, for a driver that restarted too
                self.send([{"config_id": self.ids[k], **r, "attempt": loop["attempt"], "replayed": True}
                           for r in loop["rows"][k]])
        self._start_clock()  # the pack's wall time starts once it is set up

    def _start_clock(self) -> None:
        self.start = time.perf_counter() - self.loop["elapsed"]
        self.clock = time.perf_counter()

    alive = property(lambda self: self.loop["alive"])
    losses = property(lambda self: self.loop["losses"])
    saved = property(lambda self: self.loop["saved"])
    last = property(lambda self: self.loop["last"])

    def tick(self) -> None:
        """Each configuration's share of the pack's wall time: every interval split equally among the
        configurations still training in it, so the shares of a pack add up to its wall time."""
        now = time.perf_counter()
        for k in self.alive:
            self.loop["share"][k] += (now - self.clock) / len(self.alive)
        self.clock = now

    def row(self, k: int, t: int, metrics: dict, **extra) -> dict:
        self.tick()
        return {"step": t, **self.scalars(self.cfgs[k], t), **self.losses[k], **metrics,
                "wall_seconds": self.loop["share"][k], "pack_wall_seconds": time.perf_counter() - self.start,
                "pack_size": len(self.ids), "attempt": self.loop["attempt"],
                "resumed_from_step": self.loop["resumed_from_step"], **extra}

    def running(self, k: int, t: int, metrics: dict, grids: dict) -> dict:
        """An evaluation's row of a configuration still training (kept for replay); returns its report."""
        self.loop["rows"][k].append(self.row(k, t, metrics, final=False, status="running", **grids))
        return {"config_id": self.ids[k], **self.loop["rows"][k][-1]}

    def finish(self, k: int, t: int, metrics: dict, status: str, why: str | None = None, **extra) -> None:
        keep = {key: v for key, v in self.saved[k].items() if status == "ok" or key.startswith("samples")}
        self.last[k] = self.row(k, t, metrics, final=True, status=status,
                                diverged_step=t if status == "diverged" else None, error=why,
                                torch_version=torch.__version__, device=str(self.device),
                                torch_threads=torch.get_num_threads(), inception_skipped=self.inception_skipped,
                                **self.final_extra, **keep, **extra)
        self.alive.remove(k)
        self.send([{"config_id": self.ids[k], **self.last[k]}])

    def diverge(self, k: int, t: int, why: str) -> None:
        self.finish(k, t, {m: math.nan for m in INFO}, "diverged", why)

    def fail(self, err: Exception) -> None:
        """The training code raised: every configuration still training ends `failed` at the current step."""
        self.scalars = lambda c, t: {}  # (structure code: it may be what raised)
        why, trace = one_line(err), "".join(traceback.format_exception(err))
        for k in list(self.alive):
            self.finish(k, self.t, {m: math.nan for m in INFO}, "failed", why, traceback=trace)

    def send(self, reports: list[dict], state: dict | None = None) -> None:
        """Report rows; `state` goes with the last one. `reporting` stays set when `report` raises."""
        self.reporting = True
        for i, rep in enumerate(reports):
            self.report(rep, state=state) if state is not None and i == len(reports) - 1 else self.report(rep)
        self.reporting = False

    def snapshot(self, t: int) -> dict:
        return {**self.loop, "t": t, "elapsed": time.perf_counter() - self.start, "share": list(self.loop["share"])}


def checkpoint(run: Setup, rows: Rows, t: int) -> dict:
    """The whole pack's state at step t: networks, optimizers, random streams and the loop."""
    return {"format": CHECKPOINT_FORMAT, "ids": rows.ids, "nets": run.nets.state_dict(),
            "gens": [{name: g.get_state() for name, g in gk.items()} for gk in run.gens],
            "torch_rng": torch.get_rng_state(), "loop": rows.snapshot(t)}


def restore(run: Setup, ids: list[str], state: dict) -> dict:
    """Load a checkpoint into the run; returns the loop state the next attempt starts from."""
    if state["ids"] != ids or state["format"] != CHECKPOINT_FORMAT:
        raise ValueError("the checkpoint is of another pack of configurations")
    run.nets.load_state_dict(state["nets"])
    for gk, saved in zip(run.gens, state["gens"]):
        for name, g in gk.items():
            g.set_state(saved[name])
    torch.set_rng_state(state["torch_rng"])
    loop = state["loop"]
    return {**loop, "attempt": loop["attempt"] + 1, "resumed_from_step": loop["t"]}


def code_error(err: BaseException) -> bool:
    """Whether an exception is the training code's own, which a retry would only repeat (a TypeError,
    a missing attribute, a shape error, in ganbench or a plug-in), rather than the machine's: files and
    storage (OSError), memory (host or device: what else runs there matters), the accelerator
    (torch.AcceleratorError: a CUDA error), Ray (RayError). Those are retried."""
    machine = [OSError, MemoryError, torch.OutOfMemoryError, getattr(torch, "AcceleratorError", OSError)]
    if "ray.exceptions" in sys.modules:
        machine.append(sys.modules["ray.exceptions"].RayError)
    return isinstance(err, Exception) and not isinstance(err, tuple(machine))


def one_line(err: BaseException) -> str:
    """`Type: message (at file:line, in function)`: the message on one line, where it was raised (a path
    under the checkout relative to it: bench/..., a plug-in's file by name)."""
    text = " ".join(str(err).split())
    frames = traceback.extract_tb(err.__traceback__)
    where = ""
    if frames:
        path = Path(frames[-1].filename).resolve()
        root = Path(__file__).resolve().parents[1]
        name = path.relative_to(root) if path.is_relative_to(root) else path.name
        where = f" (at {name}:{frames[-1].lineno}, in {frames[-1].name})"
    return (f"{type(err).__name__}: {text}" if text else type(err).__name__)[:2000] + where


def train_trial(config: dict) -> None:
    """The Ray Tune trainable: one pack of configurations (`config["pack"]`), resumed from its latest
    checkpoint when there is one (Ray's retry, or an earlier run of the study). Torch threads are limited
    to the trial's CPU share. An error of the training code ends the pack's live configurations `failed`
    and returns (bench.runner's writer records them; Tune does not retry); the machine's errors raise."""
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

    run_trial(pack, report, config["artifacts"], resume=resume, report_failures=True,
              ray_node_id=ray.get_runtime_context().get_node_id(), pack_id=config["pack_id"])
