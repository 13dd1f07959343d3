"""Opt-in trackers (bench.loggers, docs/loggers.md): TensorBoard, MLflow and W&B write one run per
configuration, read back here with each library's own reader: from rows of a real in-process training of a
pack of two configurations, and through the real Ray path (GANBENCH_LOGGERS + `ganbench run`)."""

import json
import math
import os
import struct
import subprocess
from pathlib import Path

import pytest

from bench import loggers, results
from conftest import GANBENCH, ROOT, digits_config, run_rows

ALL = ("tensorboard", "mlflow", "wandb")
pytestmark = pytest.mark.filterwarnings("ignore:.*noload.*")  # (MLflow's SQLAlchemy use)


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch, tmp_path):
    """W&B offline whatever the machine's login; its settings and cache in the test's folder."""
    for k in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_PROJECT", "MLFLOW_TRACKING_URI", loggers.ENV):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


# ----------------------------------------------------------------------------- readers
def tensorboard_runs(root: Path) -> dict:
    """{run folder: EventAccumulator} of <results>/tensorboard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = {}
    for d in sorted(p for p in (root / "tensorboard").iterdir() if p.is_dir()):
        acc = EventAccumulator(str(d), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
        acc.Reload()
        runs[d.name] = acc
    return runs


def mlflow_runs(root: Path, study: str) -> tuple:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(study)
    assert exp is not None, f"no MLflow experiment {study}"
    return client, {r.data.tags[loggers.TAG]: r for r in client.search_runs([exp.experiment_id])}


def wandb_records(path: Path) -> list:
    """The records of a W&B .wandb file: the LevelDB log format (a 7-byte ':W&B' header, then 32 KiB blocks
    of chunks, each with a 7-byte header: crc32, length, type 1 full / 2 first / 3 middle / 4 last) of
    protobuf `Record`s."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, out, part = path.read_bytes(), 32768, [], b""
    assert data[:4] == b":W&B"
    pos = 7
    while pos + 7 <= len(data):
        left = block - pos % block
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if left < 7 or (n == 0 and kind == 0):  # block trailer / padding
            pos += left
            continue
        part = (b"" if kind in (1, 2) else part) + data[pos + 7:pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(part)
            out.append(rec)
    return out


def wandb_runs(root: Path) -> dict:
    """{run id: {"name", "group", "config": {key: value}, "history": {step: {key: value}}, "summary": {...}}},
    merged over every offline run folder of <results>/wandb."""
    runs = {}
    for f in sorted((root / "wandb").glob("offline-run-*/run-*.wandb")):
        run = None
        for rec in wandb_records(f):
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                run = runs.setdefault(rec.run.run_id, {"history": {}, "summary": {}, "config": {}})
                run.update(name=rec.run.display_name, group=rec.run.run_group)
                run["config"].update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
            elif kind == "history":
                items = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item}
                run["history"].setdefault(rec.history.step.num, {}).update(items)
            elif kind == "summary":
                run["summary"].update({(i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                                       for i in rec.summary.update})
    return runs


def expected(rows: list[dict], tid: str) -> dict:
    """{step: scalars} a configuration's rows should give (what curves.parquet keeps)."""
    return {r["step"]: loggers.scalars(r) for r in rows if r["config_id"] == tid and r.get("status") != "diverged"}


def close(a, b) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)  # TensorBoard stores float32


def check_tensorboard(root: Path, want: dict[str, dict], grids: bool) -> None:
    runs = tensorboard_runs(root)
    assert sorted(runs) == sorted(want)  # one run per configuration, named by its trial id
    for tid, acc in runs.items():
        tags = acc.Tags()
        for step, values in want[tid].items():
            for k, v in values.items():
                got = {e.step: e.value for e in acc.Scalars(k)}
                assert close(got[step], v), (tid, k, step)
        for k in {k for v in want[tid].values() for k in v}:
            steps = [e.step for e in acc.Scalars(k)]
            assert len(steps) == len(set(steps)), f"{tid} {k}: a step logged twice: {steps}"
        assert {"loss_d", "loss_g", "lambda"} <= set(tags["scalars"])
        assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")
        if grids:
            assert {"grid_generated", "grid_real"} <= set(tags["images"])
            assert [e.step for e in acc.Images("grid_generated")] == sorted(want[tid])
            assert acc.Images("grid_generated")[0].width > 0


