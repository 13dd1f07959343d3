"""The robustness leaderboard (issues 13 and 22): ranked within (dataset, task, metric) by success rate first (a
diverged or failed trial is a failure, a collapsed one too), then by the seed spread on the metric's scale; a
variant without a successful run is not ranked, whatever its spread; labels "variant [study]"; and `ganbench report
A B` printing it from real results folders. Expected spreads are computed here with numpy (std / mean for a
relative scale), success counts by hand."""

import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench import results
from bench.report import leaderboard as L
from conftest import GANBENCH, ROOT


def trials(seed=0, n_seeds=30):
    """Three variants on ring8 with relative seed spread (std / mean) 0.1 / 0.01 / 0.05 (two lr settings each; lr
    scales the values by 1.5, which is weight sensitivity, not seed spread, and leaves the relative spread as it
    is) and one on grid25 with a tiny spread."""
    rng = np.random.default_rng(seed)
    rows = []
    for ds, variant, sd in (("ring8", "a", 1.0), ("ring8", "b", 0.1), ("ring8", "c", 0.5), ("grid25", "d", 0.01)):
        for lr, factor in ((1e-3, 1.0), (1e-4, 1.5)):
            for s in range(n_seeds):
                rows.append({"study": "s", "variant": variant, "dataset.name": ds, "train.lr": lr, "seed": s,
                             "status": "ok", "final.energy_distance": factor * (10 + sd * rng.standard_normal()),
                             "final.modes_covered": 8.0 if ds == "ring8" else 25.0})
    return pd.DataFrame(rows)


def test_ranking_follows_the_seed_spread_with_honest_intervals():
    lb = L.leaderboard(trials(), ["energy_distance", "modes_covered"])
    ring = lb[lb["dataset"] == "ring8"]
    assert list(ring["variant"]) == ["b", "c", "a"] and list(ring["rank"]) == [1, 2, 3]
    assert (ring["scale"] == "relative").all() and (ring["metric"] == "energy_distance").all()
    for _, r in ring.iterrows():
        truth = {"a": 0.1, "b": 0.01, "c": 0.05}[r["variant"]]  # std / mean in both lr settings
        assert r["seed_std_lo"] < truth < r["seed_std_hi"]
        # the lr factor (10 -> 15) is the weight spread, not the seed spread: std of the two point means 5 / sqrt 2
        assert r["weight"] == "train.lr" and 3 < r["weight_std"] < 4.5 and r["settings"] == 2
        assert (r["success"], r["n"]) == (60, 60)
    grid = lb[lb["dataset"] == "grid25"]
    assert list(grid["variant"]) == ["d"] and list(grid["rank"]) == [1]  # ranked in its own group only
    head, rows = L.table(lb)
    assert len(rows) == 4 and len(head) == len(rows[0])
    assert [r[1] for r in rows] == ["1", "1", "2", "3"] and [r[2] for r in rows] == ["d [s]", "b [s]", "c [s]", "a [s]"]


def test_figure_accepts_intervals_that_do_not_hold_the_estimate():
    """An interval need not be centred on (or even hold) its estimate: the figure draws it from its ends (an error
    bar around the point failed in matplotlib with a negative length). What the figure shows is
    tests/test_report_figures.py's business; here: it is drawn, as an image of the size of its groups."""
    import io

    from PIL import Image

    lb = L.leaderboard(trials(), ["energy_distance", "modes_covered"])
    lb.loc[0, ["seed_std_lo", "seed_std_hi"]] = [lb.loc[0, "seed_std"] * 0.1, lb.loc[0, "seed_std"] * 0.5]
    lb.loc[1, ["seed_std_lo", "seed_std_hi"]] = [np.nan, np.nan]
    one = Image.open(io.BytesIO(L.figure(lb[lb["dataset"] == "ring8"])))
    two = Image.open(io.BytesIO(L.figure(lb)))
    assert two.size[0] > 1.5 * one.size[0]  # two (dataset, metric) groups side by side, one for ring8 alone


