"""GPU benchmark: plain TRL/PEFT defaults vs the studio's fast path, same process, data and GPU.

Models are random-initialised real architectures (Llama-3-8B, Qwen2.5-14B) built from their
configs, since weights can't be downloaded on the benchmark machine. Data are random words from a
word-level tokenizer (one word = one token), so token counts are exact.

    python bench/gpu_bench.py --parts lora8b,dpo8b --out part1.json
    python bench/gpu_bench.py --parts qlora8b,qlora14b --out part2.json
    python bench/gpu_bench.py --merge part1.json part2.json   # -> bench/results/gpu.json

Each part runs in its own process (`--parts` starts one per part) so a 24 GB cap and Liger's
patches never leak between parts. Reports real (non-pad) tokens/s, MFU (model FLOPs, no
recomputation, against a measured bf16 matmul peak) and peak memory (max_memory_reserved).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULT = REPO / "bench" / "results" / "gpu.json"
GIB = 1024**3
CARD_GIB = 23.99  # an RTX 4090's 24 GB (24564 MiB)
CAP_GIB = CARD_GIB - 1.5  # what a process gets once the CUDA context is in

ARCHITECTURES = {
    "llama3-8b": dict(
        model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
        rms_norm_eps=1e-5, tie_word_embeddings=False, hidden_act="silu", bos_token_id=2, eos_token_id=1, pad_token_id=0,
    ),
    "qwen2.5-14b": dict(
        model_type="qwen2", hidden_size=5120, intermediate_size=13824, num_hidden_layers=48, num_attention_heads=40,
        num_key_value_heads=8, vocab_size=152064, max_position_embeddings=32768, rope_theta=1000000.0,
        rms_norm_eps=1e-6, tie_word_embeddings=False, hidden_act="silu", use_sliding_window=False,
        bos_token_id=2, eos_token_id=1, pad_token_id=0,
    ),
}
WORDS = 32000
TINY = os.environ.get("BENCH_TINY") == "1"
# The studio runs its own LoRA defaults (r 16, alpha 32, all linear layers, dropout 0); the baseline
# keeps the dropout 0.05 of PEFT/TRL examples that a user would copy.
LORA = dict(lora_r=16, lora_alpha=32, lora_target="all-linear")


import logging

logging.basicConfig(level=logging.WARNING)
logging.getLogger("studio").setLevel(logging.INFO)  # the fast path's plan line


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- set-up helpers
def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, **{f"w{i}": i + 3 for i in range(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>")


def words(rng: random.Random, n: int) -> str:
    return " ".join(f"w{rng.randrange(WORDS)}" for _ in range(n))


def chat_lengths(rng: random.Random, count: int, max_length: int) -> list[int]:
    """Lengths of a typical instruction set: log-normal, median 512 tokens, clipped to [64, max_length]."""
    return [int(min(max_length, max(64, rng.lognormvariate(math.log(512), 0.8)))) for _ in range(count)]


def sft_dataset(lengths: list[int], seed: int = 0):
    from datasets import Dataset

    rng = random.Random(seed)
    rows = []
    for n in lengths:
        n = n - 1  # TRL appends EOS
        prompt = max(8, n // 3)
        rows.append({"prompt": words(rng, prompt), "completion": " " + words(rng, n - prompt)})
    return Dataset.from_list(rows)


def dpo_dataset(count: int, max_length: int, seed: int = 0):
    from datasets import Dataset

    rng = random.Random(seed)
    rows = []
    for n in chat_lengths(rng, count, max_length):
        prompt = max(8, n // 3)
        rest = n - prompt - 1
        rows.append({"prompt": words(rng, prompt), "chosen": " " + words(rng, rest), "rejected": " " + words(rng, max(8, int(rest * rng.uniform(0.6, 1.0))))})
    return Dataset.from_list(rows)


def build_model(arch: str, *, quantize: bool):
    """A random-initialised model on the GPU in bf16; with `quantize`, its decoder linears become
    bitsandbytes NF4 (double-quantised, bf16 compute): what from_pretrained(load_in_4bit) makes."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = dict(ARCHITECTURES[arch])
    if TINY:  # CPU dry run of the plumbing: same code, a toy size
        spec.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=WORDS + 3)
    config = AutoConfig.for_model(spec.pop("model_type"), **spec)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    if quantize:
        import bitsandbytes as bnb
        from transformers.utils.quantization_config import QuantizationMethod

        for layer in model.model.layers:
            for parent in list(layer.modules()):
                for name, child in list(parent.named_children()):
                    if isinstance(child, torch.nn.Linear):
                        q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                              compute_dtype=torch.bfloat16, compress_statistics=True, quant_type="nf4", device="meta")
                        q.weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False, compress_statistics=True, quant_type="nf4", module=q).to("cuda")
                        if child.bias is not None:
                            q.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
                        setattr(parent, name, q)
                        del child
        model.is_loaded_in_4bit = True
        model.quantization_method = QuantizationMethod.BITS_AND_BYTES
        gc.collect()
        torch.cuda.empty_cache()
    model.config.use_cache = False
    return model


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def release(*objects) -> None:
    import torch

    for obj in objects:
        del obj
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(kind: str = "reserved") -> float:
    import torch

    if not torch.cuda.is_available():
        return 0.0
    return round((torch.cuda.max_memory_reserved() if kind == "reserved" else torch.cuda.max_memory_allocated()) / GIB, 2)


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def matmul_peak_tflops() -> float:
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(20):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * 8192**3 * 20 / (start.elapsed_time(end) / 1000) / 1e12


