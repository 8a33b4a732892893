"""Shared pieces of the preference and RL methods: data, tokenizer, LoRA, trainer args, stages."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from typing import TYPE_CHECKING

from .. import models
from ..config import LORA_TARGETS, RunConfig
from ..data import load_dataset_file
from ..errors import StudioError
if TYPE_CHECKING:  # the pre-flight data checks import this module in the UI: keep torch/transformers out
    from ..data.loader import Loaded
    from ..data.split import Split
    from .context import RunContext

PREFERENCE_HINT = (
    "give preference pairs: one JSON object per line with `prompt`, `chosen` and `rejected` (text or chat "
    "messages), or sharegpt `conversations` + `chosen` + `rejected`."
)
KTO_HINT = (
    "Give one JSON object per line with `prompt`, `completion` and a boolean `label` (true = a good answer), "
    "or chat `messages` with a `label` / `kto_tag`, or preference pairs (`prompt`, `chosen`, `rejected`)."
)
PROMPT_HINT = "give prompts: one JSON object per line with `prompt` (or any instruction, chat or preference file; its prompts are used)."
PAD_CANDIDATES = ("<|endoftext|>", "<|pad|>", "<pad>", "<|finetune_right_pad_id|>", "<unk>")


# ---------------------------------------------------------------- data


def file_format(path: str | Path) -> str:
    """The detected format of a dataset file or saved version: preference, prompt_only, alpaca, ..."""
    return load_dataset_file(path).format


def read_preference(path: str | Path, method: str, kind: str = "preference") -> Loaded:
    """The dataset, checked to hold preference pairs (dpo / reward), or for `kind="kto"` labelled
    answers or pairs (kto); any other format is refused up front."""
    loaded = load_dataset_file(path)
    if kind == "kto" and loaded.format not in ("kto", "preference"):
        raise StudioError(
            f"method `{method}` needs answers labelled desirable or not (or preference pairs), but this dataset's format is '{loaded.format}'.",
            where=str(path),
            hint=KTO_HINT,
        )
    if kind == "preference" and loaded.format != "preference":
        raise StudioError(
            f"method `{method}` needs preference pairs, but this dataset's format is '{loaded.format}'.",
            where=str(path),
            hint=PREFERENCE_HINT[0].upper() + PREFERENCE_HINT[1:],
        )
    return loaded


def read_prompts(path: str | Path, loaded: Loaded | None = None) -> list[list[dict]]:
    """Prompts (message lists ending with a user turn) from prompt-only, instruction, chat or preference data
    (every usable row of `loaded`, or of the file at `path`)."""
    loaded = loaded if loaded is not None else load_dataset_file(path)
    if loaded.format == "text":
        raise StudioError("this dataset is raw text, which has no prompts.", where=str(path), hint=PROMPT_HINT[0].upper() + PROMPT_HINT[1:])
    rows = loaded.to_trl("prompt_only") + (loaded.to_trl("prompt_only", split="eval") if loaded.eval_conversations else [])
    prompts = [r["prompt"] for r in rows if r["prompt"]]
    if not prompts:
        raise StudioError("no usable prompts in the dataset.", where=str(path), hint=PROMPT_HINT[0].upper() + PROMPT_HINT[1:])
    return prompts


def split(cfg: RunConfig, ctx: RunContext | None, loaded: Loaded | None = None) -> tuple[Loaded, Loaded, Split]:
    """The run's train and held-out rows through the one split (studio.data.split): a saved version's
    eval split, else `eval_fraction`/`seed`. Logs the split and any contamination and writes
    RUN/split.json. Returns (train rows, eval rows, split); use `.to_trl(kind)` on either side."""
    from ..data import split as one_split

    loaded, chosen = one_split.for_run(cfg, ctx.run_dir if ctx else None, loaded, ctx.log if ctx else None)
    return one_split.select(loaded, chosen.train), one_split.select(loaded, chosen.eval), chosen


def preference_split(cfg: RunConfig, ctx: RunContext, kind: str = "preference") -> tuple[list[dict], list[dict]]:
    """Train and held-out preference rows in TRL's `kind` form (preference pairs, or kto rows)."""
    train, evaluation, _ = split(cfg, ctx, read_preference(cfg.data, cfg.method, kind))
    return train.to_trl(kind), evaluation.to_trl(kind)


def train_prompts(cfg: RunConfig, ctx: RunContext | None) -> list[list[dict]]:
    """The prompts of the train rows only: held-out rows never reach an RL or Constitutional AI rollout."""
    train, _, _ = split(cfg, ctx)
    return read_prompts(cfg.data, train)


