"""Run lifecycle on the real embedded model: SIGKILL + resume, cancel within 10 s with reattach,
and an injected OOM. Tiny runs (max_length 64, batch 2, a few steps) to stay in the time budget."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from studio.config import RunConfig
from studio.jobs import registry, runner
from studio.jobs.metrics import read_metrics
from studio.jobs.train import latest_checkpoint
from tests.conftest import DEMO_DATA, run_cli, write_yaml

pytestmark = pytest.mark.integration

TINY = dict(model="embedded", method="lora", data=str(DEMO_DATA), max_length=64, per_device_train_batch_size=2, learning_rate=1e-3)


def wait_for(condition, timeout: float, what: str, poll: float = 0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def train_steps(run_dir) -> list[int]:
    return [r["step"] for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]


def test_sigkill_marks_interrupted_and_resume_continues_without_duplicate_or_lost_steps(studio_home):
    record = runner.start(RunConfig.from_dict({**TINY, "max_steps": 6, "save_steps": 2}))
    run_dir = record.run_dir

    def past_a_checkpoint():
        steps = train_steps(run_dir)
        checkpoint = latest_checkpoint(run_dir)
        return checkpoint and steps and steps[-1] > int(checkpoint.rsplit("-", 1)[1]) and steps[-1] < 6

    wait_for(past_a_checkpoint, 600, "a logged step after the first checkpoint")
    os.killpg(registry.get(record.id).pid, signal.SIGKILL)
    logged_before_kill = train_steps(run_dir)
    checkpoint = latest_checkpoint(run_dir)
    wait_for(lambda: registry.get(record.id).status == "interrupted", 10, "the registry to notice the kill")

    runner.start(resume_id=record.id)
    final = wait_for(lambda: (r := registry.get(record.id)).status in registry.FINISHED and r, 600, "the resumed run to finish")
    assert final.status == "completed", (final.message, (run_dir / "stdout.txt").read_text()[-2000:])
    assert train_steps(run_dir) == [1, 2, 3, 4, 5, 6], f"killed after {logged_before_kill}, resumed from {checkpoint}"
    assert final.final_metrics["global_step"] == 6
    assert f"resuming from {checkpoint}" in (run_dir / "log.txt").read_text()


def test_cancel_stops_within_10_s_and_a_restarted_app_reattaches(studio_home):
    record = runner.start(RunConfig.from_dict({**TINY, "max_steps": 300, "save_steps": 100}))
    wait_for(lambda: train_steps(record.run_dir), 600, "the first logged step")

    # An app restart is a new process reading the registry: the run is still running, same pid.
    listed = run_cli("runs", "list", "--json", home=studio_home, timeout=120)
    (seen,) = json.loads(listed.stdout)
    assert seen["id"] == record.id and seen["status"] == "running" and seen["pid"] == registry.get(record.id).pid
    from components.run_monitor import default_run

    assert default_run() == record.id

    rows = [r for r in read_metrics(record.run_dir / "metrics.jsonl") if "loss" in r]
    started = time.time()
    message = runner.cancel(record.id)
    elapsed = time.time() - started
    print(f"cancel took {elapsed:.2f} s: {message}")
    cancelled = registry.get(record.id)
    assert cancelled.status == "cancelled" and elapsed < 10, message
    assert not registry.is_alive(cancelled.pid, cancelled.pid_start)
    if len(rows) >= 2 and rows[-1]["time"] - rows[-2]["time"] < 2.0:  # steps short enough for the graceful path
        assert latest_checkpoint(record.run_dir), "a graceful cancel saves a checkpoint"
        assert "checkpoint was saved" in cancelled.message


def test_injected_oom_fails_with_advice_and_no_traceback(studio_home, tmp_path):
    config = write_yaml(tmp_path / "run.yaml", **TINY, max_steps=2)
    result = run_cli("train", str(config), home=studio_home, env={"STUDIO_INJECT_FAULT": "oom"}, timeout=600)
    assert result.returncode == 2
    assert "Out of GPU memory" in result.stderr and "gradient_checkpointing" in result.stderr and "qlora" in result.stderr
    assert "Traceback" not in result.stderr
    (record,) = registry.list_runs()
    assert record.status == "failed" and "smaller per_device_train_batch_size" in record.message
    assert "OutOfMemoryError" in (record.run_dir / "log.txt").read_text()  # the details stay in the log