def check_mlflow(root: Path, study: str, want: dict[str, dict], configs: dict[str, dict]) -> None:
    client, runs = mlflow_runs(root, study)
    assert sorted(runs) == sorted(want)
    for tid, run in runs.items():
        assert run.info.status == "FINISHED" and run.data.tags["ganbench.status"] == "ok"
        p = run.data.params
        assert p["trial_id"] == tid and p["seed"] == str(configs[tid]["seed"])
        assert p["train.steps"] == str(configs[tid]["train"]["steps"]) and p["variant.lens.schedule"] == "sine"
        for k in ("loss_d", "lambda"):
            hist = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, k))
            assert hist == sorted((s, v[k]) for s, v in want[tid].items() if k in v), (tid, k)
        assert "final.loss_d" not in run.data.metrics  # final.* are metrics of the trials row


def check_wandb(root: Path, study: str, want: dict[str, dict]) -> None:
    runs = wandb_runs(root)
    assert sorted(runs) == sorted(f"{study}-{tid}" for tid in want)  # one run per configuration
    for tid, steps in want.items():
        run = runs[f"{study}-{tid}"]
        assert run["group"] == study and tid in run["name"]
        assert run["config"]["trial_id"] == tid and run["config"]["variant.lens.schedule"] == "sine"
        assert sorted(run["history"]) == sorted(steps)
        for step, values in steps.items():
            for k, v in values.items():
                assert close(run["history"][step][k], v), (tid, k, step)
        assert run["summary"]["status"] == "ok"


# ----------------------------------------------------------------------------- tests
def test_requested_names_and_missing_libraries(monkeypatch):
    assert loggers.requested(None) == ()
    monkeypatch.setenv(loggers.ENV, "TensorBoard, mlflow wandb,mlflow")
    assert loggers.requested(None) == ALL
    assert loggers.requested(["mlflow"]) == ("mlflow",)  # --log wins over the environment
    with pytest.raises(loggers.LoggerError, match=r"--log: neptune: unknown logger \(choose from tensorboard"):
        loggers.requested(["neptune"])
    real = loggers.importlib.util.find_spec
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda n, *a: None if n == "mlflow" else real(n, *a))
    with pytest.raises(loggers.LoggerError) as err:
        loggers.requested(None)
    assert str(err.value) == ("GANBENCH_LOGGERS: mlflow: the mlflow package is not installed: "
                              "pip install 'ganbench[loggers]' (or pip install mlflow)")
    from bench.study import StudyError

    assert isinstance(err.value, StudyError)  # the CLI's bad input: one line, exit 2


