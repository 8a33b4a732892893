"""The demo end to end through the real CLI: one LoRA epoch on the embedded model teaches the JSON shape."""

from __future__ import annotations

import json

import pytest

from studio.chat import ChatEngine

from studio.engine import GenerationSettings, generate_batch
from studio.jobs import registry
from studio.jobs.metrics import read_metrics
from tests.conftest import HELDOUT, demo_listing, demo_run_id, run_cli

pytestmark = pytest.mark.integration

METRIC_KEYS = {"step", "loss", "learning_rate", "grad_norm", "tokens_per_second", "epoch", "time"}


def shows_behaviour(answer: str) -> bool:
    """The taught behaviour: the whole answer is a JSON object with `topic` and `answer`."""
    try:
        value = json.loads(answer.strip())
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict) and {"topic", "answer"} <= set(value)


def test_cli_writes_the_run_folder(trained_demo_run, monkeypatch):
    home, result = trained_demo_run
    run_dir = result.stdout.strip().splitlines()[-1]
    assert run_dir.startswith(str(home / "runs"))
    from pathlib import Path

    run_dir = Path(run_dir)
    assert (run_dir / "config.yaml").is_file() and (run_dir / "log.txt").is_file()
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    # The adapter names the embedded model's Hub original, not the studio's GGUF cache; the log keeps that
    # cache folder. Chat, eval and export load this run below and in their own tests, offline (HF_HUB_OFFLINE=1).
    adapter_config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "adapter/adapter_config.json names the base model HuggingFaceTB/SmolLM2-135M-Instruct (trained from /" in (run_dir / "log.txt").read_text()
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]
    assert len(rows) == 14  # 112 examples / batch 8, one epoch, logged every step
    assert [r["step"] for r in rows] == list(range(1, 15))
    for row in rows[1:]:
        assert METRIC_KEYS <= set(row), row
        assert row["tokens_per_second"] > 0
    assert rows[-1]["loss"] < rows[0]["loss"]
    monkeypatch.setenv("STUDIO_HOME", str(home))
    record = registry.get(demo_run_id(trained_demo_run))
    assert record.status == "completed" and record.final_metrics["global_step"] == 14


def test_tuned_model_learned_the_json_shape_base_did_not(trained_demo_run, monkeypatch):
    home, _ = trained_demo_run
    monkeypatch.setenv("STUDIO_HOME", str(home))
    record = registry.get(demo_run_id(trained_demo_run))
    engine = ChatEngine.for_run(record)
    assert engine.base_side.base is engine.tuned_side.base  # one copy of the base weights
    settings = GenerationSettings(temperature=0.0, max_new_tokens=40)
    prompts = json.loads(HELDOUT.read_text())
    assert len(prompts) == 10
    # Greedy answers through the chat engine's batched path (one left-padded batch per side, the
    # adapter switched on for the tuned side and off for the base): the same weights and the same
    # greedy decoding as engine.answer, without its per-token adapter switching (~5x slower on CPU).
    # engine.answer itself is checked token for token in test_chat_pairs.py and through the CLI below.
    convos = [[{"role": "user", "content": p}] for p in prompts]
    tuned = generate_batch(engine.tuned_side, convos, settings, batch_size=len(convos))
    base = generate_batch(engine.base_side, convos, settings, batch_size=len(convos))
    tuned_hits = sum(map(shows_behaviour, tuned))
    base_hits = sum(map(shows_behaviour, base))
    print(f"tuned {tuned_hits}/10, base {base_hits}/10")
    assert tuned_hits >= 8, tuned
    assert base_hits <= 2, base


def test_cli_chat_prints_the_answer_last(trained_demo_run):
    home, _ = trained_demo_run
    run = demo_listing(trained_demo_run)
    result = run_cli("chat", run["id"], "--prompt", "What is the capital of Italy?", "--greedy", "--max-new-tokens", "24", home=home)
    assert result.returncode == 0, result.stderr[-2000:]
    assert shows_behaviour(result.stdout.strip().splitlines()[-1])
