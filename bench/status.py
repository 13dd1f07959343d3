"""`ganbench status`: what a results folder holds, from the files alone."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from bench import results


def _alive(progress: dict) -> bool:
    if progress.get("host") != socket.gethostname() or not progress.get("pid"):
        return bool(progress.get("running"))  # another host: trust the file
    try:
        os.kill(progress["pid"], 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def status_counts(results_dir: str | Path) -> dict:
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError("no such folder")
    trials = results.read_parquet(results_dir / results.TRIALS)
    progress = results.read_progress(results_dir)
    by_status = trials["status"].value_counts().to_dict() if not trials.empty else {}
    on_disk = set(trials["trial_id"]) if not trials.empty else set()
    running = [t for t in progress.get("running", []) if t not in on_disk] if _alive(progress) else []
    expected = set(progress.get("expected", [])) | on_disk
    # optuna studies name their trials only as they sample them: the study says how many there will be
    n_expected = max(len(expected), progress.get("expected_count", 0))
    return {"study": progress.get("study") or results_dir.name, "expected": n_expected,
            "ok": by_status.get("ok", 0), "diverged": by_status.get("diverged", 0),
            "failed": by_status.get("failed", 0), "running": len(running),
            "pending": n_expected - len(on_disk) - len(running), "running_ids": running,
            "steps": progress.get("steps", {})}


def live(results_dir: Path, trial_id: str, steps: int | None) -> str:
    """A running trial's latest evaluation, from its live curve file."""
    p = Path(results_dir) / results.CURVES / f"{trial_id}.parquet"
    if not p.exists():
        return f"  {trial_id}: started, no evaluation yet"
    last = results.read_parquet(p).iloc[-1]
    shown = [f"{m} {last[m]:.4g}" for m in ("energy_distance", "fid", "l1", "modes_covered") if m in last and last[m] == last[m]]
    of = f" of {steps}" if steps else ""
    return f"  {trial_id}: step {int(last['step'])}{of}" + (f", {', '.join(shown)}" if shown else "")


def status_line(results_dir: str | Path) -> str:
    """One line of counts, then one line per running trial with its live curve's latest evaluation."""
    c = status_counts(results_dir)
    done = c["ok"] + c["diverged"]
    head = (f"{c['study']}: {done}/{c['expected']} done ({c['ok']} ok, {c['diverged']} diverged), "
            f"{c['running']} running, {c['failed']} failed, {c['pending']} pending")
    return "\n".join([head] + [live(Path(results_dir), t, c["steps"].get(t)) for t in c["running_ids"]])
