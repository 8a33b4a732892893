"""Faults with the real model: the disk fills up during a checkpoint save; secrets stay out of files."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from studio.jobs import registry
from studio.jobs.train import checkpoint_problem
from tests.conftest import DEMO_DATA, run_cli, write_yaml

pytestmark = pytest.mark.integration


@pytest.fixture
def tiny_disk(tmp_path):
    """A 10 MB tmpfs as $STUDIO_HOME: the first LoRA checkpoint (about 6.3 MB with the tokenizer) fits, the second doesn't."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=10m", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)])


def test_disk_full_during_checkpoint_is_reported_and_the_previous_checkpoint_survives(tiny_disk, tmp_path, monkeypatch):
    secret = f"hf_{uuid.uuid4().hex}"
    config = write_yaml(
        tmp_path / "run.yaml", data=str(DEMO_DATA), max_steps=4, save_steps=1, max_length=48, per_device_train_batch_size=2,
        lora_r=2, lora_alpha=4, lora_target="attention", logging_steps=1,
    )
    result = run_cli("train", str(config), home=tiny_disk, timeout=600, env={"HF_TOKEN": secret})
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert "The disk is full" in line and "checkpoint-1 is intact" in line and "resume" in line, line
    assert "Traceback" not in result.stderr

    monkeypatch.setenv("STUDIO_HOME", str(tiny_disk))
    (record,) = registry.list_runs()
    assert record.status == "failed" and "disk is full" in record.message
    checkpoints = sorted(p.name for p in (record.run_dir / "checkpoints").glob("checkpoint-*"))
    assert checkpoints[0] == "checkpoint-1"
    assert checkpoint_problem(record.run_dir / "checkpoints" / "checkpoint-1") is None
    assert all(checkpoint_problem(record.run_dir / "checkpoints" / name) is None for name in checkpoints)

    for path in tiny_disk.rglob("*"):  # an HF token in the environment never reaches a file
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
