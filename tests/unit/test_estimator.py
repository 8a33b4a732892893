"""The memory/time/cost estimator: architecture counts against transformers + PEFT, the shape of the
memory model, the 24 GB search, the CLI on a folder that holds only config.json, and the committed
calibration table still describing the code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from studio import estimator
from studio.errors import StudioError
from studio.estimator import ARCH_DIR, Setup, load_architecture, memory
from tests.conftest import REPO

CALIBRATION = REPO / "bench" / "results" / "estimator_calibration.json"


@pytest.mark.parametrize("name", ["Llama-3-8B", "Qwen2.5-0.5B"])
def test_parameter_counts_match_transformers_and_peft(name):
    """Built on the meta device (no memory, no weights): the formula must equal the real modules."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    raw = json.loads((ARCH_DIR / f"{name}.json").read_text())
    config = AutoConfig.for_model(raw.pop("model_type"), **{k: v for k, v in raw.items() if k != "architectures"})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    arch = load_architecture(name)
    assert arch.params == sum(p.numel() for p in model.parameters())
    trainable, _ = get_peft_model(model, LoraConfig(r=16, target_modules="all-linear")).get_nb_trainable_parameters()
    assert arch.lora_params(16) == trainable


def test_reads_every_field_from_config_json(tmp_path):
    config = {"num_hidden_layers": 3, "hidden_size": 64, "intermediate_size": 256, "vocab_size": 1000,
              "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": True}
    (tmp_path / "config.json").write_text(json.dumps(config))
    arch = load_architecture(str(tmp_path))
    assert (arch.layers, arch.hidden, arch.intermediate, arch.vocab, arch.kv_heads, arch.head_dim, arch.tied_embeddings) == (3, 64, 256, 1000, 2, 16, True)
    untied = load_architecture_from({**config, "tie_word_embeddings": False}, tmp_path / "untied")
    assert untied.params - arch.params == 1000 * 64


def load_architecture_from(config: dict, folder):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return load_architecture(str(folder))


def test_missing_key_and_unknown_model_are_one_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 64, "num_attention_heads": 4, "vocab_size": 10}))
    with pytest.raises(StudioError, match="num_hidden_layers"):
        load_architecture(str(tmp_path))
    with pytest.raises(StudioError, match="no config.json found") as err:
        load_architecture("no-such-org/no-such-model")
    assert "Llama-3-8B" in str(err.value)
    with pytest.raises(StudioError, match="method"):
        memory(load_architecture("embedded"), Setup(method="sft-magic"))


def test_named_and_hub_style_ids_find_the_bundled_architectures():
    assert load_architecture("meta-llama/Meta-Llama-3-8B").name == "Llama-3-8B"
    assert load_architecture("Qwen/Qwen2.5-14B").name == "Qwen2.5-14B"
    assert load_architecture("embedded").name == "SmolLM2-135M"


ARCH = load_architecture("Llama-3-8B")


def peak(**knobs) -> float:
    return memory(ARCH, Setup(**knobs)).peak_gib


def test_memory_grows_with_sequence_and_batch():
    assert peak(seq=512) < peak(seq=1024) < peak(seq=2048)
    assert peak(batch=1) < peak(batch=2) < peak(batch=4)


def test_each_method_orders_as_its_trainer_holds_memory():
    shape = dict(seq=1024, batch=1)
    assert peak(method="qlora", **shape) < peak(method="lora", **shape) < peak(method="full", **shape)
    assert peak(method="lora", **shape) < peak(method="dpo", **shape)  # chosen + rejected; the reference is the adapter off
    assert peak(method="dpo", **shape) < peak(method="ppo", **shape)  # policy, value and reward models
    assert peak(gradient_checkpointing=True, seq=2048) < peak(gradient_checkpointing=False, seq=2048)
    assert peak(method="qlora", qlora_fp32_upcast=True, seq=2048) > peak(method="qlora", seq=2048)


def test_parts_add_up_to_the_peak():
    plain = memory(ARCH, Setup(method="lora", seq=2048, batch=2, fast_path=False))
    parts = plain.parts_gib
    total = parts["weights"] + parts["trainable_state"] + parts["activations"] + parts["other_models_and_temps"]
    assert total == pytest.approx(plain.peak_gib, abs=0.01)
    assert parts["weights"] == pytest.approx(ARCH.params * 2 / 2**30, rel=1e-3)
    fast = memory(ARCH, Setup(method="lora", seq=2048, batch=2))  # the GPU default: the fast path's own model
    assert sum(fast.parts_gib.values()) == pytest.approx(fast.peak_gib, abs=0.01)
    assert fast.parts_gib["weights"] == pytest.approx(ARCH.params * 2 / 2**30, rel=1e-3)
    assert fast.parts_gib["loss"] < plain.parts_gib["logits"]  # fused/chunked loss: no full fp32 logits


def test_fast_path_estimate_is_the_chooser_s_own_number():
    """The advisor and the trainer's settings chooser (studio.perf) use one memory model."""
    from studio import perf

    shape = estimator.model_shape(ARCH)
    for method, checkpointing in (("lora", True), ("qlora", True), ("full", False)):
        setup = Setup(method=method, seq=1024, batch=2, gradient_checkpointing=checkpointing)
        direct = perf.estimate_gib(shape, method, 2048, gradient_checkpointing=checkpointing)
        assert memory(ARCH, setup).peak_gib == pytest.approx(direct)
    plan = estimator.plan_24gb(ARCH, Setup(method="dpo", seq=1024, batch=4))
    assert plan.fits and plan.per_device_train_batch_size * plan.gradient_accumulation_steps == 4  # whole pairs


