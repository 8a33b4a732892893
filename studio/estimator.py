"""Peak memory, time and cost of a training run, from the model's config.json alone (no weights).

The model is a count of what the studio's trainers keep alive (TRL SFTTrainer / DPOTrainer /
PPOTrainer over transformers + PEFT, SDPA attention), not a rule of thumb:

- weights: bf16 on a GPU, fp32 on a CPU; QLoRA keeps the linear layers in NF4 with double
  quantisation (~4.13 bits per weight) and the embeddings/head in bf16 (TRL does not call
  `prepare_model_for_kbit_training`, so nothing is upcast to fp32; `qlora_fp32_upcast=True`
  models the plain-PEFT path that does, for comparison with issue 7's baseline);
- trainable state: LoRA adapters are fp32 (PEFT's autocast_adapter_dtype) with fp32 grads and
  AdamW moments (16 bytes/param); QLoRA adapters are bf16 with paged 8-bit AdamW (6 bytes/param);
  full fine-tuning of a bf16 model keeps bf16 grads and bf16 moments (6 bytes/param on top);
- activations per token and layer: the tensors autograd saves in a Llama-style block (two RMSNorms
  that upcast to fp32, q/k/v after RoPE with k/v repeated for GQA, attention output, the SwiGLU
  intermediates, and LoRA's dropout copies and masks); with gradient checkpointing only each
  layer's input is kept plus one layer recomputed in backward;
- logits: the loss upcasts to fp32 and log-softmax keeps its output, so about 12 bytes per
  vocabulary entry per token at the loss (bf16 logits + fp32 log-probs + their gradient).

On a GPU the SFT-style methods and DPO run the studio's fast path (studio/perf.py: Liger or chunked
loss, padding-free packing, checkpointing/offload only when needed), so there `memory`
uses the fast path's own memory model, the one its settings chooser plans with; `plan_24gb` is what
that chooser picks on a 24 GB card. `fast_path=False` gives the plain TRL path described above.

DPO doubles the tokens (chosen + rejected; the reference is the adapter switched off, so no second
copy). PPO holds policy (+adapter; reference = adapter off), a trainable value model and a frozen
reward model, as TRL's PPOTrainer does. GRPO trains on `batch` sampled completions of `seq` tokens
(prompt + completion) with logits over the `completion_length` completion tokens only (TRL's
logits_to_keep), after generating them with a KV cache over the generation batch; its time counts every prompt `num_generations` times
plus one forward per generated token. Reference architectures ship in assets/architectures/.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import StudioError
from .methods import registry as method_registry
from .resources import asset

GIB = 1024**3
CARD_GIB = 24.0  # RTX 4090: 24 GiB of GDDR6X
CONTEXT_GIB = 1.5  # left for the CUDA context and allocator slack (as issue 7 emulates the card)
# Fitted, not derived: on a CPU the fp32 autograd path held ~1.5x the per-layer tensors counted in
# memory() (measured LoRA 128x4 and full 128x2 on the embedded model, bench/estimator_calibration.py).
CPU_ACTIVATION_FACTOR = 1.5
ARCH_DIR = asset("architectures")
# The methods the estimator models (the method registry says which, and how: pairs, adapter, fast path).
ESTIMATE_METHODS = tuple(s.estimate for s in method_registry.SPECS if s.estimate)
OPTIMIZERS = ("adamw", "adamw_8bit", "paged_adamw_8bit", "sgd")

# Throughput reference points (measured) used to turn FLOPs into time.
# GPU: issue 7's plain HF+PEFT run on one H200 (Llama-3-8B LoRA 2048x4, gradient checkpointing): 6,438 tok/s.
H200_REFERENCE = {"arch": "Llama-3-8B", "method": "lora", "seq": 2048, "tokens_per_s": 6438.0, "peak_tflops": 989.0}
DEVICE_PEAK_TFLOPS = {"rtx4090": 165.2, "a100-80gb": 312.0, "h200": 989.0}  # dense bf16, vendor sheets
PRICES = {
    "openai_gpt4o_per_million_tokens": 25.0,  # OpenAI gpt-4o fine-tuning, per 1M training tokens
    "a100_80gb_per_hour": 1.10,  # a typical A100-80GB rental
    "rtx4090_watts": 450.0,  # board power of the reference card
    "electricity_per_kwh": 0.30,
}


@dataclass(frozen=True)
class Architecture:
    """The numbers of a decoder-only transformer that decide its memory."""

    name: str
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    head_dim: int
    tied_embeddings: bool
    attention_bias: bool = False

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def layer_linear_params(self) -> int:
        h, i = self.hidden, self.intermediate
        attention = h * self.q_dim + 2 * h * self.kv_dim + self.q_dim * h
        bias = (self.q_dim + 2 * self.kv_dim) if self.attention_bias else 0
        return attention + bias + 3 * h * i

    @property
    def linear_params(self) -> int:
        """Parameters in the decoder blocks' linear layers (what QLoRA quantises)."""
        return self.layers * self.layer_linear_params

    @property
    def embedding_params(self) -> int:
        """Embedding plus untied output head, and the norms (what stays in 16 bits under QLoRA)."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2) + (2 * self.layers + 1) * self.hidden

    @property
    def params(self) -> int:
        return self.linear_params + self.embedding_params

    @property
    def matmul_params(self) -> int:
        """Parameters that take part in a matrix product per token: the decoder blocks and the output head."""
        return self.linear_params + self.vocab * self.hidden

    @classmethod
    def from_config(cls, config, name: str = "model") -> "Architecture":
        """From a transformers config object (a loaded model's) or a config.json mapping."""
        raw = config.to_dict() if hasattr(config, "to_dict") else dict(config) if isinstance(config, dict) else dict(vars(config))
        return architecture_from_config(raw, name=str(raw.get("_name_or_path") or name))

    def lora_params(self, rank: int, target: str = "all-linear") -> int:
        h, i, q, kv = self.hidden, self.intermediate, self.q_dim, self.kv_dim
        attention = (h + q) + 2 * (h + kv) + (q + h)
        mlp = 3 * (h + i)
        return self.layers * rank * (attention + (mlp if target == "all-linear" else 0))


def architecture_from_config(config: dict, name: str = "model", where: str = "config.json") -> Architecture:
    """Read the keys that matter; a missing one is a one-line error naming it."""
    config = config.get("text_config", config) if isinstance(config.get("text_config"), dict) else config

    def need(*keys: str) -> int:
        for key in keys:
            if isinstance(config.get(key), int):
                return config[key]
        raise StudioError(f"config.json has no `{keys[0]}`; cannot estimate memory for this architecture.", where=where,
                          hint="Give the folder of a decoder-only model (Llama, Qwen, Mistral, SmolLM...).")

    hidden = need("hidden_size", "n_embd", "d_model")
    heads = need("num_attention_heads", "n_head")
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    return Architecture(
        name=name,
        layers=need("num_hidden_layers", "n_layer"),
        hidden=hidden,
        intermediate=need("intermediate_size", "n_inner", "ffn_dim"),
        vocab=need("vocab_size"),
        heads=heads,
        kv_heads=int(kv_heads),
        head_dim=int(head_dim),
        tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        attention_bias=bool(config.get("attention_bias", config.get("model_type") == "qwen2")),
    )


def known_architectures() -> list[str]:
    return sorted(p.stem for p in ARCH_DIR.glob("*.json"))


def load_architecture(model: str) -> Architecture:
    """A folder or config.json path, `embedded`, a bundled architecture name, or a cached hub id."""
    text = str(model or "embedded").strip()
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / "config.json"
        if not path.is_file():
            raise StudioError(f"{path.parent} has no config.json.", where="model", hint="Point at a Hugging Face model folder.")
    if path.is_file():
        name = path.parent.name if path.name == "config.json" else path.stem
        return architecture_from_config(_read_json(path), name=name, where=str(path))
    if text in ("embedded", "default"):
        return load_architecture(str(ARCH_DIR / "SmolLM2-135M.json"))
    short = text.rsplit("/", 1)[-1].lower().removeprefix("meta-")
    for candidate in ARCH_DIR.glob("*.json"):
        if candidate.stem.lower() == short:
            return architecture_from_config(_read_json(candidate), name=candidate.stem, where=str(candidate))
    try:
        from huggingface_hub import hf_hub_download

        cached = hf_hub_download(text, "config.json", local_files_only=True)
        return architecture_from_config(_read_json(Path(cached)), name=text, where=cached)
    except Exception:
        pass
    raise StudioError(
        f"no config.json found for '{text}'.",
        where="model",
        hint="Give a folder that holds config.json (weights not needed), or one of: " + ", ".join(known_architectures()) + ".",
    )


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise StudioError(f"cannot read {path}: {err}.", where=str(path)) from None
    if not isinstance(data, dict):
        raise StudioError("config.json must be a JSON object.", where=str(path))
    return data


@dataclass
class Setup:
    """The knobs that change memory. `device` is `gpu` (bf16, the RTX 4090 reference) or `cpu` (fp32)."""

    method: str = "lora"
    seq: int = 512
    batch: int = 4
    gradient_checkpointing: bool = True
    optimizer: str | None = None  # None: what the studio's trainer uses for this method and device
    lora_r: int = 16
    lora_target: str = "all-linear"
    lora_dropout: float = 0.0  # the studio's default (studio/config.py)
    device: str = "gpu"
    qlora_fp32_upcast: bool = False
    fast_path: bool = True  # GPU: the studio's fast path (studio/perf.py), as its trainers run by default
    activation_offloading: bool = False  # fast path: checkpointed layer inputs kept on the CPU
    fused_loss: bool | None = None  # fast path: a loss that never holds full logits (None: SFT yes, DPO no)
    num_generations: int = 4  # GRPO: completions sampled per prompt
    completion_length: int = 256  # GRPO: new tokens per completion (response_length); `seq` is prompt + completion

    def validate(self) -> None:
        if self.method not in ESTIMATE_METHODS:
            raise StudioError(f"method '{self.method}' is not one of {', '.join(ESTIMATE_METHODS)}.", where="method")
        for name in ("seq", "batch", "lora_r", "num_generations", "completion_length"):
            if int(getattr(self, name)) < 1:
                raise StudioError(f"{name} must be at least 1, got {getattr(self, name)}.", where=name)
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise StudioError(f"optimizer '{self.optimizer}' is not one of {', '.join(OPTIMIZERS)}.", where="optimizer")
        if self.device not in ("gpu", "cpu"):
            raise StudioError(f"device must be gpu or cpu, got '{self.device}'.", where="device")


@dataclass
class MemoryEstimate:
    peak_gib: float
    parts_gib: dict[str, float]
    fits_24gb: bool
    tokens_per_step: int


def _adapter(method: str) -> bool:
    return method_registry.trains_adapter(method)


FAST_PATH_METHODS = tuple(s.name for s in method_registry.SPECS if s.fast_trainer and s.estimate)


def uses_fast_path(setup: Setup) -> bool:
    return setup.device == "gpu" and setup.fast_path and setup.method in FAST_PATH_METHODS and not setup.qlora_fp32_upcast


def model_shape(arch: Architecture) -> Architecture:
    """What studio.perf plans with: the same class (perf.ModelShape is Architecture)."""
    return arch


def _fast_path_memory(arch: Architecture, setup: Setup) -> MemoryEstimate:
    from . import perf

    tokens = setup.seq * setup.batch * (2 if method_registry.spec(setup.method).pairs else 1)
    parts = perf.estimate_parts(
        model_shape(arch), setup.method, tokens, lora_rank=setup.lora_r, gradient_checkpointing=setup.gradient_checkpointing,
        activation_offloading=setup.activation_offloading, lora_dropout=setup.lora_dropout,
        fused_loss=setup.fused_loss if setup.fused_loss is not None else method_registry.spec(setup.method).fast_trainer != "dpo",
    )
    peak = sum(parts.values())
    return MemoryEstimate(peak_gib=peak, parts_gib={k: round(v, 3) for k, v in parts.items()},
                          fits_24gb=peak <= CARD_GIB - CONTEXT_GIB, tokens_per_step=tokens)


def plan_24gb(arch: Architecture, setup: Setup, budget_gib: float = CARD_GIB - CONTEXT_GIB):
    """What the fast path's chooser runs on a 24 GB card for this method, length and batch (a perf.Plan),
    or None where the fast path does not apply."""
    from . import perf

    if not uses_fast_path(_with(setup, device="gpu")):
        return None
    plan, _ = perf.plan_for_trainer(
        model_shape(arch), setup.method, trainer=method_registry.spec(setup.method).fast_trainer or "sft", budget_gib=budget_gib,
        batch_size=setup.batch, max_length=setup.seq, lora_rank=setup.lora_r, lora_dropout=setup.lora_dropout,
        force_checkpointing=setup.gradient_checkpointing, liger=True,  # `make` installs liger-kernel wherever nvidia-smi answers
    )
    return plan


def memory(arch: Architecture, setup: Setup) -> MemoryEstimate:
    """Peak bytes of one training step (max over the loss, layer-backward and optimiser phases)."""
    setup.validate()
    if uses_fast_path(setup):
        return _fast_path_memory(arch, setup)
    cpu = setup.device == "cpu"
    method = setup.method
    upcast = method == "qlora" and setup.qlora_fp32_upcast
    act = 4 if (cpu or upcast) else 2  # bytes per activation element
    weight_bytes = 4 if cpu else 2
    h, i, v, layers = arch.hidden, arch.intermediate, arch.vocab, arch.layers
    pairs = method_registry.spec(method).pairs
    tokens = setup.seq * setup.batch * (2 if pairs else 1)

    # Weights.
    if method == "qlora" and not cpu:
        weights = arch.linear_params * 4.127 / 8 + arch.embedding_params * (4 if upcast else 2)
    else:
        weights = arch.params * weight_bytes
    # Trainable state: parameter copy (adapters only), gradient, optimiser moments.
    adapter = _adapter(method)
    trainable = arch.lora_params(setup.lora_r, setup.lora_target) if adapter else arch.params
    optimizer = setup.optimizer or ("paged_adamw_8bit" if method == "qlora" and not cpu else "adamw")
    moment_bytes = {"adamw": 8 if adapter or cpu else 2 * weight_bytes, "adamw_8bit": 2, "paged_adamw_8bit": 2, "sgd": 0}[optimizer]
    if adapter:
        param_bytes = 2 if (method == "qlora" and not cpu) else 4  # PEFT keeps adapters fp32; TRL casts QLoRA's to bf16
        state = trainable * (2 * param_bytes + moment_bytes)
    else:
        state = trainable * (weight_bytes + moment_bytes)
    # Optimiser step: foreach AdamW makes one temporary per trainable tensor group.
    optimizer_temp = trainable * (4 if adapter else weight_bytes) if optimizer == "adamw" else 0

    # Saved activations per token per layer.
    norm = 4 * h + act * h if act == 2 else 2 * act * h  # fp32 upcast copy + normalised output
    attention = act * (3 * h + 2 * max(arch.kv_dim, arch.q_dim))  # q, k, v (GQA repeated), output, o_proj input
    mlp = 4 * act * i  # gate, SiLU(gate), up, product
    lora = 0.0
    if adapter and setup.lora_dropout > 0:
        inputs = (6 * h + i) if setup.lora_target == "all-linear" else 4 * h
        lora = inputs * ((act if cpu else 2) + 1)  # dropout copy (autocast to bf16 on GPU) + mask
    per_layer = 2 * norm + attention + mlp + lora
    if cpu:
        per_layer *= CPU_ACTIVATION_FACTOR
    if method in ("ppo", "rlhf"):
        per_layer *= 2  # policy and value model both run forward/backward on the rollouts

    logits = 12 * v * tokens if method != "reward" else 0  # bf16 logits + fp32 log-probs + gradient
    if method == "grpo":  # log-probs of the completion tokens only (logits_to_keep)
        logits = 12 * v * setup.batch * min(setup.completion_length, setup.seq)
    if setup.gradient_checkpointing:
        saved = layers * act * h * tokens
        layer_backward = per_layer * tokens + act * (2 * h + 2 * i) * tokens
        activations = saved + max(logits, layer_backward)
    else:
        activations = layers * per_layer * tokens + logits

    extra = 0.0
    if method == "qlora" and not cpu:
        extra += 2 * max(h * i, h * arch.q_dim)  # one dequantised weight at a time
    if method in ("ppo", "rlhf"):
        value_weights = arch.params * weight_bytes
        extra += value_weights  # value model (a full copy, trained)
        extra += arch.params * (weight_bytes + (2 * weight_bytes if not cpu else 8))  # its gradient + moments
        extra += arch.params * weight_bytes  # frozen reward model
        extra += 2 * layers * arch.kv_dim * act * tokens  # rollout KV cache
    if method == "grpo":
        # generation: a KV cache for every sequence of the generation batch (`batch` completions: the
        # per-device share of prompts x num_generations), at full prompt + completion length, plus the
        # sampling step's logits; freed before the training forward, so it competes with activations.
        generation = 2 * layers * arch.kv_dim * act * tokens + 4 * v * setup.batch
        activations = max(activations, generation)
    peak = weights + state + extra + max(activations, optimizer_temp)
    parts = {
        "weights": weights,
        "trainable_state": state,
        "activations": activations,
        "logits": logits,
        "other_models_and_temps": extra,
    }
    return MemoryEstimate(
        peak_gib=peak / GIB,
        parts_gib={k: round(val / GIB, 3) for k, val in parts.items()},
        fits_24gb=peak / GIB <= CARD_GIB - CONTEXT_GIB,
        tokens_per_step=tokens,
    )


def largest_batch(arch: Architecture, setup: Setup, limit_gib: float = CARD_GIB - CONTEXT_GIB) -> int:
    """Largest per-device batch at this sequence length that fits; 0 if even batch 1 doesn't."""
    def fits(batch: int) -> bool:
        return fits_card(arch, _with(setup, batch=batch), limit_gib)

    return _largest(fits, 1, 4096)


def largest_seq(arch: Architecture, setup: Setup, limit_gib: float = CARD_GIB - CONTEXT_GIB, step: int = 128) -> int:
    """Largest sequence length (a multiple of `step`) at this batch that fits; 0 if none does."""
    def fits(blocks: int) -> bool:
        return fits_card(arch, _with(setup, seq=blocks * step), limit_gib)

    return _largest(fits, 1, 1 << 14) * step


def fits_card(arch: Architecture, setup: Setup, limit_gib: float = CARD_GIB - CONTEXT_GIB) -> bool:
    """Whether this batch and length train within `limit_gib`: on the fast path, with the settings its
    chooser picks (checkpointing, offload) and no smaller micro-batch; else as configured."""
    if uses_fast_path(setup):
        plan = plan_24gb(arch, setup, limit_gib)
        return plan.fits and plan.per_device_train_batch_size == setup.batch
    return memory(arch, setup).peak_gib <= limit_gib


def _largest(fits, low: int, high: int) -> int:
    if not fits(low):
        return 0
    while low < high:  # binary search: memory grows with batch and sequence
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def _with(setup: Setup, **changes) -> Setup:
    return Setup(**{**asdict(setup), **changes})


def train_flops_per_token(arch: Architecture, setup: Setup) -> float:
    """Forward 2N (+ causal attention), backward 2x forward for full, 1x for adapters, +1x recompute."""
    matmul = arch.linear_params + arch.vocab * arch.hidden
    forward = 2 * matmul + 2 * arch.layers * setup.seq * arch.q_dim
    passes = (2 if _adapter(setup.method) else 3) + (1 if setup.gradient_checkpointing else 0)
    if setup.method == "grpo":
        passes += 2  # the sampling forward (token by token) and the reference's log-probs
    return forward * passes


def throughput(arch: Architecture, setup: Setup, device: str = "rtx4090") -> float:
    """Tokens/s, scaling issue 7's measured H200 utilisation to the device's bf16 peak."""
    ref_arch = load_architecture(H200_REFERENCE["arch"])
    ref_setup = Setup(method="lora", seq=H200_REFERENCE["seq"], gradient_checkpointing=True)
    utilisation = H200_REFERENCE["tokens_per_s"] * train_flops_per_token(ref_arch, ref_setup) / (H200_REFERENCE["peak_tflops"] * 1e12)
    return utilisation * DEVICE_PEAK_TFLOPS[device] * 1e12 / train_flops_per_token(arch, setup)


@dataclass
class Estimate:
    model: str
    method: str
    seq: int
    batch: int
    gradient_checkpointing: bool
    device: str
    params: int
    trainable_params: int
    peak_gib: float
    parts_gib: dict
    fits_24gb: bool  # on the 24 GB RTX 4090 (bf16), whatever `device` is
    gpu_peak_gib: float
    max_batch_24gb: int
    max_seq_24gb: int
    tokens_per_s_4090: float
    plan_24gb: str | None = None  # what the fast path runs on a 24 GB card (GPU methods it covers)
    train_tokens: int | None = None
    hours_4090: float | None = None
    cost: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["peak_gib"] = round(self.peak_gib, 2)
        data["tokens_per_s_4090"] = round(self.tokens_per_s_4090, 1)
        return data

    def describe(self) -> str:
        lines = [
            f"{self.model} · {self.method} · seq {self.seq} × batch {self.batch}"
            + (" · gradient checkpointing" if self.gradient_checkpointing else ""),
            (f"peak RAM ≈ {self.peak_gib:.1f} GiB on this CPU (fp32); " if self.device == "cpu" else "")
            + f"peak GPU memory ≈ {self.gpu_peak_gib:.1f} GiB (bf16) with these settings; "
            + ("the studio's fast path (plan below) " if self.plan_24gb else "")
            + ("fits" if self.fits_24gb else "does NOT fit")
            + f" a 24 GB RTX 4090 (≤ {CARD_GIB - CONTEXT_GIB:.1f} GiB usable)",
            f"largest batch at seq {self.seq}: {self.max_batch_24gb}; largest seq at batch {self.batch}: {self.max_seq_24gb}",
            *([f"the studio's fast path on a 24 GB card: {self.plan_24gb}"] if self.plan_24gb else []),
            "parts (GiB): " + ", ".join(f"{k} {v:.2f}" for k, v in self.parts_gib.items()),
            f"≈ {self.tokens_per_s_4090:,.0f} tokens/s on an RTX 4090 (scaled from a measured H200 run)",
        ]
        if self.hours_4090 is not None:
            lines.append(f"{self.train_tokens:,} training tokens ≈ {self.hours_4090 * 60:.1f} min on a 4090")
            lines.append("cost: " + ", ".join(f"{k} ${v:.2f}" for k, v in self.cost.items()))
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def estimate(model: str | Architecture, setup: Setup | None = None, *, train_tokens: int | None = None, **knobs) -> Estimate:
    """The whole answer for one model and setup; `train_tokens` (dataset tokens × epochs) adds time and cost."""
    setup = setup or Setup(**knobs)
    setup.validate()
    arch = model if isinstance(model, Architecture) else load_architecture(model)
    mem = memory(arch, setup)
    gpu_setup = _with(setup, device="gpu")
    gpu_mem = memory(arch, gpu_setup)
    tokens_per_s = throughput(arch, setup)
    notes = []
    if setup.method in ("ppo", "rlhf"):
        notes.append("PPO counts policy + adapter (reference = adapter off), a trained value model and a frozen reward model; rollouts add a KV cache.")
    if setup.method == "grpo":
        notes.append(f"GRPO samples {setup.num_generations} completions of up to {setup.completion_length} tokens per prompt: "
                     f"the time counts train_tokens (dataset prompt + completion tokens x epochs) {setup.num_generations} times. "
                     "Sampling runs token by token and is memory-bound, so the time is a lower bound; the KL reference is the adapter switched off.")
    if setup.method == "qlora" and setup.device == "cpu":
        notes.append("QLoRA needs a CUDA GPU (bitsandbytes 4-bit); on a CPU this is an fp32 LoRA.")
    result = Estimate(
        model=arch.name,
        method=setup.method,
        seq=setup.seq,
        batch=setup.batch,
        gradient_checkpointing=setup.gradient_checkpointing,
        device=setup.device,
        params=arch.params,
        trainable_params=arch.lora_params(setup.lora_r, setup.lora_target) if _adapter(setup.method) else arch.params,
        peak_gib=mem.peak_gib,
        parts_gib=mem.parts_gib,
        fits_24gb=fits_card(arch, gpu_setup),
        gpu_peak_gib=round(gpu_mem.peak_gib, 2),
        max_batch_24gb=largest_batch(arch, gpu_setup),
        max_seq_24gb=largest_seq(arch, gpu_setup),
        tokens_per_s_4090=tokens_per_s,
        plan_24gb=plan.describe() if (plan := plan_24gb(arch, gpu_setup)) else None,
        notes=notes,
    )
    if train_tokens and setup.method == "grpo":  # every prompt is answered num_generations times, each answer trained on
        train_tokens = train_tokens * setup.num_generations
    if train_tokens:
        hours = train_tokens / tokens_per_s / 3600
        a100_hours = hours * DEVICE_PEAK_TFLOPS["rtx4090"] / DEVICE_PEAK_TFLOPS["a100-80gb"]
        result.train_tokens = int(train_tokens)
        result.hours_4090 = hours
        result.cost = {
            "local_electricity": hours * PRICES["rtx4090_watts"] / 1000 * PRICES["electricity_per_kwh"],
            "a100_80gb_rental": max(a100_hours, 1 / 60) * PRICES["a100_80gb_per_hour"],
            "openai_gpt4o_finetune": train_tokens / 1e6 * PRICES["openai_gpt4o_per_million_tokens"],
        }
        result.cost = {k: round(v, 4) for k, v in result.cost.items()}
    return result



__all__ = ["Architecture", "Estimate", "Setup", "estimate", "load_architecture", "memory", "largest_batch", "largest_seq", "fits_card", "plan_24gb",
           "architecture_from_config", "known_architectures", "throughput"]
