"""Faults that need no model: corrupt/partial checkpoints fall back; a registry whose run folders
were deleted by hand still opens (engine, CLI and UI helpers)."""

from __future__ import annotations

import json
import shutil

import torch
from safetensors.torch import save_file

from studio.jobs import registry
from studio.jobs.train import checkpoint_problem, latest_checkpoint, remove_partial_checkpoints
from tests.conftest import run_cli


def make_checkpoint(run_dir, step, *, corrupt=False, partial=False):
    path = run_dir / "checkpoints" / f"checkpoint-{step}"
    path.mkdir(parents=True)
    save_file({"w": torch.zeros(4)}, str(path / "adapter_model.safetensors"))
    if corrupt:
        data = (path / "adapter_model.safetensors").read_bytes()
        (path / "adapter_model.safetensors").write_bytes(data[:10])
    if not partial:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def test_corrupt_or_partial_last_checkpoint_falls_back(tmp_path):
    make_checkpoint(tmp_path, 2)
    make_checkpoint(tmp_path, 4, corrupt=True)
    make_checkpoint(tmp_path, 6, partial=True)
    assert "corrupt" in checkpoint_problem(tmp_path / "checkpoints" / "checkpoint-4")
    assert "cut off" in checkpoint_problem(tmp_path / "checkpoints" / "checkpoint-6")
    assert latest_checkpoint(tmp_path).endswith("checkpoint-2")
    assert remove_partial_checkpoints(tmp_path) == ["checkpoint-6"]
    assert (tmp_path / "checkpoints" / "checkpoint-2").is_dir() and (tmp_path / "checkpoints" / "checkpoint-4").is_dir()


def test_no_usable_checkpoint(tmp_path):
    make_checkpoint(tmp_path, 3, corrupt=True)
    assert latest_checkpoint(tmp_path) is None


def test_registry_with_deleted_run_folders_still_opens(studio_home):
    for run_id in ("gone-1", "gone-2"):
        record = registry.create(run_id, name=run_id, method="lora", model="embedded", dataset="d")
        registry.finish(run_id, "completed")
        shutil.rmtree(record.run_dir)
    assert {r.id for r in registry.list_runs()} >= {"gone-1", "gone-2"}
    result = run_cli("runs", "list", "--json", home=studio_home)
    assert result.returncode == 0, result.stderr
    assert {r["id"] for r in json.loads(result.stdout)} >= {"gone-1", "gone-2"}
    shown = run_cli("runs", "show", "gone-1", home=studio_home)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr

    from components import chat_tab, train_tab

    train_tab.run_choices()  # the UI's run lists build without the folders
    chat_tab.chat_run_choices()