def test_one_seed_gives_no_interval():
    lb = L.leaderboard(trials(n_seeds=1), ["energy_distance"])
    assert lb["seed_std"].isna().all()
    assert "no interval" in L.table(lb)[1][0][4]


# ----------------------------------------------------------------------------- failures, collapses, tasks


def z(seed, n):
    x = np.random.default_rng(seed).standard_normal(n)
    return (x - x.mean()) / x.std(ddof=1)


def mixed() -> pd.DataFrame:
    """ring8 (energy distance, relative scale; success = ok and >= 4 of 8 modes):
      s1/stable    6 seeds ok, 8 modes, relative spread 0.05
      s1/noisy     6 seeds ok, 8 modes, relative spread 0.3
      s2/flaky     seeds 0-3 ok with the smallest spread of the successful ones (0.01), seed 4 diverged, 5 failed
      s2/collapsed 6 seeds ok but 2 modes (collapsed), the smallest spread of all (0.001)
      s2/dead      6 seeds, all diverged
    fashion_mnist (FID): s3/ed+gan inpainting (structure ed+gan, ok = success), s3/ns and s3/ns+lens generating
    from noise, ns collapsed (recall 0.05 < 0.1) with a lower FID and a smaller spread than ed+gan."""
    rows = []

    def add(study, variant, dataset, values, status=None, **cols):
        for s, v in enumerate(values):
            st = status[s] if status else "ok"
            rows.append({"study": study, "variant": variant, "dataset.name": dataset, "seed": s, "status": st,
                         "variant.structure": cols.get("structure", "gan"), "variant.task": cols.get("task"),
                         "final.energy_distance": v if dataset == "ring8" and st == "ok" else np.nan,
                         "final.modes_covered": cols.get("modes", 8.0) if st == "ok" else np.nan,
                         "final.fid": v if dataset != "ring8" and st == "ok" else np.nan,
                         "final.recall": cols.get("recall", np.nan) if st == "ok" else np.nan,
                         "final.l1": cols.get("l1", np.nan) if st == "ok" else np.nan})

    add("s1", "stable", "ring8", 1 + 0.05 * z(1, 6))
    add("s1", "noisy", "ring8", 1 + 0.3 * z(2, 6))
    add("s2", "flaky", "ring8", np.r_[1 + 0.01 * z(3, 4), np.nan, np.nan],
        status=["ok"] * 4 + ["diverged", "failed"])
    add("s2", "collapsed", "ring8", 3 + 0.003 * z(4, 6), modes=2.0)
    add("s2", "dead", "ring8", [np.nan] * 6, status=["diverged"] * 6)
    add("s3", "ed+gan", "fashion_mnist", 50 + 5 * z(5, 4), structure="ed+gan", task="inpainting", l1=0.1, recall=0.01)
    add("s3", "ns", "fashion_mnist", 30 + 0.3 * z(6, 4), recall=0.05)
    add("s3", "ns+lens", "fashion_mnist", 40 + 8 * z(7, 4), recall=0.3)
    return pd.DataFrame(rows)


METRICS = ["energy_distance", "fid", "l1", "modes_covered", "recall"]


