"""Ray Tune wiring: start or join Ray, run the study's trials, stream their rows into Parquet, survive
faults.

Rows reach Parquet through a driver-side Tune callback, so results flow back over Ray and the workers
need no shared filesystem with the driver for them. Each finished configuration is written at once (an
interrupted study keeps every trial that finished); a rerun skips trials already ok or diverged.

Faults (docs/scale-and-faults.md, "Faults and resuming"): every trial checkpoints its pack into the study's storage
(bench.checkpoints); a killed worker or a lost node is retried `resources.retries` times from the
latest checkpoint, on any node; an exception of the training code (a bug in ganbench or a plug-in,
bench.trial.code_error) is not: the trial reports its configurations `failed` with the error and ends
(a later run retries failed trials); a rerun after the driver died resumes unfinished packs from their
checkpoints; Ctrl-C / SIGTERM stops the trials and says how to resume (a second one exits at once); a
watchdog ends the run with exit 1 within a minute when Ray itself fails, instead of hanging.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

# Ray reads these at import: no per-trial JSON/CSV/TensorBoard loggers (our rows go to Parquet).
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables

from ray import tune  # noqa: E402

from bench import __version__, artifacts, checkpoints, nrds_step, packing, results
from bench.packing import pack_id
from bench.schema import Study, TrialConfig, config_hash, variant_label
from bench.study import expand, expected_retrain, retrain_metric, retrain_trials, set_path

OPTUNA_DB = "optuna.db"  # in the results folder: the Optuna study (every sampled point and its value)
LOG = "ganbench.log"  # in the results folder: Ray's and ganbench's messages, tracebacks included
log = logging.getLogger("bench.runner")


class RayFailure(RuntimeError):
    """Ray itself failed (could not connect, its processes died, the cluster went away)."""


# ----------------------------------------------------------------------------- trial configs
def materialize(config: dict) -> list[dict]:
    """Ray's config -> the trial configs it trains. Grid/random studies pass their pack of expanded
    trials as-is; optuna passes the base trial plus the sampled axis values, applied here."""
    if "pack" in config:
        return config["pack"]
    cfg = copy.deepcopy(config["base"])
    for path, value in config["axes"].items():
        set_path(cfg, path, value)
    meta = {k: cfg.pop(k) for k in ("study", "resources", "trial_id", "variant_label") if k in cfg}
    cfg = TrialConfig.model_validate(cfg).model_dump(mode="json")
    return [{**cfg, **meta, "trial_id": config_hash(cfg), "variant_label": variant_label(cfg)}]


def ray_trainable(config: dict, evaluators: dict | None = None) -> None:
    from bench.trial import train_trial

    if evaluators:  # trained once for the study (prepare_evaluators), copied into this node's cache
        from bench.metrics.evaluator import install

        install(evaluators)
    pack = materialize(config)
    train_trial({**config, "pack": pack, "pack_id": pack_id(pack)})


def _optuna_space(study: Study, base: dict, results_dir: Path) -> tuple[dict, object]:
    """Ray's search space and an OptunaSearch whose study lives in results_dir/optuna.db (SQLite), so a
    rerun continues the same Optuna study: the sampler sees every point tried before."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    def space(v):
        if isinstance(v, list):
            return tune.choice(v)
        if v.dist == "choice":
            return tune.choice(v.values)
        return {"loguniform": tune.loguniform, "uniform": tune.uniform}.get(v.dist, lambda a, b: tune.randint(int(a), int(b) + 1))(v.low, v.high)

    sw = study.sweep
    param_space = {"base": base, "axes": {k: space(v) for k, v in sw.axes.items()}}
    storage = optuna.storages.RDBStorage(f"sqlite:///{results_dir / OPTUNA_DB}")
    # The sampler's random start is seeded: offset the seed by the trials already in the study, or a
    # rerun would draw the same first points again.
    before = next((s.n_trials for s in optuna.get_all_study_summaries(storage) if s.study_name == study.name), 0)
    return param_space, OptunaSearch(metric=sw.metric, mode=sw.mode, seed=sw.sample_seed + before,
                                     study_name=study.name, storage=storage)


def _prepare(dataset_cfgs: list[dict], queue=None) -> dict:
    from bench.metrics.evaluator import prepare

    return prepare(dataset_cfgs, say=None if queue is None else (lambda text: queue.put_nowait(text)))


