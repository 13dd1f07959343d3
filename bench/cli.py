"""The ganbench command line: validate, run, report, publish, status, nrds, replicate. Thin: parse, call, map errors to exit codes
(0 success, 2 bad input with one line naming the file and the field, 1 anything else)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from bench.study import StudyError

EPILOG = """Examples:

  ganbench validate studies/quickstart.yaml   check it, count its trials

  ganbench run studies/quickstart.yaml        train on a local Ray + report

  ganbench status results/quickstart          progress, from the disk

  ganbench report results/quickstart          rebuild the report

  ganbench report results/*                   compare studies

  ganbench replicate                          the seed papers' claims vs results/

Exit codes: 0 success; 2 bad input (one line naming the file and field,
before Ray starts, nothing written); 1 anything else. Docs: README.md, docs/."""

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="ganbench: how robust is GAN training to its hyperparameters?", epilog=EPILOG)


def _version(value: bool):
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"ganbench {version('ganbench')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("ganbench (not installed: pip install -e .)")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")):
    """ganbench: how robust is GAN training to its hyperparameters?"""


def _bad_input(e: StudyError):
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(2)


def _results_folder(d: Path, need_trials: bool) -> None:
    """Exit 2 with one line unless `d` is a ganbench results folder (with finished rows when `need_trials`); the line
    names the results folders found inside it, if any."""
    from bench.results import PROGRESS, STUDY, TRIALS

    def is_results(x: Path) -> bool:
        return any((x / f).exists() for f in (STUDY, TRIALS, PROGRESS))

    if not d.is_dir():
        _bad_input(StudyError(d, "results folder", "no such folder"))
    if not is_results(d):
        inside = sorted(str(x) for x in d.iterdir() if x.is_dir() and is_results(x)) if d.is_dir() else []
        hint = f"; the results folders in it: {', '.join(inside[:8])}{' ...' if len(inside) > 8 else ''}" if inside \
            else "; none inside it either"
        _bad_input(StudyError(d, "results folder", f"not a ganbench results folder (no {STUDY}, {TRIALS} or "
                                                   f"{PROGRESS}){hint}"))
    if need_trials and not (d / TRIALS).exists():
        _bad_input(StudyError(d, TRIALS, "not found: no trial has finished yet (ganbench status shows progress)"))


@app.command()
def validate(study: Path = typer.Argument(..., help="study YAML file"),
             set_: List[str] = typer.Option([], "--set", help="override a field: key=value (dot path)")):
    """Check a study file and print how many trials it expands to."""
    from bench.study import expand, load_study

    try:
        s = load_study(study, set_)
        trials = expand(s, file=study)
    except StudyError as e:
        _bad_input(e)
    if s.sweep.method == "optuna":
        typer.echo(f"{study}: ok: study '{s.name}' runs {len(trials)} trials chosen adaptively by Optuna "
                   f"over {', '.join(s.sweep.axes)}")
        return
    variants = sorted({t["variant_label"] for t in trials})
    if s.sweep.variants is not None:  # the two-stage random protocol
        from bench.study import expected_retrain, retrain_metric

        line = (f"{study}: ok: study '{s.name}' expands to {len(trials)} stage-1 trials "
                f"({len(variants)} variants x {s.sweep.num_samples} points")
        r = s.sweep.retrain
        if r is not None:
            line += (f"); stage 2: up to {expected_retrain(s, trials)} more (the best {r.top} of each variant by final "
                     f"{'/'.join(retrain_metric(s))} x seeds {r.seeds})")
        else:
            line += ")"
        typer.echo(f"{line}; variants: {', '.join(variants)}")
        return
    typer.echo(f"{study}: ok: study '{s.name}' expands to {len(trials)} trials; "
               f"{len(variants)} variants: {', '.join(variants)}")


@app.command()
def run(study: Path = typer.Argument(..., help="study YAML file"),
        results: Optional[Path] = typer.Option(None, "--results", help="results folder (default results/<study name>)"),
        address: Optional[str] = typer.Option(None, "--address", help="join a Ray cluster: 'auto' or host:port "
                                              "(default: start an embedded local Ray)"),
        max_concurrent: Optional[int] = typer.Option(None, "--max-concurrent", min=1, help="trials at once"),
        storage: Optional[str] = typer.Option(None, "--storage", help="where checkpoints go: a path every node "
                                              "can reach or a pyarrow URI such as s3://bucket/prefix (default: "
                                              "RESULTS/ray, enough on one machine)"),
        set_: List[str] = typer.Option([], "--set", help="override a field: key=value (dot path), repeatable"),
        report: bool = typer.Option(True, "--report/--no-report", help="build the report when done"),
        log: List[str] = typer.Option([], "--log", help="also log each configuration to a tracker: tensorboard, "
                                      "mlflow or wandb (repeatable; default: $GANBENCH_LOGGERS; docs/loggers.md)"),
        verbose: bool = typer.Option(False, "--verbose", help="show Ray's own output instead of the progress line")):
    """Run a study on Ray Tune; rows land in RESULTS as Parquet, then the report is built."""
    from bench.study import expand, load_study

    try:
        s = load_study(study, set_)
        expand(s, file=study)
    except StudyError as e:
        _bad_input(e)
    from bench.runner import RayFailure, run_study

    out = results or Path("results") / s.name
    hint = " ".join(["ganbench run", str(study), "--results", str(out), *(f"--set {o}" for o in set_),
                     *(["--address", address] if address else []), *(["--storage", storage] if storage else []),
                     *(f"--log {name}" for name in log)])
    try:
        counts = run_study(s, out, address=address, max_concurrent=max_concurrent, verbose=verbose,
                           storage=f"{storage.rstrip('/')}/{s.name}" if storage else None, resume_hint=hint,
                           loggers=log or None)
    except StudyError as e:  # an unknown tracker or its missing library: before Ray starts
        _bad_input(e)
    except RayFailure as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1)
    if counts.get("stopped") is not None:
        raise typer.Exit(130)
    if report:
        _build_report([out], out)
    if counts.get("failed"):
        typer.echo(f"error: {counts['failed']} trial(s) failed; see the error column of {out / 'trials.parquet'}",
                   err=True)
        raise typer.Exit(1)


def _build_report(dirs: list[Path], out: Path, link_images: bool = False):
    from bench.report import build_report

    paths = build_report(list(dirs), out, link_images)
    typer.echo(f"report: {paths['html']}  {paths['md']}")


@app.command()
def report(results_dirs: List[Path] = typer.Argument(..., help="results folder(s)"),
           out: Optional[Path] = typer.Option(None, "--out", help="where to write the report (default: the folder; "
                                                                   "several: <their parent>/comparison)"),
           link_images: bool = typer.Option(False, "--link-images", help="report.html links figures/*.png "
                                            "instead of inlining them (half the size; used for results/)")):
    """(Re)build report.html and report.md from the Parquet files alone; several folders: one report
    comparing the studies, opening with the robustness leaderboard (also printed here)."""
    from bench.results import TRIALS

    dirs = list(results_dirs)
    if len(dirs) > 1:  # `ganbench report results/*`: what is not a results folder is skipped, and said
        for d in [d for d in dirs if not (d / TRIALS).exists()]:
            typer.echo(f"skipped {d}: no {TRIALS}", err=True)
        dirs = [d for d in dirs if (d / TRIALS).exists()] or dirs[:1]
    for d in dirs:
        _results_folder(d, need_trials=True)
    _build_report(dirs, out or (dirs[0] if len(dirs) == 1 else dirs[0].resolve().parent / "comparison"), link_images)
    if len(dirs) > 1:
        from bench.report import leaderboard

        typer.echo("\n".join(leaderboard.lines(dirs)))


@app.command()
def publish(src: Path = typer.Argument(..., help="a finished results folder (only read)"),
            dest: Path = typer.Argument(..., help="where the trimmed copy goes, e.g. results/<study> "
                                        "(an earlier published copy there is replaced whole)")):
    """A finished results folder as the small copy to commit: tables, study file, report (figures linked),
    the grids the report draws; no checkpoints, ED outputs or logs."""
    from bench.publish import publish as publish_folder

    try:
        got = publish_folder(src, dest)
    except StudyError as e:
        _bad_input(e)
    typer.echo(f"published {src} -> {dest}: {got['finished']}/{got['expected']} trials finished, "
               f"{got['grids']} grids, {got['bytes'] / 2**20:.1f} MiB")


@app.command()
def status(results_dir: Path = typer.Argument(..., help="results folder")):
    """Trials done / running / failed / diverged, from what is on disk."""
    from bench.status import status_line

    _results_folder(results_dir, need_trials=False)
    try:
        typer.echo(status_line(results_dir))
    except FileNotFoundError as e:
        _bad_input(StudyError(results_dir, "results folder", str(e)))


@app.command()
def nrds(results_dir: Path = typer.Argument(..., help="results folder"),
         address: Optional[str] = typer.Option(None, "--address", help="run the groups as Ray tasks on this "
                                               "cluster: 'auto' or host:port (default: here, one by one)"),
         force: bool = typer.Option(False, "--force", help="recompute groups whose trials and outputs are unchanged")):
    """(Re)compute the study-level NRDS of the ED-structure trials from disk into nrds.parquet."""
    from bench.results import TRIALS

    _results_folder(results_dir, need_trials=True)
    from bench.nrds_step import NRDS, run_nrds

    if address:
        from bench.runner import start_ray

        start_ray(address, verbose=False)
    counts = run_nrds(results_dir, use_ray=bool(address), force=force, log=lambda m: typer.echo(m, err=True))
    typer.echo(f"nrds: {counts['groups']} group(s): {counts['scored']} scored, {counts['skipped']} unchanged, "
               f"{counts['failed']} failed -> {results_dir / NRDS}")
    if counts["failed"]:
        raise typer.Exit(1)


@app.command()
def replicate(claims: Path = typer.Option(Path("results/claims.yaml"), "--claims", help="the claims data file"),
              results_root: Path = typer.Option(Path("results"), "--results", help="the published studies' folder"),
              out: Optional[Path] = typer.Option(None, "--out", help="the ledger (default: <results>/REPLICATION.md)")):
    """Build the replication ledger: every claim of the seed papers against the committed rows, each with its
    setting, number, 95 % interval and a verdict computed from the interval."""
    from bench.replicate import build

    try:
        path, counts = build(claims, results_root, out)
    except StudyError as e:
        _bad_input(e)
    typer.echo(f"ledger: {path}: " + "; ".join(f"{n} {v}" for v, n in counts.items()))


def main():
    try:
        app()
    except StudyError as e:  # raised outside a command's own handling
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
