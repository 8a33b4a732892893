"""QLoRA on the CPU: a 4-bit NF4 base (bitsandbytes) with a LoRA adapter really trains."""

from __future__ import annotations

import pytest

from studio.jobs import registry
from studio.jobs.metrics import read_metrics
from studio.jobs.train import execute
from tests.conftest import DEMO_DATA, write_yaml
from tests.integration.test_methods_preference import lora_b_changed, subset

pytestmark = pytest.mark.integration


def test_qlora_trains_an_adapter_on_a_4bit_base(studio_home, tmp_path):
    import bitsandbytes as bnb

    from studio import models
    from studio.config import RunConfig
    from studio.methods.sft import load_model

    data = subset(DEMO_DATA, 4, tmp_path / "d.jsonl")
    cfg = RunConfig.from_dict(dict(method="qlora", data=str(data), max_steps=1, max_length=64, per_device_train_batch_size=2, learning_rate=1e-3, lora_r=8, lora_alpha=16, save_steps=100))
    base = load_model(cfg, models.resolve("embedded"))
    quantized = [m for m in base.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized and quantized[0].weight.quant_type == "nf4"
    del base

    config = write_yaml(tmp_path / "q.yaml", **cfg.to_dict())
    run_dir = execute(config)
    (record,) = registry.list_runs()
    assert record.status == "completed", record.message
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]
    assert rows and rows[0]["loss"] > 0
    assert lora_b_changed(run_dir / "adapter")
