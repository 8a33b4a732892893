"""Which methods train an adapter decides the multi-GPU launch: DDP for adapters, FSDP for full weights."""

import pytest

from studio.config import METHODS, RunConfig
from studio.jobs.train import accelerate_command

FULL = {"full", "instruction"}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_adapter_methods_get_ddp_and_full_weights_get_fsdp(method, tmp_path):
    cfg = RunConfig(method=method, data="x.jsonl")
    command = accelerate_command(cfg, tmp_path / "config.yaml", "run-1", 2, resume=False)
    assert cfg.uses_adapter is (method not in FULL)
    assert ("--use_fsdp" in command) is (method in FULL)
    assert ("--multi_gpu" in command) is (method not in FULL)


def test_grpo_follows_its_weights_knob():
    assert RunConfig(method="grpo", data="x", weights="lora").uses_adapter
    assert not RunConfig(method="grpo", data="x", weights="full").uses_adapter
