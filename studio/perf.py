"""The CUDA fast path for TRL trainers, and the settings chooser that makes a run fit the GPU.

On a CUDA GPU, `apply` turns a trainer config built for correctness into one built for speed and
memory, with the field's libraries only:
- Liger kernels (fused linear cross-entropy: no full logits for big vocabularies; RMSNorm, RoPE,
  SwiGLU) through TRL/transformers' `use_liger_kernel`, when liger-kernel is installed;
  without it, TRL's chunked cross-entropy (`loss_type="chunked_nll"`);
- padding-free packing (TRL `packing_strategy="bfd"`: position_ids, no pad tokens), with a
  varlen-capable attention (flash-attention 2 where installed, else PyTorch's flex attention);
- bf16 throughout, and for QLoRA no fp32 upcast of embeddings, head or logits (TRL >= 1.0 keeps
  them bf16 and casts only the adapter; we never call `prepare_model_for_kbit_training`);
- activation checkpointing only when the memory plan needs it, with CPU offload of the
  checkpointed activations (TRL `activation_offloading`) when even that does not fit (Liger's
  TiledMLP was tried for long contexts and measured worse: 22.0 vs 15.6 GiB at 40k tokens);
- the micro-batch shrinks (and gradient accumulation grows, keeping the effective batch) until the
  estimate fits the card.
On the CPU nothing changes: `apply` returns its inputs.

Disable with `fast_path: false` in the run config, or STUDIO_FAST_PATH=0.
STUDIO_GPU_MEMORY_GIB caps the memory the plan may use (a shared GPU, or emulating a smaller card).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
from dataclasses import dataclass

from .estimator import Architecture

GIB = 1024**3
CONTEXT_RESERVE_GIB = 1.5  # CUDA context, cuBLAS workspaces and the allocator's fragmentation
TRAINERS = ("sft", "dpo")

log = logging.getLogger("studio.perf")


# The one model-shape class: the estimator's Architecture (layers, widths, heads, vocab; parameter counts).
ModelShape = Architecture


def training_flops_per_token(shape: ModelShape, method: str, lora_rank: int, seq_len: int) -> float:
    """Model FLOPs per trained token (no recomputation counted), as MFU is usually defined.

    Adapter training: forward 2N + input-gradient 2N over the frozen matmuls, 6 per adapter weight;
    full training: 6N. Attention scores/values: 4*s*h per layer forward, causal halves it, x3 for backward.
    """
    from .methods.registry import trains_adapter

    adapter_run = trains_adapter(method)
    frozen = (4.0 if adapter_run else 6.0) * shape.matmul_params
    adapter = 6.0 * shape.lora_params(lora_rank) if adapter_run else 0.0
    attention = 3 * 2.0 * seq_len * shape.hidden * shape.layers
    return frozen + adapter + attention


@dataclass(frozen=True)
class Plan:
    """What the chooser decided, and the memory estimate behind it."""

    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    max_length: int
    gradient_checkpointing: bool
    activation_offloading: bool
    estimated_gib: float  # what the allocator would reserve with room to spare (max_memory_reserved)
    budget_gib: float
    needed_gib: float | None = None  # the same less the allocator's slack: what must be allocated at once

    @property
    def fits(self) -> bool:
        # Near the limit the caching allocator gives its slack back (expandable segments), so the
        # allocation, not the comfortable reservation, decides whether a run fits.
        return (self.needed_gib if self.needed_gib is not None else self.estimated_gib) <= self.budget_gib

    def describe(self) -> str:
        extras = ["checkpointing" if self.gradient_checkpointing else "no checkpointing"]
        if self.activation_offloading:
            extras.append("CPU offload of activations")
        verdict = "fits" if self.fits else "does NOT fit"
        return (
            f"batch {self.per_device_train_batch_size} x {self.max_length} tokens, accumulation {self.gradient_accumulation_steps}, "
            f"{', '.join(extras)}: ~{self.needed_gib if self.needed_gib is not None else self.estimated_gib:.1f} GiB of {self.budget_gib:.1f} GiB ({verdict})"
        )


def estimate_gib(shape: ModelShape, method: str, tokens: int, **settings) -> float:
    """Peak training memory in GiB: weights + trainable state + activations + loss + overhead
    (`estimate_parts` takes the same settings and says what each part is)."""
    return sum(estimate_parts(shape, method, tokens, **settings).values())


def estimate_parts(
    shape: ModelShape,
    method: str,
    tokens: int,
    *,
    lora_rank: int = 16,
    gradient_checkpointing: bool,
    activation_offloading: bool = False,
    fused_loss: bool = True,
    lora_dropout: float = 0.0,
    mlp_chunk: int | None = None,
) -> dict[str, float]:
    """The parts of `estimate_gib`, in GiB.

    Fitted to the studio path's own runs on an H200 (bench/results/gpu.json: 8B and 14B, LoRA and
    QLoRA, 2k-65k tokens, with and without checkpointing and offload; the table and its errors are
    in bench/results/estimator_calibration.json). Per token, with `block` the bytes of the tensors
    a Llama-style block produces in bf16 (norms, q/k/v/o, SwiGLU: 12h + 4i elements):
    - saved for backward per layer: 0.45 x block (Liger's RMSNorm/SwiGLU/RoPE keep few tensors),
      plus, for a bf16-base LoRA, the adapters' upcast copies of their inputs (PEFT runs them in
      fp32), plus LoRA dropout's copies;
    - one layer's backward in flight: 0.37 x block;
    - checkpointing keeps each layer's input (h); CPU offload still keeps ~30% of them on the GPU
      (TRL's offload stashes and prefetches);
    - the loss: with Liger/chunked loss, the hidden-state gradient and one chunk of logits; without
      (DPO), ~28 bytes per vocabulary entry per token (bf16 logits, fp32 log-softmax, gradients).
    """
    h, i, layers = shape.hidden, shape.intermediate, shape.layers
    adapter = method not in ("full", "instruction")
    body = shape.params - shape.embedding_params
    if method == "qlora":
        weights = body * 4.127 / 8 + shape.embedding_params * 2  # NF4 + double-quantised scales; embeddings/head stay bf16
    else:
        weights = shape.params * 2
    lora = shape.lora_params(lora_rank)
    if not adapter:
        trainable = shape.params * (2 + 4)  # bf16 gradients + two bf16 AdamW moments (a bf16 model)
    elif method == "qlora":
        trainable = lora * 4  # bf16 adapters + gradients; paged 8-bit AdamW states live in CUDA managed memory
    else:
        trainable = lora * 16  # fp32 adapters, gradients and two moments
    block = (12 * h + 4 * i) * 2
    adapted_inputs = (6 * h + i) * 2  # q, k, v, o, gate, up (width h) and down (width i)
    saved = 0.45 * block + (adapted_inputs if adapter and method != "qlora" else 0) + (adapted_inputs if adapter and lora_dropout > 0 else 0)
    working = 0.37 * block
    mlp_block = 4 * i * 2  # gate, up, their product, the down input
    if gradient_checkpointing:
        checkpoints = layers * h * 2 * (0.3 if activation_offloading else 1.0)
        activations = tokens * (checkpoints + saved + working)
        if mlp_chunk and tokens > mlp_chunk:  # the MLP's share of one layer's backward, for one chunk only
            activations -= (tokens - mlp_chunk) * 0.82 * mlp_block
    else:
        activations = tokens * (layers * saved + working)
    if fused_loss:
        loss = tokens * h * 2 * 2 + 512 * 1024**2  # hidden-state gradient + one chunk of logits
    else:
        loss = tokens * shape.vocab * 28
    # What the caching allocator reserves beyond what is allocated (max_memory_reserved vs
    # max_memory_allocated in the same runs: 0.8-1.1 GiB, 3 GiB at 60 GiB).
    overhead = 0.75 * GIB + 0.04 * (weights + trainable + activations + loss)
    parts = {"weights": weights, "trainable_state": trainable, "activations": activations, "loss": loss, "overhead": overhead}
    return {name: value / GIB for name, value in parts.items()}


def choose(
    shape: ModelShape,
    method: str,
    *,
    budget_gib: float,
    batch_size: int,
    max_length: int,
    gradient_accumulation_steps: int = 1,
    lora_rank: int = 16,
    lora_dropout: float = 0.0,
    fused_loss: bool = True,
    force_checkpointing: bool = False,
    can_offload: bool = True,
) -> Plan:
    """The fastest settings that fit: no checkpointing if it fits, then checkpointing, then CPU
    offload, then a smaller micro-batch with more accumulation (same effective batch)."""

    def plan(batch: int, checkpointing: bool, offload: bool) -> Plan:
        parts = estimate_parts(
            shape, method, batch * max_length, lora_rank=lora_rank, gradient_checkpointing=checkpointing,
            activation_offloading=offload, fused_loss=fused_loss, lora_dropout=lora_dropout,
            mlp_chunk=mlp_chunk_tokens() if offload else None,  # `apply` chunks the MLPs of offloaded (SFT) runs
        )
        est = sum(parts.values())
        accumulation = max(1, gradient_accumulation_steps * batch_size // batch)
        return Plan(batch, accumulation, max_length, checkpointing, offload, round(est, 2), round(budget_gib, 2),
                    round(est - parts["overhead"], 2))

    options = [(True, False), (True, True)] if force_checkpointing else [(False, False), (True, False), (True, True)]
    if not can_offload:  # TRL's activation offloading exists for SFT only
        options = [option for option in options if not option[1]]
    batch = max(1, batch_size)
    while True:
        for checkpointing, offload in options:
            candidate = plan(batch, checkpointing, offload)
            if candidate.fits:
                return candidate
        if batch == 1:
            return candidate  # the smallest plan; it does not fit, and says so
        batch = max(1, batch // 2)


def plan_for_trainer(shape: ModelShape, method: str, *, trainer: str, max_length: int, liger: bool = True, **settings) -> tuple[Plan, bool]:
    """The plan for one trainer (`settings` as for `choose`), and whether it uses Liger's fused loss.

    SFT: Liger's fused cross-entropy whenever it is installed (else TRL's chunked loss: the same memory).
    DPO: a micro-batch holds whole pairs (chosen + rejected rows: two rows' tokens each). TRL's DPO
    materialises their logits; Liger's fused DPO loss does not, but measured slower with memory to
    spare (4.3 vs 5.2 pairs/s, 8B on an H200), so it is used only when it fits more pairs per micro-batch.
    """
    pairs = trainer == "dpo"

    def plan_for(fused_loss: bool) -> Plan:
        return choose(shape, method, max_length=max_length * (2 if pairs else 1), fused_loss=fused_loss, can_offload=not pairs, **settings)

    plan = plan_for(fused_loss=not pairs)
    if pairs and liger and (plan.per_device_train_batch_size < settings["batch_size"] or not plan.fits):
        fused = plan_for(fused_loss=True)
        if fused.fits and (fused.per_device_train_batch_size > plan.per_device_train_batch_size or not plan.fits):
            return fused, True
    return plan, liger and not pairs


@dataclass(frozen=True)
class PlannedRun:
    """What `apply` decided for this process's run: the OOM advice starts from it."""

    shape: ModelShape
    method: str
    trainer: str
    plan: Plan
    lora_rank: int = 16
    lora_dropout: float = 0.0
    liger: bool = True  # Liger was installed (DPO plans its fused loss only then)


LAST_RUN: PlannedRun | None = None  # set by `apply`; one training run per process


def largest_length(shape: ModelShape, method: str, *, trainer: str, budget_gib: float, batch_size: int = 1,
                   step: int = 1024, limit: int = 1 << 20, **settings) -> int:
    """The longest max_length (a multiple of `step`) whose plan fits at this micro-batch; 0 if none."""

    def fits(blocks: int) -> bool:
        plan, _ = plan_for_trainer(shape, method, trainer=trainer, budget_gib=budget_gib, batch_size=batch_size,
                                   max_length=blocks * step, force_checkpointing=False, **settings)
        return plan.fits and plan.per_device_train_batch_size == batch_size

    low, high = 1, limit // step
    if not fits(low):
        return 0
    while low < high:  # memory grows with length
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low * step


def oom_advice(*, method: str, batch_size: int, gradient_accumulation_steps: int, max_length: int,
               gradient_checkpointing: bool, planned: PlannedRun | None = None) -> str:
    """What to change after an out-of-memory error, from the memory plan when there is one. It never
    suggests what the run already uses (a smaller batch at batch 1, checkpointing that is on, QLoRA
    for a QLoRA run), and it names the longest max_length (and largest batch) the estimate fits."""
    if planned is not None:
        plan = planned.plan
        batch_size, gradient_accumulation_steps = plan.per_device_train_batch_size, plan.gradient_accumulation_steps
        gradient_checkpointing, max_length = plan.gradient_checkpointing, planned.plan.max_length // (2 if planned.trainer == "dpo" else 1)
    tips = []
    effective = batch_size * gradient_accumulation_steps
    if planned is not None:
        shape, trainer, budget = planned.shape, planned.trainer, plan.budget_gib
        extra = dict(lora_rank=planned.lora_rank, lora_dropout=planned.lora_dropout, liger=planned.liger)
        longest = largest_length(shape, method, trainer=trainer, budget_gib=budget, **extra)
        if batch_size > 1:
            batch = next((b for b in range(batch_size - 1, 0, -1)
                          if largest_length(shape, method, trainer=trainer, budget_gib=budget, batch_size=b, step=max_length, limit=max_length, **extra)), 1)
            tips.append(f"per_device_train_batch_size: {batch} with gradient_accumulation_steps: {max(1, -(-effective // batch))} "
                        f"(the largest batch the estimate fits at max_length {max_length}; the same effective batch)")
        if 0 < longest < max_length:
            tips.append(f"max_length: {longest} (the longest the estimate fits for this model with method {method} at batch 1 on {budget:.1f} GiB)")
        if method in ("lora", "full", "instruction"):
            other = "qlora" if method == "lora" else "lora"
            other_longest = largest_length(shape, other, trainer=trainer, budget_gib=budget, **extra)
            if other_longest > longest:
                tips.append(f"method: {other} (fits up to max_length {other_longest} at batch 1)")
        if not tips and longest == 0:
            tips.append(f"a smaller model: the estimate does not fit this one with method {method} on {budget:.1f} GiB even at max_length 1024")
        if not tips:
            tips.append(f"max_length: {max(256, max_length * 3 // 4 // 256 * 256)}: the estimate said this run fits "
                        f"(~{plan.needed_gib or plan.estimated_gib:.1f} of {budget:.1f} GiB), so another process may hold GPU memory "
                        "(check nvidia-smi) or this data's longest rows need more than the estimate")
    else:
        if batch_size > 1:
            tips.append(f"a smaller per_device_train_batch_size: 1 with gradient_accumulation_steps: {effective} (the same effective batch)")
        if not gradient_checkpointing:
            tips.append("gradient_checkpointing: true")
        tips.append(f"a shorter max_length than {max_length}")
        if method == "lora":
            tips.append("method: qlora")
        elif method in ("full", "instruction"):
            tips.append("method: lora")
    return "Out of GPU memory. Try, in order: " + "; ".join(tips) + "."


LENGTH_COLUMN = "studio_pair_length"


def group_pairs_by_length(trainer) -> bool:
    """Batch preference pairs of similar length (transformers' LengthGroupedSampler: random
    mega-batches, sorted inside), so a padded DPO batch carries little padding. Real preference sets
    mix 50- and 1,000-token answers; random batches of 4 pairs pad every row to the longest of 8.
    Works on the trainer's tokenized dataset; returns False where there is none to group."""
    data = trainer.train_dataset
    needed = ("prompt_ids", "chosen_ids", "rejected_ids")
    if data is None or not all(name in getattr(data, "column_names", ()) for name in needed):
        return False
    lengths = [len(p) + max(len(c), len(r)) for p, c, r in zip(*(data[name] for name in needed))]
    trainer.train_dataset = data.add_column(LENGTH_COLUMN, lengths)
    trainer.args.train_sampling_strategy = "group_by_length"
    trainer.args.length_column_name = LENGTH_COLUMN
    trainer.args.remove_unused_columns = False  # else the length column is dropped before the sampler reads it
    return True


class _Explained(logging.Filter):
    """Drops a library's start-up warning that does not apply to this run and logs, once, one line saying why."""

    def __init__(self, match, explanation: str):
        super().__init__()
        self.match, self.explanation, self.said = match, explanation, False

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.match(record.getMessage()):
            return True
        if not self.said:
            self.said = True
            log.info(self.explanation)
        return False


def explain_library_warnings(attention: str | None) -> None:
    """Start-up warnings that alarm users for nothing, each replaced by one line in the run log:
    - Liger's "Backend impl '..._cutedsl...' / ascend ... could not be imported": optional backends for
      other hardware or libraries; its Triton kernels are what runs;
    - TRL's "packing ... may lead to cross-contamination between samples" (and its padding-free twin,
      "... verify that your attention mechanism can handle flattened sequences"): true of attentions that see
      the packed row as one sequence, not of flash/varlen/flex with per-document masks (the GPU test
      tests/gpu/test_fast_path.py checks that packed rows train as if alone)."""
    loggers = {
        "liger_kernel.backends.registry": _Explained(
            lambda text: "could not be imported" in text and any(k in text.lower() for k in ("cutedsl", "ascend", "npu")),
            "liger: its optional CuTe-DSL/Ascend backends are not installed, so its Triton kernels run (nothing to do)"),
    }
    if attention in ("flex_attention", "flash_attention_2", "studio_varlen", "sdpa"):  # sdpa: transformers masks each packed document
        loggers["trl.trainer.sft_trainer"] = _Explained(
            lambda text: "cross-contamination" in text or "flattened sequences" in text,
            f"packing: {attention} keeps each packed sequence apart (no attention across sequences), so TRL's "
            "padding-free and cross-contamination warnings do not apply")
    for name in ("liger_kernel.backends.registry", "trl.trainer.sft_trainer"):
        logger = logging.getLogger(name)
        logger.filters = [f for f in logger.filters if not isinstance(f, _Explained)] + ([loggers[name]] if name in loggers else [])


OFFLOAD_FORWARD_STASH = 1  # layer inputs TRL's offload keeps on the GPU at the end of the forward (its default: 5)


def lean_activation_offload() -> None:
    """TRL's activation offload keeps the last 5 offloaded tensors on the GPU (its forward stash) into
    the backward; with checkpointed layers those are whole layer inputs (0.67 GiB each for an 8B model
    at 80k tokens). One is enough at long contexts, where a layer's compute hides the copy; TRL's
    SFTTrainer takes the manager's defaults, so the studio sets this one where SFTTrainer looks it up."""
    import functools

    from trl.models import get_act_offloading_ctx_manager
    from trl.trainer import sft_trainer

    original = getattr(get_act_offloading_ctx_manager, "func", get_act_offloading_ctx_manager)
    sft_trainer.get_act_offloading_ctx_manager = functools.partial(original, max_fwd_stash_size=OFFLOAD_FORWARD_STASH)


def kernels_cold() -> bool:
    """True when the compiled-kernel cache (studio.procenv puts it under $STUDIO_HOME/cache) is empty."""
    cache = os.environ.get("TRITON_CACHE_DIR")
    return bool(cache) and not any(os.scandir(cache) if os.path.isdir(cache) else ())


MLP_CHUNK_TOKENS = 8192  # long contexts: the MLP runs (and is recomputed in backward) this many tokens at a time


def mlp_chunk_tokens() -> int:
    """Tokens per MLP chunk in offloaded (long-context) runs; STUDIO_MLP_CHUNK=0 turns chunking off."""
    return int(os.environ.get("STUDIO_MLP_CHUNK", MLP_CHUNK_TOKENS))


def _chunked(forward, chunk: int):
    """An MLP forward over sequence chunks; with gradients on (the checkpointed layer's recompute), each
    chunk is its own checkpoint, so backward holds one chunk's gate/up/LoRA tensors, not the whole
    sequence's (at 80k tokens an 8B MLP's intermediates and LoRA outputs are ~2.2 GiB each)."""
    import torch
    from torch.utils.checkpoint import checkpoint

    def run(self, x):
        if x.shape[-2] <= chunk:
            return forward(self, x)
        parts = [checkpoint(forward, self, part, use_reentrant=False) if torch.is_grad_enabled() else forward(self, part)
                 for part in x.split(chunk, dim=-2)]
        return torch.cat(parts, dim=-2)

    run.studio_chunked = True
    return run


def chunk_mlp(model, chunk: int) -> int:
    """Sequence-chunked MLPs for long contexts. Liger binds its SwiGLU forward to each MLP when the
    trainer starts, so its class gets the chunked forward too; other MLPs are patched in place."""
    import types

    count = 0
    try:
        from liger_kernel.transformers.swiglu import LigerSwiGLUMLP

        if not getattr(LigerSwiGLUMLP.forward, "studio_chunked", False):
            LigerSwiGLUMLP.forward = _chunked(LigerSwiGLUMLP.forward, chunk)
    except ImportError:
        pass
    for name, module in model.named_modules():
        if name.endswith(".mlp") and not getattr(type(module).forward, "studio_chunked", False):
            module.forward = types.MethodType(_chunked(type(module).forward, chunk), module)
            count += 1
    log.info(f"long context: MLPs run in chunks of {chunk} tokens ({count} layers)")
    return count


def liger_available() -> bool:
    if os.environ.get("STUDIO_NO_LIGER") == "1":
        return False
    return importlib.util.find_spec("liger_kernel") is not None and importlib.util.find_spec("triton") is not None


def packed_attention() -> str | None:
    """An attention implementation that keeps packed sequences apart without a dense mask."""
    choice = os.environ.get("STUDIO_ATTENTION")
    if choice:
        return None if choice == "none" else choice
    if importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    from . import varlen

    if varlen.available():  # PyTorch's own varlen flash kernel: no compile step (studio/varlen.py)
        return varlen.register()
    return "flex_attention"


def enabled(cfg=None) -> bool:
    import torch

    if os.environ.get("STUDIO_FAST_PATH", "1") == "0" or (cfg is not None and not getattr(cfg, "fast_path", True)):
        return False
    return torch.cuda.is_available()


def gpu_budget_gib() -> float:
    """Memory the plan may use: STUDIO_GPU_MEMORY_GIB if set, else the card's total minus the context."""
    import torch

    if os.environ.get("STUDIO_GPU_MEMORY_GIB"):
        return float(os.environ["STUDIO_GPU_MEMORY_GIB"])
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    return total / GIB - CONTEXT_RESERVE_GIB


def fsdp_active(args=None) -> bool:
    """True under `accelerate launch --use_fsdp` (or a trainer config with `fsdp` set)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true") or bool(getattr(args, "fsdp", None))


def trainer_overrides(plan: Plan, *, trainer: str = "sft", liger: bool, packing: bool, fsdp: bool = False) -> dict:
    """Trainer-config fields the fast path sets (pure: unit-tested on the CPU)."""
    if trainer not in TRAINERS:
        raise ValueError(f"unknown trainer {trainer!r}")
    out = {
        "bf16": True,
        "per_device_train_batch_size": plan.per_device_train_batch_size,
        "gradient_accumulation_steps": plan.gradient_accumulation_steps,
        "gradient_checkpointing": plan.gradient_checkpointing,
        "use_liger_kernel": liger,
    }
    if plan.gradient_checkpointing:
        # Reentrant checkpoints save their inputs through saved-tensor hooks, which is what lets the
        # offload context move them to CPU; non-reentrant ones keep them on the GPU.
        out["gradient_checkpointing_kwargs"] = {"use_reentrant": plan.activation_offloading}
    if trainer == "sft":
        out["activation_offloading"] = plan.activation_offloading
        out["loss_type"] = "nll" if (liger or fsdp) else "chunked_nll"
        if packing:
            out.update(packing=True, packing_strategy="bfd", padding_free=True)
    else:
        out["padding_free"] = packing
    return out


def apply(cfg, args, model, *, trainer: str = "sft"):
    """Return (args, model) set up for the fast path on CUDA; unchanged elsewhere.

    `args` is a TRL config (SFTConfig, DPOConfig); it is rebuilt with `dataclasses.replace` so its
    own validation runs again. `model` is the loaded (maybe 4-bit) model, not yet wrapped by PEFT.
    """
    if not enabled(cfg):
        return args, model
    shape = ModelShape.from_config(model.config)
    # FSDP: fused/chunked losses read lm_head.weight without calling lm_head, so FSDP's pre-forward
    # gather never runs for it (FSDP warns "did not run forward before backward").
    fsdp = fsdp_active(args)
    attention = packed_attention()
    # TRL 1.12 switched DPO's padding-free mode off ("temporarily unavailable"), and flex attention
    # recompiles for every padded shape (measured: 2x slower), so DPO keeps padded batches: with the
    # varlen kernel (un-padded attention, no compile), else SDPA.
    packing = attention is not None and trainer == "sft"
    from .varlen import NAME as VARLEN

    if trainer == "dpo" and attention == VARLEN:
        model.set_attn_implementation(attention)
    plan, liger = plan_for_trainer(
        shape,
        cfg.method,
        trainer=trainer,
        budget_gib=gpu_budget_gib(),
        batch_size=args.per_device_train_batch_size,
        max_length=args.max_length or cfg.max_length,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        lora_rank=getattr(cfg, "lora_r", 16),
        lora_dropout=getattr(cfg, "lora_dropout", 0.0),
        force_checkpointing=bool(getattr(cfg, "gradient_checkpointing", False)),
        liger=liger_available() and not fsdp,
    )
    global LAST_RUN
    LAST_RUN = PlannedRun(shape, cfg.method, trainer, plan, getattr(cfg, "lora_r", 16), getattr(cfg, "lora_dropout", 0.0), liger_available() and not fsdp)
    if plan.activation_offloading and attention in ("flex_attention", VARLEN):
        # Offloaded runs are long single rows: SDPA's causal flash kernel, which takes GQA as it is.
        # Flex's compiled backward rejects the strides of offloaded activations, and torch 2.11's varlen
        # kernel has no GQA flag, so its repeated key/value heads ran a 65,536-token 8B QLoRA out of memory.
        attention = "sdpa"
    optim = getattr(args.optim, "value", args.optim)
    log.info(f"fast path: {plan.describe()}; liger {'on' if liger else ('off' if liger_available() else 'off (pip install liger-kernel)')}; "
             f"{'padding-free packing with ' + attention if packing else 'padded batches' + (' with ' + attention + ' (un-padded attention)' if trainer == 'dpo' and attention == VARLEN else '')}; optim {optim}")
    if not plan.fits:
        log.warning("the memory estimate exceeds the GPU budget; the run may stop with out-of-memory. "
                    + oom_advice(method=cfg.method, batch_size=plan.per_device_train_batch_size, gradient_accumulation_steps=plan.gradient_accumulation_steps,
                                 max_length=plan.max_length, gradient_checkpointing=plan.gradient_checkpointing, planned=LAST_RUN).replace("Out of GPU memory. ", ""))
    explain_library_warnings(attention if packing else None)
    if kernels_cold():
        log.info(f"compiling GPU kernels, first run only (the first step takes longer; cached in {os.environ.get('TRITON_CACHE_DIR')})")
    if plan.activation_offloading and trainer == "sft":
        lean_activation_offload()
        if mlp_chunk_tokens():
            chunk_mlp(model, mlp_chunk_tokens())
    if packing and getattr(model.config, "_attn_implementation", None) != attention:
        model.set_attn_implementation(attention)
    return dataclasses.replace(args, **trainer_overrides(plan, trainer=trainer, liger=liger, packing=packing, fsdp=fsdp)), model
