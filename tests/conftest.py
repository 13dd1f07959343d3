import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GANBENCH = str(Path(sys.executable).parent / "ganbench")

os.environ.setdefault("PYTHONHASHSEED", "0")


@pytest.fixture
def tiny_config():
    """A toy trial small enough to train in about a second."""
    from bench.schema import TrialConfig

    def make(**over):
        base = {"train": {"steps": 100, "eval_every": 50, "batch_size": 64, "eval_samples": 500},
                "model": {"width": 32}}
        for k, v in over.items():
            base.setdefault(k, {}).update(v) if isinstance(v, dict) else base.__setitem__(k, v)
        cfg = TrialConfig.model_validate(base).model_dump(mode="json")
        return {**cfg, "study": "test", "trial_id": "t", "variant_label": cfg["variant"]["objective"]}

    return make


def run_rows(cfg: dict | list[dict], artifacts=None) -> list[dict]:
    """Every row a trial (or a pack of configurations) reports, trained in this process (no Ray);
    artifacts go to `artifacts` (default: a new temporary folder)."""
    import tempfile

    from bench.trial import run_trial

    rows = []
    run_trial(cfg, rows.append, artifacts or tempfile.mkdtemp(prefix="ganbench-test-"))
    return rows


def without_wall(rows: list[dict]) -> list[dict]:
    """Rows minus wall-clock time, the one field two identical runs may differ in."""
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "pack_wall_seconds")} for r in rows]


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (bit-for-bit comparisons; restored afterwards)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def trained(cfg: dict, root) -> tuple[list[dict], dict]:
    """A short training on one thread that must end ok with finite losses and FID: (rows, last row)."""
    import math

    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = run_rows(cfg, root)
    finally:
        torch.set_num_threads(n)
    last = rows[-1]
    assert last["status"] == "ok", last.get("error")
    assert all(math.isfinite(last[k]) for k in last if k.startswith("loss_"))
    assert math.isfinite(last["fid"])
    return rows, last


def digits_config(structure: str, steps: int, eval_samples: int, **over) -> dict:
    """A small DCGAN-backbone trial of `structure` on digits at 16 x 16 (the zoo tests)."""
    from bench.schema import TrialConfig

    base = {"dataset": {"name": "digits", "image_size": 16},
            "model": {"name": "dcgan", "width": 16, "z_dim": 16},
            "train": {"steps": steps, "eval_every": steps, "batch_size": 64, "eval_samples": eval_samples, "lr": 1e-3},
            "variant": {"structure": structure}}
    for k, v in over.items():
        base.setdefault(k, {}).update(v) if isinstance(v, dict) else base.__setitem__(k, v)
    cfg = TrialConfig.model_validate(base).model_dump(mode="json")
    return {**cfg, "study": "test", "trial_id": f"{structure}-{cfg['seed']}", "variant_label": structure}


