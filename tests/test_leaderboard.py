"""The robustness leaderboard (issue 13): ranking by seed spread on synthetic tables with a known truth,
groups never mixed across datasets, and `ganbench report A B` printing it from real results folders."""

import subprocess

import numpy as np
import pandas as pd

from bench import results
from bench.report import leaderboard as L
from conftest import GANBENCH, ROOT


def trials(seed=0, n_seeds=30):
    """Three variants on ring8 with seed std 1.0 / 0.1 / 0.5 (two lr settings each, lr shifts the mean a
    lot: that is weight sensitivity, not seed spread) and one on grid25 with a tiny spread."""
    rng = np.random.default_rng(seed)
    rows = []
    for ds, variant, sd in (("ring8", "a", 1.0), ("ring8", "b", 0.1), ("ring8", "c", 0.5), ("grid25", "d", 0.01)):
        for lr, shift in ((1e-3, 0.0), (1e-4, 5.0)):
            for s in range(n_seeds):
                rows.append({"study": "s", "variant": variant, "dataset.name": ds, "train.lr": lr, "seed": s,
                             "status": "ok", "final.energy_distance": 10 + shift + sd * rng.standard_normal(),
                             "final.modes_covered": 8.0})
    return pd.DataFrame(rows)


def test_ranking_follows_the_seed_spread_with_honest_intervals():
    lb = L.leaderboard(trials(), ["energy_distance", "modes_covered"])
    ring = lb[lb["dataset"] == "ring8"]
    assert list(ring["variant"]) == ["b", "c", "a"] and list(ring["rank"]) == [1, 2, 3]
    for _, r in ring.iterrows():
        truth = {"a": 1.0, "b": 0.1, "c": 0.5}[r["variant"]]
        assert r["seed_std_lo"] < truth < r["seed_std_hi"]
        # the lr shift (5.0) is the weight spread, not the seed spread
        assert r["weight"] == "train.lr" and 3 < r["weight_std"] < 4.5 and r["settings"] == 2
    grid = lb[lb["dataset"] == "grid25"]
    assert list(grid["variant"]) == ["d"] and list(grid["rank"]) == [1]  # ranked in its own group only
    head, rows = L.table(lb)
    assert len(rows) == 4 and len(head) == len(rows[0])


def test_figure_draws_intervals_that_do_not_hold_the_estimate():
    """An interval need not be centred on (or even hold) its estimate: the figure draws it from its ends
    (an error bar around the point failed in matplotlib with a negative length)."""
    lb = L.leaderboard(trials(), ["energy_distance", "modes_covered"])
    lb.loc[0, ["seed_std_lo", "seed_std_hi"]] = [lb.loc[0, "seed_std"] * 0.1, lb.loc[0, "seed_std"] * 0.5]
    lb.loc[1, ["seed_std_lo", "seed_std_hi"]] = [np.nan, np.nan]
    png = L.figure(lb)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_seed_gives_no_interval():
    lb = L.leaderboard(trials(n_seeds=1), ["energy_distance"])
    assert lb["seed_std"].isna().all()
    assert "no interval" in L.table(lb)[1][0][4]


def _folder(tmp_path, name, tiny_config, **over):
    from bench.schema import config_hash
    from bench.trial import run_trial

    d = tmp_path / name
    for seed in (0, 1, 2):
        cfg = tiny_config(seed=seed, **over)
        cfg["study"] = name
        cfg["trial_id"] = config_hash(cfg)
        reps = []
        run_trial(cfg, reps.append, d)
        results.upsert(d, *results.rows_from_reports(cfg, reps, root=d))
    (d / results.STUDY).write_text(f"name: {name}\n")
    return d


def test_report_of_several_folders_prints_the_leaderboard(tmp_path, tiny_config):
    a = _folder(tmp_path, "plain", tiny_config)
    b = _folder(tmp_path, "lensed", tiny_config, variant={"lens": {"K": 50}})
    (tmp_path / "README.md").write_text("not a results folder")
    p = subprocess.run([GANBENCH, "report", str(a), str(b), str(tmp_path / "README.md")], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"skipped {tmp_path / 'README.md'}" in p.stderr
    out = p.stdout
    assert "Robustness leaderboard" in out and "ring8, final energy_distance" in out
    assert "1. " in out and "2. " in out and "[plain]" in out and "[lensed]" in out
    md = (tmp_path / "comparison" / "report.md").read_text()
    assert md.index("## Robustness leaderboard") < md.index("## Headline findings")
    assert (tmp_path / "comparison" / "figures" / "leaderboard.png").exists()
    assert not (a / "report.md").exists()  # the studies' own reports are not overwritten
