"""Supervised fine-tuning with TRL's SFTTrainer: `lora`, `qlora`, `full` and `instruction`.

- lora / qlora: a PEFT LoRA adapter (qlora on a 4-bit NF4 base); loss on the assistant turns.
- instruction: all parameters, loss on the assistant turns only.
- full: all parameters, loss on the whole conversation.

Rows reach SFTTrainer tokenised, as input_ids + labels from `studio.data.render` (the function the
Data tab's "Tokens with loss" view and `data render` use): `loss_on: all_assistant` (default) trains
every assistant turn, tool calls included; `last_reply` only the last reply. Tools go through the
chat template (or the documented fallback block). Before training:
- KTO data: only the desirable rows (label true) train; the undesirable ones are dropped and counted;
- rows whose whole trained part lies past max_length are dropped and counted (`truncation_side:
  left` cuts the prompt's start instead); the run fails with a message when no row is left.
While training, a log interval in which no token carried loss logs loss null with a warning, never
0.0, and a run in which nothing trained fails.
"""

from __future__ import annotations

import torch
from datasets import Dataset

from .. import models, perf
from ..config import RunConfig
from ..data import load_dataset_file
from ..errors import StudioError
from .common import log_trainable, lora_config, save_trained, split, train_and_finish, training_kwargs  # noqa: F401 (lora_config: also sft.lora_config)
from .context import RunContext
from .registry import MethodSpec

SPECS = (
    MethodSpec("lora", "LoRA adapter on a frozen base (SFT through the chat template)", data="instruction", weights="adapter", order=10,
               estimate="lora", fast_trainer="sft", learning_rate=(1e-3, 2e-4)),
    MethodSpec("qlora", "LoRA on a 4-bit NF4 base (bitsandbytes), for models that don't fit in bf16", data="instruction", weights="adapter",
               order=20, estimate="qlora", fast_trainer="sft", learning_rate=(2e-4, 2e-4)),
    MethodSpec("full", "Full supervised fine-tuning: every parameter is trained", data="instruction", weights="full", order=30,
               estimate="full", fast_trainer="sft", learning_rate=(2e-5, 2e-5)),
    MethodSpec("instruction", "Instruction tuning: full SFT with loss on assistant turns only", data="instruction", weights="full", order=40,
               estimate="instruction", fast_trainer="sft", learning_rate=(5e-5, 2e-5)),
)


def sft_rows(examples: list[dict], tokenizer, cfg: RunConfig, ctx: RunContext, part: str = "train") -> list[dict]:
    """Tokenised rows {"input_ids", "labels"} (labels -100 where no loss), by `studio.data.render`.

    Drops KTO's undesirable rows and the rows whose trained part lies entirely past max_length,
    and logs how many.
    """
    from ..data.render import loss_settings, render

    settings = loss_settings(cfg)
    loss_on = settings["loss_on"]
    rows, undesirable, cut, partial, fallback = [], 0, 0, 0, 0
    for example in examples:
        if example.get("label") is False:  # KTO: an undesirable answer is never a target
            undesirable += 1
            continue
        rendered = render(example, tokenizer, **{**settings, "loss_on": "all" if "text" in example else loss_on})
        fallback += rendered.tools_fallback
        if rendered.cut == "entire" or not rendered.trained_kept:
            cut += 1
            continue
        partial += rendered.cut == "partial"
        input_ids, labels = rendered.labels()
        rows.append({"input_ids": input_ids, "labels": labels})
    if undesirable:
        ctx.log(f"data ({part}): KTO labels: kept {len(examples) - undesirable} desirable rows, dropped {undesirable} undesirable (label false): SFT never trains an undesirable answer (method kto learns from both)")
    if cut:
        ctx.log(f"data ({part}): dropped {cut} row(s) whose whole trained part lies past max_length {cfg.max_length} (truncation_side {cfg.truncation_side}); raise max_length or set truncation_side: left to keep them")
    if partial:
        ctx.log(f"data ({part}): {partial} row(s) lose part of their trained tokens past max_length {cfg.max_length}")
    if fallback:
        ctx.log(f"data ({part}): {fallback} row(s) with tools: this chat template has no tool support, so the tools schema is a system block and calls are <tool_call> JSON (studio/data/render.py)")
    ctx.log(f"data ({part}): {len(rows)} rows, {sum(sum(t != -100 for t in r['labels']) for r in rows)} tokens carry loss (loss on {loss_on.replace('_', ' ')})")
    if part == "train" and not rows:
        reasons = []
        if undesirable:
            reasons.append(f"{undesirable} undesirable KTO row(s)")
        if cut:
            reasons.append(f"{cut} row(s) whose answer lies past max_length {cfg.max_length}")
        raise StudioError(
            "no training row is left, so nothing would train" + (f": dropped {' and '.join(reasons)}" if reasons else "") + ".",
            where=str(cfg.data),
            hint="Raise max_length, set truncation_side: left, or add rows (KTO data: rows with label true).",
        )
    return rows


