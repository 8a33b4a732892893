"""Supervised fine-tuning with TRL's SFTTrainer: `lora`, `qlora`, `full` and `instruction`.

- lora / qlora: a PEFT LoRA adapter (qlora on a 4-bit NF4 base); loss on the assistant reply.
- instruction: all parameters, loss on the assistant reply only (prompt-completion form).
- full: all parameters, loss on the whole conversation.
"""

from __future__ import annotations

import torch
from datasets import Dataset

from .. import models, perf
from ..config import LORA_TARGETS, RunConfig
from ..data import load_dataset_file
from .common import save_trained, split
from .context import RunContext


def build_dataset(cfg: RunConfig, ctx: RunContext) -> tuple[Dataset, Dataset | None]:
    loaded = load_dataset_file(cfg.data)
    ctx.log(f"data: {loaded.summary}")
    for problem in loaded.problems[:20]:
        ctx.log(f"data problem: {problem}")
    train, held_out, _ = split(cfg, ctx, loaded)  # the one split (studio.data.split), written to split.json

    def rows(part):
        if cfg.method == "full":
            return part.conversations
        # prompt-completion form: TRL then takes the loss on the completion (assistant reply) only
        return [{"prompt": c["messages"][:-1], "completion": c["messages"][-1:]} for c in part.conversations]

    return Dataset.from_list(rows(train)), (Dataset.from_list(rows(held_out)) if held_out.conversations else None)


def lora_config(cfg: RunConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=LORA_TARGETS[cfg.lora_target],
        use_dora=cfg.use_dora,
        use_rslora=cfg.use_rslora,
        task_type="CAUSAL_LM",
    )


def load_model(cfg: RunConfig, resolved: models.ResolvedModel):
    cuda = torch.cuda.is_available()
    if cfg.method == "qlora":
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if cuda else torch.float32  # bitsandbytes' CPU path has no fast bf16 kernels here
        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
        )
        return models.load_causal_lm(resolved, dtype=compute, quantization_config=quant, device_map=models.local_device_map() if cuda else None)
    return models.load_causal_lm(resolved)


def training_args(cfg: RunConfig, ctx: RunContext, has_eval: bool):
    from trl import SFTConfig

    cuda = torch.cuda.is_available()
    return SFTConfig(
        output_dir=str(ctx.checkpoints_dir),
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
        max_length=cfg.max_length,
        completion_only_loss=cfg.method != "full",
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=max(cfg.logging_steps, 5) if has_eval else None,
        seed=cfg.seed,
        bf16=cuda,
        optim="paged_adamw_8bit" if (cfg.method == "qlora" and cuda) else "adamw_torch",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def run(cfg: RunConfig, ctx: RunContext) -> dict:
    from trl import SFTTrainer

    train, evaluation = build_dataset(cfg, ctx)
    resolved = models.resolve(cfg.model, trust_remote_code=cfg.trust_remote_code)
    ctx.log(f"model: {resolved.display_name} ({resolved.kind}) from {resolved.path}")
    tokenizer = models.load_tokenizer(resolved)
    model = load_model(cfg, resolved)
    args, model = perf.apply(cfg, training_args(cfg, ctx, evaluation is not None), model)  # CUDA only
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=lora_config(cfg) if cfg.uses_adapter else None,
        callbacks=ctx.callbacks(),
    )
    if cfg.uses_adapter:
        trainable, total = trainer.model.get_nb_trainable_parameters()
        ctx.log(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)")
    result = trainer.train(resume_from_checkpoint=ctx.resume_from)
    out = ctx.run_dir / ("adapter" if cfg.uses_adapter else "model")
    save_trained(trainer, out, tokenizer)
    final = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    final["global_step"] = trainer.state.global_step
    if evaluation is not None:
        final.update({k: v for k, v in trainer.evaluate().items() if isinstance(v, (int, float))})
    return final
