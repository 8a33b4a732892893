"""The method registry: one spec per training method, and every list of methods derives from it
(config's METHODS / knobs / adapter-or-full, the trainer module, the up-front data check, the
estimator's terms, the advisor's preset, the fast path). Adding a method = its trainer module
(`studio/methods/<module>.py` with `run(cfg, ctx)`) + one `MethodSpec` here + its tests.

Read by the UI process (config validation, pre-flight, advisor, estimator): never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodSpec:
    name: str
    summary: str  # one line: the Train tab's dropdown and `--help-config`
    module: str  # the trainer: studio.methods.<module>.run(cfg, ctx)
    data: str  # the data it accepts (checked before any weights load; methods.check_data):
    #   instruction: instruction/chat data (SFT formats; KTO data keeps its desirable rows)
    #   preference: chosen/rejected pairs (`kto`: labelled single answers too)
    #   rl: prompts (+ preference pairs when no reward model is given)
    #   prompts: prompts, answered by the model itself
    weights: str  # "adapter" (LoRA: DDP on several GPUs), "full" (every weight: FSDP), "knob" (the `weights` field)
    knobs: tuple[str, ...] = ()  # the method-specific RunConfig fields the Train tab shows
    family: str = "sft"  # sft / preference / rl: which config checks apply
    panels: tuple[str, ...] = ()  # method-specific metric panels (studio.plots.PANELS titles) its trainer logs
    estimate: str | None = None  # how the estimator models it (a method name the estimator knows), None: not estimated
    pairs: bool = False  # the estimator: two sequences per example (chosen + rejected)
    fast_trainer: str | None = None  # the CUDA fast path's trainer kind (studio.perf.TRAINERS), None: no fast path
    learning_rate: tuple[float, float] = (2e-4, 2e-4)  # the advisor's preset: (tiny model < 300M, larger)


RL_KNOBS = ("reward_model", "response_length", "kl_coef")
SPECS: tuple[MethodSpec, ...] = (
    MethodSpec("lora", "LoRA adapter on a frozen base (SFT through the chat template)", "sft", "instruction", "adapter",
               estimate="lora", fast_trainer="sft", learning_rate=(1e-3, 2e-4)),
    MethodSpec("qlora", "LoRA on a 4-bit NF4 base (bitsandbytes), for models that don't fit in bf16", "sft", "instruction", "adapter",
               estimate="qlora", fast_trainer="sft", learning_rate=(2e-4, 2e-4)),
    MethodSpec("full", "Full supervised fine-tuning: every parameter is trained", "sft", "instruction", "full",
               estimate="full", fast_trainer="sft", learning_rate=(2e-5, 2e-5)),
    MethodSpec("instruction", "Instruction tuning: full SFT with loss on assistant turns only", "sft", "instruction", "full",
               estimate="instruction", fast_trainer="sft", learning_rate=(5e-5, 2e-5)),
    MethodSpec("dpo", "DPO: learn from preference pairs (chosen vs rejected), LoRA, reference = adapter off", "dpo", "preference", "adapter",
               knobs=("dpo_beta", "dpo_loss_type"), family="preference", panels=("DPO reward margin", "DPO accuracy", "Rewards: chosen vs rejected"),
               estimate="dpo", pairs=True, fast_trainer="dpo", learning_rate=(5e-5, 5e-6)),
    MethodSpec("kto", "KTO: learn from answers labelled good or bad (no pairs needed), LoRA, reference = adapter off", "kto", "kto", "adapter",
               knobs=("dpo_beta",), family="preference", panels=("Rewards: chosen vs rejected", "KL to the reference"),
               learning_rate=(5e-5, 5e-6)),
    MethodSpec("reward", "Reward model: score head + LoRA trained on preference pairs (RLHF stage 2)", "reward", "preference", "adapter",
               family="preference", panels=("Reward-model accuracy",), estimate="reward", pairs=True, learning_rate=(1e-4, 1e-4)),
    MethodSpec("ppo", "PPO: RL against a reward model, KL to the reference (trains the reward model first if none given)", "ppo", "rl", "adapter",
               knobs=(*RL_KNOBS, "ppo_epochs"), family="rl", panels=("PPO reward", "PPO KL", "PPO entropy", "PPO value loss"),
               estimate="ppo", learning_rate=(1e-5, 1e-5)),
    MethodSpec("rloo", "RLOO: critic-free RL against a reward model (the lighter alternative to PPO)", "ppo", "rl", "adapter",
               knobs=(*RL_KNOBS, "num_generations"), family="rl", panels=("PPO reward", "PPO KL"), learning_rate=(1e-5, 1e-5)),
    MethodSpec("rlhf", "RLHF chain: SFT -> reward model -> PPO (or RLOO), each stage feeding the next", "ppo", "rl", "adapter",
               knobs=("sft_data", "rl_algorithm", *RL_KNOBS, "ppo_epochs", "num_generations"), family="rl",
               panels=("Reward-model accuracy", "PPO reward", "PPO KL", "PPO entropy", "PPO value loss"), estimate="rlhf", learning_rate=(1e-5, 1e-5)),
    MethodSpec("constitutional", "Constitutional AI: the model critiques and revises its answers against principles, then trains on them",
               "constitutional", "prompts", "adapter", knobs=("constitution", "cai_mode", "judge_model", "response_length", "dpo_beta"),
               panels=("DPO reward margin", "DPO accuracy"), estimate="constitutional", pairs=True, learning_rate=(2e-4, 2e-4)),
    MethodSpec("grpo", "GRPO: RL with verifiable rewards (regex, JSON, exact/numeric answer, length, reward model, your Python), no critic",
               "grpo", "grpo", "knob", knobs=("rewards", "weights", "response_length", "kl_coef", "num_generations"),
               panels=("GRPO reward per function (mean)", "GRPO total reward (weighted)", "KL to the reference", "Completion length (tokens)"),
               estimate="grpo", learning_rate=(5e-4, 1e-5)),
)
BY_NAME = {spec.name: spec for spec in SPECS}


def spec(method: str) -> MethodSpec:
    """The spec of a known method (a KeyError names an unknown one: config validation refuses those first)."""
    return BY_NAME[method]


def names(**where) -> tuple[str, ...]:
    """The methods whose spec fields equal `where`, in registry order: names(family="rl"), names(weights="full")."""
    return tuple(s.name for s in SPECS if all(getattr(s, key) == value for key, value in where.items()))


def trains_adapter(method: str, weights: str = "lora") -> bool:
    """LoRA adapter (True) or every weight (False); a `knob` method follows its `weights` field."""
    kind = spec(method).weights
    return weights != "full" if kind == "knob" else kind == "adapter"