def prepare_evaluators(trials: list[dict], say=None) -> dict[str, bytes]:
    """The image evaluators the study's trials need, trained (or loaded) once by one Ray task; `say(text)` hears
    what that task is doing (loading data, training step k of n) through a Ray queue, on any node."""
    import ray
    from ray.util.queue import Empty, Queue

    from bench.registry import POINT_DATASETS, TOY_DATASETS

    sets = {json.dumps(t["dataset"], sort_keys=True) for t in trials
            if t["dataset"]["name"] not in TOY_DATASETS + POINT_DATASETS}
    if not sets:
        return {}
    queue = Queue(actor_options={"num_cpus": 0}) if say is not None else None
    ref = ray.remote(num_cpus=1)(_prepare).remote([json.loads(s) for s in sorted(sets)], queue)
    def drain():
        while queue is not None:
            try:
                say(queue.get_nowait())
            except Empty:
                break

    try:
        while not ray.wait([ref], timeout=0.5)[0]:
            drain()
        files = ray.get(ref)
        drain()  # what it said in its last half second
        return files
    finally:
        if queue is not None:
            queue.shutdown()


# ----------------------------------------------------------------------------- provenance
def git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_study_copy(study: Study, results_dir: Path) -> None:
    """results/<study>/study.yaml is the study as run; a different earlier one is kept beside it."""
    text = yaml.safe_dump(study.model_dump(mode="json", exclude_none=False), sort_keys=False)
    path = results_dir / results.STUDY
    if path.exists() and path.read_text() != text:
        old = path.read_text()
        results.write_text(old, results_dir / f"study-{hashlib.sha1(old.encode()).hexdigest()[:8]}.yaml")
    results.write_text(text, path)


# ----------------------------------------------------------------------------- the callback
def describe_error(err) -> str:
    """One line for why a trial ran out of retries: killed, node lost, or its exception's last line."""
    import ray.exceptions as rx

    if err is None:
        return "the trial ended without a final report"
    text = " ".join(str(err).split())
    if isinstance(err, rx.NodeDiedError) or (isinstance(err, rx.ActorDiedError) and "node" in text.lower()
                                                and ("died" in text.lower() or "dead" in text.lower())):
        return f"node lost: {text[:300]}"
    if isinstance(err, (rx.ActorDiedError, rx.WorkerCrashedError, rx.ActorUnavailableError)):
        return f"killed: the trial's worker process died ({text[:300]})"
    cause = getattr(err, "cause", None)
    if cause is not None and not isinstance(cause, rx.RayError):
        return f"{type(cause).__name__}: {cause}".splitlines()[-1][:2000] if str(cause) else type(cause).__name__
    lines = [ln for ln in str(err).strip().splitlines() if ln.strip()]
    return lines[-1][:2000] if lines else type(err).__name__


