"""Direct Preference Optimisation with TRL's DPOTrainer, on a LoRA adapter.

The reference model is the same weights with the adapter disabled (TRL does this when it gets a
`peft_config` and no `ref_model`), so there is no second copy of the model. Started from an
existing adapter (`init_adapter`, e.g. SL-CAI's SFT stage), TRL keeps a frozen copy of that adapter
as the reference instead, so the KL anchor is the SFT model.
"""

from __future__ import annotations

from .. import models, perf
from ..config import RunConfig
from .common import (
    adapter_folder,
    fit_and_save,
    load_policy,
    lora_config,
    prepare_tokenizer,
    preference_split,
    training_kwargs,
    trl_trainer,
)
from .context import RunContext
from .registry import MethodSpec

SPEC = MethodSpec("dpo", "DPO: learn from preference pairs (chosen vs rejected), LoRA, reference = adapter off", data="preference",
                  weights="adapter", order=50, knobs=("dpo_beta", "dpo_loss_type"), family="preference",
                  panels=("DPO reward margin", "DPO accuracy", "Rewards: chosen vs rejected"), estimate="dpo", pairs=True,
                  fast_trainer="dpo", learning_rate=(5e-5, 5e-6))


def run(cfg: RunConfig, ctx: RunContext, init_adapter: str | None = None) -> dict:
    from peft import PeftModel
    from trl import DPOConfig, DPOTrainer

    train, evaluation = preference_split(cfg, ctx)
    ctx.log(f"data: {len(train) + len(evaluation)} preference pairs ({len(train)} train, {len(evaluation)} held out)")
    resolved = models.resolve(cfg.model, trust_remote_code=cfg.trust_remote_code)
    tokenizer = prepare_tokenizer(resolved)
    model = load_policy(cfg, resolved)
    peft_config = lora_config(cfg)
    start = adapter_folder(init_adapter) if init_adapter else None
    if start is not None:  # continue the given adapter; TRL copies it as the frozen "ref" adapter
        model = PeftModel.from_pretrained(model, str(start), is_trainable=True)
        peft_config = None
    args = DPOConfig(
        **training_kwargs(cfg, ctx.checkpoints_dir, bool(evaluation)),
        beta=cfg.dpo_beta,
        loss_type=[cfg.dpo_loss_type],
        max_length=cfg.max_length,
    )
    if start is None:
        args, model = perf.apply(cfg, args, model, trainer="dpo")  # the CUDA fast path; unchanged on CPU
    trainer = trl_trainer(DPOTrainer, ctx, train, evaluation, model=model, ref_model=None, args=args, processing_class=tokenizer, peft_config=peft_config)
    if start is None and perf.enabled(cfg) and perf.group_pairs_by_length(trainer):  # padded pairs: fewer pad tokens
        ctx.log("fast path: batches of pairs of similar length")
    return fit_and_save(trainer, ctx, evaluation, "adapter", tokenizer, selected_adapters=["default"])
