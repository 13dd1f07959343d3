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


def trained(cfg: dict, root) -> tuple[list[dict], dict]:
    """A short training on one thread that must end ok with finite losses and FID: (rows, last row)."""
    import math

    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = run_rows(cfg, root)
    finally:
        torch.set_num_threads(n)
    last = rows[-1]
    assert last["status"] == "ok", last.get("error")
    assert all(math.isfinite(last[k]) for k in last if k.startswith("loss_"))
    assert math.isfinite(last["fid"])
    return rows, last


def digits_config(structure: str, steps: int, eval_samples: int, **over) -> dict:
    """A small DCGAN-backbone trial of `structure` on digits at 16 x 16 (the zoo tests)."""
    from bench.schema import TrialConfig

    base = {"dataset": {"name": "digits", "image_size": 16},
            "model": {"name": "dcgan", "width": 16, "z_dim": 16},
            "train": {"steps": steps, "eval_every": steps, "batch_size": 64, "eval_samples": eval_samples, "lr": 1e-3},
            "variant": {"structure": structure}}
    for k, v in over.items():
        base.setdefault(k, {}).update(v) if isinstance(v, dict) else base.__setitem__(k, v)
    cfg = TrialConfig.model_validate(base).model_dump(mode="json")
    return {**cfg, "study": "test", "trial_id": f"{structure}-{cfg['seed']}", "variant_label": structure}
