"""Figures that read right (issue 22, item 6): one colour per arm in every figure and facets per base, one arm
order, log axes where values span orders of magnitude, titles that say what a box pools, leaderboard panels
that do not overprint each other, and the toy panel's 3-std acceptance circles. Checks the matplotlib Figure
objects (bench.report.plots.*_figure), not the PNG bytes."""

import itertools

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.patches import Circle

from bench.report import leaderboard as L
from bench.report import plots

BASES = ["minimax", "ns", "lsgan", "wgan", "wgan-gp", "hinge"]
# the study order of lens_toy: the arm order changes between objectives
ARMS_BY_BASE = {"minimax": ["const 1", "sine K=500", "sine K=2000"], "ns": ["sine K=500", "sine K=2000", "const 1"],
                "lsgan": ["sine K=500", "sine K=2000", "const 1"], "wgan": ["sine K=500", "sine K=2000", "const 1"],
                "wgan-gp": ["sine K=500", "sine K=2000", "const 1"], "hinge": ["sine K=500", "sine K=2000", "const 1"]}
VARIANTS = [v for b in BASES for v in [b, *[f"{b}+lens({a})" for a in ARMS_BY_BASE[b]]]]


def drawn(ax):
    return [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1]


def visible(fig):
    return [ax for ax in fig.axes if ax.axison]


def test_arm_of_splits_base_and_arm():
    assert plots.arm_of("ns") == ("ns", "no lens")
    assert plots.arm_of("ns+lens(sine K=1000)") == ("ns", "lens(sine K=1000)")
    assert plots.arm_of("lsgan+lens(const 1)") == ("lsgan", "lens(const 1)")
    assert plots.arm_of("lens_toy: ns+lens(const 1)") == ("lens_toy: ns", "lens(const 1)")
    assert plots.arm_of("ed+gan") == ("ed+gan", "no lens")  # a '+' that is no lens
    assert plots.arm_name("lens (sine K=1000)") == "lens(sine K=1000)"
    # comparing studies: a shared label is prefixed by its study, a lens variant of one study is not
    study_of = {"lens_toy: ns": "lens_toy", "ns+lens(sine K=500)": "lens_toy",
                "relativistic_toy: ns": "relativistic_toy", "ns+lens(sine K=1000)": "relativistic_toy"}
    assert plots.bases(list(study_of), study_of) == {"lens_toy: ns": "lens_toy: ns", "ns+lens(sine K=500)": "lens_toy: ns",
                                                     "relativistic_toy: ns": "relativistic_toy: ns",
                                                     "ns+lens(sine K=1000)": "relativistic_toy: ns"}


def test_one_arm_order_for_every_base():
    order = plots.ordered(VARIANTS)
    assert order[:4] == ["minimax", "minimax+lens(const 1)", "minimax+lens(sine K=500)", "minimax+lens(sine K=2000)"]
    arms = [[plots.arm_of(v)[1] for v in order if plots.arm_of(v)[0] == b] for b in BASES]
    assert all(a == arms[0] for a in arms)  # no lens first, then the lens arms in one natural order
    assert [plots.arm_of(v)[0] for v in order[::4]] == BASES  # bases in study order


def test_same_arm_same_colour_across_objectives_and_distinct_arms_distinct():
    colors = plots.variant_colors(VARIANTS)
    by_arm = {}
    for v, c in colors.items():
        by_arm.setdefault(plots.arm_of(v)[1], set()).add(tuple(c))
    assert all(len(cs) == 1 for cs in by_arm.values())  # one colour per arm, whatever the objective
    assert len({next(iter(cs)) for cs in by_arm.values()}) == len(by_arm) == 4
    assert plots.arm_colors(VARIANTS) == plots.arm_colors(list(reversed(VARIANTS)))  # order-independent
    # no arms (zoo, ED): every variant its own colour, also beyond the 10-colour palette
    for n in (6, 15, 24):
        names = [f"v{i}" for i in range(n)]
        assert len({tuple(c) for c in plots.variant_colors(names).values()}) == n


