import math

import pandas as pd
import pyarrow.parquet as pq
import pytest

from bench import results
from bench.trial import run_trial


def _trial(tiny_config, root, **over):
    """A trial trained in this process, its artifacts under `root` (the results folder)."""
    cfg = tiny_config(**over)
    from bench.schema import config_hash

    cfg["trial_id"] = config_hash(cfg)
    reps = []
    run_trial(cfg, reps.append, root)
    return cfg, results.rows_from_reports(cfg, reps, provenance={"git_commit": "abc", "ray_version": "x"}, root=root)


def test_parquet_round_trip_and_no_duplicates(tmp_path, tiny_config):
    cfg, (row, curves, samples) = _trial(tiny_config, tmp_path)
    results.upsert(tmp_path, row, curves, samples)
    results.upsert(tmp_path, row, curves, samples)  # writing the same trial again replaces it
    trials, crv = results.load(tmp_path)
    assert len(trials) == 1 and len(crv) == 3 and list(crv["step"]) == [0, 50, 100]
    t = trials.iloc[0]
    assert t["trial_id"] == cfg["trial_id"] == t["config_hash"] and t["status"] == "ok"
    assert t["train.steps"] == 100 and t["variant.objective"] == "ns" and t["dataset.name"] == "ring8"
    assert pd.isna(t["variant.lens.K"])  # no lens: null lens columns
    assert t["final.energy_distance"] == crv["energy_distance"].iloc[-1]
    assert t["best.modes_covered"] == crv["modes_covered"].max()
    assert t["steps_done"] == 100 and t["evaluations"] == 3 and t["git_commit"] == "abc"
    assert set(results.load_samples(tmp_path)["kind"]) == {"real", "generated"}

    cfg2, rows2 = _trial(tiny_config, tmp_path, seed=1, variant={"lens": {"K": 50}})
    results.upsert(tmp_path, *rows2)
    trials, crv = results.load(tmp_path)
    assert len(trials) == 2 and len(crv) == 6 and trials["trial_id"].is_unique
    lensed = trials.set_index("trial_id").loc[cfg2["trial_id"]]
    assert lensed["variant.lens.K"] == 50 and lensed["variant.lens.schedule"] == "sine"
    assert results.finished_ids(tmp_path) == {cfg["trial_id"], cfg2["trial_id"]}


def test_diverged_trial_row(tmp_path, tiny_config):
    cfg, (row, curves, samples) = _trial(tiny_config, tmp_path, train={"optimizer": "sgd", "lr": 1e12},
                                         variant={"objective": "lsgan"})
    assert row["status"] == "diverged" and row["diverged_step"] is not None
    assert math.isnan(row["final.energy_distance"])  # a diverged run has no final model
    assert row["steps_done"] == row["diverged_step"]
    results.upsert(tmp_path, row, curves, samples)
    assert results.load(tmp_path)[0]["status"].tolist() == ["diverged"]


def test_failed_trial_is_a_row_and_is_retried(tmp_path, tiny_config):
    cfg = tiny_config()
    row, curves, samples = results.rows_from_reports(cfg, [], status="failed", error="boom")
    results.upsert(tmp_path, row, curves, samples)
    assert results.load(tmp_path)[0]["error"].tolist() == ["boom"]
    assert results.finished_ids(tmp_path) == set()  # failed trials are run again


def test_interrupted_write_keeps_the_previous_file(tmp_path, tiny_config, monkeypatch):
    _, rows = _trial(tiny_config, tmp_path)
    results.upsert(tmp_path, *rows)
    before = (tmp_path / results.TRIALS).read_bytes()

    def broken(table, where, **kw):
        open(where, "wb").write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    _, rows2 = _trial(tiny_config, tmp_path, seed=3)
    with pytest.raises(OSError):
        results.upsert(tmp_path, *rows2)
    assert (tmp_path / results.TRIALS).read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_load_of_a_folder_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="trials.parquet"):
        results.load(tmp_path)
