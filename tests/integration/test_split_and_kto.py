"""The one split end to end (a DPO run, then `studio eval --json`) and the KTO method, on the embedded model."""

from __future__ import annotations

import json

import pytest

from studio.data import load_dataset_file
from studio.data import split as S
from studio.jobs import registry
from studio.jobs.metrics import read_metrics
from studio.jobs.train import execute
from tests.conftest import REPO, run_cli, write_yaml

pytestmark = pytest.mark.integration

PUBLIC = REPO / "tests" / "data" / "public"
TINY = dict(model="embedded", max_length=64, per_device_train_batch_size=4, learning_rate=1.0e-3, save_steps=100, lora_r=8, lora_alpha=16)


def test_dpo_eval_fraction_holds_rows_out_and_eval_reports_only_those(studio_home, tmp_path):
    data = PUBLIC / "preference_mixed.jsonl"
    run_dir = execute(write_yaml(tmp_path / "dpo.yaml", method="dpo", data=str(data), eval_fraction=0.25, max_steps=1, **TINY))
    split = json.loads((run_dir / "split.json").read_text())
    usable = S.usable_ids(load_dataset_file(data))
    assert split["source"] == str(data)
    assert split["eval"] and not set(split["train"]) & set(split["eval"])
    assert sorted(split["train"] + split["eval"]) == usable and len(split["eval"]) == round(len(usable) * 0.25)
    log = (run_dir / "log.txt").read_text()
    assert f"({len(split['train'])} train, {len(split['eval'])} held out)" in log and "contamination:" in log

    result = run_cli("eval", run_dir.name, "--json", "--no-probes", "--max-examples", "4", "--max-new-tokens", "4", home=studio_home)
    assert result.returncode == 0, result.stderr[-3000:]
    source = json.loads(result.stdout.strip().splitlines()[-1])["source"]
    assert source["kind"] == "held-out split" and len(source["rows"]) == 4
    assert set(source["rows"]) <= set(split["eval"]) and not set(source["rows"]) & set(split["train"])


def test_kto_trains_on_labelled_answers_and_logs_kto_metrics(studio_home, tmp_path):
    data = PUBLIC / "kto_en_demo.json"  # LLaMA-Factory style: messages + a boolean label
    run_dir = execute(write_yaml(tmp_path / "kto.yaml", method="kto", data=str(data), max_steps=2, eval_fraction=0.3, **TINY))
    (record,) = registry.list_runs()
    assert record.status == "completed", record.message
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "kl" in r]
    assert [r["step"] for r in rows] == [1, 2]
    assert any("eval_kl" in r for r in read_metrics(run_dir / "metrics.jsonl")), "the held-out rows are evaluated"
    split = json.loads((run_dir / "split.json").read_text())
    assert len(split["eval"]) == 3 and not set(split["train"]) & set(split["eval"])
    assert all("rewards/chosen" in r or "rewards/rejected" in r for r in rows), rows
    assert any("rewards/chosen" in r for r in rows) and any("rewards/rejected" in r for r in rows), rows
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert "desirable" in (run_dir / "log.txt").read_text()

    from studio.plots import present_panels

    titles = [title for title, _ in present_panels(read_metrics(run_dir / "metrics.jsonl"))]
    assert "Rewards: chosen vs rejected" in titles and "KL to the reference" in titles, titles
