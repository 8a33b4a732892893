"""Multi-GPU through `accelerate launch` (DDP for LoRA, FSDP for full SFT), the one-GPU-job queue,
and cancel of a multi-GPU run. Needs 2 CUDA GPUs; run on the lent 2xH200 machine:

    .venv/bin/python -m pytest tests/gpu/test_ddp.py -m gpu -v -s
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from studio.config import RunConfig
from studio.jobs import registry, runner
from studio.jobs.metrics import read_metrics
from tests.conftest import DEMO_DATA, run_cli, write_yaml

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")]


def train_steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]


def wait_for(condition, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def live_rank_processes(run_id: str) -> list[int]:
    """Training ranks of this run still alive: their command line names the run id. The
    `accelerate launch` parent names it too (it passes the rank command line on), so it is left out."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if run_id in cmdline and "--worker" in cmdline and "accelerate.commands.launch" not in cmdline:
                pids.append(int(proc.name))
    return pids


@pytest.mark.parametrize("method, engine", [("lora", "--multi_gpu"), ("full", "--use_fsdp")])
def test_two_gpu_run_through_accelerate(gpu_model, studio_home, tmp_path, method, engine):
    config = write_yaml(
        tmp_path / "run.yaml", model=gpu_model, method=method, data=str(DEMO_DATA), gpus="0,1",
        max_steps=4, max_length=128, per_device_train_batch_size=4, learning_rate=1e-4, save_steps=2,
    )
    started = time.time()
    result = run_cli("train", str(config), home=studio_home, timeout=900)
    elapsed = time.time() - started
    assert result.returncode == 0, result.stderr[-4000:]
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    log = (run_dir / "log.txt").read_text()
    assert "accelerate.commands.launch --num_processes 2" in log and engine in log, log[-3000:]
    assert train_steps(run_dir) == [1, 2, 3, 4]  # rank 0 alone writes metrics
    (record,) = registry.list_runs()
    assert record.status == "completed" and record.device == "cuda:0,1", record.message
    env = json.loads((run_dir / "env.json").read_text())
    assert len(env["gpus"]) == 2 and env["driver"]
    saved = run_dir / ("adapter" if method == "lora" else "model")
    assert any(saved.glob("*.safetensors")), list(saved.iterdir()) if saved.exists() else "no output folder"
    print(f"{method} on 2 GPUs ({engine}): 4 steps in {elapsed:.1f} s wall, final {record.final_metrics}")


def test_second_gpu_run_waits_in_the_queue_and_cancel_stops_every_rank(gpu_model, studio_home):
    base = dict(model=gpu_model, method="lora", data=str(DEMO_DATA), max_length=128, per_device_train_batch_size=4, learning_rate=1e-4)
    first = runner.start(RunConfig.from_dict({**base, "gpus": "0,1", "max_steps": 2000, "save_steps": 1000}))
    second = runner.start(RunConfig.from_dict({**base, "gpus": "0", "max_steps": 2}))
    wait_for(lambda: train_steps(first.run_dir), 600, "the 2-GPU run's first step")
    assert len(live_rank_processes(first.id)) == 2
    waiting = registry.get(second.id)
    assert waiting.status == "queued" and "Waiting for the GPU" in (waiting.message or "")

    started = time.time()
    message = runner.cancel(first.id)
    elapsed = time.time() - started
    print(f"2-GPU cancel: {elapsed:.2f} s ({message})")
    assert registry.get(first.id).status == "cancelled" and elapsed < 10
    wait_for(lambda: not live_rank_processes(first.id), 5, "every rank to exit")

    done = wait_for(lambda: (r := registry.get(second.id)).status in registry.FINISHED and r, 600, "the queued run to run")
    assert done.status == "completed" and train_steps(second.run_dir) == [1, 2], done.message
    assert done.started >= registry.get(first.id).finished - 1  # it only started once the GPU was free