class ResultWriter(tune.Callback):
    """Collects each configuration's reports and writes its rows when it ends; drives the progress line.
    A Ray trial trains a pack of configurations; each report names its configuration (`config_id`).
    Reports are keyed by step, so a restored trial's replayed and recomputed rows never duplicate."""

    def __init__(self, results_dir: Path, meta: dict, todo: set[str], provenance: dict, progress=None,
                 total: int | None = None, done: set[str] = frozenset(), artifact_root: str | None = None,
                 loggers=None):
        self.results_dir, self.provenance, self.progress = results_dir, provenance, progress
        self.loggers = loggers  # bench.loggers.Loggers (TensorBoard, MLflow, W&B: one run per configuration) or None
        self.artifact_root = artifact_root  # None: trials write their artifacts into results_dir
        self.todo = todo  # a resumed pack may hold configurations that finished before: not theirs to write
        self.done = done  # optuna: ids are only known when sampled; any not finished before is ours
        self.reports: dict[str, dict[int, dict]] = {}
        self.packs: dict[str, list[dict]] = {}
        self.starts: dict[str, int] = {}  # Tune trial id -> times this driver saw it started
        self.counts = {"ok": 0, "diverged": 0, "failed": 0}
        self.running: set[str] = set()
        self.finished_packs: set[str] = set()
        self.meta = {**meta, "pid": os.getpid(), "host": socket.gethostname(),
                     "started_at": datetime.now(timezone.utc).isoformat()}
        self.task = progress.add_task("trials", total=total or len(todo), running=0, **self.counts) if progress else None

    def extend(self, trials: list[dict], expected: list[str], expected_count: int) -> None:
        """More trials for this run (stage 2 of a random study, known once stage 1 has ended)."""
        self.todo |= {t["trial_id"] for t in trials}
        self.meta.update(expected=expected, expected_count=expected_count,
                         steps={**self.meta.get("steps", {}), **{t["trial_id"]: t["train"]["steps"] for t in trials}})
        if self.progress:
            self.progress.update(self.task, total=sum(self.counts.values()) + len(self.running) + len(trials))
        self._refresh()

    def __getstate__(self):  # Tune pickles its callbacks; the live progress bar and the loggers stay behind
        return {**self.__dict__, "progress": None, "loggers": None}

    def write_progress(self, **extra):
        results.write_progress(self.results_dir, {**self.meta, "running": sorted(self.running),
                                                  "finished_in_this_run": self.counts,
                                                  "updated_at": datetime.now(timezone.utc).isoformat(), **extra})

    def _refresh(self):
        if self.progress:
            self.progress.update(self.task, completed=sum(self.counts.values()), running=len(self.running), **self.counts)
        self.write_progress()

    def _pack(self, trial) -> list[dict]:
        if trial.trial_id not in self.packs:
            self.packs[trial.trial_id] = materialize(trial.config)
        return self.packs[trial.trial_id]

    def on_trial_start(self, iteration, trials, trial, **info):
        self.starts[trial.trial_id] = self.starts.get(trial.trial_id, 0) + 1
        for cfg in self._pack(trial):
            if cfg["trial_id"] not in self.reports and (cfg["trial_id"] in self.todo if self.todo else cfg["trial_id"] not in self.done):
                self.running.add(cfg["trial_id"])
                self.reports[cfg["trial_id"]] = {}
        self._refresh()

    def on_trial_recover(self, iteration, trials, trial, **info):  # a lost worker or node (bench.trial.code_error)
        log.warning("trial %s failed (%s) and is retried from its latest checkpoint", pack_id(self._pack(trial)),
                    describe_error(trial.get_error()))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        tid = result.get("config_id")  # ("trial_id" is Ray Tune's own id of the pack)
        if tid is None or tid not in self.running:
            return
        cfg = next(c for c in self._pack(trial) if c["trial_id"] == tid)
        if result.get("status") == "failed":  # its code raised: no row of its own, not retried
            log.error("trial %s failed: %s\n%s", tid, result.get("error"), result.get("traceback", ""))
            return self._finish(trial, cfg, "failed", result.get("error"))
        self.reports[tid][result["step"]] = result
        if self.loggers:
            self.loggers.log(cfg, result)
        if result.get("final"):
            self._finish(trial, cfg)
        elif not result.get("replayed"):  # live curves: `ganbench status` and the report see them now
            results.write_rows(self.results_dir, results.CURVES, tid,
                               results.curve_rows(cfg, list(self.reports[tid].values())))

    def _finish(self, trial, cfg: dict, status=None, error=None):
        reports = list(self.reports.pop(cfg["trial_id"], {}).values())
        if self.artifact_root:
            try:
                artifacts.fetch(self.artifact_root, self.results_dir, cfg["trial_id"])
            except OSError as e:  # the row is still written; its artifact paths then point nowhere
                log.error("could not copy the artifacts of %s from %s: %s", cfg["trial_id"], self.artifact_root, e)
        if reports:  # the trial counts its starts in its checkpoints; this driver counts the ones it saw
            reports[-1] = {**reports[-1], "attempts": max(reports[-1].get("attempt", 1), self.starts.get(trial.trial_id, 1))}
        host = {"hostname": reports[-1].get("hostname")} if reports else {}
        row, curves, samples = results.rows_from_reports(cfg, reports, status, error, {**self.provenance, **host},
                                                         root=self.results_dir)
        results.upsert(self.results_dir, row, curves, samples)
        if self.loggers:
            self.loggers.finish(cfg, row)
        self.counts[row["status"]] = self.counts.get(row["status"], 0) + 1
        self.running.discard(cfg["trial_id"])
        if not any(c["trial_id"] in self.running for c in self._pack(trial)):
            self.finished_packs.add(pack_id(self._pack(trial)))
        self._refresh()

    def _finish_pack(self, trial, status=None, error=None):
        for cfg in self._pack(trial):
            if cfg["trial_id"] in self.running:
                self._finish(trial, cfg, status, error)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish_pack(trial)

    def on_trial_error(self, iteration, trials, trial, **info):  # a lost worker or node, out of retries
        self._finish_pack(trial, status="failed", error=describe_error(trial.get_error()))


# ----------------------------------------------------------------------------- Ray
def _reachable(address: str, timeout: float = 10) -> None:
    """Raise RayFailure unless something listens at the cluster address ('auto' or host:port)."""
    from ray._private.services import canonicalize_bootstrap_address

    try:
        resolved = canonicalize_bootstrap_address(address)
    except Exception as e:  # noqa: BLE001 - e.g. 'auto' with no cluster started on this machine
        raise RayFailure(f"no Ray cluster at --address {address}: {' '.join(str(e).split())[:200]}") from None
    if resolved is None:
        raise RayFailure(f"no Ray cluster at --address {address} (none is running on this machine)")
    host, _, port = resolved.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise RayFailure(f"cannot reach the Ray cluster at {resolved} (--address {address}): {e}") from None