def test_unknown_logger_fails_before_ray(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text(MICRO)
    env = {**os.environ, loggers.ENV: "tensorboard,neptune"}
    p = subprocess.run([GANBENCH, "run", str(study), "--results", str(tmp_path / "res")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    assert p.stderr.strip().splitlines() == [
        "error: GANBENCH_LOGGERS: neptune: unknown logger (choose from tensorboard, mlflow, wandb)"]
    assert not (tmp_path / "res").exists()  # nothing started


def test_trackers_log_each_configuration_of_a_pack(tmp_path, one_thread):
    """A pack of two image configurations (DCGAN on digits, with the lens: losses, metrics, lambda and
    grids) trained in this process; its rows fed to the loggers as bench.runner's result writer does, then
    fed again as a restarted driver would replay them: nothing is logged twice. The same rows written as a
    results folder and exported from its Parquet tables give the same TensorBoard runs."""
    lens = {"lens": {"schedule": "sine", "K": 1000}}
    cfgs = [digits_config("gan", 4, 64, seed=s, variant=lens, train={"eval_every": 2}) for s in (0, 1)]
    for c in cfgs:
        c.update(study="packed", trial_id=f"t{c['seed']}")
    out = tmp_path / "res"
    rows = run_rows(cfgs, out)
    by_id = {c["trial_id"]: c for c in cfgs}
    want = {tid: expected(rows, tid) for tid in by_id}
    assert all(sorted(w) == [0, 2, 4] for w in want.values())
    assert all({"loss_d", "fid", "lambda"} <= set(want[tid][4]) for tid in want)

    def feed():
        with loggers.opened(ALL, out, "packed") as lg:
            for r in rows:
                cfg = by_id[r["config_id"]]
                lg.log(cfg, r)
                if r.get("final"):
                    own = [x for x in rows if x["config_id"] == cfg["trial_id"]]
                    lg.finish(cfg, results.rows_from_reports(cfg, own, root=out)[0])

    feed()
    check_tensorboard(out, want, grids=True)
    check_mlflow(out, "packed", want, by_id)
    check_wandb(out, "packed", want)
    assert json.loads((out / loggers.STATE).read_text()) == {n: {"t0": 4, "t1": 4} for n in ALL}

    feed()  # a restarted driver: the rows replayed from checkpoints are not logged again
    check_tensorboard(out, want, grids=True)
    check_mlflow(out, "packed", want, by_id)
    check_wandb(out, "packed", want)

    # The same rows as a results folder, exported afterwards (api.log_results).
    from bench import api

    folder = tmp_path / "folder"
    for tid, cfg in by_id.items():
        results.upsert(folder, *results.rows_from_reports(cfg, [r for r in rows if r["config_id"] == tid], root=out))
    assert api.log_results(folder, ["tensorboard"]) == 2
    scalars_only = {tid: {s: {k: v for k, v in vals.items() if k != "wall_seconds"} for s, vals in w.items()}
                    for tid, w in want.items()}
    check_tensorboard(folder, scalars_only, grids=False)  # (the grids' files stayed in `out`)


MICRO = """
name: logged
dataset: {name: ring8, std: 0.02}
model: {name: mlp, width: 16, depth: 2, z_dim: 2}
train: {steps: 40, batch_size: 64, eval_every: 20, eval_samples: 300}
variant: {objective: ns, lens: {schedule: sine, K: 1000}}
sweep:
  axes:
    seed: [0, 1]
  pack: 2
resources: {cpu: 1, gpu: 0}
"""


def test_ganbench_run_with_loggers_on_ray(tmp_path):
    """GANBENCH_LOGGERS through the real `ganbench run` on a local Ray: the two configurations of one
    Ray trial (a pack of 2) each get their own run in all three trackers, with the curves' values."""
    study = tmp_path / "logged.yaml"
    study.write_text(MICRO)
    out = tmp_path / "res"
    env = {**os.environ, loggers.ENV: "tensorboard,mlflow,wandb"}
    p = subprocess.run([GANBENCH, "run", str(study), "--results", str(out), "--no-report"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "logged: 2 ok, 0 diverged, 0 failed" in p.stderr
    trials, curves = results.load(out)
    assert trials["pack_size"].tolist() == [2, 2] and trials["pack_id"].nunique() == 1  # one Ray trial
    configs = {r["trial_id"]: json.loads(r["config"]) for r in trials.to_dict("records")}
    want = {tid: {int(r["step"]): loggers.scalars(r) for r in c.to_dict("records")}
            for tid, c in curves.groupby("trial_id")}
    assert all(sorted(w) == [0, 20, 40] for w in want.values())
    check_tensorboard(out, want, grids=False)
    check_mlflow(out, "logged", want, configs)
    check_wandb(out, "logged", want)
    assert "switched off" not in (out / "ganbench.log").read_text()  # no tracker failed


def test_a_failing_tracker_is_switched_off_not_the_study(tmp_path, monkeypatch, capsys):
    cfg = {"trial_id": "t", "study": "s"}
    monkeypatch.setattr(loggers, "params", lambda c: {"trial_id": c["trial_id"]})  # (no full config here)
    calls = []

    def scalars(self, tid, step, values):
        calls.append(step)
        if step == 10:
            raise OSError("disk full")

    monkeypatch.setattr(loggers.TensorBoard, "scalars", scalars)
    with loggers.opened(["tensorboard"], tmp_path, "s") as lg:
        for step in (0, 10, 20):
            lg.log(cfg, {"config_id": "t", "step": step, "loss_d": 1.0, "status": "running"})
        lg.finish(cfg, {"status": "ok"})
        assert not lg  # switched off
    assert calls == [0, 10]
    assert capsys.readouterr().err.strip() == ("warning: logger tensorboard failed (OSError: disk full); "
                                               "switched off for the rest of this run")
