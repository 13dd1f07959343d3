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


def test_two_results_folders_concatenate_in_polars_and_duckdb(tmp_path, tiny_config):
    """One fixed Arrow schema per table: folders of different trials (no lens / a lens, ok / diverged,
    all-null columns in one and not the other) read as one table by other tools, with no cast."""
    import duckdb
    import polars as pl
    import pyarrow as pa

    a, b = tmp_path / "a", tmp_path / "b"
    results.upsert(a, *_trial(tiny_config, a)[1])
    results.upsert(b, *_trial(tiny_config, b, seed=1, variant={"lens": {"K": 50}})[1])
    results.upsert(b, *_trial(tiny_config, b, train={"optimizer": "sgd", "lr": 1e12}, variant={"objective": "lsgan"})[1])
    for table in (results.TRIALS,):
        sa, sb = pq.read_schema(a / table), pq.read_schema(b / table)
        assert sa.equals(sb, check_metadata=False)
        assert not [f.name for f in sa if pa.types.is_null(f.type)]
    trials = pl.concat([pl.read_parquet(a / results.TRIALS), pl.read_parquet(b / results.TRIALS)])
    assert trials.height == 3 and set(trials["schema_version"]) == {results.SCHEMA_VERSION}
    assert trials["status"].to_list().count("diverged") == 1
    lazy = pl.scan_parquet([a / results.TRIALS, b / results.TRIALS]).select("trial_id", "final.modes_covered").collect()
    assert lazy.height == 3 and lazy["final.modes_covered"].dtype == pl.Float64
    curves = pl.scan_parquet([str(d / "curves" / "*.parquet") for d in (a, b)]).collect()
    rows = {tid: n for d in (a, b) for tid, n in results.load(d)[1].groupby("trial_id").size().items()}
    assert curves.height == sum(rows.values()) >= 7 and curves["trial_id"].n_unique() == 3

    con = duckdb.connect()
    n, = con.execute(f"SELECT count(*) FROM read_parquet(['{a / results.TRIALS}', '{b / results.TRIALS}'])").fetchone()
    assert n == 3
    got = con.execute(f"SELECT trial_id, count(*) FROM read_parquet('{tmp_path}/*/curves/*.parquet') "
                      "GROUP BY trial_id").fetchall()
    assert dict(got) == rows


def test_compact_keeps_every_row_and_a_rerun_replaces_its_own(tmp_path, tiny_config):
    """results.compact (published folders): one curves.parquet / samples.parquet, the same rows; a trial
    written again afterwards replaces its rows instead of duplicating them."""
    cfg, rows = _trial(tiny_config, tmp_path)
    results.upsert(tmp_path, *rows)
    cfg2, rows2 = _trial(tiny_config, tmp_path, seed=1)
    results.upsert(tmp_path, *rows2)
    _, before = results.load(tmp_path)
    samples_before = results.load_samples(tmp_path)
    results.compact(tmp_path)
    assert not (tmp_path / results.CURVES).exists() and (tmp_path / results.LEGACY_CURVES).exists()
    _, after = results.load(tmp_path)
    pd.testing.assert_frame_equal(after, before)
    pd.testing.assert_frame_equal(results.load_samples(tmp_path), samples_before)
    results.upsert(tmp_path, *rows2)
    _, again = results.load(tmp_path)
    assert len(again) == len(before) and sorted(again["trial_id"]) == sorted(before["trial_id"])


def test_publish_keeps_the_grids_of_each_configurations_lowest_seed():
    """The trials whose grids publish keeps: per configuration but the seed, the lowest seed (the report's
    figures draw those), also where a configuration was run without seed 0."""
    import json

    import pandas as pd

    from bench.publish import _lowest_seed_ids

    rows = [("a0", {"w": 1, "seed": 0}), ("a1", {"w": 1, "seed": 1}), ("b1", {"w": 2, "seed": 1}),
            ("b2", {"w": 2, "seed": 2}), ("c3", {"w": 3, "seed": 3})]
    trials = pd.DataFrame({"trial_id": [t for t, _ in rows], "seed": [c["seed"] for _, c in rows],
                           "variant": ["ns"] * len(rows), "config": [json.dumps(c) for _, c in rows]})
    assert _lowest_seed_ids(trials) == {"a0", "b1", "c3"}


def test_rows_written_before_a_field_existed_read_with_its_default():
    """results/lens_k_fmnist_seeds was resumed across versions: its first 12 rows predate dataset.transform and the
    DANN options (null columns), its last 12 have their defaults; read through load(), every row has the default and
    the lens and no-lens arms pair again (the ledger's diagnostic had 'no pairs' before). Null lens fields of the
    no-lens rows stay null."""
    from pathlib import Path

    from bench import results

    folder = Path(__file__).resolve().parents[1] / "results" / "lens_k_fmnist_seeds"
    raw = results.read_parquet(folder / results.TRIALS)
    assert raw["dataset.transform"].isna().sum() == 12 and raw["variant.dann_lambda"].isna().sum() == 12
    trials, _ = results.load(folder)
    assert (trials["dataset.transform"] == "invert").all() and (trials["variant.dann_lambda"] == 1.0).all()
    no_lens = trials["variant.lens.schedule"].isna()
    assert no_lens.sum() == 12 and trials.loc[no_lens, "variant.lens.K"].isna().all()
