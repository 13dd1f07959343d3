"""ganbench from Python (notebooks, scripts): the same code paths as the `ganbench` command line.

    from bench import api

    study = api.load_study("studies/quickstart.yaml", ["train.steps=200", "sweep.axes.seed=[0, 1]"])
    out = api.run(study, "results/quickstart_small")       # = ganbench run ... --results ...
    trials, curves = api.load_results(out)                 # pandas DataFrames (trials.parquet, curves)
    html = api.report(out)                                 # = ganbench report ...; the report.html path

`load_study`, `run` and `load_results` are also importable from `bench` itself (`bench.load_study`, ...);
`report` only from here (`bench.report` is the report package). Nothing here imports torch or Ray until
`run` is called. docs/loggers.md has the example in full (docs/examples/api_example.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

__all__ = ["load_study", "run", "load_results", "report", "log_results"]


def load_study(path: str | Path, overrides: Iterable[str] = ()):
    """The study of a YAML file, with `overrides` applied (each "dot.path=value", the value YAML, as
    `ganbench run --set`), validated and expanded as `ganbench validate` does. Returns a bench.schema.Study;
    raises bench.study.StudyError (one line naming the file and the field) for bad input."""
    from bench.study import expand
    from bench.study import load_study as _load

    study = _load(Path(path), list(overrides))
    expand(study, file=Path(path))
    return study


def run(study_or_path, results: str | Path | None = None, overrides: Iterable[str] = (), *,
        address: str | None = None, max_concurrent: int | None = None, storage: str | None = None,
        loggers: Iterable[str] | None = None, build_report: bool = True, num_cpus: int | None = None,
        progress: bool = True) -> Path:
    """Run a study on Ray Tune as `ganbench run` does and return its results folder.

    `study_or_path`: a Study (load_study) or a YAML file (then `overrides` apply, as --set); `results`: the
    folder (default results/<study name>, relative to the working directory); `address`: join a Ray cluster
    ('auto' or host:port) instead of starting an embedded one; `storage`: where checkpoints go (a path every
    node reaches or a pyarrow URI; the study's name is appended, as the CLI does); `loggers`: trackers fed
    each configuration's rows ("tensorboard", "mlflow", "wandb"; default GANBENCH_LOGGERS, docs/loggers.md);
    `build_report`: build report.html / report.md when done; `num_cpus`: the embedded Ray's CPUs (default all).

    A rerun into the same folder runs only the trials not yet finished (and resumes packs from their
    checkpoints). Failed trials are rows with status `failed` and their error, not an exception; a run stopped
    by Ctrl-C returns the folder too (run again to resume). Raises bench.runner.RayFailure when Ray fails,
    bench.study.StudyError for bad input (an unknown logger or one whose library is missing included)."""
    from bench.runner import run_study

    if isinstance(study_or_path, (str, Path)):
        study = load_study(study_or_path, overrides)
    else:
        if overrides:
            raise ValueError("overrides apply to a study file; pass them to load_study with a Study")
        study = study_or_path
    out = Path(results) if results is not None else Path("results") / study.name
    counts = run_study(study, out, address=address, max_concurrent=max_concurrent, show_progress=progress,
                       num_cpus=num_cpus, storage=f"{storage.rstrip('/')}/{study.name}" if storage else None,
                       loggers=tuple(loggers) if loggers is not None else None)
    if build_report and counts.get("stopped") is None:
        report(out)
    return out


def load_results(path: str | Path):
    """(trials, curves) of a results folder as pandas DataFrames in their fixed column types: one row per
    trial (config columns, status, final.* / best.* metrics, ...) and one per evaluation (trial_id, step,
    losses loss_*, metrics, lambda, grid paths). Raises FileNotFoundError when nothing finished there yet."""
    from bench.results import load

    return load(path)


def report(path: str | Path | list, out: str | Path | None = None, link_images: bool = False) -> Path:
    """Build report.html and report.md of one results folder (or a list of folders compared in one report)
    into `out` (default: the first folder), as `ganbench report`; returns the report.html path."""
    from bench.report import build_report

    return Path(build_report(path if isinstance(path, (str, Path)) else list(path), out, link_images)["html"])


def log_results(path: str | Path, loggers: Iterable[str] | None = None) -> int:
    """Log a results folder's finished configurations (from its Parquet tables) into TensorBoard / MLflow /
    W&B, as if the study had run with those loggers: for studies run before they were turned on, or the
    published results/ folders. Returns how many configurations were logged (bench.loggers.export)."""
    from bench.loggers import export

    return export(path, tuple(loggers) if loggers is not None else None)
