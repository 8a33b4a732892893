"""The CUDA fast path: QLoRA through the real CLI with paged 8-bit AdamW, and packed fast-path
training computing the same loss and gradients as plain per-sequence training."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from studio import perf
from tests.conftest import DEMO_DATA, run_cli, write_yaml

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu


def test_qlora_trains_through_the_cli_with_the_fast_path(gpu_model, studio_home, tmp_path):
    pytest.importorskip("bitsandbytes")
    config = write_yaml(
        tmp_path / "run.yaml", model=gpu_model, method="qlora", data=str(DEMO_DATA),
        max_steps=3, max_length=128, per_device_train_batch_size=4, logging_steps=1, save_steps=100,
    )
    result = run_cli("train", str(config), home=studio_home)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    log = (run_dir / "log.txt").read_text()
    assert "fast path:" in log and "optim paged_adamw_8bit" in log, log[-3000:]
    assert ("liger on" in log) == perf.liger_available()
    losses = [row["loss"] for row in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "loss" in row]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert (run_dir / "adapter" / "adapter_config.json").is_file()


def test_packed_fast_path_matches_per_sequence_training():
    """Packed rows (position_ids, no padding) through the fast path's attention and Liger kernels give
    the loss and head gradient of running each sequence alone through plain SDPA."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=32000, max_position_embeddings=2048)
    torch.manual_seed(0)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa").cuda().train()
    fast = copy.deepcopy(plain)
    attention = perf.packed_attention()
    if attention:
        fast.set_attn_implementation(attention)
    if perf.liger_available():
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        _apply_liger_kernel_to_instance(model=fast)
    lengths = [300, 37, 129, 211]
    sequences = [torch.randint(0, config.vocab_size, (n,), device="cuda") for n in lengths]

    total = 0.0
    for seq in sequences:  # reference: each sequence alone, token-weighted mean
        total = total + plain(input_ids=seq[None], labels=seq[None]).loss * (len(seq) - 1)
    (total / sum(n - 1 for n in lengths)).backward()

    input_ids = torch.cat(sequences)[None]
    position_ids = torch.cat([torch.arange(n, device="cuda") for n in lengths])[None]
    labels = input_ids.clone()
    labels[position_ids == 0] = -100  # what TRL's padding-free collator does at each boundary
    packed = fast(input_ids=input_ids, position_ids=position_ids, labels=labels).loss
    packed.backward()

    reference = total.item() / sum(n - 1 for n in lengths)
    assert math.isfinite(packed.item())
    assert abs(packed.item() - reference) / reference < 2e-2, (packed.item(), reference)
    g_plain, g_fast = plain.lm_head.weight.grad.float(), fast.lm_head.weight.grad.float()
    assert ((g_fast - g_plain).norm() / g_plain.norm()).item() < 5e-2
