"""Launch a run as its own subprocess (own process group), and cancel or resume it.

The UI calls `start`; the child is `python -m studio train <config> --run-id <id>`, so a run
started from the UI and one started from a terminal are the same thing. The child queues itself
for the GPU (studio.jobs.queue), so `start` never blocks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from ..config import RunConfig
from ..errors import StudioError
from . import registry
from .metrics import CANCEL_FILE, STOPPING_FILE

RESUMABLE = ("interrupted", "failed", "cancelled")


def training_env() -> dict:
    """The environment of a training subprocess: studio.procenv's (allocator, OpenMP, compile
    caches; the user's own settings win), unbuffered so the log streams."""
    from ..procenv import environment

    from ..resources import child_env

    return child_env({**environment(), "PYTHONUNBUFFERED": "1"})


def start(cfg: RunConfig | None = None, *, resume_id: str | None = None) -> registry.RunRecord:
    """Write the config into a new run folder (or reuse a finished run's) and train in the background."""
    if resume_id:
        record = registry.get(resume_id)
        if record is None:
            raise StudioError(f"no run with id {resume_id}.")
        if record.status not in RESUMABLE:
            raise StudioError(f"run {resume_id} is {record.status}; only interrupted, failed or cancelled runs resume.")
        config_path = record.run_dir / "config.yaml"
        args = ["--run-id", resume_id, "--resume"]
    else:
        from ..paths import confine_config
        from .train import preflight

        confine_config(cfg)  # served beyond loopback: only the studio home and the owner's --allow-path roots
        preflight(cfg)  # fail fast in the caller for a missing/empty dataset
        run_id = registry.new_run_id(cfg.run_id_hint)
        record = registry.create(
            run_id,
            name=cfg.default_name,
            method=cfg.method,
            model=cfg.model,
            dataset=str(cfg.data),
        )
        config_path = record.run_dir / "config.yaml"
        cfg.save(config_path)
        args = ["--run-id", run_id]
    with open(record.run_dir / "stdout.txt", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "studio", "train", str(config_path), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: closing the UI never kills the run
            env=training_env(),
        )
    registry.mark_launched(record.id, process.pid)
    _reap_in_background(process)
    return registry.get(record.id)


def _reap_in_background(process: subprocess.Popen) -> None:
    """Wait on the child from a daemon thread, so a finished run never lingers as a zombie."""
    threading.Thread(target=process.wait, daemon=True).start()


def _signal_run(pid: int, sig: int) -> None:
    """Signal the run's whole process group when it leads one (UI runs, accelerate workers);
    a run started from a shell shares the shell's group, so only its own pid is signalled."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def cancel(run_id: str, *, grace_seconds: float = 5.0, checkpoint_seconds: float = 7.5) -> str:
    """Graceful stop at the end of the current step (with a checkpoint), then SIGTERM, then SIGKILL
    to the process group. The run is `cancelled` within about 10 s whatever the trainer is doing."""
    record = registry.get(run_id)
    if record is None:
        return f"No run with id {run_id}."
    if record.status not in ("running", "queued"):
        return f"Run {run_id} is already {record.status}."
    (record.run_dir / CANCEL_FILE).touch()
    started = time.time()

    def alive() -> bool:
        return registry.is_alive(record.pid, record.pid_start)

    # The trainer touches STOPPING when it has seen the request and is writing the checkpoint.
    while alive() and time.time() - started < (checkpoint_seconds if (record.run_dir / STOPPING_FILE).exists() else grace_seconds):
        time.sleep(0.1)
    for sig, wait in ((signal.SIGTERM, 1.5), (signal.SIGKILL, 0.5)):
        if not alive():
            break
        _signal_run(record.pid, sig)
        deadline = time.time() + wait
        while alive() and time.time() < deadline:
            time.sleep(0.05)
    current = registry.get(run_id, reconcile=False)
    if current.status in ("running", "queued"):
        registry.finish(run_id, "cancelled", "Stopped by the user" + ("." if alive() else "; resume continues from the last saved checkpoint."))
    return f"Run {run_id} is {registry.get(run_id, reconcile=False).status} ({time.time() - started:.1f} s)."


def cancel_in_background(run_id: str) -> str:
    """For the UI: the escalation waits up to ~10 s, which must not hold a UI callback."""
    record = registry.get(run_id)
    if record is None or record.status not in ("running", "queued"):
        return f"Run {run_id} is not running." if record else f"No run with id {run_id}."
    threading.Thread(target=cancel, args=(run_id,), daemon=True).start()
    return f"Stopping run {run_id}: it saves a checkpoint at the end of this step (at most ~10 s)."
