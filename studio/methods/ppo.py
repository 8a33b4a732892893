"""RLHF's RL stage and the whole chain: `ppo`, `rloo` and `rlhf`.

- `ppo`: TRL's PPOTrainer (trl.experimental.ppo, TRL 1.12) with a value model, the trained reward
  model, and a KL penalty against the reference policy. The policy trains a LoRA adapter; the
  reference is the same weights with that adapter off (or, after an SFT stage, a frozen copy of the
  SFT adapter), so there is one copy of the policy weights.
- `rloo`: TRL's RLOOTrainer, the critic-free alternative, with the same reward model.
- `rlhf`: the guided chain SFT (on `sft_data`) -> reward model (on the preference `data`) -> PPO or
  RLOO (`rl_algorithm`) on the prompts of `data`, each stage handing its output to the next.

`ppo`/`rloo` without `reward_model:` and with preference data train the reward model first.
"""

from __future__ import annotations

import copy

import torch
from datasets import Dataset
from transformers import TrainerCallback

from .. import models
from ..config import RunConfig
from ..errors import StudioError
from . import reward as reward_method
from .chain import StageCancelled, run_stage
from .common import (
    PREFERENCE_HINT,
    adapter_folder,
    copy_tree,
    file_format,
    load_policy,
    log_trainable,
    lora_config,
    numeric,
    prepare_tokenizer,
    save_trained,
    split,
    train_prompts,
    train_and_finish,
    training_kwargs,
)
from .context import RunContext
from .registry import MethodSpec

RL_KNOBS = ("reward_model", "response_length", "kl_coef")
SPECS = (
    MethodSpec("ppo", "PPO: RL against a reward model, KL to the reference (trains the reward model first if none given)", data="rl",
               weights="adapter", order=80, knobs=(*RL_KNOBS, "ppo_epochs"), family="rl",
               panels=("PPO reward", "PPO KL", "PPO entropy", "PPO value loss"), estimate="ppo", learning_rate=(1e-5, 1e-5)),
    MethodSpec("rloo", "RLOO: critic-free RL against a reward model (the lighter alternative to PPO)", data="rl", weights="adapter",
               order=90, knobs=(*RL_KNOBS, "num_generations"), family="rl", panels=("PPO reward", "PPO KL"), learning_rate=(1e-5, 1e-5)),
    MethodSpec("rlhf", "RLHF chain: SFT -> reward model -> PPO (or RLOO), each stage feeding the next", data="rl", weights="adapter",
               order=100, knobs=("sft_data", "rl_algorithm", *RL_KNOBS, "ppo_epochs", "num_generations"), family="rl",
               panels=("Reward-model accuracy", "PPO reward", "PPO KL", "PPO entropy", "PPO value loss"), estimate="rlhf",
               learning_rate=(1e-5, 1e-5)),
)


class StopRequested(Exception):
    """Raised from a callback: TRL's PPO loop ignores `should_training_stop`, so a cancel must unwind it."""


