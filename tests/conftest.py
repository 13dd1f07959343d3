import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GANBENCH = str(Path(sys.executable).parent / "ganbench")

os.environ.setdefault("PYTHONHASHSEED", "0")


@pytest.fixture
def tiny_config():
    """A toy trial small enough to train in about a second."""
    from bench.schema import TrialConfig

    def make(**over):
        base = {"train": {"steps": 100, "eval_every": 50, "batch_size": 64, "eval_samples": 500},
                "model": {"width": 32}}
        for k, v in over.items():
            base.setdefault(k, {}).update(v) if isinstance(v, dict) else base.__setitem__(k, v)
        cfg = TrialConfig.model_validate(base).model_dump(mode="json")
        return {**cfg, "study": "test", "trial_id": "t", "variant_label": cfg["variant"]["objective"]}

    return make


def run_rows(cfg: dict | list[dict], artifacts=None) -> list[dict]:
    """Every row a trial (or a pack of configurations) reports, trained in this process (no Ray);
    artifacts go to `artifacts` (default: a new temporary folder)."""
    import tempfile

    from bench.trial import run_trial

    rows = []
    run_trial(cfg, rows.append, artifacts or tempfile.mkdtemp(prefix="ganbench-test-"))
    return rows


def without_wall(rows: list[dict]) -> list[dict]:
    """Rows minus wall-clock time, the one field two identical runs may differ in."""
    return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (bit-for-bit comparisons; restored afterwards)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
