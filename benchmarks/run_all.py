"""All benchmarks: `make bench`. Timings are printed, never asserted."""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import throughput, toy_step


def quickstart_wall() -> float:
    """Wall time of `ganbench run studies/quickstart.yaml` (Ray start and report included)."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "ganbench"), "run", "studies/quickstart.yaml",
                        "--results", d], cwd=root, check=True)
        return time.perf_counter() - t0


if __name__ == "__main__":
    toy_step.main()
    print(f"quickstart study, Ray start and report included: {quickstart_wall():.1f} s wall")
    throughput.main("all")  # plain Ray vs packed Ray vs a sequential loop, and the per-K pack cost