def start_ray(address: str | None, verbose: bool, num_cpus: int | None = None, timeout: float = 30) -> bool:
    """Join `address` or start an embedded local Ray; True when embedded. A cluster that cannot be
    reached or does not answer within `timeout` seconds is a RayFailure, not a hang."""
    import ray

    level = logging.INFO if verbose else logging.WARNING
    if address:
        _reachable(address)
        done = threading.Event()
        errors: list = []

        def connect():
            try:
                ray.init(address=address, logging_level=level, log_to_driver=verbose)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
            done.set()

        threading.Thread(target=connect, daemon=True).start()
        if not done.wait(timeout):
            raise RayFailure(f"the Ray cluster at --address {address} did not answer within {timeout:.0f} s")
        if errors:
            raise RayFailure(f"could not join the Ray cluster at --address {address}: "
                             f"{' '.join(str(errors[0]).split())[:300]}")
        return False
    # address="local": always a new embedded instance, never a cluster someone started with `ray start`
    ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
             object_store_memory=256 * 1024**2, logging_level=logging.INFO if verbose else logging.ERROR,
             log_to_driver=verbose, configure_logging=True)
    return True


@contextlib.contextmanager
def ray_session(address: str | None, verbose: bool, num_cpus: int | None = None):
    """Ray for the duration of the block: joins `address`, or starts an embedded local instance and
    shuts it down afterwards (a joined cluster is left running)."""
    started = start_ray(address, verbose, num_cpus)
    try:
        yield started
    finally:
        if started:
            import ray

            ray.shutdown()


class Watchdog(threading.Thread):
    """Checks every few seconds that Ray is alive: the embedded instance's processes (raylet, GCS, ...),
    or a joined cluster's GCS answering with this driver's node alive. On failure it calls `fail(why)`
    (which ends the process: tuner.fit would hang forever)."""

    def __init__(self, embedded: bool, fail, every: float = 3.0, grace: int = 3):
        super().__init__(daemon=True, name="ganbench-watchdog")
        self.embedded, self.fail, self.every, self.grace = embedded, fail, every, grace
        self.stopped = threading.Event()

    def _problem(self) -> str | None:
        import ray

        if self.embedded:
            node = ray._private.worker._global_node
            dead = [str(kind) for kind, _ in (node.dead_processes() if node else [])]
            return f"Ray's {', '.join(sorted(set(dead)))} died" if dead else None
        answer: list = []
        asker = threading.Thread(target=lambda: answer.append(ray.nodes()), daemon=True)
        asker.start()
        asker.join(10)
        if not answer:
            return "the Ray cluster stopped answering"
        me = ray.get_runtime_context().get_node_id()
        if not any(n["NodeID"] == me and n["Alive"] for n in answer[0]):
            return "this driver's Ray node died"
        return None

    def run(self):
        strikes = 0
        while not self.stopped.wait(self.every):
            try:
                why = self._problem()
            except Exception as e:  # noqa: BLE001
                why = f"Ray failed ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
            strikes = strikes + 1 if why else 0
            if why and (self.embedded or strikes >= self.grace):
                self.fail(why)
                return

    def stop(self):
        self.stopped.set()


@contextlib.contextmanager
def run_log(results_dir: Path, verbose: bool):
    """Ray's and ganbench's log messages (tracebacks of failed trials included) go to
    results/<study>/ganbench.log; the terminal keeps the progress line (with --verbose: both)."""
    handler = logging.FileHandler(results_dir / LOG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    import ray._private.worker as ray_worker

    loggers = [logging.getLogger(n) for n in ("ray", "bench")]
    saved = [(lg, lg.level, lg.propagate, list(lg.handlers)) for lg in loggers]
    printer = ray_worker.print_to_stdstream
    if not verbose:  # the "(raylet) A worker died ..." messages Ray prints to the terminal whatever log_to_driver says
        ray_worker.print_to_stdstream = lambda data, ignore_prefix: logging.getLogger("ray").warning(
            "(%s) %s", data.get("pid"), "\n".join(data.get("lines", [])))
    for lg in loggers:
        lg.setLevel(logging.INFO)
        lg.addHandler(handler)
        if not verbose:
            lg.propagate = False
            for h in list(lg.handlers):
                if h is not handler and isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                    lg.removeHandler(h)
    try:
        yield
    finally:
        ray_worker.print_to_stdstream = printer
        for lg, level, propagate, handlers in saved:
            lg.setLevel(level)
            lg.propagate = propagate
            lg.handlers[:] = handlers
        handler.close()


@contextlib.contextmanager
def stop_signals():
    """Ctrl-C (Tune's own handler: stop the trials, then fit() returns) and SIGTERM (the same) stop the
    run gracefully; a second one exits at once. Yields a dict that says whether a stop was asked."""
    asked = {"stop": False}

    def at_once(signum, frame):
        print("\nstopped at once; trials still running are lost back to their last checkpoint", file=sys.stderr)
        os._exit(128 + signum)

    def term(signum, frame):  # first SIGTERM: what Ctrl-C does (Tune replaced SIGINT's handler during fit)
        asked["stop"] = True
        handler = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGTERM, at_once)
        if callable(handler) and handler is not at_once:
            handler(signal.SIGINT, frame)

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, at_once)  # restored here by Tune after its own handler's first Ctrl-C
        signal.signal(signal.SIGTERM, term)
    try:
        yield asked
    finally:
        if threading.current_thread() is threading.main_thread():
            for s, h in old.items():
                signal.signal(s, h)


