"""The job queue: one GPU run at a time, CPU runs never wait.

There is no queue daemon to crash: each run's own process waits (status `queued`) until it is the
oldest live queued GPU run and holds an exclusive lock on `$STUDIO_HOME/gpu.lock`. The kernel
drops the lock when the process dies, however it dies, so a killed run never blocks the queue.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..config import RunConfig
from ..errors import StudioError
from ..paths import studio_home
from . import registry
from .metrics import CANCEL_FILE


def select_gpus(cfg: RunConfig) -> list[int]:
    """Apply the config's GPU choice to this process (before CUDA starts) and return the GPUs used."""
    choice = str(cfg.gpus).strip().lower()
    if choice == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return []
    if choice:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(part.strip() for part in choice.split(","))
    import torch

    if not torch.cuda.is_available():
        if choice:
            raise StudioError(f"gpus: '{cfg.gpus}' was asked for, but no CUDA GPU is visible.", hint="Set `gpus: cpu` or leave it empty.")
        return []
    count = torch.cuda.device_count()
    if choice:
        return [int(part) for part in choice.split(",")][:count]
    return list(range(count))


def device_label(gpus: list[int]) -> str:
    return "cuda:" + ",".join(map(str, gpus)) if gpus else "cpu"


class GpuSlot:
    """Held for the whole run by the process that trains (or launches the trainers)."""

    def __init__(self):
        self.path = studio_home() / "gpu.lock"
        self.handle = None

    def try_acquire(self) -> bool:
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return False
        self.handle = lock
        return True

    def release(self) -> None:
        if self.handle is not None:
            self.handle.release()  # a killed process drops it too (the OS lock goes with its file handle)
            self.handle = None


def is_first_in_line(run_id: str) -> bool:
    """No older GPU run is still waiting in the queue (FIFO order by creation time)."""
    me = registry.get(run_id, reconcile=False)
    if (me.device or "cpu") == "cpu":
        return True  # CPU runs never wait
    for other in registry.list_runs():
        if other.id == run_id or other.status != "queued" or (other.device or "cpu") == "cpu":
            continue
        if other.created < me.created and other.alive:
            return False
    return True


def wait_for_gpu(run_id: str, run_dir: Path, *, poll_seconds: float = 0.5) -> GpuSlot | None:
    """Block until this run may use the GPU. Returns None if the user cancelled while it waited."""
    slot = GpuSlot()
    announced = False
    while True:
        if (Path(run_dir) / CANCEL_FILE).exists():
            return None
        if is_first_in_line(run_id) and slot.try_acquire():
            return slot
        if not announced:
            registry.set_message(run_id, "Waiting for the GPU: another run is using it.")
            announced = True
        time.sleep(poll_seconds)