# ---------------------------------------------------------------- models


def prepare_tokenizer(resolved: models.ResolvedModel):
    """The tokenizer with eos matching the model's generation config and a pad token distinct from eos.

    Converted GGUF tokenizers can carry a wrong eos (SmolLM2's says <|im_start|>); trainers append
    eos to completions and PPO truncates at it, so it must be the token the chat template ends turns with.
    PPO and the reward model also need pad != eos, or the final eos is masked out as padding.
    """
    tokenizer = models.load_tokenizer(resolved)
    eos_id = None
    for name in ("generation_config.json", "config.json"):
        file = Path(resolved.path) / name
        if file.is_file():
            eos_id = json.loads(file.read_text()).get("eos_token_id")
            if eos_id is not None:
                break
    if isinstance(eos_id, list):
        eos_id = eos_id[0]
    if isinstance(eos_id, int) and eos_id != tokenizer.eos_token_id and eos_id < len(tokenizer):
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos_id)
    # `load_tokenizer` falls back to pad = eos, which for converted GGUFs can be a template token (<|im_start|>)
    if tokenizer.pad_token is None or tokenizer.pad_token_id in (tokenizer.eos_token_id, tokenizer.bos_token_id) or tokenizer.pad_token in str(tokenizer.chat_template or ""):
        vocab = tokenizer.get_vocab()
        for candidate in PAD_CANDIDATES:
            if candidate in vocab and vocab[candidate] != tokenizer.eos_token_id:
                tokenizer.pad_token = candidate
                break
    return tokenizer


def lora_config(cfg: RunConfig, task_type: str = "CAUSAL_LM", modules_to_save: list[str] | None = None):
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=LORA_TARGETS[cfg.lora_target],
        use_dora=cfg.use_dora,
        use_rslora=cfg.use_rslora,
        task_type=task_type,
        modules_to_save=modules_to_save,
    )


def quantization(cfg: RunConfig):
    """4-bit NF4 with double quantisation (QLoRA) when `quantize_4bit` is set; bf16 compute on CUDA."""
    import torch

    if not (getattr(cfg, "quantize_4bit", False) or getattr(cfg, "weights", "") == "qlora"):
        return None
    return bnb_config(cfg.quant_bits, torch.bfloat16 if torch.cuda.is_available() else torch.float32)


def bnb_config(bits: int, compute_dtype):
    """The quantised base of QLoRA: 4-bit NF4 with double quantisation, or 8-bit LLM.int8."""
    from transformers import BitsAndBytesConfig

    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute_dtype)


def load_policy(cfg: RunConfig, resolved: models.ResolvedModel):
    import torch

    quant = quantization(cfg)
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = models.load_causal_lm(resolved, dtype=dtype, quantization_config=quant, device_map=models.local_device_map() if (quant and torch.cuda.is_available()) else None)
    return model


def adapter_folder(source: str | Path) -> Path | None:
    """A run id, a run folder or an adapter folder -> the folder holding adapter_config.json."""
    from ..paths import runs_dir

    run_folder = runs_dir() / str(source) if source and "/" not in str(source) else None  # a training run id
    path = run_folder if run_folder is not None and run_folder.is_dir() else Path(str(source)).expanduser()
    for candidate in (path, path / "adapter", path / "reward_model"):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    return None


def find_reward_model(source: str | Path, where: str = "reward_model") -> tuple[Path, str | None]:
    """A trained reward model (a `reward` run's id or folder, an rlhf run or its reward stage, or the
    adapter folder itself) -> (its adapter folder, the `model` its run trained on, None when no
    config.yaml is found). Refuses, in one line, a folder that holds no reward model, e.g. a LoRA run's
    causal-LM adapter: loaded under a score head it would give random scores. Reads no weights."""
    from ..paths import runs_dir

    text = str(source or "").strip()
    run_folder = runs_dir() / text if text and "/" not in text else None  # a training run id
    path = run_folder if run_folder is not None and run_folder.is_dir() else Path(text).expanduser()
    hint = "Give the id or folder of a completed `method: reward` run (its reward_model/ folder holds the trained classifier)."
    for candidate in (path / "reward_model", path / "stages" / "reward" / "reward_model", path, path / "adapter"):
        config = candidate / "adapter_config.json"
        if not config.is_file():
            continue
        try:
            task = json.loads(config.read_text()).get("task_type")
        except (OSError, ValueError):
            raise StudioError(f"{config} is not readable JSON.", where=where, hint=hint) from None
        if task != "SEQ_CLS":
            raise StudioError(f"'{source}' holds a {task or 'causal-LM'} adapter, not a reward model.", where=where, hint=hint)
        run = next((p for p in (candidate, *candidate.parents[:3]) if (p / "config.yaml").is_file()), None)
        model = None
        if run is not None:
            cfg = RunConfig.of_run(run)
            model = cfg.model if cfg else None
        return candidate, model
    raise StudioError(f"no reward model found at '{source}'.", where=where, hint=hint)