def _budget(seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for ds in ("ring8", "grid25"):
        for v in VARIANTS:
            best = 10 ** rng.uniform(-3, 0)
            k = np.arange(1, 6)
            out[(ds, v)] = pd.DataFrame({"k": k, "expected_best": best / k, "lo": best / k / 2, "hi": best / k * 2})
    return out


def test_budget_curves_facet_per_objective_colour_per_arm_log_axis():
    fig = plots.budget_curves_figure(_budget(), "energy_distance", VARIANTS)
    axes = visible(fig)
    assert len(axes) == 2 * len(BASES)  # one panel per dataset x objective
    arm_colours = plots.arm_colors(VARIANTS)
    expect = [tuple(arm_colours[a]) for a in plots.arm_order(plots.arm_of(v)[1] for v in VARIANTS)]
    for ax in axes:
        assert [tuple(to_rgb(ln.get_color())) for ln in drawn(ax)] == expect  # 4 lines, arm colours, one order
        assert ax.get_yscale() == "log"  # 1e-4 .. 2: orders of magnitude
    assert "(log)" in axes[0].get_ylabel()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["no lens", "lens(const 1)", "lens(sine K=500)", "lens(sine K=2000)"]


def test_budget_curves_png_is_deterministic():
    assert plots.budget_curves(_budget(), "energy_distance", VARIANTS) == \
        plots.budget_curves(_budget(), "energy_distance", VARIANTS)


def _trials(values, variants=("ns", "ns+lens(sine K=1000)"), metric="energy_distance", weights=None, seeds=3):
    rows = []
    vals = iter(itertools.cycle(values))
    for v in variants:
        for w in weights or [None]:
            for s in range(seeds):
                r = {"trial_id": f"{v}-{w}-{s}", "variant": v, "dataset.name": "ring8", "seed": s, "status": "ok",
                     f"final.{metric}": next(vals)}
                if w is not None:
                    r["variant.lambda_cls"] = w
                rows.append(r)
    return pd.DataFrame(rows)


def test_log_axis_only_for_wide_unbounded_metrics():
    assert plots.metric_scale("energy_distance", [0.001, 0.01, 1.0]) == (True, 0)
    assert plots.metric_scale("energy_distance", [0.1, 0.2, 0.3]) == (False, 0)
    assert plots.metric_scale("precision", [0.001, 0.5, 1.0]) == (False, 0)  # a proportion stays linear
    assert plots.metric_scale("modes_covered", [1, 8, 25, 100]) == (False, 0)
    wide = _trials([0.001, 0.01, 0.1, 1.0])
    fig = plots.final_metric_figure(wide, "energy_distance", ["ns", "ns+lens(sine K=1000)"])
    assert fig.axes[0].get_xscale() == "log" and "(log)" in fig.axes[0].get_xlabel()
    narrow = _trials([0.1, 0.12, 0.15])
    assert plots.final_metric_figure(narrow, "energy_distance", ["ns", "ns+lens(sine K=1000)"]).axes[0].get_xscale() == "linear"
    # learning curves: a metric falling from 2 to 0.002
    trials = wide.assign(trial_id=wide["trial_id"])
    curves = pd.DataFrame([{"trial_id": t, "step": st, "energy_distance": 2.0 / (1 + 10 * st)}
                           for t in trials["trial_id"] for st in range(0, 100, 10)])
    fig = plots.learning_curves_figure(trials, curves, "energy_distance", ["ns", "ns+lens(sine K=1000)"])
    assert visible(fig)[0].get_yscale() == "log"


def test_weights_spanning_10x_get_a_log_x_axis():
    assert plots.log_x([0.1, 0.3, 1, 3]) and plots.log_x([1e-4, 1.0])
    assert not plots.log_x([0, 0.1, 0.2, 0.4]) and not plots.log_x([1, 2, 5]) and not plots.log_x(["adam", "sgd"])
    t = _trials([100, 120, 130, 90], variants=("acgan",), metric="fid", weights=[0.1, 0.3, 1.0, 3.0])
    fig = plots.metric_vs_axis_figure(t, "fid", "variant.lambda_cls", ["acgan"], log=False)
    ax = visible(fig)[0]
    assert ax.get_xscale() == "log" and "(log)" in ax.get_xlabel()


def test_zoo_weight_figure_has_a_log_x_axis_for_weights_spanning_30x():
    from bench.report import analysis, zoo

    t = _trials([0.2, 0.5, 0.8, 0.9], variants=("acgan",), metric="class_accuracy", weights=[0.1, 0.3, 1.0, 3.0])
    axis = analysis.Axis("variant.lambda_cls", ["variant.lambda_cls"], [0.1, 0.3, 1.0, 3.0])
    fig = zoo.metrics_vs_weight_figure(t, axis, ["class_accuracy"], "ACGAN")
    ax = visible(fig)[0]
    assert ax.get_xscale() == "log" and "(log)" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "0.3", "1", "3"]  # a tick at each weight
    assert "one per seed" in fig.get_suptitle()


