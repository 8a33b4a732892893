"""Library-backed helpers: the Hub probe goes through huggingface_hub (HF_ENDPOINT applies), the
GPU slot is a filelock, a run's liveness is psutil's start time."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading

from studio import models
from studio.jobs import queue, registry
from tests.conftest import free_port


def test_hub_probe_follows_hf_endpoint(monkeypatch):
    from huggingface_hub import constants

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    try:
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert models.hub_reachable(timeout=3)
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens there
        assert not models.hub_reachable(timeout=3)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert not models.hub_reachable(timeout=3)
    finally:
        server.shutdown()


def test_gpu_slot_is_exclusive_across_processes(studio_home):
    slot = queue.GpuSlot()
    assert slot.try_acquire()
    other = subprocess.run([sys.executable, "-c", "from studio.jobs.queue import GpuSlot; print(GpuSlot().try_acquire())"],
                           env={**os.environ}, capture_output=True, text=True, timeout=60)
    assert other.stdout.strip() == "False", other.stderr
    slot.release()
    again = subprocess.run([sys.executable, "-c", "from studio.jobs.queue import GpuSlot; print(GpuSlot().try_acquire())"],
                           env={**os.environ}, capture_output=True, text=True, timeout=60)
    assert again.stdout.strip() == "True", again.stderr


def test_liveness_tells_a_reused_pid_apart():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = registry.process_start_time(child.pid)
        assert started is not None and registry.is_alive(child.pid, started)
        assert not registry.is_alive(child.pid, f"{float(started) - 100:.2f}")  # same pid, another process
    finally:
        child.kill()
        child.wait()
    assert registry.process_start_time(child.pid) is None
