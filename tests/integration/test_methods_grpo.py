"""GRPO on the embedded model: a reward per function is logged, and a raising reward file never stops the run."""

from __future__ import annotations

import json

import pytest

from studio.jobs import registry
from studio.jobs.metrics import read_metrics
from studio.jobs.train import execute
from tests.conftest import DEMO_DATA, write_yaml
from tests.integration.test_methods_preference import subset

pytestmark = pytest.mark.integration

TINY = dict(model="embedded", method="grpo", max_length=96, per_device_train_batch_size=2, num_generations=2, response_length=6,
            learning_rate=5.0e-4, save_steps=100, lora_r=8, lora_alpha=16, logging_steps=1)


def test_grpo_logs_a_reward_per_function_and_the_completions(studio_home, tmp_path):
    data = subset(DEMO_DATA, 8, tmp_path / "answers.jsonl")  # instruction data: its reply is the reference
    rewards = [{"type": "json_valid", "weight": 1.0}, {"type": "regex", "pattern": r"^\s*\{", "name": "starts_with_brace", "weight": 0.5},
               {"type": "length", "max": 40}, {"type": "exact"}]
    run_dir = execute(write_yaml(tmp_path / "grpo.yaml", data=str(data), max_steps=4, rewards=rewards, **TINY))
    (record,) = registry.list_runs()
    assert record.status == "completed", record.message

    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for name in ("json_valid", "starts_with_brace", "length", "exact"):
        assert all(0.0 <= r[f"rewards/{name}/mean"] <= 1.0 for r in rows), name
    assert all("kl" in r and "completions/mean_length" in r for r in rows)
    # the total is the weighted sum of the per-function means (TRL's `reward`)
    for r in rows:
        total = r["rewards/json_valid/mean"] + 0.5 * r["rewards/starts_with_brace/mean"] + r["rewards/length/mean"] + r["rewards/exact/mean"]
        assert r["reward"] == pytest.approx(total, abs=1e-4)
    table = [json.loads(line) for line in (run_dir / "completions.jsonl").read_text().splitlines()]
    assert sorted({t["step"] for t in table}) == [1, 2, 3, 4]
    assert all(set(t["rewards"]) == {"json_valid", "starts_with_brace", "length", "exact"} and isinstance(t["completion"], str) for t in table)
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_a_reward_file_that_raises_does_not_stop_the_run(studio_home, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in ("Name a colour.", "Name a fruit.", "Name a planet.", "Name a river.")))
    broken = tmp_path / "my_reward.py"
    broken.write_text("def reward(prompt, completion, reference):\n    return {'a': 1}['missing-key']\n")
    rewards = [{"type": "python", "file": str(broken)}, {"type": "length", "min": 1, "max": 30}]
    run_dir = execute(write_yaml(tmp_path / "grpo.yaml", data=str(prompts), max_steps=2, rewards=rewards, **{**TINY, "kl_coef": 0.0}))
    (record,) = registry.list_runs()
    assert record.status == "completed", record.message
    rows = read_metrics(run_dir / "metrics.jsonl")
    steps = [r for r in rows if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(r["rewards/python/mean"] == 0.0 for r in steps)
    errors = [r for r in rows if r.get("kind") == "reward_error"]
    assert len(errors) == 1  # shown once, not every step
    assert errors[0]["reward_name"] == "python" and errors[0]["error_type"] == "KeyError" and "missing-key" in errors[0]["error"]
    log = (run_dir / "log.txt").read_text()
    assert log.count("reward 'python' raised KeyError") == 1
