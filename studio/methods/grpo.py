"""GRPO: reinforcement learning with verifiable rewards, through TRL's GRPOTrainer.

For each prompt the policy samples `num_generations` completions (at most `response_length` new
tokens); the weighted sum of the `rewards` (studio.rewards) scores each, and the advantage of a
completion is its reward against its group's mean: no critic and no reward model are needed.

- data: prompt-only, or instruction/chat/preference data, whose reply becomes the `reference`
  column handed to the rewards (exact, numeric, python); a prompt-only row's `answer`,
  `reference`, `solution` or `ground_truth` field is used the same way.
- weights: lora (KL reference = the adapter switched off), qlora, or full (TRL loads a second
  copy as the KL reference when kl_coef > 0).
- logs: TRL's `rewards/<name>/mean` per function, `reward` (the weighted total), `kl`,
  `completions/mean_length`; and `completions.jsonl` in the run folder: the sampled completions of
  each logged step with each function's reward, and whether it was cut at `response_length` (no EOS).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import models
from ..config import RunConfig
from ..data import load_dataset_file
from ..data.loader import Loaded
from ..data.formats import prompt_and_reply
from ..errors import StudioError
from ..rewards import RewardError, build_reward_funcs, final_answer, text_of
from ..runfiles import COMPLETIONS_FILE, read_completions  # noqa: F401  (the table's file and reader)
from .common import PROMPT_HINT, find_reward_model, fit_and_save, load_policy, lora_config, prepare_tokenizer, split, training_kwargs, trl_trainer
from .registry import MethodSpec
if TYPE_CHECKING:  # the UI's pre-flight reads GRPO data through this module: keep transformers out
    from .context import RunContext

SPEC = MethodSpec("grpo", "GRPO: RL with verifiable rewards (regex, JSON, exact/numeric answer, length, reward model, your Python), no critic",
                  data="grpo", weights="knob", order=120, knobs=("rewards", "weights", "response_length", "kl_coef", "num_generations"),
                  panels=("GRPO reward per function (mean)", "GRPO total reward (weighted)", "KL to the reference", "Completion length (tokens)"),
                  estimate="grpo", learning_rate=(5e-4, 1e-5))

REFERENCE_COLUMNS = ("reference", "answer", "solution", "ground_truth")
COMPLETIONS_PER_STEP = 8  # rows of the sampled-completions table written per logged step


def read_rows(path: str | Path, loaded: Loaded | None = None) -> list[dict]:
    """{"prompt": messages, "reference": str | None} (plus the row's "tools" schemas when it has any) of every
    usable row of `loaded` (or of the file at `path`): prompt-only, instruction, chat or preference data. The
    prompt is every turn before the last reply (the turns after the last user or tool message: a multi-turn
    sharegpt row's last gpt turn, an alpaca row's output, its `input` being part of the user turn), and the
    reference is that reply's text."""
    loaded = loaded if loaded is not None else load_dataset_file(path)
    if loaded.format == "text":
        raise StudioError("this dataset is raw text, which has no prompts.", where=str(path), hint=PROMPT_HINT[0].upper() + PROMPT_HINT[1:])
    ids = list(loaded.kept) + list(getattr(loaded, "eval_kept", []) or [])
    rows = []
    for index, example in enumerate(loaded.conversations + loaded.eval_conversations):
        prompt, reply = prompt_and_reply(example)
        if not prompt:
            continue
        reference = None
        if reply and example.get("label", True):  # a KTO row labelled undesirable is no reference
            reference = "\n".join(m["content"] for m in reply if m["role"] == "assistant") or None
        elif index < len(ids) and ids[index] < len(loaded.rows) and isinstance(loaded.rows[ids[index]], dict):
            raw = loaded.rows[ids[index]]  # a prompt-only row may carry its answer in a column of its own
            value = next((raw[c] for c in REFERENCE_COLUMNS if raw.get(c) not in (None, "")), None)
            reference = None if value is None else (value if isinstance(value, str) else json.dumps(value))
        rows.append({"prompt": prompt, "reference": reference, **({"tools": example["tools"]} if example.get("tools") else {})})
    if not rows:
        raise StudioError("no usable prompts in the dataset.", where=str(path), hint=PROMPT_HINT[0].upper() + PROMPT_HINT[1:])
    return rows


def check_references(cfg: RunConfig, rows: list[dict]) -> None:
    """exact/numeric compare with a reference: refuse data that has none (checked before any model loads)."""
    needing = [i for i, spec in enumerate(cfg.rewards) if spec.get("type") in ("exact", "numeric")]
    if needing and not any(r["reference"] for r in rows):
        position = needing[0]
        raise StudioError(
            f"rewards[{position}] ({cfg.rewards[position]['type']}) compares with a reference answer, but no row of the data has one.",
            where=str(cfg.data),
            hint="Use instruction data (its reply is the reference), or add an `answer` field to each prompt.",
        )


def reference_notes(cfg: RunConfig, rows: list[dict]) -> list[str]:
    """One line per exact/numeric reward that some prompts cannot be scored by (no reference, or no number
    in it): real instruction data mixes numeric and prose answers, and TRL leaves those completions out of
    that reward's mean rather than scoring them 0."""
    notes = []
    for index, spec in enumerate(cfg.rewards):
        kind = spec.get("type")
        if kind == "exact":
            lacking, what = sum(1 for r in rows if not r["reference"]), "have no reference answer"
        elif kind == "numeric":
            lacking, what = sum(1 for r in rows if final_answer(r["reference"]) is None), "have no number in their reference answer"
        else:
            continue
        if lacking:
            notes.append(f"rewards[{index}] ({kind}): {lacking} of {len(rows)} train prompts {what}; their completions get no {kind} reward (left out of its mean, not 0)")
    return notes


def check_rewards(cfg: RunConfig, rows: list[dict]) -> None:
    """Before any model loads: references for exact/numeric, and each reward_model run holds a reward model."""
    check_references(cfg, rows)
    for index, spec in enumerate(cfg.rewards):
        if spec.get("type") == "reward_model":
            find_reward_model(spec["run"], where=f"rewards[{index}] (reward_model)")


def templated(row: dict, tokenizer) -> dict:
    """A row as TRL's GRPO can render it: the prompt's tool calls and tool results as the model's chat
    template takes them (studio.data.render's rules, as SFT trains them; SmolLM2's writes calls as
    <tool_call> text and results as user turns), and the row's tool schemas in a system block. TRL renders
    every prompt with one global `tools` list, so a row's own schemas never reach a template's native
    `tools` argument: they always go into the block (render.tools_block, the text SFT uses without support)."""
    from ..data.render import template_messages, tools_block

    messages, native_tools, _ = template_messages({"messages": row["prompt"], "tools": row.get("tools")}, tokenizer)
    if native_tools:
        block = tools_block(native_tools)
        if messages and messages[0]["role"] == "system":
            messages[0] = {**messages[0], "content": messages[0]["content"].rstrip() + "\n\n" + block}
        else:
            messages.insert(0, {"role": "system", "content": block})
    return {"prompt": messages, "reference": row["reference"]}


def fit_prompts(rows: list[dict], tokenizer, cfg: RunConfig, ctx: RunContext) -> list[dict]:
    """TRL's GRPO does not truncate prompts: drop (and count) those whose templated prompt leaves no
    room for `response_length` new tokens within `max_length`."""
    room = cfg.max_length - cfg.response_length
    def length(prompt) -> int:
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    kept = [r for r in rows if length(r["prompt"]) <= room]
    if len(kept) < len(rows):
        ctx.log(f"data: {len(rows) - len(kept)} of {len(rows)} prompts are longer than max_length - response_length = {room} tokens and were left out; raise max_length to keep them")
    if not kept:
        raise StudioError(f"every prompt is longer than max_length - response_length = {room} tokens.", where=str(cfg.data),
                          hint="Raise max_length (prompt + completion tokens) or lower response_length.")
    return kept


def reward_model_scorer(policy: models.ResolvedModel, ctx: RunContext):
    """reward_model rewards: a `reward` run's classifier scoring prompt + completion. It is loaded on the
    base model and tokenizer that run trained on (its config.yaml; the policy's when it has none), not
    the policy's: a reward model may sit on another base. It runs on this process's device, apart from
    the policy's tokenizer (GRPO pads prompts on the left, the classifier reads right-padded rows)."""
    import torch

    from . import reward as reward_method

    def make(spec: dict):
        folder, base = find_reward_model(spec["run"], where=f"rewards: reward_model run {spec['run']}")
        resolved = models.resolve(base, trust_remote_code=policy.trust_remote_code) if base else policy
        tokenizer = prepare_tokenizer(resolved)
        model = reward_method.load_reward_model(folder, resolved, tokenizer)
        if torch.cuda.is_available():
            model.to(models.local_device_map()[""])  # under `accelerate launch`, this rank's GPU
        ctx.log(f"reward model: {folder} on {resolved.display_name}, {model.device}")

        def batch(prompts, completions, **_):
            conversations = []
            for prompt, completion in zip(prompts, completions):
                prompt = prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
                conversations.append(prompt + [{"role": "assistant", "content": text_of(completion)}])
            return reward_method.score(model, tokenizer, conversations)

        return batch

    return make


def write_completions(path: Path, step: int, logs: dict, names: list[str], weights: list[float]) -> None:
    """The last generation batch TRL kept for logging -> rows of the sampled-completions table."""
    prompts, completions = list(logs["prompt"]), list(logs["completion"])
    advantages = list(logs["advantages"])
    cut = list(logs.get("extra", {}).get("cut", []))  # logged by StudioGRPOTrainer._calculate_rewards; None when unknown
    per_func = {name: list(logs["rewards"].get(name, [])) for name in names}
    with open(path, "a") as handle:
        for index in range(min(len(prompts), COMPLETIONS_PER_STEP)):
            rewards = {name: _finite(values[index]) if index < len(values) else None for name, values in per_func.items()}
            scored = [w * v for w, v in zip(weights, rewards.values()) if v is not None]
            # TRL's total is the weighted nansum (a reward that does not apply counts 0); with none applying there is no total
            total = round(sum(scored), 4) if scored else None
            row = {"step": step, "prompt": _last_user(prompts[index]), "completion": completions[index], "cut": bool(cut[index]) if index < len(cut) else None,
                   "rewards": rewards, "total": total, "advantage": _finite(advantages[index]) if index < len(advantages) else None}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def cut_flags(completion_ids: list, stop_ids: tuple) -> list[bool]:
    """Whether each completion was cut at `response_length` (max_completion_length): its last token is
    neither EOS nor padding, the test TRL uses for its `completions/clipped_ratio`."""
    return [len(ids) > 0 and ids[-1] not in stop_ids for ids in completion_ids]


def _finite(value):
    return round(float(value), 4) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _last_user(prompt_text: str) -> str:
    """TRL logs the templated prompt (special tokens decoded away, e.g. "system\n...\nuser\nQ\nassistant\n");
    keep the last user turn's text for the table."""
    marker = "<|im_start|>user"
    if marker in prompt_text:
        return prompt_text.rsplit(marker, 1)[1].split("<|im_end|>", 1)[0].strip()
    lines = prompt_text.rstrip().splitlines()
    if lines and lines[-1].strip().lower().rstrip(":") in ("assistant", "model"):
        lines = lines[:-1]
    start = max((i for i, line in enumerate(lines) if line.strip().lower().rstrip(":") == "user"), default=-1)
    return "\n".join(lines[start + 1:]).strip()


TERMINATED_LENGTHS = ("completions/mean_terminated_length", "completions/min_terminated_length", "completions/max_terminated_length")


def drop_empty_terminated_lengths(metrics: dict) -> None:
    """TRL records 0 as the terminated-length statistics of a generation batch in which no completion
    ended (every one hit max_completion_length): a mean over no completions, which would also pull down
    the average over several batches. Mark those NaN: TRL's `log` leaves NaN out of its average, and
    logs nothing (None) when no batch had a terminated completion."""
    clipped = metrics.get("completions/clipped_ratio") or []
    for key in TERMINATED_LENGTHS:
        if metrics.get(key):
            metrics[key] = [math.nan if index < len(clipped) and clipped[index] >= 1.0 else value for index, value in enumerate(metrics[key])]


def last_rewards(log_history: list[dict]) -> dict:
    """The last logged training step's total and per-function mean reward, for the run's final metrics
    (`runs show`): `last_reward`, `last_rewards/<name>/mean`."""
    last = next((r for r in reversed(log_history) if isinstance(r.get("reward"), (int, float))), {})
    return {f"last_{key}": value for key, value in last.items()
            if isinstance(value, (int, float)) and math.isfinite(value) and (key == "reward" or (key.startswith("rewards/") and key.endswith("/mean")))}


def trainer_class():
    from trl import GRPOTrainer

    class StudioGRPOTrainer(GRPOTrainer):
        """GRPOTrainer that also writes the sampled completions of each logged step to the run folder."""

        completions_path: Path | None = None
        weights: list[float] = []
        _written_step = -1

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            # TRL's completions table takes extra columns through _log_completion_extra (what reward functions'
            # `log_extra` calls): it gathers them across processes in step with the prompts and completions
            self._log_completion_extra("cut", cut_flags(completion_ids_list, (self._tokenizer.eos_token_id, self._tokenizer.pad_token_id)))
            return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)

        def log(self, logs, start_time=None):
            training = self.model.training
            drop_empty_terminated_lengths(self._metrics["train" if training else "eval"])
            super().log(logs, start_time)
            step = self.state.global_step
            if training and self.completions_path and self.accelerator.is_main_process and step > self._written_step and self._logs["prompt"]:
                self._written_step = step
                write_completions(self.completions_path, step, self._logs, self.reward_func_names, self.weights)

    return StudioGRPOTrainer


