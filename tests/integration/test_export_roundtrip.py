"""Export round trips on the shared demo run: adapter (CLI, zip), merged safetensors, GGUF f16/q8_0."""

from __future__ import annotations

import json
import zipfile

import pytest
import torch

from studio.chat import ChatEngine
from studio.jobs import registry
from tests.conftest import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def demo_record(trained_demo_run, monkeypatch):
    home, _ = trained_demo_run
    monkeypatch.setenv("STUDIO_HOME", str(home))
    (record,) = registry.list_runs()
    return record


def test_cli_exports_the_adapter_with_card_and_zip(trained_demo_run, tmp_path):
    home, _ = trained_demo_run
    (run,) = json.loads(run_cli("runs", "list", "--json", home=home).stdout)
    out = tmp_path / "adapter"
    result = run_cli("export", run["id"], "--format", "adapter", "--out", str(out), "--zip", home=home)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(out)
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md"} <= {p.name for p in out.iterdir()}
    card = (out / "README.md").read_text()
    assert "SmolLM2-135M-Instruct" in card and "lora" in card and "json_answers.jsonl" in card and "sha256" in card
    with zipfile.ZipFile(tmp_path / "adapter.zip") as archive:
        assert "adapter/adapter_model.safetensors" in archive.namelist()
    again = run_cli("export", run["id"], "--format", "adapter", "--out", str(out), home=home)
    assert again.returncode == 2 and "not an empty folder" in again.stderr  # never overwrites


def test_merged_loads_without_peft_and_matches_the_tuned_model(demo_record, tmp_path):
    from transformers import AutoModelForCausalLM

    from studio.export import export_run

    out = tmp_path / "merged"
    summary = export_run(demo_record, "merged", out)
    assert not (out / "adapter_config.json").exists() and (out / "model.safetensors").is_file()
    check = summary["verification"]
    print(check)
    assert check["same_answer"], check
    plain = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    assert not hasattr(plain, "peft_config")
    tuned = ChatEngine.for_run(demo_record).tuned_side
    ids = tuned.base.tokenizer.apply_chat_template([{"role": "user", "content": "Who wrote Hamlet?"}], add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.inference_mode(), tuned.active() as model:
        expected = model(input_ids=ids).logits
    with torch.inference_mode():
        got = plain(input_ids=ids).logits
    assert (got - expected).abs().max() < 1e-3


def test_gguf_f16_and_q8_0_load_back_and_answer_alike(demo_record, tmp_path):
    import gguf

    from studio.export import export_run

    out = tmp_path / "gguf"
    summary = export_run(demo_record, "gguf", out)
    checks = summary["verification"]
    print(json.dumps(checks, indent=1))
    for qtype in ("f16", "q8_0"):
        files = list(out.glob(f"*-{qtype}.gguf"))
        assert len(files) == 1
        reader = gguf.GGUFReader(str(files[0]))
        assert reader.fields["general.architecture"].contents() == "llama"
        assert checks[qtype]["loads_with_transformers"] and checks[qtype]["same_prompt_tokens"]
    assert checks["f16"]["same_answer"] and checks["f16"]["max_abs_logit_diff"] < 0.25 and checks["f16"]["top1_agreement"] == 1.0
    assert checks["q8_0"]["same_answer"] and checks["q8_0"]["top1_agreement"] >= 0.9
    assert checks["q8_0"]["size_mb"] < 0.6 * checks["f16"]["size_mb"]
    assert "## Export check" in (out / "README.md").read_text()
