"""Kahneman-Tversky Optimisation with TRL's KTOTrainer, on a LoRA adapter.

KTO learns from single answers labelled desirable (`label: true`) or undesirable (`false`), so it
needs no pairs. Data: format `kto` (prompt/completion/label, or whatever studio.data detects as
kto), or preference pairs, which unpair into one desirable and one undesirable row each (both
halves of a pair stay on the same side of the train/eval split: the split is by dataset row).

As for DPO, the reference model is the same weights with the adapter switched off (TRL does this
when it gets a `peft_config` and no `ref_model`). TRL logs `rewards/chosen`, `rewards/rejected`,
`rewards/margins` and `kl` (the batch's reference KL estimate); the Train tab plots them.

TRL's KTO estimates the KL term from mismatched pairs inside each batch, so it reads the rows in a
fixed order (sequential sampler) and needs at least 2 rows per device batch: the studio shuffles
the train rows once, seeded, so desirable and undesirable answers mix within batches.
"""

from __future__ import annotations

import random

from .. import models
from ..config import RunConfig
from .common import (
    fit_and_save,
    load_policy,
    lora_config,
    preference_split,
    prepare_tokenizer,
    training_kwargs,
    trl_trainer,
)
from .context import RunContext
from .registry import MethodSpec

SPEC = MethodSpec("kto", "KTO: learn from answers labelled good or bad (no pairs needed), LoRA, reference = adapter off", data="kto",
                  weights="adapter", order=60, knobs=("dpo_beta",), family="preference",
                  panels=("Rewards: chosen vs rejected", "KL to the reference"), learning_rate=(5e-5, 5e-6))


def class_weights(rows: list[dict]) -> tuple[float, float, int, int]:
    """(desirable_weight, undesirable_weight, desirable, undesirable): with unequal counts the
    undesirable losses are weighed so that desirable x w_d / (undesirable x w_u) = 1, the lower end of
    the range the KTO paper recommends (Eq. 8: between 1 and 4/3)."""
    desirable = sum(1 for r in rows if r["label"])
    undesirable = len(rows) - desirable
    if not desirable or not undesirable or desirable == undesirable:
        return 1.0, 1.0, desirable, undesirable
    return 1.0, round(desirable / undesirable, 4), desirable, undesirable


def run(cfg: RunConfig, ctx: RunContext) -> dict:
    from trl import KTOConfig, KTOTrainer

    train, evaluation = preference_split(cfg, ctx, kind="kto")
    random.Random(cfg.seed).shuffle(train)  # KTO reads rows in order; mix the labels within batches
    desirable_weight, undesirable_weight, desirable, undesirable = class_weights(train)
    ctx.log(f"data: {len(train)} kto rows train ({desirable} desirable, {undesirable} undesirable), {len(evaluation)} held out"
            + (f"; undesirable_weight {undesirable_weight} balances the classes" if undesirable_weight != 1.0 else ""))
    if not desirable or not undesirable:
        ctx.log("warning: the train rows hold only " + ("undesirable" if not desirable else "desirable") + " answers; KTO learns best from both")
    resolved = models.resolve(cfg.model, trust_remote_code=cfg.trust_remote_code)
    tokenizer = prepare_tokenizer(resolved)
    model = load_policy(cfg, resolved)
    args = KTOConfig(
        **training_kwargs(cfg, ctx.checkpoints_dir, bool(evaluation)),
        beta=cfg.dpo_beta,
        max_length=cfg.max_length,
        desirable_weight=desirable_weight,
        undesirable_weight=undesirable_weight,
    )
    trainer = trl_trainer(KTOTrainer, ctx, train, evaluation, model=model, ref_model=None, args=args, processing_class=tokenizer, peft_config=lora_config(cfg))
    return fit_and_save(trainer, ctx, evaluation, "adapter", tokenizer, selected_adapters=["default"])
