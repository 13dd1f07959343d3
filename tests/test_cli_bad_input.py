"""Bad input at the command line: exit 2, one line on stderr naming the file and the field, nothing written.

`ganbench run` must reject a bad study before it starts Ray, so these run in well under a second each."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GANBENCH = str(Path(sys.executable).parent / "ganbench")

OK = "name: bad\ntrain: {steps: 10, eval_every: 5}\n"

# name -> (study file text, or None for a missing file; extra args; field; start of the message)
CASES = {
    "missing-file": (None, [], "file", "no such study file"),
    "yaml-syntax": ("name: bad\ntrain: {steps: 10\n", [], "line 3, column 1", "YAML error: expected ',' or '}'"),
    "unknown-top-level": (OK + "stepz: 10\n", [], "stepz", "Extra inputs are not permitted"),
    "unknown-nested": ("name: bad\ntrain: {stepz: 10}\n", [], "train.stepz", "Extra inputs are not permitted"),
    "unknown-objective": ("name: bad\nvariant: {objective: foo}\n", [], "variant.objective",
                          "unknown objective 'foo' (known: hinge, lsgan, minimax, ns, r3gan, ragan, ralsgan, rpgan, wgan, wgan-gp)"),
    "unknown-transform": ("name: bad\ndataset: {name: domains, transform: blur}\n", [], "dataset.transform",
                          "unknown transform 'blur' (known: invert, rot90)"),
    "two-domain-structure-on-one-domain": ("name: bad\nmodel: {name: dcgan}\nvariant: {structure: cyclegan}\n", [],
                                           "dataset.name", "structure 'cyclegan' trains on domains, not ring8"),
    "zero-vocabulary": ("name: bad\ndataset: {name: oracle, vocab: 0}\nvariant: {structure: seqgan}\n", [],
                        "dataset.vocab", "Input should be greater than 0"),
    "negative-adaptation-weight": ("name: bad\ndataset: {name: domains}\nmodel: {name: dcgan}\n"
                                   "variant: {structure: dann, dann_lambda: -1}\n", [], "variant.dann_lambda",
                                   "Input should be greater than or equal to 0"),
    "wrong-type": ('name: bad\ntrain: {steps: "many"}\n', [], "train.steps", "Input should be a valid integer"),
    "negative-steps": ("name: bad\ntrain: {steps: -3}\n", [], "train.steps", "Input should be greater than 0"),
    "zero-steps": ("name: bad\ntrain: {steps: 0}\n", [], "train.steps", "Input should be greater than 0"),
    "empty-axis": (OK + "sweep: {axes: {seed: []}}\n", [], "sweep.axes.seed", "axis has no values"),
    "axis-not-a-field": (OK + "sweep: {axes: {variant.objectiv: [ns]}}\n", [], "sweep.axes.variant.objectiv",
                         "'variant.objectiv' is not a field of the trial config"),
    "lens-axis-without-lens": (OK + "variant: {lens: null}\nsweep: {axes: {variant.lens.K: [500]}}\n", [],
                               "sweep.axes.variant.lens.K", "'variant.lens' is null here"),
    "bad-value-in-a-case": (OK + "sweep:\n  cases:\n    - {variant.lens: null}\n"
                            "    - {variant.lens: {schedule: sine}, variant.lens.K: [500, -1]}\n", [],
                            "sweep.cases[1].variant.lens.K", "Input should be greater than 0"),
    "bad-value-in-a-zip": (OK + "sweep: {zip: [{variant.objective: [ns, wgan], train.steps: [10, 0]}]}\n", [],
                           "sweep.zip[0].train.steps", "Input should be greater than 0"),
    "python-tag": ('name: bad\nseed: !!python/object/apply:os.system ["echo hacked"]\n', [], "line 2, column 7",
                   "YAML error: could not determine a constructor for the tag"),
    "python-tag-side-effect": ('name: bad\nseed: !!python/object/apply:os.system ["touch pwned"]\n', [],
                               "line 2, column 7", "YAML error: could not determine a constructor"),
    # stabilizers (issue 25): an unknown penalty, a negative weight or sigma, consensus without simultaneous updates or
    # on a structure that does not expose its players' gradient field, a stabilizer the structure does not declare
    "unknown-penalty": (OK + "variant: {penalty: {r3: 1}}\n", [], "variant.penalty.r3", "Extra inputs are not permitted"),
    "negative-penalty": (OK + "variant: {penalty: {r1: -1}}\n", [], "variant.penalty.r1",
                         "Input should be greater than or equal to 0"),
    "negative-noise": (OK + "variant: {noise: {sigma: -0.1}}\n", [], "variant.noise.sigma",
                       "Input should be greater than or equal to 0"),
    "consensus-alternating": (OK + "variant: {penalty: {consensus: 1}}\n", [], "variant.penalty.consensus",
                              "consensus optimization takes both players' gradients at one point"),
    "consensus-on-cgan": ("name: bad\ndataset: {name: digits}\nmodel: {name: dcgan}\n"
                          "train: {steps: 10, eval_every: 5, updates: simultaneous}\n"
                          "variant: {structure: cgan, penalty: {consensus: 1}}\n", [], "variant.penalty.consensus",
                          "structure 'cgan' does not support consensus (its stabilizers: penalty)"),
    "noise-on-ali": ("name: bad\ndataset: {name: digits}\nmodel: {name: dcgan}\n"
                     "variant: {structure: ali, noise: {sigma: 0.1}}\n", [], "variant.noise",
                     "structure 'ali' does not support noise (its stabilizers: none)"),
    "spectral-on-encdec": ("name: bad\ndataset: {name: digits}\nmodel: {name: encdec, d_norm: spectral}\n"
                           "variant: {structure: ed//gan, task: inpaint}\n", [], "model.d_norm",
                           "structure 'ed//gan' does not support d_norm (its stabilizers: penalty)"),
    # a known image set whose files are absent (issue 26): where they are expected and how to get them
    "missing-data": ("name: bad\ndataset: {name: cifar10, data_root: /nonexistent/ganbench-data}\nmodel: {name: dcgan}\n"
                     "train: {steps: 10, eval_every: 5}\n", [], "dataset.name",
                     "cifar10: missing data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch, "
                     "batches.meta in /nonexistent/ganbench-data/cifar-10-batches-py; set dataset.data_root or "
                     "GANBENCH_DATA, or dataset.download: true"),
    "missing-mnist-in-a-case": ("name: bad\nmodel: {name: dcgan}\ntrain: {steps: 10, eval_every: 5}\n"
                                "dataset: {data_root: /nonexistent/ganbench-data}\n"
                                "sweep: {cases: [{dataset.name: digits}, {dataset.name: mnist}]}\n", [], "dataset.name",
                                "mnist: missing train-images-idx3-ubyte(.gz)"),
    "set-negative": (OK, ["--set", "train.steps=-5"], "train.steps",
                     "Input should be greater than 0 (from --set train.steps=-5)"),
    "set-no-equals": (OK, ["--set", "nokey"], "--set nokey", "expected key=value"),
    "set-python-tag": (OK, ["--set", "seed=!!python/object/apply:os.system [\"echo hacked\"]"], "--set seed",
                       "value is not valid YAML"),
}

# the study's question (issue 22): a scale that does not exist, a log scale on a metric that can be zero, a co-primary
# metric the trials do not record, a scale for a metric the question does not name. `ganbench validate` for each,
# `ganbench run` for one (the other run cases above show that run and validate share the checks).
QUESTION_CASES = {
    "question-unknown-scale": (OK + "question: {compare: variant.lens, metric: energy_distance, scale: cubic}\n",
                               [], "question.scale", "unknown scale 'cubic' (one of absolute, relative, log)"),
    "question-unknown-scale-per-metric": (OK + "question: {compare: variant.lens, metric: energy_distance, "
                                          "scale: {energy_distance: cubic}}\n", [], "question.scale",
                                          "unknown scale 'cubic'"),
    "question-log-energy-distance": (OK + "question: {compare: variant.lens, metric: energy_distance, scale: log}\n",
                                     [], "question.scale", "a log scale needs a strictly positive metric; "
                                                           "energy_distance can be zero or negative"),
    "question-log-modes-covered": (OK + "question: {compare: variant.lens, metric: energy_distance, co_primary: "
                                   "[modes_covered], scale: {energy_distance: relative, modes_covered: log}}\n", [],
                                   "question.scale.modes_covered", "a log scale needs a strictly positive metric; "
                                                                   "modes_covered can be zero or negative"),
    "question-co-primary-not-recorded": (OK + "question: {compare: variant.lens, metric: energy_distance, "
                                         "co_primary: [modes_covered, fid]}\n", [], "question.co_primary",
                                         "'fid' is not recorded by gan trials on ring8"),
    "question-metric-not-recorded": (OK + "question: {compare: variant.lens, metric: fid}\n", [], "question.metric",
                                     "'fid' is not recorded by gan trials on ring8"),
    "question-scale-of-another-metric": (OK + "question: {compare: variant.lens, metric: energy_distance, "
                                         "scale: {fid: absolute}}\n", [], "question.scale.fid",
                                         "'fid' is not one of the question's metrics"),
    "question-unknown-metric": (OK + "question: {compare: variant.lens, metric: energy_distance, "
                                "co_primary: [modes_coverd]}\n", [], "question.co_primary",
                                "unknown metric 'modes_coverd'"),
}


def ganbench(args, cwd):
    env = {**os.environ, "RAY_TMPDIR": str(cwd / "ray_tmp")}  # where Ray would put its session, were it started
    t0 = time.monotonic()
    p = subprocess.run([GANBENCH, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    return p, time.monotonic() - t0


def validate_in_process(args, cwd, monkeypatch):
    """`ganbench validate ...` through the real command-line app in this process (typer's CliRunner): the same code
    and exit code as the subprocess, without a ~1.5 s interpreter start per case; `run` cases stay subprocesses (they
    must show Ray is never started)."""
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from bench.cli import app

    monkeypatch.chdir(cwd)
    r = CliRunner().invoke(app, ["validate", *args])
    return SimpleNamespace(returncode=r.exit_code, stdout=r.stdout, stderr=r.stderr)


@pytest.fixture(params=sorted(CASES))
def case(request, tmp_path):
    text, extra, field, message = CASES[request.param]
    study = tmp_path / "study.yaml"
    if text is not None:
        study.write_text(text)
    return request.param, study, extra, field, message


def expect_bad_input(p, study, field, message, tmp_path):
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(f"error: {study}: {field}: {message}"), lines[0]
    assert p.stdout == ""
    assert "hacked" not in p.stdout + p.stderr.replace("echo hacked", "")
    assert not (tmp_path / "pwned").exists()
    assert sorted(x.name for x in tmp_path.iterdir()) == (["study.yaml"] if study.exists() else [])


@pytest.fixture(params=sorted(QUESTION_CASES))
def question_case(request, tmp_path):
    text, extra, field, message = QUESTION_CASES[request.param]
    study = tmp_path / "study.yaml"
    study.write_text(text)
    return request.param, study, extra, field, message


def test_validate_question(question_case, tmp_path, monkeypatch):
    name, study, extra, field, message = question_case
    p = validate_in_process([str(study), *extra], tmp_path, monkeypatch)
    expect_bad_input(p, study, field, message, tmp_path)


def test_run_fails_before_ray_on_a_bad_question(tmp_path):
    text, extra, field, message = QUESTION_CASES["question-co-primary-not-recorded"]
    study = tmp_path / "study.yaml"
    study.write_text(text)
    p, seconds = ganbench(["run", str(study), "--results", str(tmp_path / "res")], tmp_path)
    expect_bad_input(p, study, field, message, tmp_path)  # no res/, no ray_tmp/
    assert seconds < 15


def test_validate(case, tmp_path, monkeypatch):
    name, study, extra, field, message = case
    p = validate_in_process([str(study), *extra], tmp_path, monkeypatch)
    expect_bad_input(p, study, field, message, tmp_path)


# `run` shares validate's checks (load_study + expand): every case with --results, and one case of each kind also
# with the default results folder (each call is a ~2 s process: the product of all of them cost CI about 80 s)
DEFAULT_RESULTS = ("yaml-syntax", "unknown-nested", "bad-value-in-a-case", "set-negative", "missing-data",
                   "consensus-alternating", "missing-file")
RUN_CASES = [(c, "--results") for c in sorted(CASES)] + [(c, "default") for c in DEFAULT_RESULTS]


@pytest.mark.parametrize("name,results", RUN_CASES)
def test_run_fails_before_ray(name, results, tmp_path):
    text, extra, field, message = CASES[name]
    study = tmp_path / "study.yaml"
    if text is not None:
        study.write_text(text)
    args = ["run", str(study), *extra] + (["--results", str(tmp_path / "res")] if results == "--results" else [])
    p, seconds = ganbench(args, tmp_path)
    expect_bad_input(p, study, field, message, tmp_path)  # no res/, no results/, no ray_tmp/
    assert seconds < 15


def test_relative_path_is_named_as_given(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "s.yaml").write_text("name: bad\ntrain: {steps: 0}\n")
    p, _ = ganbench(["validate", "sub/s.yaml"], tmp_path)
    assert p.returncode == 2
    assert p.stderr == "error: sub/s.yaml: train.steps: Input should be greater than 0\n"


def test_empty_file_and_non_mapping(tmp_path):
    for text in ("", "- a\n- b\n", "just a string\n"):
        study = tmp_path / "study.yaml"
        study.write_text(text)
        p, _ = ganbench(["validate", str(study)], tmp_path)
        expect_bad_input(p, study, "document", "a study file must be a YAML mapping", tmp_path)


def test_validate_quickstart_ok(tmp_path):
    study = ROOT / "studies" / "quickstart.yaml"
    p, _ = ganbench(["validate", str(study)], tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert "12 trials" in p.stdout
    assert "4 variants" in p.stdout
    assert list(tmp_path.iterdir()) == []


def test_validate_with_set_ok(tmp_path):
    study = ROOT / "studies" / "quickstart.yaml"
    p, _ = ganbench(["validate", str(study), "--set", "sweep.axes.seed=[0]", "--set", "train.steps=200"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "4 trials" in p.stdout


def test_publish_refuses_what_it_must_not_replace(tmp_path):
    """publish: no results folder, DEST = SRC, or a DEST that holds something else: exit 2, one line, and
    neither folder touched."""
    src = tmp_path / "run"
    src.mkdir()
    p, _ = ganbench(["publish", str(src), str(tmp_path / "pub")], tmp_path)
    assert (p.returncode, p.stderr) == (2, f"error: {src}: trials.parquet: not found: not a ganbench results "
                                           "folder, or nothing finished yet\n")
    (src / "trials.parquet").write_bytes((ROOT / "results" / "relativistic_toy" / "trials.parquet").read_bytes())
    p, _ = ganbench(["publish", str(src), str(src)], tmp_path)
    assert p.returncode == 2 and p.stderr.startswith(f"error: {src}: DEST: is SRC"), p.stderr
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    p, _ = ganbench(["publish", str(src), str(other)], tmp_path)
    assert p.returncode == 2 and p.stderr.startswith(f"error: {other}: DEST: exists and is not a results folder")
    assert len(p.stderr.splitlines()) == 1
    assert [f.name for f in other.iterdir()] == ["mine.txt"] and [f.name for f in src.iterdir()] == ["trials.parquet"]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["notes", "run"]  # no temporary folder left


def test_validate_a_question_with_co_primary_metrics_and_scales_ok(tmp_path):
    """A question block like the quickstart's (co-primary metrics, a scale per metric) is accepted."""
    study = tmp_path / "study.yaml"
    study.write_text(OK + "question: {compare: variant.lens, metric: energy_distance, co_primary: [modes_covered, "
                     "hq_fraction, mode_kl], secondary: [], scale: {energy_distance: relative, modes_covered: "
                     "absolute, hq_fraction: absolute, mode_kl: relative}}\n")
    p, _ = ganbench(["validate", str(study)], tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stderr == "" and "1 trials" in p.stdout
    assert sorted(x.name for x in tmp_path.iterdir()) == ["study.yaml"]


@pytest.mark.parametrize("command", ["status", "report", "nrds"])
def test_a_folder_that_is_not_a_results_folder_exits_2_naming_the_ones_inside(command, tmp_path):
    """status / report / nrds on a folder holding results folders (e.g. `results/`): exit 2, one line that names
    them; on an empty folder: exit 2 too (status used to print `0/0 done` and exit 0)."""
    parent = tmp_path / "all"
    (parent / "a_study").mkdir(parents=True)
    (parent / "a_study" / "study.yaml").write_text("name: a_study\n")
    (parent / "notes").mkdir()
    p, _ = ganbench([command, str(parent)], tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith(f"error: {parent}: results folder: not a ganbench results folder") and \
        f"the results folders in it: {parent / 'a_study'}" in p.stderr, p.stderr
    p, _ = ganbench([command, str(parent / "notes")], tmp_path)
    assert p.returncode == 2 and "none inside it either" in p.stderr, p.stderr
    if command != "status":  # a results folder with nothing finished yet: report and nrds say so
        p, _ = ganbench([command, str(parent / "a_study")], tmp_path)
        assert p.returncode == 2 and "no trial has finished yet" in p.stderr, p.stderr


def test_version_and_help_with_examples_and_exit_codes(tmp_path):
    from importlib.metadata import version

    p, _ = ganbench(["--version"], tmp_path)
    assert (p.returncode, p.stdout) == (0, f"ganbench {version('ganbench')}\n")
    p, _ = ganbench(["--help"], tmp_path)
    assert p.returncode == 0 and "ganbench run studies/quickstart.yaml" in p.stdout and "Exit codes: 0" in p.stdout


def test_an_unknown_tracker_fails_before_ray(tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text(OK)
    p, seconds = ganbench(["run", str(study), "--results", str(tmp_path / "res"), "--log", "tensorbored"], tmp_path)
    assert (p.returncode, p.stderr) == (2, "error: --log: tensorbored: unknown logger (choose from tensorboard, "
                                           "mlflow, wandb)\n")
    assert not (tmp_path / "res").exists() and not (tmp_path / "ray_tmp").exists() and seconds < 15
