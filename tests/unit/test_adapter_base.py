"""A run's own adapter names its base model by the public Hub id, not the local folder PEFT recorded,
and the studio's way of loading an adapter (PeftModel on the base weights it resolved itself from the
run's config) never reads that name: it loads offline with an id no cache holds."""

from __future__ import annotations

import json

import pytest
import torch

from studio.config import RunConfig
from studio.jobs.train import name_base_model
from studio.models import EMBEDDED_HUB_ID

NOT_CACHED = "nobody-here/not-a-cached-model"  # a valid Hub id that no cache on this machine holds


@pytest.fixture
def trained_adapter(tmp_path):
    """A tiny llama saved to a local folder and a LoRA adapter on it with non-zero weights, saved as a run's adapter/."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=100)
    torch.manual_seed(0)
    base_dir = tmp_path / "base"
    AutoModelForCausalLM.from_config(config).save_pretrained(base_dir)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)  # B starts at 0 (a no-op adapter): make it change the output
    run_dir = tmp_path / "run"
    model.save_pretrained(run_dir / "adapter")
    ids = torch.randint(0, 100, (1, 12))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    return base_dir, run_dir, ids, expected


def adapter_base(run_dir) -> str:
    return json.loads((run_dir / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"]


def test_the_runs_adapter_names_the_public_id_and_still_loads_offline(trained_adapter, monkeypatch):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base_dir, run_dir, ids, expected = trained_adapter
    assert adapter_base(run_dir) == str(base_dir)  # what PEFT records: the local folder
    name_base_model(RunConfig(data="d.jsonl", model="embedded"), run_dir)
    assert adapter_base(run_dir) == EMBEDDED_HUB_ID
    name_base_model(RunConfig(data="d.jsonl", model=NOT_CACHED), run_dir)
    assert adapter_base(run_dir) == NOT_CACHED

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = AutoModelForCausalLM.from_pretrained(base_dir)  # the studio resolves the base from the run's config.yaml
    with torch.no_grad():
        plain = base(input_ids=ids).logits
        tuned = PeftModel.from_pretrained(base, str(run_dir / "adapter"))  # chat, evaluate, export --format merged
        assert tuned.peft_config["default"].base_model_name_or_path == NOT_CACHED
        assert torch.allclose(tuned(input_ids=ids).logits, expected, atol=1e-5)
        assert not torch.allclose(plain, expected, atol=1e-3)  # the adapter does change the answer
        merged = tuned.merge_and_unload()
        assert torch.allclose(merged(input_ids=ids).logits, expected, atol=1e-4)


def test_a_base_without_a_hub_id_keeps_the_folder_peft_recorded(trained_adapter):
    base_dir, run_dir, _, _ = trained_adapter
    name_base_model(RunConfig(data="d.jsonl", model=str(base_dir)), run_dir)  # its config.json names no Hub id
    assert adapter_base(run_dir) == str(base_dir)