# ----------------------------------------------------------------------------- run
def trial_slots(study: Study, max_concurrent: int | None) -> int:
    """How many trials the connected cluster runs at once (what `sweep.pack: auto` spreads packs over)."""
    import ray

    have = ray.cluster_resources()
    r = study.resources
    slots = have.get("GPU", 0) // r.gpu if r.gpu > 0 else have.get("CPU", 1) // r.cpu
    return max(1, min(int(slots), max_concurrent or int(slots)))


def _stage_two(study: Study, stage1: list[dict], results_dir: Path, say) -> list[dict] | None:
    """Stage 2's trials (bench.study.retrain_trials) from the stage-1 rows on disk; None while a stage-1
    trial has no row. Its notes (a variant with fewer finished points than `top`) go to the log and the terminal."""
    got = retrain_trials(study, stage1, results.read_parquet(results_dir / results.TRIALS))
    if got is None:
        return None
    trials2, notes = got
    for note in notes:
        log.warning("stage 2: %s", note)
        say(f"{study.name}: stage 2: {note}")
    return trials2


@dataclass
class Plan:
    """What a `ganbench run` of the study has to do, from what its results folder already holds."""
    study: Study
    results_dir: Path
    storage: str                # the checkpoints: --storage, or results_dir/ray
    artifact_root: str | None   # --storage/artifacts when the storage is shared; None: into results_dir
    trials: list[dict]          # every trial of the study (a two-stage study: stage 1's)
    done: set[str]              # finished before this run (ok or diverged)
    todo: list[dict]
    stage2: list[dict] | None   # a two-stage study's stage 2: None until stage 1 has ended
    todo2: list[dict]
    n_todo: int                 # trials this run trains (optuna: samples left to draw)
    n_stage2: int               # stage 2's trials, or how many it is expected to have
    total: int

    optuna = property(lambda self: self.study.sweep.method == "optuna")
    two_stage = property(lambda self: self.study.sweep.retrain is not None)
    everything = property(lambda self: self.trials + (self.stage2 or []))


def make_plan(study: Study, results_dir: Path, storage: str | None, say) -> Plan:
    """The plan of a run into results_dir (created, with the study's copy); `say` prints a line."""
    trials = expand(study)  # a two-stage study: stage 1
    optuna, two_stage = study.sweep.method == "optuna", study.sweep.retrain is not None
    done = results.finished_ids(results_dir)
    todo = [] if optuna else [t for t in trials if t["trial_id"] not in done]
    artifact_root = f"{storage.rstrip('/')}/artifacts" if storage else None
    results_dir.mkdir(parents=True, exist_ok=True)
    save_study_copy(study, results_dir)
    # stage 2 is known once every stage-1 trial has ended ok or diverged (failed ones are retried first)
    stage2 = _stage_two(study, trials, results_dir, say) if two_stage and not todo else None
    todo2 = [t for t in stage2 or [] if t["trial_id"] not in done]
    # optuna: the sampler picks the trials, num_samples in all over every run of the study
    n_todo = max(0, study.sweep.num_samples - len(done)) if optuna else len(todo) + len(todo2)
    n_stage2 = (len(stage2) if stage2 is not None else expected_retrain(study, trials)) if two_stage else 0
    total = study.sweep.num_samples if optuna else len(trials) + n_stage2
    return Plan(study, results_dir, storage or str(results_dir / "ray"), artifact_root, trials, done, todo, stage2,
                todo2, n_todo, n_stage2, total)


