"""The GPU queue and cancel escalation, with real processes (no model)."""

import subprocess
import sys
import time

from studio.jobs import queue, registry, runner
from studio.jobs.metrics import CANCEL_FILE

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
# Ignores SIGTERM, like a trainer stuck inside a long step: only SIGKILL stops it.
STUBBORN = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"]


def queued_run(run_id: str, device: str, command=SLEEPER) -> subprocess.Popen:
    registry.create(run_id, name=run_id, method="lora", model="embedded", dataset="d")
    child = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE)
    registry.mark_queued(run_id, child.pid, device)
    time.sleep(0.01)  # distinct creation times keep FIFO order unambiguous
    return child


def test_gpu_slot_is_exclusive_until_released(studio_home):
    first, second = queue.GpuSlot(), queue.GpuSlot()
    assert first.try_acquire()
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()


def test_gpu_runs_wait_in_creation_order_and_cpu_runs_never_wait(studio_home):
    older = queued_run("older", "cuda:0")
    younger = queued_run("younger", "cuda:0")
    cpu = queued_run("cpu-run", "cpu")
    try:
        assert queue.is_first_in_line("older")
        assert not queue.is_first_in_line("younger")
        assert queue.is_first_in_line("cpu-run")
        older.kill()
        older.wait()
        assert queue.is_first_in_line("younger")  # a dead run never blocks the queue
        assert registry.get("older").status == "interrupted"
    finally:
        for child in (older, younger, cpu):
            child.kill()
            child.wait()


def test_waiting_run_gives_up_when_cancelled(studio_home):
    holder = queue.GpuSlot()
    assert holder.try_acquire()
    record = registry.create("waiter", name="w", method="lora", model="embedded", dataset="d")
    (record.run_dir / CANCEL_FILE).touch()
    assert queue.wait_for_gpu("waiter", record.run_dir, poll_seconds=0.01) is None
    holder.release()


def test_cancel_escalates_to_sigkill_for_a_process_that_ignores_sigterm(studio_home):
    child = queued_run("stuck", "cpu", STUBBORN)
    child.stdout.readline()  # the SIGTERM handler is installed
    registry.mark_running("stuck", child.pid)
    started = time.time()
    message = runner.cancel("stuck", grace_seconds=0.5, checkpoint_seconds=0.5)
    elapsed = time.time() - started
    assert child.wait(timeout=5) == -9  # SIGKILL
    assert registry.get("stuck").status == "cancelled", message
    assert elapsed < 0.5 + 1.5 + 0.5 + 1.0


def test_select_gpus_cpu_hides_cuda(studio_home, monkeypatch):
    from studio.config import RunConfig

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert queue.select_gpus(RunConfig.from_dict({"data": "x", "gpus": "cpu"})) == []
    assert queue.device_label([]) == "cpu" and queue.device_label([0, 1]) == "cuda:0,1"
