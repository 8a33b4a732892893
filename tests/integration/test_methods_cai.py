"""Constitutional AI end to end: critique and revise with the model itself, then SFT and DPO on it."""

from __future__ import annotations

import json

import pytest

from studio.data import load_dataset_file
from studio.jobs import registry
from studio.jobs.metrics import read_metrics
from studio.jobs.train import execute
from tests.conftest import REPO, write_yaml
from tests.integration.test_methods_preference import lora_b_changed, subset

pytestmark = pytest.mark.integration

PROMPTS = REPO / "assets" / "demo" / "prompts.jsonl"


def test_cai_revises_then_trains_on_the_revisions(studio_home, tmp_path):
    prompts = subset(PROMPTS, 4, tmp_path / "prompts.jsonl")
    config = write_yaml(
        tmp_path / "cai.yaml", method="constitutional", data=str(prompts), cai_mode="both", model="embedded",
        max_steps=1, max_length=96, per_device_train_batch_size=4, learning_rate=5.0e-4, save_steps=100, response_length=12, lora_r=8, lora_alpha=16,
    )
    run_dir = execute(config)
    (record,) = registry.list_runs()
    assert record.status == "completed", record.message

    records = [json.loads(line) for line in (run_dir / "cai" / "generations.jsonl").read_text().splitlines()]
    assert len(records) == 4
    assert sum(r["revision"] != r["original"] for r in records) >= 2, records  # most revisions change the answer
    assert all(r["critique"] and r["principle"] for r in records)

    # the SFT stage consumed the revisions file, and the DPO stage the AI-judged pairs
    sft_cfg = (run_dir / "stages" / "sft" / "config.yaml")
    revisions = load_dataset_file(run_dir / "cai" / "cai_revisions.jsonl")
    assert [c["messages"][-1]["content"] for c in revisions.conversations] == [r["revision"] for r in records if r["revision"].strip()]
    log = (run_dir / "log.txt").read_text()
    assert "stage sft: lora on " + str(run_dir / "cai" / "cai_revisions.jsonl") in log
    assert "stage dpo: dpo on " + str(run_dir / "cai" / "cai_preferences.jsonl") in log
    assert not sft_cfg.exists() or sft_cfg.read_text()
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert [r["done"] for r in rows if r.get("stage") == "generate"][-1] == 4
    assert any(r.get("stage") == "sft" and "loss" in r for r in rows)
    assert any(r.get("stage") == "dpo" and "rewards/margins" in r for r in rows)
    assert lora_b_changed(run_dir / "adapter")

    # every intermediate is a dataset version the Data tab can browse
    from studio.data.versions import list_versions, load_version

    versions = {m["produced_by"]["intermediate"]: m for m in list_versions() if m.get("produced_by", {}).get("run") == run_dir.name}
    assert set(versions) == {"transcripts", "revisions", "judgements", "preferences"}, versions
    assert versions["preferences"]["format"] == "preference"
    transcript = load_version(versions["transcripts"]["path"]).conversations[0]["messages"]
    assert [m["role"] for m in transcript[-5:]] == ["assistant", "user", "assistant", "user", "assistant"]  # original, critique, revision
    assert record.final_metrics["cai/revised_differs"] >= 0.5