def test_metric_vs_axis_leaves_out_variants_that_do_not_sweep_the_axis():
    t = pd.concat([_trials([100, 120], variants=("acgan",), metric="fid", weights=[0.1, 0.3, 1.0, 3.0]),
                   _trials([150], variants=("cgan", "infogan"), metric="fid", weights=[1.0])])
    fig = plots.metric_vs_axis_figure(t, "fid", "variant.lambda_cls", ["cgan", "acgan", "infogan"], log=False)
    assert sum(len(drawn(ax)) for ax in visible(fig)) == 1
    assert "not drawn (axis not swept): cgan, infogan" in fig.get_suptitle().replace("\n", " ")


def test_titles_say_what_a_box_pools():
    pooled = _trials([100, 120, 130, 90, 95], variants=("acgan",), metric="fid", weights=[0.1, 0.3, 1.0, 3.0])
    fig = plots.final_metric_figure(pooled, "fid", ["acgan"])
    title = fig.get_suptitle().replace("\n", " ")
    assert "4 lambda_cls x 3 seeds pooled" in title and "per seed" not in title
    # variants that pool differently (the zoo: ACGAN sweeps its weight, CGAN has one setting): each label says
    mixed = pd.concat([pooled, _trials([110, 115], variants=("cgan",), metric="fid")])
    fig = plots.final_metric_figure(mixed, "fid", ["cgan", "acgan"])
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "4 lambda_cls x 3 seeds" in ticks[1] and "one setting" in ticks[0]
    assert "per seed" not in fig.get_suptitle()
    one = plots.final_metric_figure(_trials([0.1, 0.2, 0.3]), "energy_distance", ["ns", "ns+lens(sine K=1000)"])
    assert "one point per seed" in one.get_suptitle()


