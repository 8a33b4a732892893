"""The fast path's pure parts: model shapes, the memory chooser, the trainer overrides."""

from __future__ import annotations

import dataclasses

import pytest

from studio import perf

LLAMA3_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False)
QWEN25_14B = dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=48, num_attention_heads=40,
                  num_key_value_heads=8, vocab_size=152064, tie_word_embeddings=False)


class Config:
    def __init__(self, **values):
        self.__dict__.update(values)


def shape(spec) -> perf.ModelShape:
    return perf.ModelShape.from_config(Config(**spec))


def test_shape_counts_match_the_published_sizes():
    assert shape(LLAMA3_8B).params == pytest.approx(8_030_261_248, rel=1e-3)
    assert shape(QWEN25_14B).params == pytest.approx(14_770_033_664, rel=2e-3)  # the q/k/v biases are left out
    assert shape(LLAMA3_8B).lora_params(16) == 41_943_040  # PEFT's count for r=16 on all linear layers


def test_flops_per_token_follow_the_method():
    s = shape(LLAMA3_8B)
    lora = perf.training_flops_per_token(s, "lora", 16, 2048)
    full = perf.training_flops_per_token(s, "full", 16, 2048)
    assert 4 * s.matmul_params < lora < 4.4 * s.matmul_params  # + adapters + attention at 2k
    assert full > 1.4 * lora


def test_chooser_picks_the_fastest_plan_that_fits():
    s = shape(LLAMA3_8B)
    roomy = perf.choose(s, "lora", budget_gib=138, batch_size=4, max_length=2048)
    assert roomy.fits and not roomy.gradient_checkpointing and roomy.per_device_train_batch_size == 4
    tight = perf.choose(s, "qlora", budget_gib=22.5, batch_size=4, max_length=2048)
    assert tight.fits and tight.gradient_checkpointing
    assert tight.estimated_gib <= 22.5


def test_chooser_offloads_then_shrinks_the_batch_keeping_the_effective_batch():
    s = shape(LLAMA3_8B)
    long = perf.choose(s, "qlora", budget_gib=22.5, batch_size=1, max_length=65536)
    assert long.gradient_checkpointing and long.activation_offloading
    small = perf.choose(s, "qlora", budget_gib=22.5, batch_size=8, max_length=16384, gradient_accumulation_steps=2)
    assert small.fits and small.per_device_train_batch_size < 8
    assert small.per_device_train_batch_size * small.gradient_accumulation_steps == 16


def test_chooser_says_when_nothing_fits():
    plan = perf.choose(shape(QWEN25_14B), "full", budget_gib=22.5, batch_size=2, max_length=1024)
    assert not plan.fits and plan.per_device_train_batch_size == 1
    assert "does NOT fit" in plan.describe()


def test_estimates_grow_with_tokens_and_shrink_with_checkpointing():
    s = shape(LLAMA3_8B)
    a = perf.estimate_gib(s, "qlora", 2048, gradient_checkpointing=False)
    b = perf.estimate_gib(s, "qlora", 8192, gradient_checkpointing=False)
    c = perf.estimate_gib(s, "qlora", 8192, gradient_checkpointing=True)
    d = perf.estimate_gib(s, "qlora", 8192, gradient_checkpointing=True, activation_offloading=True)
    e = perf.estimate_gib(s, "qlora", 8192, gradient_checkpointing=True, fused_loss=False)
    assert a < b and c < b and d < c and e > c


@pytest.mark.parametrize("liger", [True, False])
def test_sft_overrides(liger):
    plan = perf.Plan(2, 3, 1024, True, True, 10.0, 22.5)
    out = perf.trainer_overrides(plan, trainer="sft", liger=liger, packing=True)
    assert out["loss_type"] == ("nll" if liger else "chunked_nll")  # TRL refuses chunked_nll with Liger
    assert out["packing"] and out["padding_free"] and out["packing_strategy"] == "bfd"
    assert out["gradient_checkpointing_kwargs"] == {"use_reentrant": True}  # offload needs reentrant checkpoints
    assert out["activation_offloading"] and out["use_liger_kernel"] == liger
    assert (out["per_device_train_batch_size"], out["gradient_accumulation_steps"]) == (2, 3)


