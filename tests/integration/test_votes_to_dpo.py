"""Stakeholder votes -> preference pairs -> a dataset version -> a DPO run trains on it (1 step)."""

from __future__ import annotations

import json

import pytest

from studio.votes import BlindRound, export_votes, record_vote
from studio.jobs import registry
from studio.jobs.metrics import read_metrics
from studio.jobs.train import execute
from tests.conftest import write_yaml

pytestmark = pytest.mark.integration

VOTES = [  # (prompt, left answer, right answer, vote) as a stakeholder cast them, seats shuffled per prompt
    ("What is the capital of Peru?", '{"topic": "geography", "answer": "Lima"}', "The capital of Peru is Lima, a city on the … (cut at 16 tokens)", "left"),
    ("What is 7 times 8?", "7 times 8 is 54.", '{"topic": "math", "answer": "56"}', "right"),
    ("Who painted the Mona Lisa?", '{"topic": "art", "answer": "Leonardo da Vinci"}', "Michelangelo painted it.", "left"),
    ("Name a primary colour.", "Red.", '{"topic": "colour", "answer": "red"}', "tie"),
    ("What gas do plants take in?", "Oxygen.", '{"topic": "biology", "answer": "carbon dioxide"}', "right"),
]


def test_votes_export_as_a_version_that_dpo_trains_on(studio_home, tmp_path):
    tuned, base = "demo-run", "base:embedded"
    for number, (prompt, left, right, vote) in enumerate(VOTES):
        seats = BlindRound(tuned, base) if number % 2 == 0 else BlindRound(base, tuned)
        record_vote(seats, vote, prompt, left, right)
    folder = export_votes(base, tuned, "stakeholder-votes")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "preference" and manifest["counts"]["pairs"] == 4 and manifest["counts"]["ties_skipped"] == 1
    run_dir = execute(write_yaml(tmp_path / "dpo.yaml", model="embedded", method="dpo", data=str(folder), max_steps=1, max_length=64,
                                 per_device_train_batch_size=2, learning_rate=1.0e-3, lora_r=8, lora_alpha=16, save_steps=100))
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "rewards/accuracies" in r]
    assert [r["step"] for r in rows] == [1]
    (record,) = registry.list_runs()
    assert record.status == "completed", record.message
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
