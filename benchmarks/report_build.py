"""Wall time of building a published study's report from its Parquet files (what `ganbench report`
and tests/test_published.py pay per folder), with bench's Wilcoxon and, for the before/after ratio,
with scipy's own (`--scipy-wilcoxon`: the implementation before the change; the report is the same).

Run: .venv/bin/python -m benchmarks.report_build [results/lens_toy ...] [--scipy-wilcoxon]
"""

import argparse
import tempfile
import time
from pathlib import Path

from scipy import stats


def scipy_wilcoxon(d):
    w = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return float(w.statistic), float(w.pvalue)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="*", type=Path, default=[Path("results/lens_toy"), Path("results/zoo_fmnist")])
    ap.add_argument("--scipy-wilcoxon", action="store_true")
    args = ap.parse_args(argv)

    from bench.report import build_report
    from bench.stats import paired

    if args.scipy_wilcoxon:
        paired.wilcoxon = scipy_wilcoxon
    which = "scipy's" if args.scipy_wilcoxon else "bench's"
    for d in args.folders:
        with tempfile.TemporaryDirectory() as out:
            t = time.perf_counter()
            build_report([d], Path(out), link_images=True)
            print(f"{d}: report built in {time.perf_counter() - t:.1f} s ({which} Wilcoxon)")


if __name__ == "__main__":
    main()