def test_success_rate_first_and_an_always_failing_variant_is_never_ranked():
    lb = L.leaderboard(mixed(), METRICS)
    ring = lb[lb["dataset"] == "ring8"].set_index("variant")
    assert list(ring.index) == ["stable", "noisy", "flaky", "collapsed", "dead"]
    assert ring["rank"].iloc[:3].tolist() == [1, 2, 3] and ring["rank"].iloc[3:].isna().all()
    # counted by hand: diverged and failed trials are failures, a collapsed run too
    assert ring.loc[["stable", "noisy", "flaky", "collapsed", "dead"], "success"].tolist() == [6, 6, 4, 0, 0]
    assert (ring["n"] == 6).all()
    assert (ring.loc["flaky", "diverged"], ring.loc["flaky", "failed"]) == (1, 1)
    assert ring.loc["dead", "diverged"] == 6
    # the spreads on the relative scale, by hand (std / mean of the finished values)
    for v, vals in (("stable", 1 + 0.05 * z(1, 6)), ("noisy", 1 + 0.3 * z(2, 6)), ("flaky", 1 + 0.01 * z(3, 4)),
                    ("collapsed", 3 + 0.003 * z(4, 6))):
        assert ring.loc[v, "seed_std"] == pytest.approx(vals.std(ddof=1) / vals.mean(), rel=1e-6), v
    assert np.isnan(ring.loc["dead", "seed_std"])
    # the smallest spread of all does not win: collapsed (success 0/6) is below every variant that succeeded, and
    # flaky (4/6) below the two that always succeeded, although its finished runs vary least
    assert ring.loc["collapsed", "seed_std"] < ring.loc["flaky", "seed_std"] < ring.loc["stable", "seed_std"]
    wilson = {v: (ring.loc[v, "success_lo"], ring.loc[v, "success_hi"]) for v in ring.index}
    z95 = sps.norm.ppf(0.975)
    for v, k in (("stable", 6), ("flaky", 4), ("dead", 0)):  # Wilson by its formula
        p, n = k / 6, 6
        c = (p + z95 ** 2 / (2 * n)) / (1 + z95 ** 2 / n)
        h = z95 * np.sqrt(p * (1 - p) / n + z95 ** 2 / (4 * n ** 2)) / (1 + z95 ** 2 / n)
        assert wilson[v] == pytest.approx((c - h, c + h), abs=1e-9), v


@pytest.mark.parametrize("spread", [1e-6, 0.0])
def test_a_variant_failing_every_seed_cannot_be_first_whatever_its_spread(spread):
    """The issue's ragan: success 0/3, the smallest spread; against a variant that succeeded once in 6."""
    t = mixed()
    t = t[t["variant"].isin(["collapsed", "noisy"])].copy()
    t.loc[t["variant"] == "collapsed", "final.energy_distance"] = 3 + spread * z(9, 6)
    t.loc[(t["variant"] == "noisy") & (t["seed"] > 0), "final.modes_covered"] = 1.0  # noisy: 1 success of 6
    lb = L.leaderboard(t, METRICS)
    assert lb["variant"].tolist() == ["noisy", "collapsed"]
    assert lb["rank"].iloc[0] == 1 and pd.isna(lb["rank"].iloc[1])
    assert lb["success"].tolist() == [1, 0]


def test_encoder_decoder_tasks_are_never_ranked_with_generation():
    lb = L.leaderboard(mixed(), METRICS)
    fm = lb[lb["dataset"] == "fashion_mnist"]
    groups = {k: list(g["variant"]) for k, g in fm.groupby(["task", "metric"])}
    assert groups == {("encoder-decoder inpainting", "fid"): ["ed+gan"], ("generation", "fid"): ["ns+lens", "ns"]}
    ed = fm.set_index("variant")
    assert ed.loc["ed+gan", "rank"] == 1 and ed.loc["ns+lens", "rank"] == 1
    assert pd.isna(ed.loc["ns", "rank"])  # recall 0.05: collapsed every seed, lower FID and spread notwithstanding
    assert (ed.loc["ed+gan", "success"], ed.loc["ns", "success"], ed.loc["ns+lens", "success"]) == (4, 0, 4)
    head, rows = L.table(lb)
    assert "ed+gan [s3]" in [r[2] for r in rows if r[0] == "fashion_mnist, encoder-decoder inpainting (fid)"]
    gen = [r for r in rows if r[0] == "fashion_mnist, generation (fid)"]
    assert [(r[1], r[2]) for r in gen] == [("1", "ns+lens [s3]"), ("-", "ns [s3]")]


def test_table_labels_and_counts():
    lb = L.leaderboard(mixed(), METRICS)
    head, rows = L.table(lb)
    ring = [r for r in rows if r[0].startswith("ring8")]
    assert [(r[1], r[2]) for r in ring] == [("1", "stable [s1]"), ("2", "noisy [s1]"), ("3", "flaky [s2]"),
                                            ("-", "collapsed [s2]"), ("-", "dead [s2]")]
    flaky = next(r for r in ring if r[2] == "flaky [s2]")
    assert flaky[3].startswith("4/6 = 0.667 [") and flaky[3].endswith("(1 diverged) (1 failed)")
    assert next(r for r in ring if r[2] == "dead [s2]")[3].startswith("0/6 = 0 [0, ")
    assert all(r[4].endswith("(relative)") for r in ring)