class RaiseOnStop(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if control.should_training_stop and state.global_step < state.max_steps:  # a cancel, not the last update
            raise StopRequested


def rl_algorithm(cfg: RunConfig) -> str:
    return cfg.rl_algorithm if cfg.method == "rlhf" else cfg.method


def run(cfg: RunConfig, ctx: RunContext) -> dict:
    resume = ctx.resume_from is not None or (ctx.run_dir / "stages").is_dir()
    final: dict = {}
    split(cfg, ctx)  # the run's split.json: the rows of `data` held out from the reward model and the rollouts
    try:
        sft_adapter = None
        if cfg.method == "rlhf":
            from . import sft

            sft_cfg = _stage(cfg, method="lora", data=cfg.sft_data)
            folder, metrics = run_stage(ctx, "sft", sft_cfg, sft.run, resume=resume)
            final.update({f"sft/{k}": v for k, v in metrics.items()})
            sft_adapter = str(folder / "adapter")
        reward_source = cfg.reward_model
        if not reward_source:
            if file_format(cfg.data) != "preference":
                raise StudioError(
                    f"method `{cfg.method}` without `reward_model:` trains a reward model first, so `data` must be preference pairs.",
                    where=str(cfg.data),
                    hint="Set reward_model: to a reward run's id or folder, or " + PREFERENCE_HINT,
                )
            folder, metrics = run_stage(ctx, "reward", _stage(cfg, method="reward"), reward_method.run, resume=resume)
            final.update({f"reward/{k}": v for k, v in metrics.items()})
            reward_source = str(folder / reward_method.OUTPUT)
        algorithm = rl_algorithm(cfg)
        runner = lambda c, stage_ctx: rl_stage(c, stage_ctx, reward_source, sft_adapter, algorithm)  # noqa: E731
        folder, metrics = run_stage(ctx, algorithm, cfg, runner, resume=resume)
        final.update(metrics)
    except StageCancelled as cancelled:
        final.update(cancelled.final)
        final.setdefault("global_step", 0)
        ctx.log(f"cancelled during stage {cancelled.stage}")
        return final
    copy_tree(folder / "adapter", ctx.run_dir / "adapter")  # the chain's result, where Chat and Export look
    return final


def _stage(cfg: RunConfig, **changes) -> RunConfig:
    from dataclasses import replace

    return replace(cfg, **changes)


def prompt_dataset(cfg: RunConfig, tokenizer, *, tokenized: bool, ctx: RunContext | None = None) -> Dataset:
    prompts = train_prompts(cfg, ctx)  # held-out rows are never rolled out
    if not tokenized:
        return Dataset.from_list([{"prompt": p} for p in prompts])
    keep = max(8, cfg.max_length - cfg.response_length)
    ids = []
    for prompt in prompts:
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        ids.append(tokenizer(text, add_special_tokens=False)["input_ids"][-keep:])  # keep the end: the question
    return Dataset.from_dict({"input_ids": ids})


def rl_stage(cfg: RunConfig, ctx: RunContext, reward_source: str, sft_adapter: str | None, algorithm: str) -> dict:
    from peft import PeftModel

    resolved = models.resolve(cfg.model, trust_remote_code=cfg.trust_remote_code)
    tokenizer = prepare_tokenizer(resolved)
    reward_model = reward_method.load_reward_model(reward_source, resolved, tokenizer)
    policy = load_policy(cfg, resolved)
    peft_config = lora_config(cfg)
    start = adapter_folder(sft_adapter) if sft_adapter else None
    if start is not None:
        policy = PeftModel.from_pretrained(policy, str(start), adapter_name="default", is_trainable=True)
        peft_config = None
    if algorithm == "rloo":
        final = _rloo(cfg, ctx, tokenizer, policy, reward_model, peft_config)
    else:
        final = _ppo(cfg, ctx, tokenizer, policy, reward_model, peft_config, start)
    tokenizer.save_pretrained(str(ctx.run_dir / "adapter"))
    return final


def _ppo(cfg, ctx, tokenizer, policy, reward_model, peft_config, sft_adapter) -> dict:
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    tokenizer.padding_side = "left"  # prompts are generated from, so pad on the left
    dataset = prompt_dataset(cfg, tokenizer, tokenized=True, ctx=ctx)
    if sft_adapter is not None:  # the KL reference is the SFT policy: a frozen copy of its adapter
        policy.load_adapter(str(sft_adapter), adapter_name="ref", is_trainable=False)
    batch = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
    episodes = cfg.max_steps * batch if cfg.max_steps > 0 else int(cfg.num_train_epochs * len(dataset))
    if len(dataset) < batch:
        raise StudioError(f"PPO needs at least one full batch of prompts ({batch}); the data has {len(dataset)}.", where=str(cfg.data), hint="Lower per_device_train_batch_size or add prompts.")
    args = PPOConfig(
        output_dir=str(ctx.checkpoints_dir),
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_mini_batches=1,
        total_episodes=max(episodes, batch),
        num_ppo_epochs=cfg.ppo_epochs,
        response_length=cfg.response_length,
        kl_coef=cfg.kl_coef,
        stop_token="eos",
        local_rollout_forward_batch_size=cfg.per_device_train_batch_size,
        num_sample_generations=0,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_strategy="no",  # TRL's PPO cannot resume from its checkpoints; a chain resumes by stage
        seed=cfg.seed,
        bf16=torch.cuda.is_available(),
        report_to=[],
        disable_tqdm=True,
        model_adapter_name="default" if sft_adapter is not None else None,
        ref_adapter_name="ref" if sft_adapter is not None else None,
    )
    value_model = copy.deepcopy(reward_model)  # the critic starts from the reward model, as in TRL's examples
    value_model.train()
    trainer = PPOTrainer(
        args=args,
        processing_class=tokenizer,
        model=policy,
        ref_model=None,
        reward_model=reward_model,
        value_model=value_model,
        train_dataset=dataset,
        eval_dataset=dataset.select(range(min(len(dataset), cfg.per_device_train_batch_size))),
        callbacks=ctx.callbacks() + [RaiseOnStop()],
        peft_config=peft_config,
    )
    log_trainable(trainer.model.policy, ctx)
    try:
        trainer.train()
    except StopRequested:
        ctx.log(f"PPO stopped at update {trainer.state.global_step}")
    policy = trainer.accelerator.unwrap_model(trainer.model).policy
    save_trained(trainer, ctx.run_dir / "adapter", model=policy, selected_adapters=["default"])
    last = next((r for r in reversed(trainer.state.log_history) if "objective/kl" in r), {})
    final = numeric(last)
    final["global_step"] = trainer.state.global_step
    return final


def _rloo(cfg, ctx, tokenizer, policy, reward_model, peft_config) -> dict:
    from trl import RLOOConfig, RLOOTrainer

    dataset = prompt_dataset(cfg, tokenizer, tokenized=False, ctx=ctx)
    kwargs = training_kwargs(cfg, ctx.checkpoints_dir, False)
    args = RLOOConfig(
        **kwargs,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.response_length,
        beta=cfg.kl_coef,
        temperature=1.0,
    )
    trainer = RLOOTrainer(
        model=policy,
        reward_funcs=reward_model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        reward_processing_classes=tokenizer,
        peft_config=peft_config,
        callbacks=ctx.callbacks(),
    )
    log_trainable(trainer.model, ctx)
    final = train_and_finish(trainer, ctx, None)
    save_trained(trainer, ctx.run_dir / "adapter")
    return final
