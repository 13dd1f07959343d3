"""The NRDS paper's toy check as a published table: real samples ~ N(0, I) in 2-D, fake sets with the same
covariance and means at growing distances along the diagonal, one NRDS comparison (bench.metrics.nrds, its
defaults: MLP classifier, 50 epochs, batch 64) per data seed. The replication ledger reads its rows
(results/claims.yaml, claim nrds-toy-order).

    python -m bench.nrds_toy results/nrds_toy [--seeds 20]

Writes scores.parquet (one row per seed and distance: `variant.distance`, `final.nrds`; not a trials table, so
the report and `ganbench report results/*` leave the folder alone) and a study.yaml describing it; the rows are
deterministic (tests/test_replicate.py recomputes one seed)."""

from __future__ import annotations

import argparse
import hashlib
import math
from pathlib import Path

import pandas as pd
import torch
import yaml

from bench import results
from bench.fsutil import atomic_write
from bench.metrics.nrds import nrds

DISTANCES = (0.25, 0.5, 1.0, 2.0)
N = 500
NAME = "nrds_toy"
SCORES = "scores.parquet"  # bench.replicate.SCORES


def samples(seed: int, n: int = N) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(n, 2, generator=g)
    direction = torch.tensor([1.0, 1.0]) / math.sqrt(2)
    return real, {f"d{d:g}": torch.randn(n, 2, generator=g) + d * direction for d in DISTANCES}


def rows(seed: int) -> list[dict]:
    real, fakes = samples(seed)
    r = nrds(real, fakes, seed=seed)
    out = []
    for d in DISTANCES:
        config = {"dataset.name": "normal2d", "dataset.n": N, "model.name": "mlp", "variant.distance": d}
        tid = hashlib.sha256(repr(sorted({**config, "seed": seed}.items())).encode()).hexdigest()[:12]
        out.append({"study": NAME, "trial_id": tid, **config, "seed": seed, "status": "ok",
                    "final.nrds": r.scores[f"d{d:g}"], "nrds.epochs": r.settings["epochs"]})
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seeds", type=int, default=20)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # tiny nets: threads only add contention
    df = pd.DataFrame([r for s in range(a.seeds) for r in rows(s)])
    a.out.mkdir(parents=True, exist_ok=True)
    results.write_text(yaml.safe_dump({"name": NAME, "description": __doc__.split("\n\n")[0].replace("\n", " "),
                                       "distances": list(DISTANCES), "n": N, "seeds": a.seeds}, sort_keys=False),
                       a.out / results.STUDY)
    # its own columns, typed by pandas (not a trial schema: no config, curves or samples)
    atomic_write(a.out / SCORES, lambda tmp: df.to_parquet(tmp, index=False))
    print(f"{a.out / SCORES}: {len(df)} rows")


if __name__ == "__main__":
    main()
