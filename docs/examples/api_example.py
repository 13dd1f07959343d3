"""ganbench from Python: load a study, run it, read its results as DataFrames, build its report.

    .venv/bin/python docs/examples/api_example.py [RESULTS_FOLDER]

The quickstart study (studies/quickstart.yaml: NS-GAN and LSGAN on the ring of 8 Gaussians, with and without
the tempered lens) made tiny with overrides, as `--set` does on the command line: 20 steps, an evaluation
every 10, 2 seeds, a smaller network: 8 trials, well under a minute on a laptop. docs/loggers.md explains each
call; tests/test_api.py runs this file.
"""

import sys
import tempfile
from pathlib import Path

from bench import api

ROOT = Path(__file__).resolve().parents[2]

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="ganbench-api-")) / "quickstart"

# 1. The study file with overrides (validated: a bad field raises bench.study.StudyError naming it).
study = api.load_study(ROOT / "studies" / "quickstart.yaml", [
    "train.steps=20", "train.eval_every=10", "train.batch_size=64", "train.eval_samples=500",
    "model.width=32", "sweep.axes.seed=[0, 1]",
])
print(f"{study.name}: {study.sweep.axes}")

# 2. Run it on an embedded local Ray (what `ganbench run` does); a rerun resumes. loggers=("tensorboard",)
#    would also write TensorBoard runs, one per configuration (docs/loggers.md).
api.run(study, out, build_report=False, progress=False)

# 3. The results as pandas DataFrames: one row per trial, one per evaluation.
trials, curves = api.load_results(out)
print(f"{len(trials)} trials ({', '.join(f'{n} {s}' for s, n in trials['status'].value_counts().items())}), "
      f"{len(curves)} curve rows")
summary = (trials.groupby("variant")["final.energy_distance"].agg(["mean", "std", "count"])
           .sort_values("mean"))
print("final energy distance by variant (lower is better):")
print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
last = curves.sort_values("step").groupby("trial_id").tail(1)
print(f"last evaluation at step {int(last['step'].max())}; lambda there: "
      f"{last['lambda'].dropna().round(4).unique().tolist()}")

# 4. The report (report.html, report.md), as `ganbench report`.
html = api.report(out)
print(f"report: {html}")