@pytest.fixture
def by_hand():
    """Statistics written out from their textbook definitions, for tests that check the report's numbers through
    a route other than the bench.stats call the report makes (issue 22): the Student t interval of a mean, the
    Wilson interval, Holm's adjustment, Brown-Forsythe as a one-way ANOVA of absolute deviations from the median,
    and the spread of true per-point means across an axis (seed noise taken out) from a two-way ANOVA."""
    import math
    from types import SimpleNamespace

    import numpy as np
    from scipy import optimize
    from scipy import stats as sps

    def t_interval(x, level=0.95):
        x = np.asarray(x, dtype=float)
        n = len(x)
        half = sps.t.ppf(1 - (1 - level) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
        return x.mean(), x.mean() - half, x.mean() + half

    def wilson(k, n, level=0.95):
        z = sps.norm.ppf(1 - (1 - level) / 2)
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return centre - half, centre + half

    def holm(ps):
        ps = np.asarray(ps, dtype=float)
        m = len(ps)
        out, running = np.empty(m), 0.0
        for rank, i in enumerate(np.argsort(ps)):
            running = max(running, min(1.0, (m - rank) * ps[i]))
            out[i] = running
        return out

    def brown_forsythe_p(a, b):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        return float(sps.f_oneway(np.abs(a - np.median(a)), np.abs(b - np.median(b))).pvalue)

    def true_spread(Y, level=0.95):
        """Y: seeds x axis points, every point run with the same seeds (a block design). The spread of the true
        point means: sqrt(max(0, var(point means) - MS_interaction / seeds)); interval: noncentral F(P - 1,
        (P - 1)(S - 1), lambda) inverted at the observed F = MS_points / MS_interaction, lambda = S (P - 1)
        tau^2 / sigma^2. Returns (estimate, lo, hi)."""
        Y = np.asarray(Y, dtype=float)
        S, P = Y.shape
        grand = Y.mean()
        ss_points = S * ((Y.mean(axis=0) - grand) ** 2).sum()
        ss_seeds = P * ((Y.mean(axis=1) - grand) ** 2).sum()
        ss_inter = ((Y - grand) ** 2).sum() - ss_points - ss_seeds
        d1, d2 = P - 1, (P - 1) * (S - 1)
        ms_points, mse = ss_points / d1, ss_inter / d2
        est = math.sqrt(max(0.0, ms_points / S - mse / S))
        F = ms_points / mse

        def lam(p):
            if sps.f.cdf(F, d1, d2) <= p:
                return 0.0
            hi = max(1.0, 2 * F * d1)
            while sps.ncf.cdf(F, d1, d2, hi) > p:
                hi *= 2
            return optimize.brentq(lambda x: sps.ncf.cdf(F, d1, d2, x) - p, 0.0, hi, xtol=1e-12 * hi, rtol=1e-10)

        a = (1 - level) / 2
        to_tau = mse / (S * d1)
        return est, math.sqrt(lam(1 - a) * to_tau), math.sqrt(lam(a) * to_tau)

    return SimpleNamespace(t_interval=t_interval, wilson=wilson, holm=holm, brown_forsythe_p=brown_forsythe_p,
                           true_spread=true_spread)


def expand_text(tmp_path, text: str, name: str = "study.yaml") -> list[dict]:
    """The trials of a study file written from `text` (validated as `ganbench validate` does)."""
    from bench.study import expand, load_study

    path = tmp_path / name
    path.write_text(text)
    return expand(load_study(path))


TORCH_FREE = ("import sys; from bench.report import build_report; build_report({folder!r}, {out!r}); "
              "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('bench.trial', 'bench.nets', "
              "'bench.structures', 'bench.objectives', 'bench.metrics.toy'))]; assert not bad, bad")


def report_without_torch(folder, out) -> None:
    """Build the report of `folder` into `out` in a fresh process and fail if torch or model code was imported."""
    subprocess.run([sys.executable, "-c", TORCH_FREE.format(folder=str(folder), out=str(out))], check=True)


def train_into(out, study: str, small: dict, specs: list[dict], provenance: dict | None = None) -> list[dict]:
    """Train one trial per spec (each merged over `small`, `train` merged key by key) in this process and write its
    rows into the results folder `out` through the real row path; returns the trial configs."""
    from bench import results
    from bench.schema import TrialConfig, config_hash, variant_label
    from bench.trial import run_trial

    cfgs = []
    for spec in specs:
        raw = {**small, **spec, "train": {**small["train"], **spec.get("train", {})}}
        cfg = TrialConfig.model_validate(raw).model_dump(mode="json")
        cfg = {**cfg, "study": study, "trial_id": config_hash(cfg), "variant_label": variant_label(cfg)}
        reps = []
        run_trial(cfg, reps.append, out)
        results.upsert(out, *results.rows_from_reports(cfg, reps, provenance=provenance, root=out))
        cfgs.append(cfg)
    return cfgs


def load_shipped(path, overrides=()):
    """A shipped study file, loaded as `ganbench validate` would; where an image set's files are absent on this
    machine (the GPU studies' CIFAR-10 / MNIST), as it would load with `--set dataset.download=true` (not part of
    any trial id): the study's design is checked here, the data on the machine that runs it."""
    from bench.study import StudyError, load_study

    try:
        return load_study(path, list(overrides))
    except StudyError as e:
        if e.field != "dataset.name" or ": missing " not in e.message:
            raise
        return load_study(path, [*overrides, "dataset.download=true"])


# The end-to-end runs (Ray, the CLI as a subprocess) and the long trainings: `make test-fast` leaves them out for
# everyday work (`make test`, CI's, runs them all). Listed by node id prefix; a new heavy test belongs here.
E2E = (
    "tests/test_faults.py", "tests/test_distributed.py", "tests/test_ray_run.py", "tests/test_image_run.py",
    "tests/test_protocol.py", "tests/test_costs.py", "tests/test_docs_extending.py",
    "tests/test_published.py::test_published_reports_rebuild_from_their_parquet_files",
    "tests/test_nrds_step.py::test_nrds_cli", "tests/test_dirac.py::test_the_study_runs_on_ray",
    "tests/test_loggers.py::test_ganbench_run_with_loggers_on_ray", "tests/test_cli_bad_input.py::test_run_fails",
    "tests/test_leaderboard.py::test_report_of_several_folders", "tests/test_zoo.py", "tests/test_zoo2.py",
    "tests/test_contract.py::test_report_shows", "tests/test_metrics_images.py::test_two_processes",
    "tests/test_api.py::test_api_example_runs",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith(E2E):
            item.add_marker(pytest.mark.e2e)
