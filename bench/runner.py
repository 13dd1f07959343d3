"""Ray Tune wiring: start or join Ray, run the study's trials, stream their rows into Parquet.

Rows reach Parquet through a driver-side Tune callback, so results flow back over Ray and the
workers need no shared filesystem with the driver. Each finished trial is written at once (an
interrupted study keeps every trial that finished); a rerun skips trials already ok or diverged.
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

# Ray reads these at import: no per-trial JSON/CSV/TensorBoard loggers (our rows go to Parquet).
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables

from ray import tune  # noqa: E402

from bench import __version__, nrds_step, results
from bench.schema import Study, TrialConfig, config_hash, variant_label
from bench.study import expand, set_path


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


def ray_trainable(config: dict) -> None:
    from bench.trial import train_trial

    train_trial({**config, "pack": materialize(config)})


def _optuna_space(study: Study, base: dict) -> tuple[dict, object]:
    from ray.tune.search.optuna import OptunaSearch

    def space(v):
        if isinstance(v, list):
            return tune.choice(v)
        if v.dist == "choice":
            return tune.choice(v.values)
        return {"loguniform": tune.loguniform, "uniform": tune.uniform}.get(v.dist, lambda a, b: tune.randint(int(a), int(b) + 1))(v.low, v.high)

    sw = study.sweep
    param_space = {"base": base, "axes": {k: space(v) for k, v in sw.axes.items()}}
    return param_space, OptunaSearch(metric=sw.metric, mode=sw.mode, seed=sw.sample_seed)


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
        import hashlib

        results.write_text(old, results_dir / f"study-{hashlib.sha1(old.encode()).hexdigest()[:8]}.yaml")
    results.write_text(text, path)


# ----------------------------------------------------------------------------- the callback
class ResultWriter(tune.Callback):
    """Collects each configuration's reports and writes its rows when it ends; drives the progress line.
    A Ray trial trains a pack of configurations; each report names its configuration (`trial_id`)."""

    def __init__(self, results_dir: Path, meta: dict, total: int, provenance: dict, progress=None):
        self.results_dir, self.provenance, self.progress = results_dir, provenance, progress
        self.reports: dict[str, list[dict]] = {}
        self.packs: dict[str, list[dict]] = {}
        self.counts = {"ok": 0, "diverged": 0, "failed": 0}
        self.running: set[str] = set()
        self.meta = {**meta, "pid": os.getpid(), "host": socket.gethostname(),
                     "started_at": datetime.now(timezone.utc).isoformat()}
        self.task = progress.add_task("trials", total=total, running=0, **self.counts) if progress else None

    def __getstate__(self):  # Tune pickles its callbacks; the live progress bar stays behind
        return {**self.__dict__, "progress": None}

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
        for cfg in self._pack(trial):
            self.running.add(cfg["trial_id"])
            self.reports[cfg["trial_id"]] = []
        self._refresh()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        tid = result.get("config_id")  # ("trial_id" is Ray Tune's own id of the pack)
        if tid is None or tid not in self.running:
            return
        self.reports[tid].append(result)
        if result.get("final"):
            self._finish(next(c for c in self._pack(trial) if c["trial_id"] == tid))

    def _finish(self, cfg: dict, status=None, error=None):
        reports = self.reports.pop(cfg["trial_id"], [])
        host = {"hostname": reports[-1].get("hostname")} if reports else {}
        row, curves, samples = results.rows_from_reports(cfg, reports, status, error, {**self.provenance, **host},
                                                         root=self.results_dir)
        results.upsert(self.results_dir, row, curves, samples)
        self.counts[row["status"]] = self.counts.get(row["status"], 0) + 1
        self.running.discard(cfg["trial_id"])
        self._refresh()

    def _finish_pack(self, trial, status=None, error=None):
        for cfg in self._pack(trial):
            if cfg["trial_id"] in self.running:
                self._finish(cfg, status, error)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish_pack(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        err = trial.get_error()
        msg = str(err).strip().splitlines()[-1] if err else "trial raised (see Ray logs)"
        self._finish_pack(trial, status="failed", error=msg[:2000])


# ----------------------------------------------------------------------------- run
def start_ray(address: str | None, verbose: bool, num_cpus: int | None = None):
    import logging

    import ray

    if address:
        ray.init(address=address, logging_level=logging.INFO if verbose else logging.WARNING,
                 log_to_driver=verbose)
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
        yield
    finally:
        if started:
            import ray

            ray.shutdown()


def run_study(study: Study, results_dir: Path, address: str | None = None, max_concurrent: int | None = None,
              verbose: bool = False, show_progress: bool = True, num_cpus: int | None = None) -> dict:
    """Run every trial of the study not yet finished in results_dir. Returns counts by status."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    results_dir = Path(results_dir).resolve()
    trials = expand(study)
    optuna = study.sweep.method == "optuna"
    done = results.finished_ids(results_dir)
    todo = trials if optuna else [t for t in trials if t["trial_id"] not in done]
    console = Console(stderr=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    save_study_copy(study, results_dir)
    if not todo:
        console.print(f"{study.name}: all {len(trials)} trials already finished in {results_dir}")
        if nrds_step.has_ed_trials(trials):  # NRDS may still be stale: the nrds block changed, a crash before it
            stale = nrds_step.stale_groups(results_dir, study.nrds)
            if stale[0]:
                with ray_session(address, verbose, num_cpus):
                    nrds_step.stage(trials, results_dir, study.nrds, console.print, stale)
        return {"ok": 0, "diverged": 0, "failed": 0, "skipped": len(trials)}
    if done and not optuna:
        console.print(f"{study.name}: {len(trials) - len(todo)} of {len(trials)} trials already finished, running {len(todo)}")

    t0 = time.perf_counter()
    if not verbose:  # Tune's ResultGrid looks for the per-trial JSON logs we switch off; our rows are in Parquet
        import logging

        logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
        logging.getLogger("optuna").setLevel(logging.WARNING)
    with ray_session(address, verbose, num_cpus):
        import ray

        provenance = {"ray_version": ray.__version__, "ganbench_version": __version__, "git_commit": git_commit()}
        res = {"cpu": study.resources.cpu, "gpu": study.resources.gpu}
        if optuna:
            base = {**study.base_config(), "study": study.name, "resources": study.resources.model_dump()}
            param_space, search_alg = _optuna_space(study, base)
            param_space["artifacts"] = str(results_dir)
            tune_config = tune.TuneConfig(search_alg=search_alg, num_samples=len(todo), metric=study.sweep.metric,
                                          mode=study.sweep.mode, max_concurrent_trials=max_concurrent)
        else:
            param_space = {"pack": tune.grid_search([[t] for t in todo]), "artifacts": str(results_dir)}
            tune_config = tune.TuneConfig(num_samples=1, max_concurrent_trials=max_concurrent, reuse_actors=True,
                                          trial_dirname_creator=lambda t: t.config["pack"][0]["trial_id"],
                                          trial_name_creator=lambda t: t.config["pack"][0]["trial_id"])
        progress = None
        if show_progress and not verbose:
            progress = Progress(TextColumn(f"[bold]{study.name}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("running {task.fields[running]}  ok {task.fields[ok]}  "
                                           "diverged {task.fields[diverged]}  failed {task.fields[failed]}"),
                                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console)
        meta = {"study": study.name, "expected": [t["trial_id"] for t in trials]}
        writer = ResultWriter(results_dir, meta, len(todo), provenance, progress)
        run_config = tune.RunConfig(
            name=f"{study.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(results_dir / "ray"),
            verbose=None if verbose else 0,
            callbacks=[writer],
            failure_config=tune.FailureConfig(max_failures=0),
        )
        tuner = tune.Tuner(tune.with_resources(ray_trainable, res), param_space=param_space,
                           tune_config=tune_config, run_config=run_config)
        if progress:
            with progress:
                tuner.fit()
        else:
            tuner.fit()
        nrds_step.stage(trials, results_dir, study.nrds, console.print)  # the study's second stage
    counts = dict(writer.counts)
    writer.running.clear()
    writer.write_progress(wall_seconds=time.perf_counter() - t0)
    console.print(f"{study.name}: {counts['ok']} ok, {counts['diverged']} diverged, {counts['failed']} failed "
                  f"in {time.perf_counter() - t0:.0f} s -> {results_dir}")
    return counts
