"""Opt-in experiment trackers: TensorBoard, MLflow and Weights & Biases, one run per configuration.

Off by default. `ganbench run` (bench.runner.run_study's `loggers=`) or the environment variable
GANBENCH_LOGGERS=tensorboard,mlflow,wandb turns them on. They are fed on the driver, where each
configuration's rows arrive (bench.runner.ResultWriter), so a Ray trial that trains a pack of several
configurations still gives one tracker run per configuration, and the workers need none of these libraries.

  tensorboard  <results>/tensorboard/<trial_id>/   torch.utils.tensorboard event files: a scalar per loss,
               metric and the lens lambda at each evaluation step, the image grids, the flat config as
               hparams (the HParams tab) and the final status as text
  mlflow       <results>/mlruns/mlflow.db (+ artifacts/)  a SQLite tracking store (MLflow 3 refuses its old
               plain-file store); experiment = the study, one run per configuration (tag ganbench.trial_id),
               params = the flat config, metrics per step, grids as step images. MLFLOW_TRACKING_URI, when
               set, sends the runs to that tracking server or store instead
  wandb        <results>/wandb/   one run per configuration (id <study>-<trial_id>, group = the study, project
               WANDB_PROJECT or "ganbench"), config = the flat config; offline (`wandb sync` uploads later)
               when WANDB_MODE=offline or no API key is found (WANDB_API_KEY, or `wandb login`'s ~/.netrc)

Scalars carry the names of the curves.parquet columns (loss_d, energy_distance, lambda, ...); non-finite
values (a metric not computed at that step) are left out. A diverged configuration's last report (non-finite
losses) is not logged, as curves.parquet leaves it out; its status and diverged step are.

Resuming: a configuration keeps its run across Ray's retries and later `ganbench run`s (MLflow: found by its
tag; W&B: resumed by id; TensorBoard: the same folder); <results>/loggers.json keeps each tracker's last
logged step per configuration, so rows replayed from a checkpoint are not logged twice.

A tracker that cannot start, or raises while the study runs, is switched off for the rest of the run (one
warning line on the terminal, its traceback in ganbench.log); a study is never stopped by its trackers.
Importing this module imports none of them.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

from bench.metrics import INFO
from bench.study import StudyError

ENV = "GANBENCH_LOGGERS"
EXTRA = "loggers"  # pip install 'ganbench[loggers]'
NAMES = ("tensorboard", "mlflow", "wandb")
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}  # logger -> module it needs
STATE = "loggers.json"  # in the results folder: {logger: {trial_id: last step logged}}
TENSORBOARD, MLRUNS, WANDB = "tensorboard", "mlruns", "wandb"  # folders in the results folder
TAG = "ganbench.trial_id"
log = logging.getLogger("bench.loggers")


# ----------------------------------------------------------------------------- which loggers
def requested(loggers=None) -> tuple[str, ...]:
    """The loggers asked for: `loggers` (names, e.g. from `--log`), else GANBENCH_LOGGERS (comma- or
    space-separated); () when neither names any. Unknown names and missing libraries raise LoggerError
    (a one-line bad-input error, the CLI's exit 2), so a run fails before Ray starts."""
    source = "--log"
    names = [n for item in (loggers or ()) for n in re.split(r"[,\s]+", str(item))]
    if not any(names):
        source, names = ENV, re.split(r"[,\s]+", os.environ.get(ENV, ""))
    names = list(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    for n in names:
        if n not in NAMES:
            raise LoggerError(source, n, f"unknown logger (choose from {', '.join(NAMES)})")
        if importlib.util.find_spec(PACKAGES[n]) is None:
            raise LoggerError(source, n, f"the {PACKAGES[n]} package is not installed: "
                                         f"pip install 'ganbench[{EXTRA}]' (or pip install {PACKAGES[n]})")
    return tuple(names)


class LoggerError(StudyError):
    """Bad input: a logger that does not exist or whose library is missing (a StudyError: the CLI's exit 2,
    "error: GANBENCH_LOGGERS: mlflow: the mlflow package is not installed: pip install 'ganbench[loggers]' ...")."""


# ----------------------------------------------------------------------------- rows
def scalars(row: dict) -> dict[str, float]:
    """A row's loggable scalars: losses, metrics (and their _ema twins), lambda, the evaluator's accuracy,
    the configuration's wall seconds so far; finite numbers only."""
    out = {}
    for k, v in row.items():
        if not (k.startswith("loss_") or k in INFO or k in ("lambda", "evaluator_accuracy", "wall_seconds")
                or (k.endswith("_ema") and k[:-4] in INFO)):
            continue
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[k] = float(v)
    return out


def grids(row: dict) -> dict[str, str]:
    """{grid_<kind>: path relative to the artifact root} of the grids an evaluation saved."""
    return {k: v for k, v in row.items() if k.startswith("grid_") and isinstance(v, str) and v}


def params(config: dict) -> dict:
    """The flat config (every field as `section.field`, bench.schema.flat_config) plus the study's
    labels; values as plain scalars (lists and nulls as JSON text)."""
    from bench.schema import flat_config

    flat = {"study": config.get("study"), "trial_id": config["trial_id"], "variant": config.get("variant_label"),
            **flat_config(config)}
    return {k: v if isinstance(v, (int, float, str, bool)) else json.dumps(v) for k, v in flat.items()}


def _plain(v):
    """A value as a plain Python scalar; None for a missing one (None, NaN, pandas' NA)."""
    if v is None or type(v).__name__ in ("NAType", "NaTType"):
        return None
    v = v.item() if hasattr(v, "item") else v  # numpy scalars
    return None if isinstance(v, float) and not math.isfinite(v) else v


def summary(trial_row: dict) -> dict:
    """What a finished configuration's trials.parquet row says in short: status, its final metrics."""
    keep = ("status", "diverged_step", "error", "steps_done", "wall_seconds", "attempts")
    out = {k: _plain(v) for k, v in trial_row.items() if k in keep or k.startswith("final.")}
    return {k: v for k, v in out.items() if v is not None}


def _png(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ----------------------------------------------------------------------------- backends
class TensorBoard:
    name = TENSORBOARD

    def __init__(self, results_dir: Path, study: str):
        from torch.utils.tensorboard import SummaryWriter

        self.root, self.Writer = Path(results_dir) / TENSORBOARD, SummaryWriter
        self.writers, self.tags, self.params = {}, {}, {}

    def open(self, tid: str, config: dict) -> None:
        self.writers[tid] = self.Writer(log_dir=str(self.root / tid), flush_secs=10)
        self.tags[tid], self.params[tid] = set(), params(config)

    def scalars(self, tid: str, step: int, values: dict) -> None:
        w = self.writers[tid]
        for k, v in values.items():
            w.add_scalar(k, v, step)
        self.tags[tid] |= set(values)

    def image(self, tid: str, step: int, key: str, path: Path) -> None:
        self.writers[tid].add_image(key, _png(path), step, dataformats="HWC")

    def end(self, tid: str, status: str, info: dict) -> None:
        from torch.utils.tensorboard.summary import hparams

        w = self.writers.pop(tid)
        # the HParams tab: this run's config beside its scalars (written into the run itself, not the
        # sub-run SummaryWriter.add_hparams makes)
        hp = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in self.params.pop(tid).items()}
        for s in hparams(hp, {t: math.nan for t in sorted(self.tags.pop(tid))}):
            w.file_writer.add_summary(s)
        w.add_text("status", " ".join(f"**{k}**: {v}" for k, v in info.items()), info.get("steps_done") or 0)
        w.close()

    def flush(self) -> None:
        for w in self.writers.values():
            w.flush()

    def close(self) -> None:
        for w in self.writers.values():
            w.close()
        self.writers.clear()


class MLflow:
    name = "mlflow"

    def __init__(self, results_dir: Path, study: str):
        from mlflow.tracking import MlflowClient

        for name in ("mlflow", "alembic"):  # (its database set-up says so on the terminal)
            logging.getLogger(name).setLevel(logging.WARNING)

        root = (Path(results_dir) / MLRUNS).resolve()
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            root.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{root / 'mlflow.db'}"
        self.client, self.runs = MlflowClient(tracking_uri=uri), {}
        exp = self.client.get_experiment_by_name(study)
        if exp is not None:
            self.experiment = exp.experiment_id
        else:
            local = None if os.environ.get("MLFLOW_TRACKING_URI") else (root / "artifacts").as_uri()
            self.experiment = self.client.create_experiment(study, artifact_location=local)

    def open(self, tid: str, config: dict) -> None:
        from mlflow.entities import Param

        found = self.client.search_runs([self.experiment], filter_string=f"tags.`{TAG}` = '{tid}'", max_results=1)
        if found:  # a later run of the study (or a rerun of a failed configuration): the same MLflow run
            self.runs[tid] = found[0].info.run_id
            self.client.update_run(self.runs[tid], status="RUNNING")
            return
        name = f"{config.get('variant_label')} seed={config.get('seed')} {tid}"
        run = self.client.create_run(self.experiment, run_name=name, tags={
            TAG: tid, "ganbench.study": str(config.get("study")), "ganbench.variant": str(config.get("variant_label"))})
        self.runs[tid] = run.info.run_id
        ps = [Param(k, str(v)[:6000]) for k, v in params(config).items()]
        for i in range(0, len(ps), 100):  # (MLflow takes 100 params per batch)
            self.client.log_batch(self.runs[tid], params=ps[i:i + 100])

    def scalars(self, tid: str, step: int, values: dict) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.runs[tid], metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def image(self, tid: str, step: int, key: str, path: Path) -> None:
        self.client.log_image(self.runs[tid], _png(path), key=key, step=step)

    def end(self, tid: str, status: str, info: dict) -> None:
        from mlflow.entities import Metric, RunTag

        run, now = self.runs.pop(tid), int(time.time() * 1000)
        tags = [RunTag(f"ganbench.{k}", str(v)[:5000]) for k, v in info.items() if not k.startswith("final.")]
        finals = [Metric(k, float(v), now, int(info.get("steps_done") or 0)) for k, v in info.items()
                  if k.startswith("final.") and isinstance(v, (int, float))]
        self.client.log_batch(run, metrics=finals, tags=tags)
        self.client.set_terminated(run, status="FINISHED" if status in ("ok", "diverged") else "FAILED")

    def flush(self) -> None:
        pass

    def close(self) -> None:  # configurations still running (a stopped study): resumed by a later run
        for run in self.runs.values():
            self.client.set_terminated(run, status="KILLED")
        self.runs.clear()


def wandb_mode() -> str:
    """WANDB_MODE when set; else online when an API key is found, offline when not."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    import netrc
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        found = netrc.netrc(os.environ.get("NETRC")).authenticators(host) if host else None
    except (OSError, netrc.NetrcParseError):
        found = None
    return "online" if found and found[2] else "offline"


class WandB:
    name = WANDB

    def __init__(self, results_dir: Path, study: str):
        import wandb

        self.wandb, self.root, self.study, self.runs, self.steps = wandb, Path(results_dir).resolve(), study, {}, {}
        self.mode = wandb_mode()
        self.root.mkdir(parents=True, exist_ok=True)

    def open(self, tid: str, config: dict) -> None:
        w = self.wandb
        run_id = re.sub(r"[^A-Za-z0-9_-]", "_", f"{self.study}"[:48]) + f"-{tid}"
        settings = w.Settings(silent=True, console="off", disable_git=True, x_disable_stats=True, save_code=False,
                              disable_job_creation=True, x_save_requirements=False)
        self.runs[tid] = w.init(project=os.environ.get("WANDB_PROJECT", "ganbench"), dir=str(self.root), id=run_id,
                                name=f"{config.get('variant_label')} seed={config.get('seed')} {tid}",
                                group=self.study, job_type="trial", config=params(config), mode=self.mode,
                                resume="allow", reinit="create_new", settings=settings)
        self.steps[tid] = -1

    def scalars(self, tid: str, step: int, values: dict) -> None:
        self.runs[tid].log(values, step=step)
        self.steps[tid] = step

    def image(self, tid: str, step: int, key: str, path: Path) -> None:
        if step >= self.steps[tid]:  # W&B's steps only go up: a grid fetched late from --storage is left out
            self.runs[tid].log({key: self.wandb.Image(str(path))}, step=step)
            self.steps[tid] = step

    def end(self, tid: str, status: str, info: dict) -> None:
        run = self.runs.pop(tid)
        self.steps.pop(tid, None)
        for k, v in info.items():
            run.summary[k] = v
        run.finish(exit_code=0 if status in ("ok", "diverged") else 1)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        for run in self.runs.values():
            run.finish(exit_code=1)
        self.runs.clear()
        self.wandb.teardown()  # its service process


BACKENDS = {"tensorboard": TensorBoard, "mlflow": MLflow, "wandb": WandB}


# ----------------------------------------------------------------------------- the loggers of a run
class Loggers:
    """The requested trackers of one run of a study, fed one configuration's rows at a time.

    `log(config, row)` at every report of a configuration (the rows bench.trial reports); `finish(config,
    trial_row)` when it ends (its trials.parquet row: status, final metrics); `close()` at the end of the
    run. `roots`: where the rows' grid paths are relative to (the results folder, then an artifact root on a
    shared filesystem); a grid not there yet (object-store --storage: fetched when the configuration ends) is
    logged at `finish`."""

    def __init__(self, names, results_dir: str | Path, study: str, roots=()):
        self.results_dir = Path(results_dir)
        self.roots = [self.results_dir, *(Path(r) for r in roots if r and "://" not in str(r))]
        self.backends = []
        for n in names:
            try:
                self.backends.append(BACKENDS[n](self.results_dir, study))
            except Exception as e:  # noqa: BLE001 - e.g. an MLFLOW_TRACKING_URI that does not answer
                _warn(f"logger {n} could not start ({type(e).__name__}: {e}); the study runs without it")
        self.open_ids: dict[str, set[str]] = {b.name: set() for b in self.backends}
        self.pending: dict[str, list[tuple[int, str, str]]] = {}
        state = self.results_dir / STATE
        try:
            self.last = json.loads(state.read_text()) if state.exists() else {}
        except (OSError, ValueError):
            self.last = {}
        self.saved_at = time.monotonic()

    def __bool__(self) -> bool:
        return bool(self.backends)

    def _call(self, backend, what: str, *args) -> bool:
        try:
            getattr(backend, what)(*args)
            return True
        except Exception as e:  # noqa: BLE001 - a tracker never stops the study
            _warn(f"logger {backend.name} failed ({type(e).__name__}: {e}); switched off for the rest of this run")
            self.backends.remove(backend)
            return False

    def _ensure(self, backend, config: dict) -> bool:
        tid = config["trial_id"]
        if tid in self.open_ids[backend.name]:
            return True
        if not self._call(backend, "open", tid, config):
            return False
        self.open_ids[backend.name].add(tid)
        return True

    def _path(self, rel: str) -> Path | None:
        return next((r / rel for r in self.roots if (r / rel).is_file()), None)

    def log(self, config: dict, row: dict) -> None:
        """One report of one configuration: its scalars and grids at its step, in every tracker that has not
        logged that step of it yet. A diverged or failed report is not logged (its status is, at finish)."""
        step = _plain(row.get("step"))
        if step is None or row.get("status") in ("diverged", "failed"):
            return
        tid, values, step = config["trial_id"], scalars(row), int(step)
        images = {key: (rel, self._path(rel)) for key, rel in grids(row).items()}
        todo = [b for b in self.backends if step > self.last.setdefault(b.name, {}).get(tid, -1)]
        if todo:
            late = [(step, key, rel) for key, (rel, path) in images.items() if path is None]
            self.pending.setdefault(tid, []).extend(late)
        for b in todo:
            if not self._ensure(b, config) or (values and not self._call(b, "scalars", tid, step, values)):
                continue
            for key, (rel, path) in images.items():
                if path is not None and not self._call(b, "image", tid, step, key, path):
                    break
            self.last[b.name][tid] = step
        if time.monotonic() - self.saved_at > 30:
            self.save()

    def finish(self, config: dict, trial_row: dict) -> None:
        """The configuration ended: grids fetched at its end, its status and final metrics; its run closed."""
        tid, info = config["trial_id"], summary(trial_row)
        late = [(s, k, self._path(rel)) for s, k, rel in self.pending.pop(tid, [])]
        for b in list(self.backends):
            if not self._ensure(b, config):
                continue
            for step, key, path in late:
                if path is not None and not self._call(b, "image", tid, step, key, path):
                    break
            else:
                self._call(b, "end", tid, trial_row.get("status", "failed"), info)
            self.open_ids.get(b.name, set()).discard(tid)
        self.save()

    def flush(self) -> None:
        for b in list(self.backends):
            self._call(b, "flush")
        self.save()

    def save(self) -> None:
        from bench.results import write_text

        self.saved_at = time.monotonic()
        try:
            write_text(json.dumps(self.last, indent=0, sort_keys=True), self.results_dir / STATE)
        except OSError as e:
            log.error("could not write %s: %s", self.results_dir / STATE, e)

    def close(self) -> None:
        for b in list(self.backends):
            self._call(b, "close")
        self.save()


def _warn(text: str) -> None:
    """One line on the terminal, and the traceback (if any) in ganbench.log."""
    import sys

    log.error(text, exc_info=sys.exc_info()[0] is not None)
    print(f"warning: {' '.join(text.split())[:300]}", file=sys.stderr, flush=True)


@contextmanager
def opened(names, results_dir: str | Path, study: str, roots=()):
    """Loggers for the duration of a run (None when none is asked for); closed at the end, whatever happens."""
    if not names:
        yield None
        return
    lg = Loggers(names, results_dir, study, roots)
    try:
        yield lg
    finally:
        lg.close()


def export(results_dir: str | Path, names=None) -> int:
    """Log a results folder's finished configurations from its Parquet tables (curves, trials) into the
    trackers: studies run before the trackers were turned on, or the published results/ folders. Each
    configuration's steps already logged (loggers.json) are skipped. Returns the configurations logged."""
    from bench import results

    names = requested(names)
    results_dir = Path(results_dir)
    trials, curves = results.load(results_dir)
    by_trial = {tid: c.sort_values("step") for tid, c in curves.groupby("trial_id")} if not curves.empty else {}
    study = str(trials["study"].iloc[0]) if len(trials) else results_dir.name
    done = 0
    with opened(names, results_dir, study) as lg:
        for row in trials.to_dict("records"):
            if row.get("status") not in results.FINISHED + ("failed",):
                continue
            config = {**json.loads(row["config"]), "study": row["study"], "trial_id": row["trial_id"],
                      "variant_label": row.get("variant")}
            curve = by_trial.get(row["trial_id"])
            for r in curve.to_dict("records") if curve is not None else []:
                lg.log(config, {k: v for k, v in r.items() if _plain(v) is not None})
            lg.finish(config, row)
            done += 1
    return done
