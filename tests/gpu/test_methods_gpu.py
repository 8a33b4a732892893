"""DPO (and QLoRA-based DPO) on a CUDA GPU through the real CLI; prints the step time for the notes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli, write_yaml

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu

PAIRS = REPO / "assets" / "demo" / "preference_pairs.jsonl"


def rows_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def train_on_pairs(method: str, steps: int, model: str, home: Path, tmp_path: Path) -> Path:
    """Train `method` on the demo preference pairs through the CLI; returns the run folder."""
    config = write_yaml(tmp_path / f"{method}.yaml", model=model, method=method, data=str(PAIRS), max_steps=steps, max_length=128,
                        per_device_train_batch_size=8, learning_rate=1.0e-3, save_steps=100)
    result = run_cli("train", str(config), home=home)
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.strip().splitlines()[-1])


def test_dpo_on_gpu_logs_rewards_and_learns(gpu_model, studio_home, tmp_path):
    run_dir = train_on_pairs("dpo", 6, gpu_model, studio_home, tmp_path)
    rows = [r for r in rows_of(run_dir) if "rewards/accuracies" in r]
    assert len(rows) == 6 and all(math.isfinite(r["loss"]) for r in rows)
    assert rows[-1]["rewards/margins"] > rows[0]["rewards/margins"]
    times = [r["time"] for r in rows]
    print(f"DPO step time on {torch.cuda.get_device_name(0)}: {(times[-1] - times[1]) / (len(times) - 2):.3f} s (batch 8 pairs, max_length 128)")
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_reward_model_on_gpu(gpu_model, studio_home, tmp_path):
    run_dir = train_on_pairs("reward", 4, gpu_model, studio_home, tmp_path)
    assert any("accuracy" in r for r in rows_of(run_dir))
    assert (run_dir / "reward_model" / "adapter_model.safetensors").is_file()


def test_grpo_with_a_reward_run_on_gpu(gpu_model, studio_home, tmp_path):
    """GRPO scoring with a trained reward run on the GPU (the reward model's placement was untested)."""
    reward_dir = train_on_pairs("reward", 2, gpu_model, studio_home, tmp_path)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in ("Name a colour.", "Name a fruit.", "Name a city.", "Name a tree.")))
    rewards = [{"type": "reward_model", "run": reward_dir.name, "name": "rm"}, {"type": "length", "min": 1, "max": 30}]
    config = write_yaml(tmp_path / "grpo.yaml", model=gpu_model, method="grpo", data=str(prompts), max_steps=3, max_length=96,
                        per_device_train_batch_size=4, num_generations=4, response_length=16, learning_rate=5.0e-4, save_steps=100,
                        logging_steps=1, rewards=rewards)
    result = run_cli("train", str(config), home=studio_home)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    rows = [r for r in rows_of(run_dir) if "reward" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(math.isfinite(r["rewards/rm/mean"]) for r in rows)
    assert not [r for r in rows_of(run_dir) if r.get("kind") == "reward_error"]
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
