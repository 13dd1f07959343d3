"""Published results (issue 13): every committed results folder rebuilds its committed report.md from
its Parquet files alone, and the folders stay small."""

import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import GANBENCH, ROOT

RESULTS = ROOT / "results"


def published() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    # a folder with rows but no report is a study still running across sessions (results/README.md says which)
    reported = {(ROOT / p).parent for p in tracked if p.endswith("/report.md")}
    return sorted({(ROOT / p).parent for p in tracked if p.endswith("/trials.parquet")} & reported)


def test_published_reports_rebuild_from_their_parquet_files(tmp_path):
    folders = published()
    assert folders, "no published results folder is committed"
    index = (RESULTS / "README.md").read_text()
    def rebuild(d: Path) -> subprocess.CompletedProcess:
        return subprocess.run([GANBENCH, "report", str(d), "--out", str(tmp_path / d.name)], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # one report per core (each is one process)
        done = dict(zip(folders, pool.map(rebuild, folders)))
    for d in folders:
        assert f"results/{d.name}/" in index, f"{d.name} is not indexed in results/README.md"
        out = tmp_path / d.name
        p = done[d]
        assert p.returncode == 0, p.stderr[-2000:]
        assert (out / "report.md").read_text() == (d / "report.md").read_text(), d.name
        # report.html is published with --link-images: every image it shows is a committed figure
        srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', (d / "report.html").read_text())
        assert srcs, d.name
        assert all(not s.startswith("data:") and (d / s).is_file() for s in srcs), d.name


def test_published_results_are_under_35_mb():
    tracked = subprocess.run(["git", "ls-files", "-z", "results"], cwd=ROOT, capture_output=True, text=True).stdout
    # on disk, as `du` counts it: each file takes whole 4 KiB blocks (hundreds of small files add up)
    size = sum(-(-(ROOT / p).stat().st_size // 4096) * 4096 for p in tracked.split("\0") if p)
    # 30 MB until 2026-12-08, when the zoo-part-two studies took results/ (19 studies) past it
    assert size < 35 * 2**20, f"{size / 2**20:.1f} MB"
