"""Launch a run as its own subprocess (own process group), and cancel it.

The UI calls `start`; the child is `python -m studio train <config> --run-id <id>`, so a run
started from the UI and one started from a terminal are the same thing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..config import RunConfig
from . import registry
from .metrics import CANCEL_FILE


def start(cfg: RunConfig, *, resume_id: str | None = None) -> registry.RunRecord:
    """Write the config into a new run folder and start training in the background."""
    if resume_id:
        record = registry.get(resume_id)
        config_path = record.run_dir / "config.yaml"
        args = ["--run-id", resume_id, "--resume"]
    else:
        from .train import preflight

        preflight(cfg)  # fail fast in the caller for a missing/empty dataset
        run_id = registry.new_run_id(cfg.name or f"{cfg.method}-{Path(cfg.data).stem}")
        record = registry.create(
            run_id,
            name=cfg.name or f"{cfg.method} on {Path(cfg.data).name}",
            method=cfg.method,
            model=cfg.model,
            dataset=str(cfg.data),
        )
        config_path = record.run_dir / "config.yaml"
        cfg.save(config_path)
        args = ["--run-id", run_id]
    log = open(record.run_dir / "stdout.txt", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "studio", "train", str(config_path), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # own process group: closing the UI never kills the run
        cwd=str(Path(__file__).resolve().parents[2]),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    registry.set_pid(record.id, process.pid)
    return registry.get(record.id)


def cancel(run_id: str, *, grace_seconds: float = 6.0) -> str:
    """Graceful stop (checkpoint at the end of the step), then SIGTERM, then SIGKILL the group."""
    record = registry.get(run_id)
    if record is None:
        return f"No run with id {run_id}."
    if record.status not in ("running", "queued"):
        return f"Run {run_id} is already {record.status}."
    (record.run_dir / CANCEL_FILE).touch()
    deadline = time.time() + grace_seconds
    while time.time() < deadline:
        if not registry.is_alive(record.pid, record.pid_start):
            break
        time.sleep(0.2)
    else:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(record.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(2.0)
            if not registry.is_alive(record.pid, record.pid_start):
                break
    record = registry.get(run_id, reconcile=False)
    if record.status in ("running", "queued"):
        registry.finish(run_id, "cancelled", "Stopped by the user.")
    return f"Run {run_id} is {registry.get(run_id).status}."