def training_kwargs(cfg: RunConfig, output_dir: Path, has_eval: bool) -> dict:
    """TrainingArguments shared by the TRL trainers (DPO, reward, RLOO)."""
    import torch

    cuda = torch.cuda.is_available()
    return dict(
        output_dir=str(output_dir),
        max_steps=cfg.max_steps,
        num_train_epochs=cfg.num_train_epochs,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
        weight_decay=cfg.weight_decay,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        gradient_checkpointing=cfg.gradient_checkpointing,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=max(cfg.logging_steps, 5) if has_eval else None,
        seed=cfg.seed,
        bf16=cuda,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def numeric(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def train_and_finish(trainer, ctx: RunContext, evaluation, *, after_train=None) -> dict:
    """Train (resuming from the run's checkpoint), run `after_train(trainer)` (a check that may raise),
    evaluate when there is an eval split; the final numeric metrics with global_step. Every trainer ends here."""
    result = trainer.train(resume_from_checkpoint=ctx.resume_from)
    if after_train is not None:
        after_train(trainer)
    final = numeric(result.metrics)
    final["global_step"] = trainer.state.global_step
    if evaluation:
        final.update(numeric(trainer.evaluate()))
    return final


def trl_trainer(trainer_cls, ctx: RunContext, train: list[dict], evaluation: list[dict], **kwargs):
    """A TRL trainer over row lists (train, optional eval) with the run's callbacks."""
    from datasets import Dataset

    return trainer_cls(
        train_dataset=Dataset.from_list(train),
        eval_dataset=Dataset.from_list(evaluation) if evaluation else None,
        callbacks=ctx.callbacks(),
        **kwargs,
    )


def fit_and_save(trainer, ctx: RunContext, evaluation, out: str, tokenizer=None, *, selected_adapters: list[str] | None = None) -> dict:
    """Log the trainable parameters, train (`train_and_finish`) and save to RUN/out (`save_trained`)."""
    log_trainable(trainer.model, ctx)
    final = train_and_finish(trainer, ctx, evaluation)
    save_trained(trainer, ctx.run_dir / out, tokenizer, selected_adapters=selected_adapters)
    return final


ADAPTER_KEY_TAGS = ("lora_", "modules_to_save", "trainable_tokens")


def save_trained(trainer, out: Path, tokenizer=None, *, model=None, selected_adapters: list[str] | None = None) -> Path:
    """Write the trained result (adapter or full weights) and the tokenizer to `out`, from every kind of run.

    - Full weights, and anything under FSDP: `trainer.save_model`, which gathers a full state dict
      across ranks and writes it once (every rank must call it: it is a collective under FSDP).
    - Adapters: the main process alone writes, from CPU copies of the adapter tensors. Saving the
      live tensors asks safetensors for their storage pointers, and on the GPU image some are
      wrapper tensors without one ("invalid python storage"); copies always have one, and cost only
      the adapter's size.
    """
    from .. import perf

    model = model if model is not None else trainer.model
    main = trainer.accelerator.is_main_process
    if perf.fsdp_active(trainer.args) or not hasattr(model, "peft_config"):
        trainer.save_model(str(out))
    elif main:
        state = {key: value.detach().to("cpu", copy=True).contiguous() for key, value in model.state_dict().items()
                 if any(tag in key for tag in ADAPTER_KEY_TAGS)}
        model.save_pretrained(str(out), selected_adapters=selected_adapters, state_dict=state, safe_serialization=True)
    if main and tokenizer is not None:
        tokenizer.save_pretrained(str(out))
    trainer.accelerator.wait_for_everyone()
    return out


def log_trainable(model, ctx: RunContext) -> None:
    if hasattr(model, "get_nb_trainable_parameters"):  # PEFT counts 4-bit weights at their real size
        trainable, total = model.get_nb_trainable_parameters()
    else:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
    ctx.log(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / max(total, 1):.2f}%)")


# ---------------------------------------------------------------- chains of stages


def stage_config(cfg: RunConfig, **changes) -> RunConfig:
    return replace(cfg, **changes)


def stage_dir(ctx: RunContext, name: str) -> Path:
    path = ctx.run_dir / "stages" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def copy_tree(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