def run(cfg: RunConfig, ctx: RunContext) -> dict:
    from trl import GRPOConfig

    loaded = load_dataset_file(cfg.data)
    check_rewards(cfg, read_rows(cfg.data, loaded))
    train_rows, eval_rows, _ = split(cfg, ctx, loaded)  # the one split; writes RUN/split.json
    train = read_rows(cfg.data, train_rows)
    evaluation = read_rows(cfg.data, eval_rows) if eval_rows.conversations else []
    ctx.log(f"data: {len(train)} train prompts ({sum(1 for r in train if r['reference'])} with a reference answer), {len(evaluation)} held out")
    for note in reference_notes(cfg, train):
        ctx.log(note)
    resolved = models.resolve(cfg.model, trust_remote_code=cfg.trust_remote_code)
    ctx.log(f"model: {resolved.display_name} ({resolved.kind}) from {resolved.path}")
    tokenizer = prepare_tokenizer(resolved)
    tokenizer.padding_side = "left"  # prompts are generated from

    reported: set[str] = set()

    def on_error(error: RewardError, state) -> None:
        if error.name in reported:
            return
        reported.add(error.name)
        ctx.log(str(error))
        ctx.metrics.append({"step": getattr(state, "global_step", 0), "time": time.time(), "warning": str(error), "kind": "reward_error",
                            "reward_name": error.name, "error_type": error.type, "error": error.message})

    train = fit_prompts([templated(r, tokenizer) for r in train], tokenizer, cfg, ctx)
    evaluation = fit_prompts([templated(r, tokenizer) for r in evaluation], tokenizer, cfg, ctx) if evaluation else []
    funcs, weights, names = build_reward_funcs(cfg.rewards, on_error=on_error, reward_model_scorer=reward_model_scorer(resolved, ctx))
    ctx.log("rewards: " + ", ".join(f"{n} (x{w:g})" for n, w in zip(names, weights)))
    model = load_policy(cfg, resolved)
    kwargs = training_kwargs(cfg, ctx.checkpoints_dir, bool(evaluation))
    args = GRPOConfig(
        **kwargs,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.response_length,
        beta=cfg.kl_coef,
        reward_weights=weights,
        temperature=1.0,
        log_completions=False,  # the studio writes its own table (completions.jsonl)
    )
    trainer = trl_trainer(trainer_class(), ctx, train, evaluation, model=model, reward_funcs=funcs, args=args, processing_class=tokenizer,
                          peft_config=lora_config(cfg) if cfg.weights != "full" else None)
    trainer.completions_path = ctx.run_dir / COMPLETIONS_FILE
    trainer.weights = weights
    final = fit_and_save(trainer, ctx, evaluation, "model" if cfg.weights == "full" else "adapter", tokenizer)
    return {**final, **last_rewards(trainer.state.log_history)}