class StepTimer:
    """Trainer callback: device-synchronised time and TRL's real-token counter at each step end."""

    def __init__(self):
        from transformers import TrainerCallback

        outer = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                sync()
                outer.marks.append((time.perf_counter(), 0, 0))

            def on_step_end(self, args, state, control, **kwargs):
                sync()
                outer.marks.append((time.perf_counter(), getattr(outer.trainer, "_total_train_tokens", 0), state.global_step))

        self.callback = _Callback()
        self.marks: list[tuple[float, int, int]] = []
        self.trainer = None

    def rate(self, warm: int) -> tuple[float, float, int]:
        """(tokens/s, steps/s, steps measured) over the steps after `warm` (0: from the start)."""
        (t0, k0, s0), (t1, k1, s1) = self.marks[warm], self.marks[-1]
        return (k1 - k0) / (t1 - t0), (s1 - s0) / (t1 - t0), s1 - s0


def studio_config(**overrides):
    from studio.config import RunConfig

    values = dict(model="bench", method="lora", data="bench.jsonl", max_steps=10, learning_rate=2e-4, save_steps=100000,
                  logging_steps=1, max_length=2048, per_device_train_batch_size=4, **LORA)
    values.update(overrides)
    return RunConfig(**values)


def studio_sft_args(cfg, tmp: Path, model):
    """The studio's own SFT arguments and fast path (studio.methods.sft + studio.perf)."""
    from studio import perf
    from studio.methods import sft
    from studio.methods.context import RunContext

    ctx = RunContext(tmp)
    args = sft.training_args(cfg, ctx, False)
    args, model = perf.apply(cfg, args, model)
    return args, model, sft.lora_config(cfg)


def baseline_sft_args(tmp: Path, *, max_steps: int, batch: int, max_length: int, **extra):
    """What a user writes with TRL: SFTConfig defaults (bf16, gradient checkpointing, padded batches)."""
    from trl import SFTConfig

    return SFTConfig(output_dir=str(tmp / "ckpt"), max_steps=max_steps, per_device_train_batch_size=batch, max_length=max_length,
                     learning_rate=2e-4, logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True,
                     bf16=not TINY, **extra)


