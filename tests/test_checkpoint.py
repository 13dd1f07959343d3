"""Checkpoints (bench.trial.run_trial): a trial saves its whole state at an evaluation every
`train.checkpoint_every` steps; restored from it, it ends with exactly the numbers of an uninterrupted
run (same final metrics, same curves, no duplicated rows), for every structure."""

import io
import math

import pytest
import torch

from bench.trial import run_trial
from conftest import without_wall

DIGITS = {"dataset": {"name": "digits", "image_size": 16}}
SMALL = {"steps": 40, "eval_every": 10, "batch_size": 16, "eval_samples": 100, "checkpoint_every": 20}
CASES = {
    "gan": {},
    # the stabilizers' state: the averaged generator, spectral norm's power-iteration vectors, instance noise's draws
    "stabilizers": {"model": {"d_norm": "spectral"}, "train": {"ema": 0.9, "updates": "simultaneous"},
                    "variant": {"penalty": {"consensus": 0.5, "r1": 1.0}, "noise": {"sigma": 0.1, "K": 30}}},
    "lens-wgan-gp": {"variant": {"objective": "wgan-gp", "lens": {"K": 30}}, "train": {"n_critic": 2}},
    "dcgan-lens": {**DIGITS, "model": {"name": "dcgan", "width": 8, "z_dim": 16},
                   "variant": {"lens": {"K": 30, "width": 4, "depth": 2}}},
    "ed+gan": {**DIGITS, "model": {"name": "encdec", "width": 8, "z_dim": 16},
               "variant": {"structure": "ed+gan", "task": "inpaint", "w": 0.1}, "train": {"nrds_samples": 20}},
    "ed//gan-prior": {**DIGITS, "model": {"name": "encdec", "width": 8, "z_dim": 16},
                      "variant": {"structure": "ed//gan", "task": "caae", "w": 0.1, "code_prior": 1.0},
                      "train": {"nrds_samples": 20, "optimizer": "sgd", "momentum": 0.9, "lr": 0.01}},
}
VOLATILE = ("wall_seconds", "pack_wall_seconds", "attempt", "resumed_from_step", "replayed")


class Crash(Exception):
    pass


pytestmark = pytest.mark.usefixtures("one_thread")


def _config(tiny_config, name):
    over = {k: dict(v) for k, v in CASES[name].items()}
    over["train"] = {**SMALL, **over.get("train", {})}
    return tiny_config(**over)


def interrupted(cfg, root, crash_at: int):
    """Rows of a run that crashes right after its `crash_at`-th checkpoint, then of its resumption."""
    first, states = [], []

    def report(row, state=None):
        first.append(row)
        if state is not None:
            buf = io.BytesIO()
            torch.save(state, buf)  # what Ray stores: a copy, taken now
            states.append(buf.getvalue())
            if len(states) == crash_at:
                raise Crash

    with pytest.raises(Crash):
        run_trial(cfg, report, root)
    state = torch.load(io.BytesIO(states[-1]), weights_only=True)
    second = []
    run_trial(cfg, lambda row, state=None: second.append(row), root, resume=state)
    return first, second, state


def _strip(rows):
    nan = lambda v: "nan" if isinstance(v, float) and math.isnan(v) else v  # noqa: E731 (NaN != NaN)
    return [{k: nan(v) for k, v in r.items() if k not in VOLATILE} for r in without_wall(rows)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_restored_trial_ends_with_exactly_the_uninterrupted_numbers(name, tiny_config, tmp_path):
    cfg = _config(tiny_config, name)
    whole = []
    run_trial(cfg, lambda row, state=None: whole.append(row), tmp_path / "whole")
    first, second, state = interrupted(cfg, tmp_path / "cut", crash_at=1)
    assert state["loop"]["t"] == 20 and [r["step"] for r in whole] == [0, 10, 20, 30, 40]
    # the resumed run replays the curve it had reported, then goes on: merged by step, no duplicates
    assert [r["step"] for r in second] == [0, 10, 20, 30, 40] and all(r.get("replayed") for r in second[:3])
    assert _strip(second) == _strip(whole)
    assert second[-1]["final"] and second[-1]["status"] == "ok"
    assert second[-1]["attempt"] == 2 and second[-1]["resumed_from_step"] == 20
    assert whole[-1]["attempt"] == 1 and whole[-1]["resumed_from_step"] == 0
    # the artifacts written after the restart are the same files
    for key in (k for k in whole[-1] if k.startswith("grid_") or k in ("outputs_path", "samples_path")):
        assert (tmp_path / "whole" / whole[-1][key]).read_bytes() == (tmp_path / "cut" / second[-1][key]).read_bytes(), key


def test_checkpoints_come_every_checkpoint_every_steps_never_at_the_end(tiny_config, tmp_path):
    cfg = tiny_config(train={**SMALL, "steps": 100, "eval_every": 10, "checkpoint_every": 25})
    steps = []
    run_trial(cfg, lambda row, state=None: state is not None and steps.append(row["step"]), tmp_path)
    assert steps == [30, 60, 90]  # the next evaluation at or after 25 steps since the last checkpoint


def test_a_checkpoint_of_another_pack_is_refused(tiny_config, tmp_path):
    cfg = _config(tiny_config, "gan")
    _, _, state = interrupted(cfg, tmp_path, crash_at=1)
    other = {**cfg, "trial_id": "other"}
    with pytest.raises(ValueError, match="another pack"):
        run_trial(other, lambda row, state=None: None, tmp_path, resume=state)