def test_a_convergence_metric_gets_a_group_of_its_own():
    """Derived convergence metrics with a final.<name> column (the report's load() attaches those a question names)
    are ranked per dataset and task in groups of their own, on their own direction and scale: auc like its metric
    (relative for energy distance), steps relative and lower-better (worst = most steps); a diverged run has no
    value and counts as a failure. Expected spreads by hand (std / mean)."""
    rows = []
    steps = {"fast": [100.0, 150.0, 100.0, 150.0], "slow": [400.0, 600.0, 500.0, np.nan]}
    area = {"fast": [0.2, 0.3, 0.25, 0.35], "slow": [0.1, 0.12, 0.11, np.nan]}
    for v in ("fast", "slow"):
        for s in range(4):
            bad = v == "slow" and s == 3
            rows.append({"study": "s", "variant": v, "dataset.name": "ring8", "seed": s,
                         "status": "diverged" if bad else "ok", "final.modes_covered": np.nan if bad else 8.0,
                         "final.energy_distance": np.nan if bad else 0.01 * (s + 1),
                         "final.auc:energy_distance": area[v][s], "final.steps_to_within:energy_distance": steps[v][s]})
    t = pd.DataFrame(rows)
    assert L.derived_metrics(t) == ["auc:energy_distance", "steps_to_within:energy_distance"]
    lb = L.leaderboard(t, ["energy_distance", "modes_covered"])
    assert list(dict.fromkeys(lb["metric"])) == ["auc:energy_distance", "energy_distance",
                                                 "steps_to_within:energy_distance"]
    assert (lb["scale"] == "relative").all()
    st = lb[lb["metric"] == "steps_to_within:energy_distance"].set_index("variant")
    # success first: slow's diverged run is a failure (3/4), whatever its spread
    assert list(st.index) == ["fast", "slow"] and st["rank"].tolist() == [1, 2]
    assert (st.loc["fast", "success"], st.loc["slow", "success"]) == (4, 3)
    for v in ("fast", "slow"):
        x = np.array(steps[v])[np.isfinite(steps[v])]
        assert st.loc[v, "seed_std"] == pytest.approx(x.std(ddof=1) / x.mean(), rel=1e-9)
    assert (st.loc["fast", "worst"], st.loc["slow", "worst"]) == (150.0, 600.0)  # lower is better: the most steps
    auc = lb[lb["metric"] == "auc:energy_distance"].set_index("variant")
    assert auc.loc["slow", "worst"] == 0.12 and auc.loc["fast", "worst"] == 0.35
    assert list(L.leaderboard(t, ["energy_distance"], derived_=[])["metric"].unique()) == ["energy_distance"]
    head, rows_ = L.table(lb)
    assert [r[0] for r in rows_][:2] == ["ring8, generation (auc:energy_distance)"] * 2


def _write(folder, frame: pd.DataFrame, study: str):
    frame = frame.assign(study=study, trial_id=[f"{study}-{v}-{s}" for v, s in zip(frame["variant"], frame["seed"])])
    folder.mkdir(parents=True)
    results.write_parquet(frame.reset_index(drop=True), folder / results.TRIALS)
    curves = pd.DataFrame({"trial_id": frame["trial_id"], "study": study, "step": 0,
                           "energy_distance": frame["final.energy_distance"]})
    results.write_parquet(curves, folder / results.LEGACY_CURVES)
    (folder / results.STUDY).write_text(f"name: {study}\n")
    return folder