def test_dpo_overrides_have_no_sft_only_keys():
    plan = perf.Plan(4, 1, 1024, False, False, 10.0, 22.5)
    out = perf.trainer_overrides(plan, trainer="dpo", liger=True, packing=True)
    assert out["padding_free"] and "packing" not in out and "loss_type" not in out and "activation_offloading" not in out
    assert "gradient_checkpointing_kwargs" not in out
    with pytest.raises(ValueError):
        perf.trainer_overrides(plan, trainer="ppo", liger=True, packing=True)


def test_overrides_are_valid_trl_config_fields(tmp_path):
    from trl import DPOConfig, SFTConfig

    plan = perf.Plan(2, 2, 512, True, False, 10.0, 22.5)
    sft = SFTConfig(output_dir=str(tmp_path), report_to=[], bf16=False, max_length=512)
    changes = perf.trainer_overrides(plan, trainer="sft", liger=False, packing=True)
    changes.pop("bf16")  # needs a GPU on some builds; the rest must be accepted as is
    new = dataclasses.replace(sft, **changes)
    assert new.packing and new.padding_free and new.loss_type == "chunked_nll" and new.gradient_accumulation_steps == 2
    dpo = DPOConfig(output_dir=str(tmp_path), report_to=[], bf16=False)
    changes = perf.trainer_overrides(plan, trainer="dpo", liger=False, packing=True)
    changes.pop("bf16")
    assert dataclasses.replace(dpo, **changes).padding_free


def test_apply_is_a_no_op_without_cuda_or_when_disabled(monkeypatch):
    import torch

    args, model = object(), object()
    cfg = Config(fast_path=True, method="lora")
    if not torch.cuda.is_available():
        assert perf.apply(cfg, args, model) == (args, model)
    assert perf.apply(Config(fast_path=False, method="lora"), args, model) == (args, model)
    monkeypatch.setenv("STUDIO_FAST_PATH", "0")
    assert perf.apply(cfg, args, model) == (args, model)


def test_gpu_budget_honours_the_override(monkeypatch):
    monkeypatch.setenv("STUDIO_GPU_MEMORY_GIB", "22.5")
    assert perf.gpu_budget_gib() == 22.5


def test_packed_attention_override(monkeypatch):
    monkeypatch.setenv("STUDIO_ATTENTION", "none")
    assert perf.packed_attention() is None
    monkeypatch.setenv("STUDIO_ATTENTION", "sdpa")
    assert perf.packed_attention() == "sdpa"


def test_fsdp_turns_the_fused_losses_off(monkeypatch):
    plan = perf.Plan(2, 1, 512, False, False, 10.0, 22.5)
    out = perf.trainer_overrides(plan, trainer="sft", liger=False, packing=True, fsdp=True)
    assert out["loss_type"] == "nll" and not out["use_liger_kernel"]
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert perf.fsdp_active()
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")
    assert not perf.fsdp_active(Config(fsdp=""))


def test_dpo_plans_whole_pairs_and_takes_liger_only_when_memory_is_short():
    s = shape(LLAMA3_8B)
    roomy, liger = perf.plan_for_trainer(s, "dpo", trainer="dpo", budget_gib=138, batch_size=4, max_length=1024, liger=True)
    assert not liger and not roomy.gradient_checkpointing and roomy.per_device_train_batch_size == 4
    card, liger = perf.plan_for_trainer(s, "dpo", trainer="dpo", budget_gib=22.49, batch_size=4, max_length=1024, liger=True)
    assert liger and card.fits and card.per_device_train_batch_size == 4 and card.gradient_checkpointing
    plain, liger = perf.plan_for_trainer(s, "dpo", trainer="dpo", budget_gib=22.49, batch_size=4, max_length=1024, liger=False)
    assert not liger and not plain.activation_offloading  # TRL's DPO has no activation offloading
    assert plain.per_device_train_batch_size < 4 and plain.per_device_train_batch_size * plain.gradient_accumulation_steps == 4


def planned_run(method: str, *, batch: int, max_length: int, budget: float = 22.49, trainer: str = "sft", checkpointing: bool = False):
    s = shape(LLAMA3_8B)
    plan, _ = perf.plan_for_trainer(s, method, trainer=trainer, budget_gib=budget, batch_size=batch, max_length=max_length,
                                    force_checkpointing=checkpointing, liger=True)
    return perf.PlannedRun(s, method, trainer, plan)