def test_largest_batch_and_sequence_are_the_edge_of_fitting():
    setup = Setup(method="qlora", seq=2048, batch=1)
    batch = estimator.largest_batch(ARCH, setup)
    assert batch >= 1
    assert estimator.fits_card(ARCH, Setup(method="qlora", seq=2048, batch=batch))
    assert not estimator.fits_card(ARCH, Setup(method="qlora", seq=2048, batch=batch + 1))
    seq = estimator.largest_seq(ARCH, setup)
    assert estimator.fits_card(ARCH, Setup(method="qlora", seq=seq, batch=1))
    assert not estimator.fits_card(ARCH, Setup(method="qlora", seq=seq + 128, batch=1))
    assert estimator.largest_batch(ARCH, Setup(method="full", seq=2048)) == 0
    # the plain TRL path, as configured (no chooser)
    limit = estimator.CARD_GIB - estimator.CONTEXT_GIB
    plain = Setup(method="qlora", seq=2048, batch=1, fast_path=False)
    batch = estimator.largest_batch(ARCH, plain)
    assert memory(ARCH, Setup(method="qlora", seq=2048, batch=batch, fast_path=False)).peak_gib <= limit
    assert memory(ARCH, Setup(method="qlora", seq=2048, batch=batch + 1, fast_path=False)).peak_gib > limit


def test_fits_24gb_agrees_with_the_peak():
    limit = estimator.CARD_GIB - estimator.CONTEXT_GIB
    for method in ("lora", "qlora", "full"):
        result = estimator.estimate("Llama-3-8B", method=method, seq=2048, batch=1)
        assert result.fits_24gb == estimator.fits_card(ARCH, Setup(method=method, seq=2048, batch=1))
        assert result.plan_24gb and ("does NOT fit" in result.plan_24gb) == (not result.fits_24gb)
        plain = estimator.estimate("Llama-3-8B", method=method, seq=2048, batch=1, fast_path=False)
        assert plain.fits_24gb == (plain.peak_gib <= limit)


def test_time_and_cost_scale_with_tokens():
    small = estimator.estimate("Llama-3-8B", method="lora", seq=2048, batch=1, train_tokens=1_000_000)
    large = estimator.estimate("Llama-3-8B", method="lora", seq=2048, batch=1, train_tokens=4_000_000)
    assert large.hours_4090 == pytest.approx(4 * small.hours_4090)
    assert large.cost["openai_gpt4o_finetune"] == pytest.approx(4 * small.cost["openai_gpt4o_finetune"])
    assert small.cost["openai_gpt4o_finetune"] == pytest.approx(estimator.PRICES["openai_gpt4o_per_million_tokens"])
    bigger_model = estimator.estimate("Qwen2.5-14B", method="lora", seq=2048, batch=1, train_tokens=1_000_000)
    assert bigger_model.hours_4090 > small.hours_4090


def estimate_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studio", "estimate", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_cli_estimate_works_offline_on_a_folder_with_only_config_json(tmp_path):
    shutil.copy(ARCH_DIR / "Qwen2.5-14B.json", tmp_path / "config.json")
    result = estimate_cli("--model", str(tmp_path), "--method", "qlora", "--seq", "2048", "--batch", "1", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    expected = memory(load_architecture(str(tmp_path)), Setup(method="qlora", seq=2048, batch=1, gradient_checkpointing=True))
    assert out["peak_gib"] == pytest.approx(expected.peak_gib, abs=0.01)
    assert out["fits_24gb"] is expected.fits_24gb
    text = estimate_cli("--model", str(tmp_path), "--method", "lora", "--seq", "2048", "--batch", "1")
    assert text.returncode == 0 and "RTX 4090" in text.stdout


def test_cli_estimate_bad_model_is_one_line(tmp_path):
    result = estimate_cli("--model", str(tmp_path), "--method", "lora", "--seq", "512", "--batch", "1")
    assert result.returncode == 2 and "config.json" in result.stderr and "Traceback" not in result.stderr


def test_committed_calibration_table_matches_the_current_estimator():
    """The table in bench/results was produced by this code: re-running the estimate gives its column,
    and the studio-path GPU runs it lists are all the ones in gpu.json, each within 15%."""
    from bench.estimator_calibration import estimate_row, studio_gpu_runs

    table = json.loads(CALIBRATION.read_text())
    assert table["command"].endswith("bench/estimator_calibration.py")
    assert any(r["where"].startswith("cpu") for r in table["rows"])
    for row in table["rows"]:
        assert estimate_row(row)["estimated_gib"] == pytest.approx(row["estimated_gib"], abs=0.01), row
    studio_rows = [r for r in table["rows"] if r.get("run")]
    assert [r["run"] for r in studio_rows] == [r["run"] for r in studio_gpu_runs()]
    assert len(studio_rows) >= 6 and all(abs(r["error_pct"]) <= 15 for r in studio_rows)