def test_lines_rank_across_folders_with_one_label_per_variant(tmp_path):
    """Two studies that both have a variant called 'stable' (the report prefixes such names with the study): the
    leaderboard still labels each 'stable [study]', in rank order, the always-failing one last with '-'."""
    t = mixed()
    ring = t[t["dataset.name"] == "ring8"]
    a = _write(tmp_path / "a", ring[ring["variant"].isin(["stable", "noisy"])], "s1")
    b = ring[ring["variant"].isin(["flaky", "collapsed", "dead"])].copy()
    b.loc[b["variant"] == "flaky", "variant"] = "stable"  # the same name in the other study
    b = _write(tmp_path / "b", b, "s2")
    out = L.lines([a, b])
    body = [x.strip() for x in out if x.startswith("  ")]
    assert [x.split(":")[0] for x in body] == ["1. stable [s1]", "2. noisy [s1]", "3. stable [s2]",
                                               "-. collapsed [s2]", "-. dead [s2]"]
    assert "success 4/6" in body[2] and "success 0/6" in body[4]
    assert not any("s1: " in x or "s2: " in x for x in body)
    assert any(x.startswith("ring8, generation, final energy_distance (lower is better): success rate, then relative "
                            "seed spread") for x in out)


def _folder(tmp_path, name, tiny_config, question="", **over):
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
    (d / results.STUDY).write_text(f"name: {name}\n{question}")
    return d


def test_report_of_several_folders_prints_the_leaderboard(tmp_path, tiny_config):
    """Two real tiny folders; one study's question names a convergence metric (auc:energy_distance), so the
    leaderboard ranks every study's variants on it too (the report's load() computes it for all of them)."""
    a = _folder(tmp_path, "plain", tiny_config)
    b = _folder(tmp_path, "lensed", tiny_config, variant={"lens": {"K": 50}},
                question="question: {compare: variant.lens, metric: auc:energy_distance}\n")
    (tmp_path / "README.md").write_text("not a results folder")
    p = subprocess.run([GANBENCH, "report", str(a), str(b), str(tmp_path / "README.md")], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"skipped {tmp_path / 'README.md'}" in p.stderr
    out = p.stdout
    assert "Robustness leaderboard" in out and "ring8, generation, final energy_distance" in out
    # each variant's line, with its successes counted here from the rows (status ok and >= 4 of 8 modes) and its
    # rank: '-' without a success; ranked ones numbered 1, 2 by success rate first
    succ = {}
    for name, d in (("plain", a), ("lensed", b)):
        t, _ = results.load(d)
        succ[name] = int(((t["status"] == "ok") & (t["final.modes_covered"] >= 4)).sum())
    lines = out.splitlines()
    first = lines.index(next(x for x in lines if x.startswith("ring8, generation, final energy_distance")))
    group = lines[first + 1:first + 3]
    body = {x.strip().split(". ", 1)[1].split(":")[0]: x.strip() for x in group if x.startswith("  ") and ". " in x}
    # the convergence metric's group: the same two variants, each with a value (lower is better)
    i = lines.index("ring8, generation, auc:energy_distance (lower is better): success rate, then relative seed "
                    "spread (std / mean), most robust first")
    assert sorted(x.strip().split(". ", 1)[1].split(":")[0] for x in lines[i + 1:i + 3]) == \
        ["ns [plain]", "ns+lens(sine K=50) [lensed]"], out
    assert "no interval" not in " ".join(lines[i + 1:i + 3])
    label = {"plain": "ns [plain]", "lensed": "ns+lens(sine K=50) [lensed]"}
    assert set(body) == set(label.values()), out
    for name, k in succ.items():
        line = body[label[name]]
        assert f"success {k}/3" in line, line
        assert line.startswith("-. ") if k == 0 else line[0] in "12", line
    if succ["plain"] != succ["lensed"] and min(succ.values()) > 0:
        first = max(succ, key=succ.get)
        assert body[label[first]].startswith("1. ")
    md = (tmp_path / "comparison" / "report.md").read_text()
    assert md.index("## Robustness leaderboard") < md.index("## Headline findings")
    assert (tmp_path / "comparison" / "figures" / "leaderboard.png").exists()
    assert not (a / "report.md").exists()  # the studies' own reports are not overwritten
