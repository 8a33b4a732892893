"""The RLHF chain (SFT -> reward model -> PPO) from one YAML, then RLOO reusing its reward model."""

from __future__ import annotations

import json

import pytest

from studio.jobs import registry
from studio.jobs.metrics import read_metrics
from studio.jobs.train import execute
from tests.conftest import DEMO_DATA, REPO, write_yaml
from tests.integration.test_methods_preference import lora_b_changed, subset

pytestmark = pytest.mark.integration

PAIRS = REPO / "assets" / "demo" / "preference_pairs.jsonl"
TINY = dict(model="embedded", max_length=64, per_device_train_batch_size=4, learning_rate=5.0e-4, save_steps=100, lora_r=8, lora_alpha=16, response_length=8)
PPO_KEYS = ("objective/kl", "objective/entropy", "objective/scores", "objective/rlhf_reward", "loss/value_avg", "loss/policy_avg")


def test_rlhf_chain_hands_each_stage_to_the_next(studio_home, tmp_path):
    sft_data = subset(DEMO_DATA, 8, tmp_path / "sft.jsonl")
    pairs = subset(PAIRS, 8, tmp_path / "pairs.jsonl")
    config = write_yaml(tmp_path / "rlhf.yaml", method="rlhf", sft_data=str(sft_data), data=str(pairs), max_steps=2, ppo_epochs=1, **TINY)
    run_dir = execute(config)
    (record,) = registry.list_runs()
    assert record.status == "completed", record.message

    rows = read_metrics(run_dir / "metrics.jsonl")
    by_stage = {stage: [r for r in rows if r.get("stage") == stage and "event" not in r] for stage in ("sft", "reward", "ppo")}
    assert [r["step"] for r in by_stage["sft"] if "loss" in r] == [1, 2]
    assert [r["step"] for r in by_stage["reward"] if "accuracy" in r and "loss" in r] == [1, 2]
    ppo_rows = [r for r in by_stage["ppo"] if "objective/kl" in r]
    assert [r["step"] for r in ppo_rows] == [1, 2]
    for key in PPO_KEYS:
        assert all(key in r for r in ppo_rows), key
    # every stage's output fed the next: SFT adapter -> PPO policy start, reward model -> PPO
    for stage in ("sft", "reward", "ppo"):
        assert (run_dir / "stages" / stage / "done.json").is_file()
    log = (run_dir / "log.txt").read_text()
    assert "stage reward" in log and "stage ppo" in log
    assert lora_b_changed(run_dir / "stages" / "sft" / "adapter")
    assert lora_b_changed(run_dir / "stages" / "reward" / "reward_model")
    assert lora_b_changed(run_dir / "adapter")
    from safetensors.torch import load_file

    sft = load_file(str(run_dir / "stages" / "sft" / "adapter" / "adapter_model.safetensors"))
    ppo = load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))
    assert sft.keys() == ppo.keys() and any(not sft[k].equal(ppo[k]) for k in sft)  # PPO continued the SFT adapter
    final = record.final_metrics
    assert "reward/accuracy" in json.dumps(final) or any(k.startswith("reward/") for k in final)

    # the RL result loads back as a chat model
    from studio.chat import ChatEngine
    from studio.engine import GenerationSettings, ModelPool

    engine = ChatEngine.for_run(record, pool=ModelPool())
    assert engine.answer([{"role": "user", "content": "Name a colour."}], tuned=True, settings=GenerationSettings(temperature=0.0, max_new_tokens=6)).strip()

    # RLOO, the critic-free alternative, reuses the chain's reward model by folder
    rloo = execute(write_yaml(tmp_path / "rloo.yaml", method="rloo", data=str(pairs), reward_model=str(run_dir / "stages" / "reward"), max_steps=1, num_generations=2, **TINY))
    rloo_rows = [r for r in read_metrics(rloo / "metrics.jsonl") if r.get("stage") == "rloo" and "reward" in r and "event" not in r]
    assert rloo_rows and "kl" in rloo_rows[-1]
    assert not (rloo / "stages" / "reward").exists()  # no second reward model was trained
    assert lora_b_changed(rloo / "adapter")