def build_dataset(cfg: RunConfig, ctx: RunContext, tokenizer=None) -> tuple[Dataset, Dataset | None]:
    loaded = load_dataset_file(cfg.data)
    ctx.log(f"data: {loaded.summary}")
    for problem in loaded.problems[:20]:
        ctx.log(f"data problem: {problem}")
    train, held_out, _ = split(cfg, ctx, loaded)  # the one split (studio.data.split), written to split.json
    if tokenizer is None:
        tokenizer = models.load_tokenizer(models.resolve(cfg.model, trust_remote_code=cfg.trust_remote_code))

    def rows(part, name):
        return sft_rows(part.conversations, tokenizer, cfg, ctx, name)

    evaluation = rows(held_out, "eval") if held_out.conversations else []
    return Dataset.from_list(rows(train, "train")), (Dataset.from_list(evaluation) if evaluation else None)


def trainer_class():
    """SFTTrainer that counts the tokens carrying loss between logs: a log with none reports loss
    null and `trained_tokens: 0` (never 0.0), and `trained_total` lets the run fail if nothing trained."""
    from trl import SFTTrainer

    class StudioSFTTrainer(SFTTrainer):
        trained_since_log = 0
        trained_total = 0
        loss_calls = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training and "labels" in inputs:
                count = int((inputs["labels"][..., 1:] != -100).sum())  # a label at position 0 predicts nothing
                self.trained_since_log += count
                self.trained_total += count
                self.loss_calls += 1
            return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

        def log(self, logs, start_time=None):
            if "loss" in logs and self.loss_calls:
                logs["trained_tokens"] = self.trained_since_log
                if not self.trained_since_log:
                    logs["loss"] = None
                self.trained_since_log = 0
            return super().log(logs, start_time)

    return StudioSFTTrainer


def load_model(cfg: RunConfig, resolved: models.ResolvedModel):
    cuda = torch.cuda.is_available()
    if cfg.method == "qlora":
        from .common import bnb_config

        compute = torch.bfloat16 if cuda else torch.float32  # bitsandbytes' CPU path has no fast bf16 kernels here
        quant = bnb_config(cfg.quant_bits, compute)
        return models.load_causal_lm(resolved, dtype=compute, quantization_config=quant, device_map=models.local_device_map() if cuda else None)
    return models.load_causal_lm(resolved)


def training_args(cfg: RunConfig, ctx: RunContext, has_eval: bool):
    """The arguments every trainer shares (methods.common.training_kwargs) plus SFT's own."""
    from trl import SFTConfig

    return SFTConfig(
        **training_kwargs(cfg, ctx.checkpoints_dir, has_eval),
        max_length=cfg.max_length,
        # rows come tokenised with their labels (sft_rows), so these two do not apply; stated for clarity
        completion_only_loss=False,
        truncation_mode="keep_start" if cfg.truncation_side == "right" else "keep_end",
        optim="paged_adamw_8bit" if (cfg.method == "qlora" and torch.cuda.is_available()) else "adamw_torch",
    )


def run(cfg: RunConfig, ctx: RunContext) -> dict:
    resolved = models.resolve(cfg.model, trust_remote_code=cfg.trust_remote_code)
    ctx.log(f"model: {resolved.display_name} ({resolved.kind}) from {resolved.path}")
    tokenizer = models.load_tokenizer(resolved)
    train, evaluation = build_dataset(cfg, ctx, tokenizer)
    model = load_model(cfg, resolved)
    args, model = perf.apply(cfg, training_args(cfg, ctx, evaluation is not None), model)  # CUDA only
    trainer = trainer_class()(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=lora_config(cfg) if cfg.uses_adapter else None,
        callbacks=ctx.callbacks(),
    )
    if cfg.uses_adapter:
        log_trainable(trainer.model, ctx)

    def something_trained(trainer) -> None:
        if trainer.loss_calls and not trainer.trained_total:
            raise StudioError(
                f"no token carried loss in {trainer.state.global_step} step(s), so nothing was trained (the loss was not 0.0: there was none).",
                where=str(cfg.data),
                hint="Check `python -m studio data inspect DATA --max-length N` for 'answer cut off' rows; raise max_length or set truncation_side: left.",
            )

    final = train_and_finish(trainer, ctx, evaluation, after_train=something_trained)
    save_trained(trainer, ctx.run_dir / ("adapter" if cfg.uses_adapter else "model"), tokenizer)
    return final
