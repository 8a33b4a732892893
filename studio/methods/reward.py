"""Reward model with TRL's RewardTrainer: a sequence-classification head on the base model, LoRA
on the body and the score head trained in full (PEFT `modules_to_save`). Saved to `reward_model/`.

Logs TRL's `accuracy` (chosen scored above rejected), `margin` and reward statistics.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .. import models
from ..config import RunConfig
from ..errors import StudioError
from .common import (
    adapter_folder,
    fit_and_save,
    lora_config,
    prepare_tokenizer,
    preference_split,
    training_kwargs,
    trl_trainer,
)
from .context import RunContext

OUTPUT = "reward_model"


def load_base_classifier(resolved: models.ResolvedModel, tokenizer):
    from transformers import AutoModelForSequenceClassification

    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = AutoModelForSequenceClassification.from_pretrained(
        resolved.path, num_labels=1, dtype=dtype, use_safetensors=True, trust_remote_code=resolved.trust_remote_code
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def run(cfg: RunConfig, ctx: RunContext) -> dict:
    from trl import RewardConfig, RewardTrainer

    train, evaluation = preference_split(cfg, ctx)
    ctx.log(f"data: {len(train) + len(evaluation)} preference pairs ({len(train)} train, {len(evaluation)} held out)")
    resolved = models.resolve(cfg.model, trust_remote_code=cfg.trust_remote_code)
    tokenizer = prepare_tokenizer(resolved)
    model = load_base_classifier(resolved, tokenizer)
    args = RewardConfig(**training_kwargs(cfg, ctx.checkpoints_dir, bool(evaluation)), max_length=cfg.max_length)
    trainer = trl_trainer(RewardTrainer, ctx, train, evaluation, model=model, args=args, processing_class=tokenizer,
                          peft_config=lora_config(cfg, task_type="SEQ_CLS", modules_to_save=["score"]))
    return fit_and_save(trainer, ctx, evaluation, OUTPUT, tokenizer)


def load_reward_model(source: str | Path, resolved: models.ResolvedModel, tokenizer):
    """A trained reward model (run id, run folder or adapter folder) merged into a plain classifier,
    as TRL's PPO and RLOO trainers expect (`model.score` on the backbone's last hidden state)."""
    from peft import PeftModel

    folder = adapter_folder(source)
    if folder is None:
        raise StudioError(
            f"no reward model found at '{source}'.",
            where="reward_model",
            hint="Give the id or folder of a completed `method: reward` run, or leave reward_model empty to train one from preference data.",
        )
    model = load_base_classifier(resolved, tokenizer)
    model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model


@torch.no_grad()
def score(model, tokenizer, conversations: list[list[dict]]) -> list[float]:
    """Reward of each full conversation (chat template applied), one number per conversation."""
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    return model(**batch).logits[:, 0].float().tolist()
