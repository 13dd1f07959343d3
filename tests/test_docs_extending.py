"""docs/extending.md is executable: every `file=` block is written to a fresh folder, the `registry` block's lines
are added to the registry (as a user adds one line each), and the study is validated by the CLI, trained through
the trial loop, written through the real row path and reported — in a fresh process, so the catalog, the schema
and the Parquet columns are built the way a user's edited registry builds them. Counts what adding the pieces
touched: their own files, the registry lines and the study file, nothing else."""

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import ROOT

DOC = Path(ROOT, "docs", "extending.md")
FENCE = re.compile(r"```(\w+)([^\n]*)\n(.*?)```", re.S)

DRIVER = textwrap.dedent("""
    import json, sys, tempfile
    from pathlib import Path
    from bench import registry
    for kind, entries in json.loads(sys.argv[2]).items():
        registry.REGISTRY[kind].update(entries)

    from bench.cli import main
    sys.argv, study = ["ganbench", "validate", sys.argv[1]], sys.argv[1]
    try:
        main()
    except SystemExit as e:
        assert not e.code, f"validate exited {e.code}"

    from bench import results
    from bench.report import build_report
    from bench.study import expand, load_study
    from bench.trial import run_trial
    out = Path(tempfile.mkdtemp()) / "res"
    out.mkdir()
    (out / results.STUDY).write_text(Path(study).read_text())
    for t in expand(load_study(study)):
        reports = []
        run_trial(t, reports.append, tempfile.mkdtemp())
        row, curves, samples = results.rows_from_reports(t, reports)
        results.upsert(out, row, curves, samples)
    md = build_report(out)["md"].read_text()
    trials, curves = results.load(out)
    print(json.dumps({"md": md, "status": sorted(set(trials["status"])), "n": len(trials),
                      "sample_std": trials["final.sample_std"].notna().all().item(),
                      "loss_g_last": curves["loss_g_last"].notna().any().item()}))
""")


def blocks():
    files, registry = {}, {}
    for lang, info, body in FENCE.findall(DOC.read_text()):
        m = re.search(r"file=(\S+)", info)
        if m:
            files[m.group(1)] = body
        elif info.strip() == "registry":
            for line in body.strip().splitlines():
                registry.update(ast.literal_eval("{" + line + "}"))
    return files, registry


def test_the_docs_examples_validate_train_and_report(tmp_path):
    import json

    files, registry = blocks()
    assert {"study.yaml", "my_plugins/softplus_hinge.py", "my_plugins/multi_g.py",
            "my_plugins/multi_g_report.py"} <= set(files)
    assert sum(len(v) for v in registry.values()) == 2  # one registry line per plug-in
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    p = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "study.yaml"), json.dumps(registry)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"})
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["n"] == 4 and got["status"] == ["ok"]
    assert got["sample_std"] and got["loss_g_last"]  # its own metric and loss reach the Parquet columns
    md = got["md"]
    assert "multi-G GAN" in md and "sensitivity to its own weights" in md      # the declared own-weights section
    assert "multi-g: the samples' spread" in md and "sample std [95 % t]" in md  # its own section
    assert "std of the samples" in md                                          # its metric, by its label
