"""Typed run configuration: one dataclass, YAML round-trip, validation, and the equivalent CLI command.

Every field carries help text (shown in the UI and in `python -m studio train --help-config`).
Validation runs before any model loads, and each problem is one line naming the field.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import StudioError
from .methods import registry as method_registry

# Every list of methods derives from the method registry (studio/methods/registry.py).
METHODS = {spec.name: spec.summary for spec in method_registry.SPECS}
FULL_WEIGHT_METHODS = method_registry.names(weights="full")  # every other method trains a LoRA adapter (GRPO: its `weights` knob)
PREFERENCE_METHODS = method_registry.names(data="preference")
RL_METHODS = method_registry.names(family="rl")
DPO_LOSSES = ("sigmoid", "ipo", "hinge")
GRPO_WEIGHTS = ("lora", "qlora", "full")
CAI_MODES = {"sl": "SFT on the revisions", "rl": "DPO on AI-judged pairs", "both": "SFT on the revisions, then DPO"}
# The method-specific knobs each method uses (the Train tab shows only these).
METHOD_KNOBS = {spec.name: spec.knobs for spec in method_registry.SPECS if spec.knobs}
LORA_TARGETS = {"all-linear": "all-linear", "attention": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def _f(default: Any, help: str, **kw) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class RunConfig:
    """Everything needed to reproduce a run. Saved as `config.yaml` in the run folder."""

    model: str = _f("embedded", "Model: `embedded` (SmolLM2-135M-Instruct), a local HF folder, a .gguf file, or a hub id.")
    method: str = _f("lora", "Technique: " + ", ".join(METHODS) + ".")
    data: str = _f("", "Training data: a JSON/JSONL file (alpaca-style or chat `messages`).")
    name: str = _f("", "A human name for the run (defaults to method + dataset).")
    max_steps: int = _f(-1, "Stop after this many optimiser steps; -1 means use num_train_epochs.")
    num_train_epochs: float = _f(1.0, "Passes over the data when max_steps is -1.")
    learning_rate: float = _f(2.0e-4, "Peak learning rate. LoRA: 1e-4..1e-3; full SFT: 1e-5..5e-5.")
    lr_scheduler_type: str = _f("linear", "Learning-rate schedule: linear, cosine, constant, constant_with_warmup.")
    warmup_ratio: float = _f(0.0, "Fraction of steps spent warming the learning rate up from 0.")
    max_length: int = _f(512, "Token cutoff per example; longer examples are truncated. SFT drops a row whose whole trained part lies past the cut, and says how many (`data inspect --max-length N` counts them first).")
    loss_on: str = _f("all_assistant", "SFT (lora/qlora/instruction): which tokens train. all_assistant: every assistant turn, tool calls included (multi-turn and tool-calling data); last_reply: only the last assistant reply. Full SFT trains every token.",
                      choices={"all_assistant": "every assistant turn, tool calls included (default)", "last_reply": "the last assistant reply only"})
    truncation_side: str = _f("right", "SFT: what max_length cuts. right: the end of a long row (its answer may be lost: such rows are dropped); left: the start, so the prompt is cut and the answer kept.",
                              choices={"right": "cut the end (a row whose answer lies past the cut is dropped)", "left": "cut the start: the prompt is cut, the answer kept"})
    per_device_train_batch_size: int = _f(4, "Examples per device per step.")
    gradient_accumulation_steps: int = _f(1, "Steps accumulated before each optimiser update.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    lora_r: int = _f(16, "LoRA rank: adapter capacity. 8-64 is typical.")
    lora_alpha: int = _f(32, "LoRA alpha: scales the adapter update (commonly 2 x rank).")
    lora_dropout: float = _f(
        0.0,
        "Dropout on the LoRA path. 0 by default (as Unsloth): dropout keeps a copy of every adapted layer's input "
        "for backward, which costs memory and time; raise it (0.05-0.1) against overfitting on small data.",
    )
    lora_target: str = _f("all-linear", "Which layers get adapters: all-linear or attention.")
    use_dora: bool = _f(False, "Weight-decomposed LoRA (DoRA): slower, sometimes better.")
    use_rslora: bool = _f(False, "Rank-stabilised LoRA scaling (alpha / sqrt(r)).")
    quant_bits: int = _f(4, "QLoRA: bits of the frozen base weights, 4 (NF4 with double quantisation, as in the QLoRA paper) or 8 (LLM.int8: twice the memory, closer to bf16).")
    gradient_checkpointing: bool = _f(False, "Recompute activations in backward to save memory.")
    fast_path: bool = _f(True, "On a CUDA GPU: Liger kernels, padding-free packing and a memory plan that fits the card (see studio/perf.py). No effect on CPU.")
    eval_fraction: float = _f(0.0, "Fraction of the data rows held out for eval (0 disables eval); a saved dataset version's own eval split wins. The run writes the row ids of both sides to split.json.")
    drop_contaminated: bool = _f(False, "Drop train rows that are exact or near copies of a held-out eval row (the run's log counts them either way).")
    logging_steps: int = _f(1, "Log metrics every N steps.")
    save_steps: int = _f(10, "Save a resumable checkpoint every N steps.")
    seed: int = _f(42, "Random seed for data order and initialisation.")
    trust_remote_code: bool = _f(False, "Run Python code shipped inside the model repo. Off by default: only turn it on for a model whose code you have read and trust.")
    dpo_beta: float = _f(0.1, "DPO/KTO: how strongly the policy is held to the reference (higher = closer). 0.05-0.5 is typical.")
    dpo_loss_type: str = _f("sigmoid", "DPO loss: sigmoid (original DPO), ipo or hinge.")
    reward_model: str = _f("", "PPO/RLOO: a trained reward model (run id or folder). Empty: train one first from the preference `data`.")
    sft_data: str = _f("", "RLHF chain: instruction/chat data for the SFT stage (the `data` file holds the preference pairs).")
    rl_algorithm: str = _f("ppo", "RLHF chain: the RL stage, ppo (with a value model) or rloo (critic-free).")
    response_length: int = _f(64, "PPO/RLOO/GRPO/Constitutional AI: new tokens generated per prompt.")
    kl_coef: float = _f(0.05, "PPO/RLOO/GRPO: KL penalty coefficient against the reference policy (GRPO: 0 skips the reference pass and the KL plot).")
    ppo_epochs: int = _f(4, "PPO: optimisation epochs over each batch of rollouts.")
    num_generations: int = _f(4, "RLOO/GRPO: completions sampled per prompt; the batch (x accumulation) must be a multiple of it.")
    rewards: list = _f(
        [],
        "GRPO: the reward functions, each {type, weight (default 1), name (optional), ...}, summed with their weights. Types: "
        "regex {pattern, match: search|full}; json_valid {schema: optional JSON Schema mapping or .json file}; "
        "exact (normalised match with the reference answer); numeric {tolerance: relative, default 0} (final answer: after ####, in \\boxed{}, after \"answer is\", else the last number, vs the reference's); "
        "length {min, max, unit: chars|words}; reward_model {run: a reward run id or folder}; "
        "python {file: a .py defining reward(prompt, completion, reference) -> float; it runs in the training process}. "
        "exact and numeric need instruction data (its reply is the reference).",
    )
    weights: str = _f("lora", "GRPO: what trains: lora (an adapter; the KL reference is the adapter switched off), qlora (an adapter on a 4-bit NF4 base; bitsandbytes runs it on the CPU too, slowly) or full (every weight; the KL reference is a second copy).")
    constitution: str = _f("", "Constitutional AI: a YAML/JSON file of principles (empty: the studio's default constitution).")
    cai_mode: str = _f("sl", "Constitutional AI: sl (SFT on revisions), rl (DPO on AI-judged pairs) or both.")
    judge_model: str = _f("", "Constitutional AI (rl/both): the model that judges answer pairs (empty: the model itself).")
    early_stopping_patience: int = _f(0, "Stop when eval loss has not improved for this many evaluations (needs eval_fraction > 0); 0 disables.")
    tensorboard: bool = _f(False, "Also write TensorBoard event files to the run folder's tensorboard/ (open with `tensorboard --logdir`).")
    gpus: str = _f("", "GPUs to train on: empty = all visible, `cpu` = CPU only, or ids like `0,1`. More than one launches `accelerate launch` (DDP for LoRA/QLoRA, FSDP for full SFT).")

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    @classmethod
    def field_choices(cls, name: str) -> dict[str, str]:
        """A field's allowed values, each with a short description (its `choices` metadata; empty: free)."""
        return dict(next(f for f in fields(cls) if f.name == name).metadata.get("choices", {}))

    @classmethod
    def from_dict(cls, raw: dict, *, where: str = "config") -> "RunConfig":
        """Build and validate; unknown keys and bad values raise a one-line StudioError."""
        if not isinstance(raw, dict):
            raise StudioError("the config must be a mapping of key: value lines.", where=where)
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise StudioError(
                f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}.",
                where=where,
                hint="Run `python -m studio train --help-config` for the list of keys.",
            )
        values = {}
        for key, value in raw.items():
            values[key] = _coerce(known[key], value, where)
        cfg = cls(**values)
        cfg.validate(where=where)
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RunConfig":
        path = Path(path)
        if not path.is_file():
            raise StudioError(f"config file not found: {path}.")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError:
            raise StudioError("not a text file (invalid UTF-8); a run config is a YAML text file.", where=str(path)) from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark else ""
            raise StudioError(f"not valid YAML ({getattr(err, 'problem', err)}).", where=f"{path}{line}") from None
        return cls.from_dict(raw, where=str(path))

    @classmethod
    def of_run(cls, run_dir: str | Path) -> "RunConfig | None":
        """A run's saved config.yaml, typed, for readers (chat, evaluate, the run monitor): keys this
        version no longer knows are dropped and a finished run is not re-validated. None when the
        file is missing or unreadable."""
        path = Path(run_dir) / "config.yaml"
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return None
        if not isinstance(raw, dict):
            return None
        known = {f.name: f for f in fields(cls)}
        try:
            return cls(**{key: _coerce(known[key], value, str(path)) for key, value in raw.items() if key in known})
        except StudioError:
            return None

    def validate(self, where: str = "config") -> None:
        def bad(name: str, message: str) -> None:
            raise StudioError(f"{name}: {message}", where=where)

        if self.method not in METHODS:
            bad("method", f"'{self.method}' is not a known method; choose one of {', '.join(METHODS)}.")
        if not str(self.data).strip():
            bad("data", "no training data given; set `data:` to a JSON or JSONL file.")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            bad("learning_rate", f"must be a positive number, got {self.learning_rate}.")
        if self.learning_rate >= 1:
            bad("learning_rate", f"{self.learning_rate} is far too large; typical values are 1e-5..1e-3.")
        if self.max_steps == 0 or self.max_steps < -1:
            bad("max_steps", f"must be a positive step count or -1 (use epochs), got {self.max_steps}.")
        if self.max_steps == -1 and not self.num_train_epochs > 0:
            bad("num_train_epochs", f"must be > 0 when max_steps is -1, got {self.num_train_epochs}.")
        for name in ("max_length", "per_device_train_batch_size", "gradient_accumulation_steps", "lora_r", "lora_alpha", "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                bad(name, f"must be at least 1, got {getattr(self, name)}.")
        for name in ("lora_dropout", "warmup_ratio", "eval_fraction"):
            if not 0 <= getattr(self, name) < 1:
                bad(name, f"must be between 0 and 1, got {getattr(self, name)}.")
        if self.quant_bits not in (4, 8):
            bad("quant_bits", f"must be 4 or 8, got {self.quant_bits}.")
        if self.lora_target not in LORA_TARGETS:
            bad("lora_target", f"'{self.lora_target}' is not one of {', '.join(LORA_TARGETS)}.")
        if self.lr_scheduler_type not in ("linear", "cosine", "constant", "constant_with_warmup"):
            bad("lr_scheduler_type", f"'{self.lr_scheduler_type}' is not supported.")
        for item in fields(self):  # every field with `choices` metadata (loss_on, truncation_side)
            choices = item.metadata.get("choices")
            if choices and getattr(self, item.name) not in choices:
                bad(item.name, f"'{getattr(self, item.name)}' is not one of {', '.join(choices)}.")
        self.validate_method_fields(bad, where)

    def validate_method_fields(self, bad, where: str = "config") -> None:
        """Checks of the preference, RL and Constitutional AI knobs (only those the method uses)."""
        knobs = METHOD_KNOBS.get(self.method, ())
        if "dpo_beta" in knobs:
            if not (math.isfinite(self.dpo_beta) and self.dpo_beta > 0):
                bad("dpo_beta", f"must be a positive number, got {self.dpo_beta}.")
        if self.method == "kto" and self.per_device_train_batch_size < 2:
            bad("per_device_train_batch_size", f"KTO estimates its KL term from mismatched rows within a batch, so it needs at least 2 rows per batch, got {self.per_device_train_batch_size}.")
        if self.method == "dpo":
            if self.dpo_loss_type not in DPO_LOSSES:
                bad("dpo_loss_type", f"'{self.dpo_loss_type}' is not one of {', '.join(DPO_LOSSES)}.")
        if "response_length" in knobs:
            if self.response_length < 1:
                bad("response_length", f"must be at least 1, got {self.response_length}.")
            if self.response_length >= self.max_length:
                bad("response_length", f"{self.response_length} leaves no room for the prompt within max_length {self.max_length}; raise max_length or lower it.")
        if self.method == "grpo":
            from .rewards import validate_rewards

            if not self.rewards:
                bad("rewards", "GRPO needs at least one reward, e.g. rewards: [{type: json_valid}, {type: regex, pattern: '^\\{'}].")
            validate_rewards(self.rewards, where=where)
            if not (math.isfinite(self.kl_coef) and self.kl_coef >= 0):
                bad("kl_coef", f"must be 0 or more, got {self.kl_coef}.")
            if self.weights not in GRPO_WEIGHTS:
                bad("weights", f"'{self.weights}' is not one of {', '.join(GRPO_WEIGHTS)}.")
            batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
            if self.num_generations < 2:
                bad("num_generations", f"GRPO compares at least 2 completions per prompt, got {self.num_generations}.")
            if batch % self.num_generations:
                bad("num_generations", f"per_device_train_batch_size x gradient_accumulation_steps ({batch}) must be a multiple of num_generations ({self.num_generations}).")
        if self.method in RL_METHODS:
            if not (math.isfinite(self.kl_coef) and self.kl_coef >= 0):
                bad("kl_coef", f"must be 0 or more, got {self.kl_coef}.")
            if self.ppo_epochs < 1:
                bad("ppo_epochs", f"must be at least 1, got {self.ppo_epochs}.")
            if self.rl_algorithm not in ("ppo", "rloo"):
                bad("rl_algorithm", f"'{self.rl_algorithm}' is not one of ppo, rloo.")
            if self.method == "rloo" or (self.method == "rlhf" and self.rl_algorithm == "rloo"):
                batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
                if self.num_generations < 2:
                    bad("num_generations", f"RLOO needs at least 2 completions per prompt, got {self.num_generations}.")
                if batch % self.num_generations:
                    bad("num_generations", f"per_device_train_batch_size x gradient_accumulation_steps ({batch}) must be a multiple of num_generations ({self.num_generations}).")
        if self.method == "rlhf" and not str(self.sft_data).strip():
            bad("sft_data", "the RLHF chain starts with SFT; set `sft_data:` to an instruction or chat file (or use method: ppo to skip SFT).")
        if self.method == "constitutional" and self.cai_mode not in CAI_MODES:
            bad("cai_mode", f"'{self.cai_mode}' is not one of {', '.join(CAI_MODES)}.")
        if self.early_stopping_patience < 0:
            bad("early_stopping_patience", f"must be 0 (off) or a positive count, got {self.early_stopping_patience}.")
        gpus = str(self.gpus).strip().lower()
        if gpus not in ("", "cpu") and not all(part.strip().isdigit() for part in gpus.split(",")):
            bad("gpus", f"'{self.gpus}' is not empty, `cpu`, or comma-separated GPU ids like `0,1`.")

    def data_label(self, *, stem: bool = False) -> str:
        """The data as a person names it: a saved version's `<name>/<version>/data.parquet` is 'name version'
        (every version's file is called data.parquet), any other file its file name (or its stem)."""
        path = Path(str(self.data))
        if path.name == "data.parquet" and (path.parent / "manifest.json").is_file():
            return f"{path.parent.parent.name} {path.parent.name}"
        return path.stem if stem else path.name

    @property
    def default_name(self) -> str:
        """The run's name when none is given, e.g. 'lora on identity v2'."""
        return self.name or f"{self.method} on {self.data_label()}"

    @property
    def run_id_hint(self) -> str:
        """What a new run id is made from (registry.new_run_id): the name, else method and data."""
        return self.name or f"{self.method}-{self.data_label(stem=True)}"

    def summary(self) -> list[tuple[str, str]]:
        """The settings that shape this run, as (config key, value) pairs, only those its method uses:
        the Train tab's summary of the watched run."""
        spec = method_registry.spec(self.method) if self.method in METHODS else None
        items = [("method", self.method), ("model", self.model), ("data", self.data_label() or "-")]
        items.append(("max_steps", str(self.max_steps)) if self.max_steps > 0 else ("num_train_epochs", f"{self.num_train_epochs:g}"))
        items += [("learning_rate", f"{self.learning_rate:g}"),
                  ("batch", f"{self.per_device_train_batch_size} x {self.gradient_accumulation_steps} accumulated"),
                  ("max_length", str(self.max_length))]
        if spec is not None and spec.module == "sft":  # the SFT trainer renders rows (studio.data.render): these pick its tokens
            items.append(("loss_on", "every token (full SFT)" if self.method == "full" else self.loss_on))
            items.append(("truncation_side", self.truncation_side))
        if spec is not None and self.uses_adapter:
            items.append(("LoRA", f"r {self.lora_r}, alpha {self.lora_alpha}, {self.lora_target}" + (", DoRA" if self.use_dora else "") + (", rsLoRA" if self.use_rslora else "")))
        if self.method == "qlora":
            items.append(("quant_bits", str(self.quant_bits)))
        for knob in METHOD_KNOBS.get(self.method, ()):
            value = getattr(self, knob)
            if knob == "rewards":
                value = ", ".join(str(r.get("type", "?")) for r in value if isinstance(r, dict)) or "none"
            if value not in ("", None):
                items.append((knob, str(value)))
        if self.eval_fraction:
            items.append(("eval_fraction", f"{self.eval_fraction:g}"))
        return items

    @property
    def uses_adapter(self) -> bool:
        """True when the run trains a LoRA adapter (DDP across GPUs), False when every weight trains (FSDP)."""
        return method_registry.trains_adapter(self.method, self.weights)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: Path) -> None:
        Path(path).write_text(self.to_yaml())

    def cli_command(self, config_path: str | Path = "run.yaml") -> str:
        """The headless command that reproduces this run."""
        return f"python -m studio train {shlex.quote(str(config_path))}"


def _coerce(spec: dataclasses.Field, value: Any, where: str) -> Any:
    """YAML gives strings for `2e-4`-style numbers sometimes; convert with a clear message."""
    target = spec.type if isinstance(spec.type, type) else {"int": int, "float": float, "str": str, "bool": bool, "list": list}[spec.type]
    if target is list:
        if isinstance(value, str):  # a YAML/JSON list typed into a text box
            try:
                value = yaml.safe_load(value) if value.strip() else []
            except yaml.YAMLError as err:
                raise StudioError(f"{spec.name}: not a valid YAML/JSON list ({getattr(err, 'problem', err)}).", where=where) from None
        if value is None:
            return []
        if not isinstance(value, list):
            raise StudioError(f"{spec.name}: expected a list, got {value!r}.", where=where)
        return value
    if target is bool:
        if isinstance(value, bool):
            return value
        raise StudioError(f"{spec.name}: expected true or false, got {value!r}.", where=where)
    if target is str:
        if value is None:
            return ""
        return str(value)
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if target is int:
            if number != int(number):
                raise ValueError
            return int(number)
        return number
    except (TypeError, ValueError):
        raise StudioError(f"{spec.name}: expected a{'n integer' if target is int else ' number'}, got {value!r}.", where=where) from None
