"""DPO and the reward model on the embedded model (CPU, a few steps, easy synthetic pairs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from studio.jobs import registry
from studio.jobs.metrics import read_metrics
from studio.jobs.train import execute
from tests.conftest import REPO, write_yaml

pytestmark = pytest.mark.integration

PAIRS = REPO / "assets" / "demo" / "preference_pairs.jsonl"
HELDOUT = REPO / "assets" / "demo" / "preference_heldout.jsonl"
TINY = dict(model="embedded", max_length=64, per_device_train_batch_size=4, learning_rate=1.0e-3, save_steps=100, lora_r=8, lora_alpha=16)


def subset(path: Path, rows: int, target: Path) -> Path:
    target.write_text("".join(path.read_text().splitlines(keepends=True)[:rows]))
    return target


def lora_b_changed(adapter: Path) -> bool:
    """LoRA's B matrices start at zero, so any non-zero B means training moved the adapter."""
    tensors = load_file(str(adapter / "adapter_model.safetensors"))
    bs = [t for name, t in tensors.items() if "lora_B" in name]
    return bool(bs) and all(float(t.abs().sum()) > 0 for t in bs)


def test_dpo_learns_easy_pairs_and_logs_trl_metrics(studio_home, tmp_path):
    data = subset(PAIRS, 16, tmp_path / "pairs.jsonl")
    run_dir = execute(write_yaml(tmp_path / "dpo.yaml", method="dpo", data=str(data), max_steps=3, dpo_beta=0.1, **TINY))
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "rewards/accuracies" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "loss"):
        assert all(key in r for r in rows), key
    assert rows[-1]["rewards/accuracies"] > 0.5, rows
    assert rows[-1]["rewards/margins"] > rows[0]["rewards/margins"]
    assert lora_b_changed(run_dir / "adapter")
    (record,) = registry.list_runs()
    assert record.status == "completed", record.message

    from studio.chat import ChatEngine

    from studio.engine import GenerationSettings, ModelPool

    engine = ChatEngine.for_run(record, pool=ModelPool())  # the saved adapter loads back onto the base
    answer = engine.answer([{"role": "user", "content": "What is the capital of Peru?"}], tuned=True, settings=GenerationSettings(temperature=0.0, max_new_tokens=8))
    assert isinstance(answer, str) and answer.strip()


def test_reward_model_ranks_held_out_chosen_over_rejected(studio_home, tmp_path):
    data = subset(PAIRS, 16, tmp_path / "pairs.jsonl")
    run_dir = execute(write_yaml(tmp_path / "rm.yaml", method="reward", data=str(data), max_steps=4, **TINY))
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "accuracy" in r and "loss" in r]
    assert len(rows) == 4 and all("margin" in r for r in rows)
    assert lora_b_changed(run_dir / "reward_model")
    saved = load_file(str(run_dir / "reward_model" / "adapter_model.safetensors"))
    assert any("score" in name for name in saved), "the score head must be saved (modules_to_save)"

    from studio import models
    from studio.methods.common import prepare_tokenizer
    from studio.methods.reward import load_reward_model, score

    resolved = models.resolve("embedded")
    tokenizer = prepare_tokenizer(resolved)
    model = load_reward_model(str(run_dir), resolved, tokenizer)
    pairs = [json.loads(line) for line in HELDOUT.read_text().splitlines()]
    chosen = score(model, tokenizer, [[{"role": "user", "content": p["prompt"]}, {"role": "assistant", "content": p["chosen"]}] for p in pairs])
    rejected = score(model, tokenizer, [[{"role": "user", "content": p["prompt"]}, {"role": "assistant", "content": p["rejected"]}] for p in pairs])
    wins = sum(c > r for c, r in zip(chosen, rejected))
    print(f"reward model: chosen above rejected on {wins}/{len(pairs)} held-out pairs")
    assert wins >= 0.75 * len(pairs)