def _samples(trials, n=200, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for _, t in trials.iterrows():
        for kind in ("real", "generated"):
            for x, y in rng.normal(0, 2, (n, 2)):
                rows.append({"trial_id": t["trial_id"], "kind": kind, "x": x, "y": y, "step": 100})
    return pd.DataFrame(rows)


def test_toy_panel_draws_each_modes_3_std_circle():
    trials = pd.DataFrame([{"trial_id": f"t{ds}", "variant": "ns", "dataset.name": ds, "dataset.std": std,
                            "dataset.scale": 2.0, "seed": 0, "status": "ok", "final.modes_covered": 2.0,
                            "final.hq_fraction": 0.1}
                           for ds, std in (("ring8", 0.02), ("grid25", 0.05))])
    fig = plots.scatter_figure(trials, _samples(trials), ["ns"])
    by_title = {ax.get_title().split("\n")[1].split(",")[0]: ax for ax in visible(fig)}
    for ds, n, std in (("ring8", 8, 0.02), ("grid25", 25, 0.05)):
        circles = [p for p in by_title[ds].patches if isinstance(p, Circle)]
        assert len(circles) == n
        assert all(np.isclose(c.get_radius(), 3 * std) for c in circles)
        centres = np.array([c.center for c in circles])
        assert np.allclose(np.sort(np.hypot(*centres.T))[-1], 2.0 * (1 if ds == "ring8" else np.sqrt(8)))
    assert "of 8" in by_title["ring8"].get_title() and "within 3 std" in by_title["ring8"].get_title()


def _leaderboard_table():
    rng = np.random.default_rng(0)
    rows = []
    for ds in ("grid25", "ring8"):
        for i, v in enumerate(VARIANTS):
            s = 10 ** rng.uniform(-2.5, 0)
            study = "relativistic_toy_with_a_long_name" if i % 2 else "lens_toy"
            rows.append({"dataset": ds, "task": "generation", "metric": "energy_distance", "scale": "relative",
                         "study": study, "variant": v, "label": f"{v} [{study}]", "seed_std": s,
                         "seed_std_lo": s / 2, "seed_std_hi": s * 2 if i % 7 else np.inf, "success": 10, "n": 12,
                         "success_rate": 10 / 12, "success_lo": 0.5, "success_hi": 0.95, "rank": i + 1})
    return pd.DataFrame(rows)


def _no_overlap(fig):
    canvas = FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    r = canvas.get_renderer()
    axes = fig.get_axes()
    boxes = [ax.get_tightbbox(r) for ax in axes]  # each panel with its tick labels and axis labels
    for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
        assert not a.overlaps(b), (i, j, a, b)
    # every tick label inside the figure
    fb = fig.bbox
    for ax in axes:
        for t in ax.get_yticklabels():
            if t.get_text():
                e = t.get_window_extent(r)
                assert e.x0 >= fb.x0 - 1 and e.x1 <= fb.x1 + 1
    return axes, r


def test_leaderboard_panels_do_not_overlap():
    axes, _ = _no_overlap(L.figure_object(_leaderboard_table()))
    assert len(axes) == 4  # two groups x (success rate, seed spread)
    assert axes[1].get_xscale() == "log"  # spreads from 0.003 to 1
    # five groups (every published study): wrapped two to a row, still no overlap
    lb = pd.concat([_leaderboard_table().assign(task=f"task {i}") for i in range(3)], ignore_index=True)
    axes, r = _no_overlap(L.figure_object(lb[lb["variant"].isin(VARIANTS[:8])]))
    assert len(axes) == 12
    assert len({round(ax.get_window_extent(r).y0) for ax in axes}) == 3  # three rows of blocks


def test_paired_differences_colour_by_arm():
    summary = pd.DataFrame([{"metric": "energy_distance", "variant.objective": b, "dataset.name": ds, "arm": a,
                             "lens": f"lens ({a})", "mean_diff": 0.01, "lo": -0.01, "hi": 0.03}
                            for ds in ("ring8", "grid25") for b in ("ns", "lsgan") for a in ("sine K=500", "const 1")])
    pairs = pd.DataFrame([{**r, "diff": 0.01 + 0.01 * k, "used": True} for r in summary.to_dict("records")
                          for k in range(3)])
    labels = [f"{r['variant.objective']} {r['dataset.name']}\n{r['lens']}" for _, r in summary.iterrows()]
    variants = ["ns", "ns+lens(sine K=500)", "ns+lens(const 1)", "lsgan", "lsgan+lens(sine K=500)", "lsgan+lens(const 1)"]
    fig = plots.paired_differences_figure(summary, pairs, "energy_distance", labels, variants)
    assert len(visible(fig)) == 2  # one panel per dataset
    colours = plots.arm_colors(variants)
    for ax in visible(fig):
        bars = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 2 and ln.get_linewidth() == 3]
        got = {tuple(to_rgb(ln.get_color())) for ln in bars}
        assert got == {tuple(colours["lens(sine K=500)"]), tuple(colours["lens(const 1)"])}
