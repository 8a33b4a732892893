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
    # Start-up warnings that alarm for nothing are one explained line each (perf.explain_library_warnings)
    # TRL's own wording (trl/trainer/sft_trainer.py); the studio's explanation names the warning, so the check is on TRL's phrases
    assert "may lead to cross-contamination between samples" not in result.stderr, result.stderr[-3000:]
    assert "handle flattened sequences" not in result.stderr, result.stderr[-3000:]
    assert "could not be imported" not in result.stderr, result.stderr[-3000:]
    losses = [row["loss"] for row in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "loss" in row]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert (run_dir / "adapter" / "adapter_config.json").is_file()


# Liger patches some functions module-wide, so the variants without it run first.
@pytest.mark.parametrize("attention,liger", [("sdpa", False), ("flex_attention", False), ("studio_varlen", False),
                                             ("sdpa", True), ("flex_attention", True), ("studio_varlen", True)])
def test_packed_rows_match_per_sequence_training(attention, liger):
    """Packed rows (position_ids, no padding) give each sequence the hidden states, loss and head
    gradient it gets alone through plain SDPA: no attention across sequence boundaries."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    if liger and not perf.liger_available():
        pytest.skip("liger-kernel not installed")
    if attention == "studio_varlen":
        from studio import varlen

        if not varlen.available():
            pytest.skip("torch's varlen attention does not run here")
        varlen.register()
    config = LlamaConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=32000, max_position_embeddings=2048)
    torch.manual_seed(0)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa").cuda().train()
    fast = copy.deepcopy(plain).to(torch.bfloat16)
    fast.set_attn_implementation(attention)
    if liger:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        _apply_liger_kernel_to_instance(model=fast)
    lengths = [300, 37, 129, 211]
    sequences = [torch.randint(0, config.vocab_size, (n,), device="cuda") for n in lengths]
    tokens = sum(n - 1 for n in lengths)

    total, hidden = 0.0, []
    for seq in sequences:  # reference: each sequence alone, fp32, token-weighted mean loss
        out = plain(input_ids=seq[None], labels=seq[None], output_hidden_states=True, use_cache=False)
        total = total + out.loss * (len(seq) - 1)
        hidden.append(out.hidden_states[-2][0].detach())  # the last layer's input: attention effects show there
    (total / tokens).backward()

    input_ids = torch.cat(sequences)[None]
    position_ids = torch.cat([torch.arange(n, device="cuda") for n in lengths])[None]
    labels = input_ids.clone()
    labels[position_ids == 0] = -100  # what TRL's padding-free collator does at each boundary
    with torch.no_grad():
        packed_hidden = fast.model(input_ids=input_ids, position_ids=position_ids, output_hidden_states=True, use_cache=False).hidden_states[-2][0]
    # use_cache=False as in training (trainers set it): with a cache, transformers does not look for packed rows
    loss = fast(input_ids=input_ids, position_ids=position_ids, labels=labels, use_cache=False).loss
    loss.backward()

    reference = torch.cat(hidden).float()
    assert ((packed_hidden.float() - reference).norm() / reference.norm()).item() < 2e-2
    assert abs(loss.item() - total.item() / tokens) / (total.item() / tokens) < 1e-2
    g_plain, g_fast = plain.lm_head.weight.grad.float(), fast.lm_head.weight.grad.float()
    assert ((g_fast - g_plain).norm() / g_plain.norm()).item() < 5e-2

