"""The Dirac GAN's report section (structure `dirac`, declared in its DECLARE): each training method's (theta, psi)
trajectory towards (or away from) the equilibrium (0, 0), as in Mescheder et al. 2018's Figures 2 and 3, and a table
of where each method ends: the distance to the equilibrium at the start and at the end, and whether it converged.
Torch-free: it reads the curves (theta, psi at every evaluation)."""

from __future__ import annotations

import math

import numpy as np

CONVERGED = 0.1   # the end distance below this (from a start at distance ~1.4): converged
SPIRALLED = 1.25  # end / start distance above this: moved away from the equilibrium
TAIL = 0.25       # the end distance: the median over the last quarter of the evaluations (instance noise jitters)


def verdict(start: float, end: float) -> str:
    if not math.isfinite(end):
        return "diverged"
    if end < CONVERGED:
        return "converges"
    if end > SPIRALLED * start:
        return "moves away"
    return "does not converge"


def section(data):
    t = data.trials
    if "variant.structure" not in t:
        return [], []
    t = t[t["variant.structure"] == "dirac"]
    c = data.curves
    if t.empty or c.empty or "theta" not in c:
        return [], []
    c = c[c["trial_id"].isin(t["trial_id"])].sort_values("step")
    label, status = dict(zip(t["trial_id"], t["variant"])), dict(zip(t["trial_id"], t["status"]))
    per, paths = {}, {}
    for tid, g in c.groupby("trial_id", sort=False):
        g = g.dropna(subset=["theta", "psi"])
        if g.empty:
            continue
        d = np.hypot(g["theta"].to_numpy(float), g["psi"].to_numpy(float))
        end = float(np.median(d[-max(1, int(len(d) * TAIL)):])) if status[tid] == "ok" else math.nan
        per.setdefault(label[tid], []).append((int(g["step"].iloc[-1]), d[0], end))
        paths.setdefault(label[tid], []).append(g[["theta", "psi"]].to_numpy(float))
    if not per:
        return [], []
    rows, verdicts = [], {}
    for name in sorted(per):
        runs = per[name]
        ends = [e for _, _, e in runs]
        says = sorted({verdict(s0, e) for _, s0, e in runs})
        for v in says:
            verdicts.setdefault(v, []).append(name)
        rows.append([name, len(runs), max(s for s, _, _ in runs), f"{runs[0][1]:.3g}",
                     f"{min(ends):.3g}" + ("" if len(runs) == 1 else f" to {max(ends):.3g}"), ", ".join(says)])
    head = ["Dirac GAN: " + "; ".join(f"{v}: {', '.join(names)}" for v, names in sorted(verdicts.items()))
            + f" (converges: the distance to (0, 0) ends below {CONVERGED}; moves away: it ends above {SPIRALLED} "
            f"times the start; the end is the median over the last {TAIL:.0%} of the evaluations)"]
    blocks = [("h2", "Dirac GAN: trajectories of (theta, psi)"),
              ("p", "G(z) = theta against D(x) = psi x on data at 0: the only equilibrium is (0, 0). Each panel is a "
                    "training method, each line a trial from its start (grey circle) to its end (red cross). "
                    "Mescheder et al. 2018 (Sections 2-3): simultaneous gradient descent spirals outward, alternating "
                    "gradient descent circles, R1, R2, consensus optimization and instance noise converge for a small "
                    "enough step; WGAN-GP's two-sided penalty does not converge."),
              ("table", ["method", "trials", "steps", "distance at start",
                         f"distance at the end (median of the last {TAIL:.0%} of evaluations; min to max over trials)",
                         "verdict"], rows)]
    img = figure(paths)
    if img is not None:
        blocks.append(("img", "dirac_trajectories", img, "(theta, psi) at every evaluation, one panel per method; "
                       "the equilibrium (0, 0) is the black point"))
    return head, blocks


def figure(paths: dict[str, list[np.ndarray]]) -> bytes | None:
    from matplotlib.figure import Figure

    from bench.report.plots import png, themed

    names = sorted(paths)
    cols = min(4, len(names))
    nrows = math.ceil(len(names) / cols)
    with themed():
        fig = Figure(figsize=(3.2 * cols, 3.1 * nrows))
        axes = fig.subplots(nrows, cols, squeeze=False)
        lim = max(1.0, max(float(np.nanmax(np.abs(p))) for ps in paths.values() for p in ps if np.isfinite(p).any()))
        lim = min(lim, 5.0) * 1.1
        for ax, name in zip(axes.flat, names):
            for p in paths[name]:
                ax.plot(p[:, 0], p[:, 1], lw=1)
                ax.plot(p[0, 0], p[0, 1], "o", ms=4, color="grey")
                ax.plot(p[-1, 0], p[-1, 1], "x", ms=6, color="C3")
            ax.plot(0, 0, "o", color="black", ms=5)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("theta")
            ax.set_ylabel("psi")
        for ax in list(axes.flat)[len(names):]:
            ax.set_visible(False)
        fig.tight_layout()
        return png(fig)