def advice_for(run: perf.PlannedRun, **config) -> str:
    return perf.oom_advice(planned=run, **{"method": run.method, "batch_size": 1, "gradient_accumulation_steps": 1,
                                           "max_length": run.plan.max_length, "gradient_checkpointing": True, **config})


def test_oom_advice_never_suggests_what_a_qlora_batch_1_checkpointed_run_already_uses():
    run = planned_run("qlora", batch=1, max_length=98304)  # the plan: checkpointing + offload, batch 1: it does not fit
    assert run.plan.per_device_train_batch_size == 1 and run.plan.gradient_checkpointing and not run.plan.fits
    advice = advice_for(run)
    longest = perf.largest_length(run.shape, "qlora", trainer="sft", budget_gib=22.49)
    assert 32768 <= longest < 98304 and f"max_length: {longest}" in advice
    for already in ("per_device_train_batch_size", "gradient_checkpointing", "method: qlora"):
        assert already not in advice, advice
    fits, _ = perf.plan_for_trainer(run.shape, "qlora", trainer="sft", budget_gib=22.49, batch_size=1, max_length=longest)
    too_long, _ = perf.plan_for_trainer(run.shape, "qlora", trainer="sft", budget_gib=22.49, batch_size=1, max_length=longest + 1024)
    assert fits.fits and not too_long.fits


def test_oom_advice_names_the_largest_batch_and_the_cheaper_method():
    run = planned_run("lora", batch=8, max_length=4096)
    advice = advice_for(run, batch_size=8)
    planned_batch = run.plan.per_device_train_batch_size
    assert planned_batch < 8  # the chooser already shrank it; the advice goes below what the run used
    assert "per_device_train_batch_size:" in advice and "method: qlora" in advice
    batch = int(advice.split("per_device_train_batch_size: ")[1].split()[0])
    assert 1 <= batch < planned_batch or planned_batch == 1
    assert "gradient_checkpointing" not in advice  # the plan already checkpoints


def test_oom_advice_when_the_estimate_said_it_fits_points_elsewhere():
    run = planned_run("qlora", batch=1, max_length=2048)
    assert run.plan.fits
    advice = advice_for(run)
    assert "another process may hold GPU memory" in advice and "max_length: 1536" in advice
    assert "qlora" not in advice and "per_device_train_batch_size" not in advice


def test_oom_advice_without_a_plan_follows_the_config():
    advice = perf.oom_advice(method="qlora", batch_size=1, gradient_accumulation_steps=4, max_length=4096, gradient_checkpointing=True)
    assert "per_device_train_batch_size" not in advice and "gradient_checkpointing" not in advice and "qlora" not in advice
    assert "shorter max_length than 4096" in advice
    advice = perf.oom_advice(method="lora", batch_size=2, gradient_accumulation_steps=2, max_length=512, gradient_checkpointing=False)
    assert "per_device_train_batch_size: 1 with gradient_accumulation_steps: 4" in advice
    assert "gradient_checkpointing: true" in advice and "method: qlora" in advice


def test_oom_advice_for_dpo_counts_whole_pairs():
    run = planned_run("dpo", batch=4, max_length=8192, trainer="dpo")
    advice = advice_for(run, batch_size=4)
    longest = perf.largest_length(run.shape, "dpo", trainer="dpo", budget_gib=22.49, liger=True)
    assert 1024 <= longest < 8192 and f"max_length: {longest}" in advice  # pairs: twice the tokens of one row
    assert perf.largest_length(run.shape, "dpo", trainer="dpo", budget_gib=22.49, liger=False) < longest  # logits held without Liger
    assert "method:" not in advice  # no cheaper method to name for DPO