def run_study(study: Study, results_dir: Path, address: str | None = None, max_concurrent: int | None = None,
              verbose: bool = False, show_progress: bool = True, num_cpus: int | None = None,
              storage: str | None = None, resume_hint: str | None = None, loggers=None) -> dict:
    """Run every trial of the study not yet finished in results_dir (resuming packs from their
    checkpoints in `storage`, default results_dir/ray). A random study with `sweep.retrain` runs in two
    stages: stage 1's trials, then (when they have all ended and the run was not stopped) stage 2, chosen
    from stage 1's rows, in a second Tune run on the same Ray; a rerun resumes whichever stage is
    unfinished. `loggers`: trackers fed each configuration's rows (bench.loggers: "tensorboard", "mlflow",
    "wandb"; default: the GANBENCH_LOGGERS environment variable, else none). Returns counts by status, plus
    `stopped` when Ctrl-C / SIGTERM ended the run early. Raises RayFailure when Ray cannot be reached or
    fails, LoggerError (a StudyError) for an unknown logger or one whose library is missing."""
    from rich.console import Console

    from bench.loggers import opened, requested

    log_names = requested(loggers)  # before anything starts: a missing library is a one-line error
    console = Console(stderr=True, soft_wrap=True)  # one line per message, however long
    plan = make_plan(study, Path(results_dir).resolve(), storage, console.print)
    if not plan.n_todo:
        return _nothing_to_run(plan, address, verbose, num_cpus, console.print)
    if plan.done:
        then = ", then stage 2" if plan.two_stage and plan.stage2 is None else ""
        console.print(f"{study.name}: {plan.total - plan.n_todo - (0 if plan.stage2 is not None else plan.n_stage2)} "
                      f"of {plan.total} trials already finished, running {plan.n_todo}{then}")
    run = StudyRun(plan, console, max_concurrent, verbose)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    with run_log(plan.results_dir, verbose), ray_session(address, verbose, num_cpus) as embedded, \
            opened(log_names, plan.results_dir, study.name, [plan.artifact_root]) as trackers:
        log.info("phase: Ray %s in %.1f s", "started" if embedded else "joined", time.perf_counter() - run.t0)
        run.start(embedded, show_progress, trackers)
        watchdog = Watchdog(embedded, run.ray_failed)
        watchdog.start()
        with stop_signals() as asked, (run.progress or contextlib.nullcontext()):
            try:
                stopped = run.stages(asked)
            except Exception as e:  # noqa: BLE001 - Ray's own failures become one line; anything else is raised
                why = ray_oom(e)
                if why is None:
                    raise
                watchdog.stop()
                log.exception("Tune stopped: %s", why)
                run.record(stopped=True, failure=why)
                raise RayFailure(f"{study.name}: {why}; the finished trials' rows are kept (ganbench.log has Ray's "
                                 f"report); resume with: {resume_hint or 'the same command'}") from None
        watchdog.stop()
        if not stopped:
            nrds_step.stage(plan.everything, plan.results_dir, study.nrds, console.print)  # the study's NRDS step
        log.info("phase: %s after %.1f s: %s", "stopped" if stopped else "finished", time.perf_counter() - run.t0,
                 ", ".join(f"{k} {v}" for k, v in run.writer.counts.items()))
    return run.summary(stopped, resume_hint)


def ray_oom(e: BaseException) -> str | None:
    """What to tell the user when Ray's memory monitor killed trial workers (Tune then raises from fit: seen on
    2026-12-07 when another process took 19 GB of the machine), else None."""
    import re

    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = str(e)
        if "killed due to the node running low on memory" in text:
            m = re.search(r"was ([\d.]+GB) used / ([\d.]+GB) limit", text)
            use = f" ({m.group(1)} of {m.group(2)} in use)" if m else ""
            return (f"Ray's memory monitor killed trial workers: the machine ran low on memory{use}; another process "
                    "may hold it (Ray lists the top users in ganbench.log)")
        e = e.__cause__ or e.__context__
    return None


def _nothing_to_run(plan: Plan, address: str | None, verbose: bool, num_cpus: int | None, say) -> dict:
    """Every trial finished before: only a stale NRDS step (its block changed, a crash before it) is run."""
    say(f"{plan.study.name}: all {len(plan.done) if plan.optuna else plan.total} trials already finished in "
        f"{plan.results_dir}")
    if nrds_step.has_ed_trials(plan.everything):
        stale = nrds_step.stale_groups(plan.results_dir, plan.study.nrds)
        if stale[0]:
            with ray_session(address, verbose, num_cpus):
                nrds_step.stage(plan.everything, plan.results_dir, plan.study.nrds, say, stale)
    return {"ok": 0, "diverged": 0, "failed": 0, "skipped": plan.total}


