"""Reward model with TRL's RewardTrainer: a sequence-classification head on the base model, LoRA
on the body and the score head trained in full (PEFT `modules_to_save`). Saved to `reward_model/`.

Logs TRL's `accuracy` (chosen scored above rejected), `margin` and reward statistics.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .. import models
from ..config import RunConfig
from .common import (
    find_reward_model,
    fit_and_save,
    lora_config,
    prepare_tokenizer,
    preference_split,
    training_kwargs,
    trl_trainer,
)
from .context import RunContext
from .registry import MethodSpec

SPEC = MethodSpec("reward", "Reward model: score head + LoRA trained on preference pairs (RLHF stage 2)", data="preference",
                  weights="adapter", order=70, family="preference", panels=("Reward-model accuracy",), estimate="reward", pairs=True,
                  learning_rate=(1e-4, 1e-4))

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
    as TRL's PPO and RLOO trainers expect (`model.score` on the backbone's last hidden state).
    `resolved`/`tokenizer`: the base model that reward run trained on (see `find_reward_model`)."""
    from peft import PeftModel

    folder, _ = find_reward_model(source)
    model = load_base_classifier(resolved, tokenizer)
    model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model


@torch.no_grad()
def score(model, tokenizer, conversations: list[list[dict]], batch_size: int = 16) -> list[float]:
    """Reward of each full conversation, one number per conversation, tokenized as TRL's RewardTrainer
    tokenized its pairs (the chat template's own tokens, no extra special tokens) and padded on the right
    whatever the tokenizer's padding side (the classifier reads the last non-pad token), in batches of
    `batch_size` on the model's device."""
    scores: list[float] = []
    for start in range(0, len(conversations), batch_size):
        texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations[start:start + batch_size]]
        batch = tokenizer(texts, return_tensors="pt", padding=True, padding_side="right", add_special_tokens=False).to(model.device)
        scores += model(**batch).logits[:, 0].float().tolist()
    return scores