def run_sft(model, args, dataset, tok, peft_config, warm: int) -> dict:
    from trl import SFTTrainer

    reset_peak()
    timer = StepTimer()
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok, peft_config=peft_config, callbacks=[timer.callback])
    timer.trainer = trainer
    trainer.train()
    tokens_s, steps_s, steps = timer.rate(warm)
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    out = {
        "tokens_per_s": round(tokens_s, 1),
        "steps_measured": steps,
        "s_per_step": round(1 / steps_s, 3),
        "peak_reserved_gib": peak_gib(),
        "peak_allocated_gib": peak_gib("allocated"),
        "final_loss": losses[-1] if losses else None,
        "settings": {k: getattr(args, k) for k in ("per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "gradient_checkpointing", "use_liger_kernel", "packing", "padding_free", "loss_type")}
        | {"activation_offloading": getattr(args, "activation_offloading", False), "attention": model.config._attn_implementation},
    }
    base = trainer.model
    release(trainer)
    return out, base


def mfu(shape, method: str, tokens_per_s: float, seq_len: float, peak_tflops: float) -> float:
    from studio.perf import training_flops_per_token

    return training_flops_per_token(shape, method, 16, seq_len) * tokens_per_s / (peak_tflops * 1e12)


def estimated_gib(model, method: str, args, *, pairs: bool = False) -> dict:
    """The advisor's estimate (studio.estimator) for the settings this run really used, for the calibration table."""
    from studio.estimator import Setup, architecture_from_config, memory

    arch = architecture_from_config(model.config.to_dict(), name=model.config.model_type)
    setup = Setup(method=method, seq=args.max_length, batch=args.per_device_train_batch_size, gradient_checkpointing=bool(args.gradient_checkpointing),
                  activation_offloading=bool(getattr(args, "activation_offloading", False)), lora_dropout=0.0, device="gpu",
                  fused_loss=True if method != "dpo" else bool(args.use_liger_kernel))
    estimate = memory(arch, setup)
    return {"estimated_gib": round(estimate.peak_gib, 2), "estimate_parts_gib": estimate.parts_gib}


# ---------------------------------------------------------------- parts
def part_lora8b(result: dict, tmp: Path) -> None:
    """8B LoRA, 2048 x 4, on a typical length mix (baseline pads) and on full 2048-token rows."""
    from studio.perf import ModelShape

    tok = tokenizer()
    peak = result.setdefault("bf16_matmul_tflops", 1.0 if TINY else round(matmul_peak_tflops(), 1))
    steps, warm, length = 12, 3, (256 if TINY else 2048)
    rng = random.Random(1)
    mixes = {"chat_mix": chat_lengths(rng, 600, length), "full_rows": [length] * 120}
    for mix, lengths in mixes.items():
        dataset = sft_dataset(lengths)
        mean_len = sum(lengths) / len(lengths)
        entry = result.setdefault("lora_8b", {}).setdefault(mix, {"mean_example_tokens": round(mean_len, 1)})
        variants = [("baseline", None), ("studio", None)]
        for name, attention in variants:
            log(f"lora8b {mix} {name}")
            model = build_model("llama3-8b", quantize=False)
            shape = ModelShape.from_config(model.config)
            try:
                if name == "baseline":
                    from peft import LoraConfig

                    args = baseline_sft_args(tmp / name, max_steps=steps, batch=4, max_length=length)
                    peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
                else:
                    if attention:
                        os.environ["STUDIO_ATTENTION"] = attention
                    args, model, peft_config = studio_sft_args(studio_config(max_steps=steps, max_length=length), tmp / name, model)
                    os.environ.pop("STUDIO_ATTENTION", None)
                estimate = estimated_gib(model, "lora", args) if name != "baseline" else {}
                out, model = run_sft(model, args, dataset, tok, peft_config, warm)
                out.update(estimate)
                out["mfu"] = round(mfu(shape, "lora", out["tokens_per_s"], mean_len, peak), 4)
                entry[name] = out
                log(f"  {out}")
            except Exception as err:
                entry[name] = {"error": f"{type(err).__name__}: {err}"[:2000]}
                traceback.print_exc()
            release(model)
            save(result)
        base = entry.get("baseline", {}).get("tokens_per_s")
        for name in ("studio", "studio_sdpa"):
            if base and entry.get(name, {}).get("tokens_per_s"):
                entry[name]["speedup"] = round(entry[name]["tokens_per_s"] / base, 3)


def part_dpo8b(result: dict, tmp: Path) -> None:
    """8B DPO, LoRA, reference = adapter off, max length 1024, 4 pairs per step: TRL DPOTrainer
    defaults vs the studio's DPO (studio.methods.common LoRA + perf.apply), on the whole H200 and
    under the 24 GB cap (where the chooser must fit the card: smaller micro-batch + accumulation)."""
    import torch
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    from studio import perf
    from studio.methods.common import lora_config

    variant = os.environ.get("BENCH_DPO_VARIANT")
    if variant is None:  # the parent: each variant in a fresh process, so none inherits another's memory
        for name in ("baseline", "studio", "studio_24gb"):
            log(f"dpo8b {name} (fresh process)")
            subprocess.call([sys.executable, __file__, "--one", "dpo8b", "--out", str(OUT_PATH)], env={**os.environ, "BENCH_DPO_VARIANT": name})
            result.update(json.loads(OUT_PATH.read_text()))
            log(f"  {result.get('dpo_8b', {}).get(name)}")
        entry = result["dpo_8b"]
        for name in ("studio", "studio_24gb"):
            if entry.get("baseline", {}).get("pairs_per_s") and entry.get(name, {}).get("pairs_per_s"):
                entry[name]["speedup"] = round(entry[name]["pairs_per_s"] / entry["baseline"]["pairs_per_s"], 3)
                entry[name]["peak_ratio"] = round(entry[name]["peak_reserved_gib"] / entry["baseline"]["peak_reserved_gib"], 3)
        save(result)
        return
    tok = tokenizer()
    dataset = dpo_dataset(400, 1024)
    steps, warm, batch = 10, 3, 4
    entry = result.setdefault("dpo_8b", {"max_length": 1024, "batch_pairs": batch})
    name = variant
    log(f"dpo8b {name}")
    model = build_model("llama3-8b", quantize=False)
    try:
        args = DPOConfig(output_dir=str(tmp / f"dpo-{name}"), max_steps=steps, per_device_train_batch_size=batch, max_length=1024,
                         learning_rate=5e-6, logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True, bf16=not TINY)
        if name == "baseline":
            peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
        else:
            if name == "studio_24gb":
                cap_to_24gb()
            cfg = studio_config(method="dpo", max_length=1024, per_device_train_batch_size=batch)
            args, model = perf.apply(cfg, args, model, trainer="dpo")
            peft_config = lora_config(cfg)
        estimate = estimated_gib(model, "dpo", args) if name != "baseline" else {}
        torch.cuda.reset_peak_memory_stats()
        timer = StepTimer()
        trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok, peft_config=peft_config, callbacks=[timer.callback])
        timer.trainer = trainer
        trainer.train()
        _, steps_s, measured = timer.rate(warm)
        pairs = args.per_device_train_batch_size * args.gradient_accumulation_steps
        entry[name] = {
            "pairs_per_s": round(steps_s * pairs, 3),
            "steps_measured": measured,
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / GIB, 2),
            "settings": {k: getattr(args, k) for k in ("per_device_train_batch_size", "gradient_accumulation_steps", "gradient_checkpointing", "use_liger_kernel", "padding_free")}
            | {"attention": model.config._attn_implementation},
            **estimate,
        }
        log(f"  {entry[name]}")
        release(trainer)
    except Exception as err:
        entry[name] = {"error": f"{type(err).__name__}: {err}"[:2000]}
        traceback.print_exc()
    release(model)
    save(result)