def test_preference_pairs_are_batched_by_length():
    import random
    from types import SimpleNamespace

    from datasets import Dataset
    from transformers.trainer_pt_utils import LengthGroupedSampler

    rng = random.Random(0)
    rows = [{"prompt_ids": [1] * rng.randint(5, 200), "chosen_ids": [2] * rng.randint(5, 800), "rejected_ids": [3] * rng.randint(5, 800)}
            for _ in range(400)]
    trainer = SimpleNamespace(train_dataset=Dataset.from_list(rows), args=SimpleNamespace(remove_unused_columns=True))
    assert perf.group_pairs_by_length(trainer)
    assert trainer.args.train_sampling_strategy == "group_by_length" and not trainer.args.remove_unused_columns
    data = trainer.train_dataset
    lengths = data[trainer.args.length_column_name]
    assert lengths[0] == len(rows[0]["prompt_ids"]) + max(len(rows[0]["chosen_ids"]), len(rows[0]["rejected_ids"]))

    def padded(order):  # tokens a padded batch of 4 pairs computes
        return sum(4 * max(lengths[i] for i in order[k:k + 4]) for k in range(0, len(order), 4))

    grouped = list(LengthGroupedSampler(4, dataset=data, lengths=lengths))  # what the Trainer builds from these args
    assert sorted(grouped) == list(range(400))
    assert padded(grouped) < 0.8 * padded(list(range(400)))
    assert not perf.group_pairs_by_length(SimpleNamespace(train_dataset=Dataset.from_list([{"prompt": "x"}]), args=None))


def test_alarming_library_warnings_become_one_explained_line(caplog):
    import logging

    perf.explain_library_warnings("studio_varlen")
    liger, trl = logging.getLogger("liger_kernel.backends.registry"), logging.getLogger("trl.trainer.sft_trainer")
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            liger.warning("Backend impl '%s' for op '%s' could not be imported: %s", "liger_kernel.ops.backends._cutedsl.rms_norm", "rms_norm", "ImportError")
        trl.warning("You are using packing ... Using other implementations may lead to cross-contamination between samples.")
        trl.warning("Padding-free training is enabled ... verify that your attention mechanism can handle flattened sequences.")
        liger.warning("something else entirely")
    messages = [r.getMessage() for r in caplog.records]
    assert not any("could not be imported" in m or "cross-contamination between" in m or "flattened sequences" in m for m in messages)
    assert sum("Triton kernels run" in m for m in messages) == 1 and sum("keeps each packed sequence apart" in m for m in messages) == 1
    assert "something else entirely" in messages  # other warnings pass
    perf.explain_library_warnings(None)  # padded batches (no packing): TRL's warning is shown again
    with caplog.at_level(logging.INFO):
        trl.warning("packing may lead to cross-contamination between samples")
    assert caplog.records[-1].getMessage().startswith("packing may lead")


def test_chunked_mlp_trains_the_same_function():
    import copy

    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=100)
    torch.manual_seed(0)
    plain = AutoModelForCausalLM.from_config(config)
    chunked = copy.deepcopy(plain)
    assert perf.chunk_mlp(chunked, 7) == 2
    x = torch.randint(0, 100, (1, 30))  # 30 tokens: chunks of 7, 7, 7, 7, 2
    plain(input_ids=x, labels=x).loss.backward()
    loss = chunked(input_ids=x, labels=x).loss
    loss.backward()
    assert loss.item() == pytest.approx(plain(input_ids=x, labels=x).loss.item(), rel=1e-6)
    for a, b in zip(plain.parameters(), chunked.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6)


def test_long_context_plan_matches_the_measured_boundary():
    """8B QLoRA, vocab 49k, 22.49 GiB (bench/results/gpu_realdata.json): 98,304 tokens trained, 106,496 ran out of memory."""
    s = shape(dict(LLAMA3_8B, vocab_size=49152))
    fits, _ = perf.plan_for_trainer(s, "qlora", trainer="sft", budget_gib=22.49, batch_size=1, max_length=98304, liger=True)
    too_long, _ = perf.plan_for_trainer(s, "qlora", trainer="sft", budget_gib=22.49, batch_size=1, max_length=106496, liger=True)
    assert fits.activation_offloading and fits.fits and not too_long.fits


def test_progress_line_says_when_kernels_compile(tmp_path, monkeypatch):
    from studio.jobs.progress import progress_from
    from studio.jobs.train import COMPILING

    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton"))
    assert perf.kernels_cold()  # a fresh $STUDIO_HOME/cache: the first run compiles
    (tmp_path / "triton").mkdir()
    (tmp_path / "triton" / "kernel").write_text("x")
    assert not perf.kernels_cold()
    rows = [{"step": 0, "time": 1.0, "status": COMPILING}]
    assert progress_from(rows, 0.0, 5.0).describe() == COMPILING
    rows.append({"step": 1, "time": 9.0, "loss": 2.5, "max_steps": 10})
    assert progress_from(rows, 0.0, 10.0).describe().startswith("step 1/10")
