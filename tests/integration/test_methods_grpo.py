"""GRPO on the embedded model: a reward per function is logged, and a raising reward file never stops the run."""

from __future__ import annotations

import json
import math

import pytest

from studio.jobs import registry
from studio.jobs.metrics import read_metrics
from studio.jobs.train import execute
from tests.conftest import DEMO_DATA, REPO, write_yaml
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
    # each completion says whether it was cut at response_length (6 tokens, no EOS): per step, the share cut is TRL's clipped_ratio
    assert all(isinstance(t["cut"], bool) for t in table) and any(t["cut"] for t in table)
    for r in rows:
        cut = [t["cut"] for t in table if t["step"] == r["step"]]
        assert sum(cut) / len(cut) == pytest.approx(r["completions/clipped_ratio"]), r["step"]
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


def _prompts(tmp_path, *questions: str):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in questions))
    return path


def _reward_rows(run_dir) -> list[dict]:
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if "reward" in r]


def test_grpo_scores_with_a_trained_reward_run(studio_home, tmp_path):
    from studio import models
    from studio.methods.common import prepare_tokenizer
    from studio.methods.reward import load_reward_model, score

    pairs = subset(REPO / "tests" / "data" / "public" / "preference_mixed.jsonl", 8, tmp_path / "pairs.jsonl")
    reward_dir = execute(write_yaml(tmp_path / "rm.yaml", model="embedded", method="reward", data=str(pairs), max_steps=1, max_length=96,
                                    per_device_train_batch_size=2, learning_rate=1.0e-3, save_steps=100, lora_r=8, lora_alpha=16))
    rewards = [{"type": "reward_model", "run": reward_dir.name, "name": "rm"}, {"type": "length", "min": 1, "max": 30}]  # the run by id, as typed
    run_dir = execute(write_yaml(tmp_path / "grpo.yaml", data=str(_prompts(tmp_path, "Name a colour.", "Name a fruit.")), max_steps=2, rewards=rewards,
                                 **{**TINY, "kl_coef": 0.0}))
    record = registry.get(run_dir.name)
    assert record.status == "completed", record.message
    rows = _reward_rows(run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["rewards/rm/mean"]) for r in rows)
    assert record.final_metrics["last_rewards/rm/mean"] == rows[-1]["rewards/rm/mean"]  # what `runs show` reports
    for row in rows:  # 6 new tokens: no completion ends, so there is no terminated length (TRL's placeholder 0 is dropped)
        assert row["completions/clipped_ratio"] < 1.0 or "completions/mean_terminated_length" not in row
    assert not [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("kind") == "reward_error"]  # scored, not zeroed by an error

    # the logged scores are the reward model's own scores of those completions, as the reward run sees a conversation
    table = [json.loads(line) for line in (run_dir / "completions.jsonl").read_text().splitlines()]
    assert len(table) == 4  # 2 steps x 1 prompt x 2 generations
    resolved = models.resolve("embedded")
    tokenizer = prepare_tokenizer(resolved)
    again = score(load_reward_model(reward_dir.name, resolved, tokenizer), tokenizer,
                  [[{"role": "user", "content": t["prompt"]}, {"role": "assistant", "content": t["completion"]}] for t in table])
    assert [t["rewards"]["rm"] for t in table] == pytest.approx(again, abs=2e-3)
    for row in rows:  # the plotted mean is the mean over that step's completions
        assert row["rewards/rm/mean"] == pytest.approx(sum(t["rewards"]["rm"] for t in table if t["step"] == row["step"]) / 2, abs=2e-3)


@pytest.mark.parametrize("weights", ["qlora", "full"])
def test_grpo_trains_a_4bit_base_or_every_weight(weights, studio_home, tmp_path, monkeypatch):
    import bitsandbytes as bnb
    from safetensors import safe_open

    from studio.methods import grpo

    policies = []  # the real policy the run trained (a spy: load_policy itself runs)
    load_policy = grpo.load_policy
    monkeypatch.setattr(grpo, "load_policy", lambda cfg, resolved: policies.append(load_policy(cfg, resolved)) or policies[-1])
    rewards = [{"type": "length", "min": 40, "max": 80}]  # short completions score below 1, in proportion to their length
    run_dir = execute(write_yaml(tmp_path / "grpo.yaml", data=str(_prompts(tmp_path, "Name a colour.", "Name a fruit.")), max_steps=1,
                                 rewards=rewards, weights=weights, **TINY))
    record = registry.get(run_dir.name)
    assert record.status == "completed", record.message
    (row,) = _reward_rows(run_dir)
    assert 0.0 <= row["rewards/length/mean"] <= 1.0 and "kl" in row
    four_bit = [m for m in policies[0].modules() if isinstance(m, bnb.nn.Linear4bit)]
    if weights == "qlora":
        assert four_bit and four_bit[0].weight.quant_type == "nf4"
        assert (run_dir / "adapter" / "adapter_model.safetensors").is_file() and not (run_dir / "model").exists()
    else:
        assert not four_bit and not (run_dir / "adapter").exists()
        with safe_open(str(run_dir / "model" / "model.safetensors"), "pt") as saved:
            names = list(saved.keys())
        assert "model.embed_tokens.weight" in names and not any("lora_" in n for n in names)
        assert (run_dir / "model" / "config.json").is_file() and (run_dir / "model" / "tokenizer_config.json").is_file()