def cap_to_24gb() -> None:
    import torch

    total = torch.cuda.get_device_properties(0).total_memory / GIB
    torch.cuda.set_per_process_memory_fraction(CAP_GIB / total)
    os.environ["STUDIO_GPU_MEMORY_GIB"] = str(CAP_GIB)


def qlora_try(arch: str, length: int, batch: int, tmp: Path, *, studio: bool, tok, model, steps: int = 1, warm: int = 1, method: str = "qlora") -> tuple[dict, object]:
    """One QLoRA measurement. Returns (figures, the base model to reuse, or None if it must be rebuilt)."""
    import torch

    dataset = sft_dataset([length] * (batch * steps))
    if studio:
        cfg = studio_config(method=method, max_steps=steps, max_length=length, per_device_train_batch_size=batch)
        args, model, peft_config = studio_sft_args(cfg, tmp / f"q{length}", model)
    else:
        from peft import LoraConfig, prepare_model_for_kbit_training

        # The plain HF+PEFT recipe: prepare_model_for_kbit_training (fp32 embeddings/head/norms), checkpointing, padded batches.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
        args = baseline_sft_args(tmp / f"b{length}", max_steps=steps, batch=batch, max_length=length, optim="paged_adamw_8bit")
        peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    estimate = estimated_gib(model, method, args) if studio else {}
    started = time.perf_counter()
    try:
        out, model = run_sft(model, args, dataset, tok, peft_config, warm=min(warm, steps - 1) if steps > 1 else 0)
        out.update(estimate)
        out["ok"] = True
        out["wall_s"] = round(time.perf_counter() - started, 1)
        model = model.unload() if hasattr(model, "unload") else model
    except Exception as err:  # out of memory, or anything else: record it and rebuild the model
        traceback.print_exc()
        frames = [f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}" for f in traceback.extract_tb(err.__traceback__)[-6:]]
        out = {"ok": False, "error": f"{type(err).__name__}: " + (str(err).splitlines() or [""])[0][:300], "where": frames,
               "peak_reserved_gib": peak_gib(), **estimate}
        model = None  # LoRA layers were injected in place: rebuild
    gc.collect()
    torch.cuda.empty_cache()
    return out, model


