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
    return {"study": progress.get("study") or results_dir.name, "expected": len(expected),
            "ok": by_status.get("ok", 0), "diverged": by_status.get("diverged", 0),
            "failed": by_status.get("failed", 0), "running": len(running),
            "pending": len(expected - on_disk) - len(running)}


def status_line(results_dir: str | Path) -> str:
    c = status_counts(results_dir)
    done = c["ok"] + c["diverged"]
    return (f"{c['study']}: {done}/{c['expected']} done ({c['ok']} ok, {c['diverged']} diverged), "
            f"{c['running']} running, {c['failed']} failed, {c['pending']} pending")