class StudyRun:
    """One `ganbench run` of a plan on a started Ray: its result writer and progress line, its Tune runs
    (one per stage), and what it records when it ends or Ray fails."""

    def __init__(self, plan: Plan, console, max_concurrent: int | None, verbose: bool):
        self.plan, self.console, self.max_concurrent, self.verbose = plan, console, max_concurrent, verbose
        self.t0, self.started = time.perf_counter(), datetime.now(timezone.utc).isoformat()
        self.slots, self.writer, self.progress, self.embedded = 1, None, None, False

    def start(self, embedded: bool, show_progress: bool, loggers=None) -> None:
        """The result writer (feeding `loggers`: bench.loggers), the progress line and the trainable, once Ray runs."""
        import ray

        plan, study = self.plan, self.plan.study
        self.embedded = embedded
        provenance = {"ray_version": ray.__version__, "ganbench_version": __version__, "git_commit": git_commit()}
        if show_progress and not self.verbose:
            self.progress = progress_line(study.name, self.console)
        first = plan.todo + plan.todo2
        meta = {"study": study.name, "expected": [] if plan.optuna else [t["trial_id"] for t in plan.everything],
                "expected_count": plan.total, "steps": {t["trial_id"]: t["train"]["steps"] for t in first}}
        self.writer = ResultWriter(plan.results_dir, meta, {t["trial_id"] for t in first}, provenance, self.progress,
                                   total=plan.n_todo + (plan.n_stage2 if plan.two_stage and plan.stage2 is None else 0),
                                   done=plan.done, artifact_root=plan.artifact_root, loggers=loggers)
        self.trainable = tune.with_parameters(ray_trainable, evaluators=self.prepare())

    def prepare(self) -> dict:
        """The evaluators, with what is happening on one status line (it can take minutes the first time: data
        decoded and resized, a classifier trained) and each phase's time in ganbench.log."""
        t0 = time.perf_counter()
        status = None
        if not self.verbose and self.console.is_terminal:
            status = self.console.status(f"{self.plan.study.name}: preparing")
            status.start()

        def say(text: str) -> None:
            log.info("preparing: %s (%.1f s)", text, time.perf_counter() - t0)
            if status is not None:
                line = f"{self.plan.study.name[:16]}: {text}"  # within 80 columns with the spinner and the time
                status.update(f"{line[:68]} {time.perf_counter() - t0:.0f} s")

        try:
            files = prepare_evaluators(self.plan.trials, say)
        finally:
            if status is not None:
                status.stop()
        if files:
            log.info("phase: evaluators ready (%d) in %.1f s", len(files), time.perf_counter() - t0)
            self.console.print(f"{self.plan.study.name}: evaluators ready in {time.perf_counter() - t0:.0f} s")
        return files

    def stages(self, asked: dict) -> bool:
        """Stage 1's Tune run (or the only one), then stage 2's when stage 1 has just ended. True when the
        run was stopped (Ctrl-C / SIGTERM) or trials were left unfinished."""
        plan, name = self.plan, self.plan.study.name
        first = plan.todo + plan.todo2
        if first or plan.optuna:
            stage = "" if not plan.two_stage else " stage 1" if plan.todo else " stage 2"
            self.fit(first, plan.everything, name + stage)
        stopped = asked["stop"] or bool(self.writer.running)
        if plan.two_stage and plan.stage2 is None and not stopped:
            self.stage_two()
            stopped = asked["stop"] or bool(self.writer.running)
        return stopped

    def stage_two(self) -> None:
        """Stage 1 has just ended: choose stage 2 from its rows and run it."""
        plan, study = self.plan, self.plan.study
        plan.stage2 = _stage_two(study, plan.trials, plan.results_dir, self.console.print)
        if plan.stage2 is None:
            left = [t["trial_id"] for t in plan.trials if t["trial_id"] not in results.finished_ids(plan.results_dir)]
            log.warning("stage 2 not started: stage-1 trials without a row: %s", left)
            self.console.print(f"{study.name}: stage 2 not started: {len(left)} stage-1 trial(s) have no row; "
                               "run the same command again")
            return
        plan.done = results.finished_ids(plan.results_dir)
        plan.todo2 = [t for t in plan.stage2 if t["trial_id"] not in plan.done]
        self.writer.extend(plan.todo2, [t["trial_id"] for t in plan.everything], len(plan.everything))
        r = study.sweep.retrain
        seed1 = (study.sweep.seeds or [study.seed])[0]
        self.console.print(f"{study.name}: stage 2: the best {r.top} point(s) of each variant by final "
                           f"{'/'.join(retrain_metric(study))} x seeds {r.seeds}: {len(plan.stage2)} new trials"
                           f"{f' (seed {seed1} is the stage-1 trial)' if seed1 in r.seeds else ''}, "
                           f"{len(plan.todo2)} to run")
        if plan.todo2:
            self.fit(plan.todo2, plan.everything, f"{study.name} stage 2")

    def fit(self, run_todo: list[dict], every: list[dict], name: str) -> None:
        """One Tune run: the optuna search, or these trials in packs (`every`: the trials they may pack with
        before, by id)."""
        plan, study = self.plan, self.plan.study
        common = {"artifacts": plan.artifact_root or str(plan.results_dir), "storage": plan.storage}
        if plan.optuna:
            base = {**study.base_config(), "study": study.name, "resources": study.resources.model_dump()}
            param_space, search_alg = _optuna_space(study, base, plan.results_dir)
            param_space.update(common)
            tune_config = tune.TuneConfig(search_alg=search_alg, num_samples=plan.n_todo, metric=study.sweep.metric,
                                          mode=study.sweep.mode, max_concurrent_trials=self.max_concurrent)
        else:
            kept, rest = packing.reuse_previous(plan.results_dir, run_todo, {t["trial_id"]: t for t in every},
                                                lambda pid: bool(checkpoints.candidates(plan.storage, pid)))
            self.slots = trial_slots(study, self.max_concurrent)
            packs = kept + packing.make_packs(rest, study.sweep.pack, self.slots)
            packing.record(plan.results_dir, packs)
            log.info("phase: %s: %d trials in %d packs start at %.1f s", name, len(run_todo), len(packs),
                     time.perf_counter() - self.t0)
            if len(packs) < len(run_todo):
                self.console.print(f"{name}: {len(run_todo)} trials in {len(packs)} packs")
            param_space = {"pack": tune.grid_search(packs), **common}
            tune_config = tune.TuneConfig(num_samples=1, max_concurrent_trials=self.max_concurrent, reuse_actors=True,
                                          trial_dirname_creator=lambda t: pack_id(t.config["pack"]),
                                          trial_name_creator=lambda t: pack_id(t.config["pack"]))
        run_config = tune.RunConfig(
            name=f"{name.replace(' ', '-').replace(':', '')}-{datetime.now().strftime('%Y%m%d-%H%M%S')}",
            storage_path=plan.storage,
            verbose=None if self.verbose else 0,
            callbacks=[self.writer],
            # retries are for lost workers and nodes: a trial whose code raised reports `failed` and ends
            failure_config=tune.FailureConfig(max_failures=study.resources.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        )
        res = {"cpu": study.resources.cpu, "gpu": study.resources.gpu}
        tune.Tuner(tune.with_resources(self.trainable, res), param_space=param_space, tune_config=tune_config,
                   run_config=run_config).fit()

    def record(self, stopped: bool, failure: str | None = None) -> None:
        """This run's measured wall clock (runs.json)."""
        results.record_run(self.plan.results_dir, {
            "started_at": self.started, "wall_seconds": round(time.perf_counter() - self.t0, 3),
            "trials_finished": sum(self.writer.counts.values()) if self.writer else 0, "slots": self.slots,
            "stopped": stopped, "ray_failure": failure})

    def ray_failed(self, why: str) -> None:
        """The watchdog's verdict: record, say how to resume, take an embedded Ray down, exit 1 (tuner.fit
        would hang forever)."""
        import ray

        if self.progress:
            self.progress.stop()
        self.writer.running.clear()
        if self.writer.loggers:  # what the trackers hold so far (os._exit skips their close)
            self.writer.loggers.flush()
        self.writer.write_progress(wall_seconds=time.perf_counter() - self.t0, ray_failure=why)
        self.record(True, why)
        log.error("Ray failed: %s", why)
        print(f"error: Ray failed: {why}. Finished trials are in {self.plan.results_dir}; run the same command "
              "again to resume the others from their checkpoints.", file=sys.stderr, flush=True)
        if self.embedded:  # take the rest of the embedded instance down with us
            with contextlib.suppress(Exception):
                ray._private.worker._global_node.kill_all_processes(check_alive=False, allow_graceful=False)
        os._exit(1)

    def summary(self, stopped: bool, resume_hint: str | None) -> dict:
        """Record the run, remove finished packs' checkpoints, print one line; counts by status."""
        writer, name = self.writer, self.plan.study.name
        counts = dict(writer.counts)
        unfinished = len(writer.running)
        writer.running.clear()
        writer.write_progress(wall_seconds=time.perf_counter() - self.t0)
        self.record(stopped)
        for pid in writer.finished_packs:  # checkpoints are only for resuming
            with contextlib.suppress(Exception):
                checkpoints.remove(self.plan.storage, pid)
        if stopped:
            counts["stopped"] = unfinished
            self.console.print(f"{name}: stopped with {sum(counts.values()) - unfinished} trial(s) finished in this "
                               f"run, {unfinished} unfinished (checkpointed); resume with: "
                               f"{resume_hint or 'the same command'}", soft_wrap=True)
            return counts
        self.console.print(f"{name}: {counts['ok']} ok, {counts['diverged']} diverged, {counts['failed']} failed "
                           f"in {time.perf_counter() - self.t0:.0f} s -> {self.plan.results_dir}")
        return counts


def progress_line(name: str, console):
    """The one progress line: trials done of all, ok / diverged / failed / running, elapsed < time left."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    # within 80 columns for studies of up to 9999 trials: name (16), bar (10), done/all, counts, elapsed<left
    short = name if len(name) <= 16 else name[:15] + "~"
    return Progress(TextColumn(f"[bold]{short}"), BarColumn(bar_width=10), MofNCompleteColumn(),
                    TextColumn("ok {task.fields[ok]} div {task.fields[diverged]} fail {task.fields[failed]} "
                               "run {task.fields[running]}"),
                    TimeElapsedColumn(), TextColumn("<", style="progress.elapsed"), TimeRemainingColumn(),
                    console=console)