def uncap() -> None:
    import torch

    torch.cuda.set_per_process_memory_fraction(1.0)


def part_qlora8b(result: dict, tmp: Path) -> None:
    """8B QLoRA under a 24 GB cap: the plain recipe's peak at 2048, the studio's longest context at batch 1."""
    tok = tokenizer()
    entry = result.setdefault("qlora_8b", {"cap_gib": CAP_GIB})
    if os.environ.get("BENCH_ONLY_CONTEXT") == "1":  # the 2048 figures came from an earlier run
        return part_qlora8b_context(result, entry, tmp, tok, None)
    log("qlora8b baseline 2048x2 (uncapped, to measure its peak)")
    model = build_model("llama3-8b", quantize=True)
    entry["baseline_2048x2_uncapped"], model = qlora_try("llama3-8b", 2048, 2, tmp, studio=False, tok=tok, model=model, steps=3)
    log(f"  {entry['baseline_2048x2_uncapped']}")
    release(model)
    save(result)
    model = build_model("llama3-8b", quantize=True)
    cap_to_24gb()
    log("qlora8b studio 2048x2, capped")
    entry["studio_2048x2"], model = qlora_try("llama3-8b", 2048, 2, tmp, studio=True, tok=tok, model=model, steps=6, warm=2)
    log(f"  {entry['studio_2048x2']}")
    save(result)
    part_qlora8b_context(result, entry, tmp, tok, model)


def part_qlora8b_context(result: dict, entry: dict, tmp: Path, tok, model) -> None:
    """The longest single sequence the studio path trains under the cap: one step per length,
    ascending, each in a fresh process (an out-of-memory attempt leaves nothing behind for the next)."""
    release(model)
    contexts = entry.setdefault("contexts", {})
    best = 0
    plan = [int(x) for x in os.environ.get("BENCH_CONTEXTS", "65536,81920,98304,131072").split(",")]
    deadline = time.time() + float(os.environ.get("BENCH_CONTEXT_SECONDS", 300))
    save(result)
    while plan and time.time() < deadline:
        length = plan.pop(0)
        log(f"qlora8b studio context {length} (fresh process)")
        env = {**os.environ, "BENCH_CONTEXT_LENGTH": str(length), "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}
        try:
            subprocess.call([sys.executable, __file__, "--one", "qlora8b_length", "--out", str(OUT_PATH)], env=env,
                            timeout=max(30.0, deadline - time.time() + 60))
        except subprocess.TimeoutExpired:
            pass
        result.update(json.loads(OUT_PATH.read_text()))
        entry = result["qlora_8b"]
        outcome = entry.setdefault("contexts", {}).get(str(length), {"ok": False, "error": "timed out"})
        entry["contexts"][str(length)] = outcome
        log(f"  {outcome}")
        if outcome.get("ok"):
            best = max(best, length)
        elif best == 0 and length > 16384:
            plan = [length // 2]
        else:
            break
    entry["max_context"] = best
    save(result)


def part_qlora8b_length(result: dict, tmp: Path) -> None:
    """One context length (BENCH_CONTEXT_LENGTH), batch 1, studio path, under the cap."""
    length = int(os.environ["BENCH_CONTEXT_LENGTH"])
    model = build_model("llama3-8b", quantize=True)
    cap_to_24gb()
    outcome, model = qlora_try("llama3-8b", length, 1, tmp, studio=True, tok=tokenizer(), model=model)
    result.setdefault("qlora_8b", {"cap_gib": CAP_GIB}).setdefault("contexts", {})[str(length)] = outcome


def part_qlora14b(result: dict, tmp: Path) -> None:
    """Qwen2.5-14B QLoRA at 2048 under the 24 GB cap."""
    tok = tokenizer()
    entry = result.setdefault("qlora_14b", {"cap_gib": CAP_GIB})
    model = build_model("qwen2.5-14b", quantize=True)
    cap_to_24gb()
    log("qlora14b studio 2048x1, capped")
    entry["studio_2048x1"], model = qlora_try("qwen2.5-14b", 2048, 1, tmp, studio=True, tok=tok, model=model, steps=5, warm=2)
    log(f"  {entry['studio_2048x1']}")
    release(model)
    save(result)


CALIBRATION_RUNS = [  # (architecture, method, max_length, batch): the studio path under the 24 GB cap, 3 steps
    ("llama3-8b", "lora", 2048, 2),
    ("llama3-8b", "lora", 4096, 1),
    ("llama3-8b", "qlora", 8192, 1),
    ("qwen2.5-14b", "qlora", 4096, 1),
]


def part_calibration(result: dict, tmp: Path) -> None:
    """Estimator calibration points: each studio run in a fresh process, estimate next to the peak."""
    spec = os.environ.get("BENCH_CALIBRATION_RUN")
    if spec is None:
        for arch, method, length, batch in CALIBRATION_RUNS:
            key = f"{arch} {method} {length}x{batch}"
            log(f"calibration {key} (fresh process)")
            subprocess.call([sys.executable, __file__, "--one", "calibration", "--out", str(OUT_PATH)], env={**os.environ, "BENCH_CALIBRATION_RUN": key})
            result.update(json.loads(OUT_PATH.read_text()))
            log(f"  {result.get('calibration', {}).get(key)}")
        return
    arch, method, shape = spec.split()
    length, batch = (int(x) for x in shape.split("x"))
    model = build_model(arch, quantize=method == "qlora")
    cap_to_24gb()
    outcome, _ = qlora_try(arch, length, batch, tmp, studio=True, tok=tokenizer(), model=model, steps=3, warm=1, method=method)
    outcome.update(arch=arch, method=method, length=length, batch=batch)
    result.setdefault("calibration", {})[spec] = outcome


PARTS = {"calibration": part_calibration, "lora8b": part_lora8b, "dpo8b": part_dpo8b, "qlora8b": part_qlora8b, "qlora14b": part_qlora14b, "qlora8b_length": part_qlora8b_length}
OUT_PATH: Path | None = None


def save(result: dict) -> None:
    if OUT_PATH:
        OUT_PATH.write_text(json.dumps(result, indent=2, default=str))


def environment() -> dict:
    import importlib.metadata as md

    import torch

    versions = {}
    for name in ("torch", "transformers", "trl", "peft", "bitsandbytes", "liger-kernel", "triton", "accelerate", "datasets"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "python": platform.python_version(), "versions": versions}


def summarise(result: dict) -> dict:
    """The headline keys the issue asks for, computed from the raw figures."""
    lora = result.get("lora_8b", {}).get("chat_mix", {})
    studio = lora.get("studio", {})
    dpo = result.get("dpo_8b", {})
    dpo_studio = dpo.get("studio_24gb", {})  # the studio's DPO as it runs on the reference 24 GB card
    q14 = result.get("qlora_14b", {}).get("studio_2048x1", {})
    return {
        "lora_8b_speedup": studio.get("speedup"),
        "lora_8b_mfu": studio.get("mfu"),
        "lora_8b_speedup_full_rows": result.get("lora_8b", {}).get("full_rows", {}).get("studio", {}).get("speedup"),
        "qlora_8b_max_context_24gb": result.get("qlora_8b", {}).get("max_context"),
        "qlora_14b_fits_24gb": int(bool(q14.get("ok")) and q14.get("peak_reserved_gib", 99) <= CAP_GIB),
        "qlora_14b_peak_gib": q14.get("peak_reserved_gib"),
        "dpo_8b_speedup": dpo_studio.get("speedup"),
        "dpo_8b_peak_ratio": dpo_studio.get("peak_ratio"),
        "dpo_8b_speedup_uncapped": dpo.get("studio", {}).get("speedup"),
        "lora_8b_mfu_full_rows": result.get("lora_8b", {}).get("full_rows", {}).get("studio", {}).get("mfu"),
    }


def main() -> None:
    global OUT_PATH
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="lora8b,dpo8b,qlora8b,qlora14b")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # run one part in this process
    parser.add_argument("--merge", nargs="+", type=Path, help="merge part files into bench/results/gpu.json")
    parser.add_argument("--command", default=None, help="the command line to record in the result")
    opts = parser.parse_args()
    if opts.merge:
        merged: dict = {}
        for path in opts.merge:
            part = json.loads(path.read_text())
            for key, value in part.items():
                merged[key] = merged.get(key, {}) | value if isinstance(value, dict) and key not in ("environment",) else value
        merged.pop("summary", None)
        merged["command"] = [json.loads(p.read_text()).get("command") for p in opts.merge]
        merged = {"summary": summarise(merged), **merged}
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps(merged, indent=2, default=str) + "\n")
        print(json.dumps(merged["summary"], indent=2))
        return
    if opts.one:
        OUT_PATH = opts.out
        result = json.loads(OUT_PATH.read_text()) if OUT_PATH.exists() else {}
        result.setdefault("environment", environment())
        with tempfile.TemporaryDirectory() as tmp:
            try:
                PARTS[opts.one](result, Path(tmp))
            finally:
                save(result)
        return
    command = opts.command or "python bench/gpu_bench.py " + " ".join(sys.argv[1:])
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    if not opts.out.exists():
        opts.out.write_text(json.dumps({"command": command}))
    for name in opts.parts.split(","):
        log(f"part {name}")
        try:
            code = subprocess.call([sys.executable, __file__, "--one", name, "--out", str(opts.out)], timeout=float(os.environ.get("BENCH_PART_SECONDS", 420)))
        except subprocess.TimeoutExpired:
            code = "timeout"
        log(f"part {name} exited {code}")
    result = json.loads(opts.out.read_text())
    result["summary"] = summarise(result)
    opts.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
