"""Should you fine-tune at all? The advisor: approach, reasons (each naming its rule), next step,
and when fine-tuning, the method and a preset whose every value has a one-line reason.

Rules (from the studio's reference text, assets/advisor/rules.md) and the order they apply in:

1. `already-does-task`: the base model already does the task -> `prompting` (try a better prompt
   or base model first). Nothing below is considered.
2. The RAG signals are collected: `rag-citations` (citations are needed), `rag-changes` (the
   knowledge changes weekly or daily), `rag-large` (the knowledge is large), `rag-knowledge`
   (the goal is knowledge that is not small and stable).
3. The fine-tune signals are collected: `ft-style`, `ft-format`, `ft-vocabulary`, `ft-reasoning`
   (what weights learn and prompts don't), or `ft-small-knowledge` (small, never-changing knowledge
   worth burning into the weights).
4. `few-examples`: fewer than 100 examples turn any fine-tune into prompting with few-shot
   examples -> `rag` when a RAG signal holds, else `prompting`.
5. `no-eval`: a fine-tune without an eval set -> `build-eval-first`, even when RAG is also needed.
6. Both kinds of signal -> `both` (`both-domain-assistant`); only fine-tune signals -> `fine-tune`;
   only RAG signals -> `rag` (every goal raises one kind or the other).

So citations or weekly change plus a style goal gives `both`, and no eval set gives
`build-eval-first` before any fine-tune.

The method picker reads the data's shape (instruction pairs, preference pairs, prompts only), the
goal and the hardware (QLoRA when bf16 LoRA does not fit), and sizes the preset with the estimator.
"""

from __future__ import annotations

import math
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import StudioError

GOALS = ("style", "format", "vocabulary", "reasoning", "knowledge")
CHANGES = ("never", "monthly", "weekly", "daily")
SIZES = ("small", "large")
APPROACHES = ("prompting", "rag", "both", "fine-tune", "build-eval-first")
MIN_EXAMPLES = 100
ALREADY_GOOD_SCORE = 0.6  # mean answer-vs-reference score above which the base model "already does the task"

RULES = {
    "already-does-task": "Do not fine-tune when the model already does the task: try a better prompt or base model first.",
    "rag-citations": "Do not fine-tune for citations: use RAG, which can show its sources.",
    "rag-changes": "Do not fine-tune knowledge that changes weekly: use RAG.",
    "rag-large": "RAG when the knowledge is large or too long for the context.",
    "rag-knowledge": "RAG for knowledge unless it is small and stable.",
    "ft-style": "Fine-tune when the model must learn a style (tone, voice, format).",
    "ft-format": "Fine-tune when the model must learn a structured output schema.",
    "ft-vocabulary": "Fine-tune when the model must learn domain vocabulary.",
    "ft-reasoning": "Fine-tune for a multi-step reasoning pattern that prompting doesn't reliably produce.",
    "ft-small-knowledge": "Fine-tuning fits when the knowledge is small, stable and worth burning into the weights.",
    "few-examples": "Do not fine-tune with fewer than 100 examples: use prompting and few-shot instead.",
    "no-eval": "Do not fine-tune without eval data: build the eval first.",
    "both-domain-assistant": "Both for a domain assistant: RAG for the facts, fine-tuning for the behaviour.",
}


@dataclass
class Answers:
    """The questionnaire (the same keys as `python -m studio advise --json`)."""

    examples: int
    goal: str
    knowledge_changes: str = "never"
    needs_citations: bool = False
    has_eval_set: bool = False
    knowledge_size: str | None = None
    base_model_already_good: bool | None = None

    @classmethod
    def from_dict(cls, raw: dict, where: str = "answers") -> "Answers":
        if not isinstance(raw, dict):
            raise StudioError("the answers must be a JSON object.", where=where, hint='For example {"examples": 500, "goal": "style"}.')
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise StudioError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}.", where=where,
                              hint="Known keys: " + ", ".join(cls.__dataclass_fields__) + ".")
        for key in ("examples", "goal"):
            if key not in raw:
                raise StudioError(f"`{key}` is missing.", where=where, hint="`examples` (a count) and `goal` are required.")
        answers = cls(**raw)
        answers.validate(where)
        return answers

    def validate(self, where: str = "answers") -> None:
        if isinstance(self.examples, bool) or not isinstance(self.examples, int) or self.examples < 0:
            raise StudioError(f"examples: expected a count of examples (0 or more), got {self.examples!r}.", where=where)
        for key, allowed in (("goal", GOALS), ("knowledge_changes", CHANGES)):
            if getattr(self, key) not in allowed:
                raise StudioError(f"{key}: expected one of {', '.join(allowed)}, got {getattr(self, key)!r}.", where=where)
        if self.knowledge_size is not None and self.knowledge_size not in SIZES:
            raise StudioError(f"knowledge_size: expected small or large, got {self.knowledge_size!r}.", where=where)
        for key in ("needs_citations", "has_eval_set"):
            if not isinstance(getattr(self, key), bool):
                raise StudioError(f"{key}: expected true or false, got {getattr(self, key)!r}.", where=where)
        if self.base_model_already_good is not None and not isinstance(self.base_model_already_good, bool):
            raise StudioError(f"base_model_already_good: expected true, false or null, got {self.base_model_already_good!r}.", where=where)


@dataclass
class Reason:
    rule: str
    text: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.text}"


@dataclass
class Recommendation:
    approach: str
    reasons: list[Reason]
    next_step: str
    method: str | None = None
    preset: "Preset | None" = None

    def to_dict(self) -> dict:
        data = {"approach": self.approach, "reasons": [asdict(r) for r in self.reasons], "next_step": self.next_step}
        if self.method:
            data["method"] = self.method
        if self.preset:
            data["preset"] = self.preset.to_dict()
        return data

    def describe(self) -> str:
        lines = [f"Approach: {self.approach}"] + [f"- {r}" for r in self.reasons] + [f"Next step: {self.next_step}"]
        if self.method:
            lines.append(f"Method: {self.method}")
        if self.preset:
            lines += [f"  {k} = {v}  ({self.preset.reasons[k]})" for k, v in self.preset.values.items()]
        return "\n".join(lines)


def _reason(rule: str, detail: str = "") -> Reason:
    return Reason(rule, RULES[rule] + (f" {detail}" if detail else ""))


NEXT_STEPS = {
    "prompting": "Write a system prompt with 3-5 few-shot examples from your data and check it on your eval prompts (Chat tab, base model).",
    "rag": "Drop your documents into the RAG comparison and ask your own questions: base vs base+RAG, with the cited passages.",
    "both": "Index the changing knowledge for RAG and fine-tune the behaviour; then compare base, base+RAG and tuned side by side.",
    "fine-tune": "Apply the preset to the Train tab and start a run; then compare base vs tuned in the Chat tab.",
    "build-eval-first": "Hold out 20-50 representative prompts with reference answers (an eval split in the Data tab), check the base model on them, then ask again.",
}


def decide(answers: Answers) -> Recommendation:
    """The decision tree, in the rule order of the module docstring."""
    answers.validate()
    if answers.base_model_already_good:
        return Recommendation("prompting", [_reason("already-does-task")], NEXT_STEPS["prompting"])

    rag: list[Reason] = []
    if answers.needs_citations:
        rag.append(_reason("rag-citations"))
    if answers.knowledge_changes in ("weekly", "daily"):
        rag.append(_reason("rag-changes", f"(yours changes {answers.knowledge_changes})"))
    if answers.knowledge_size == "large":
        rag.append(_reason("rag-large"))
    small_and_stable = answers.knowledge_size == "small" and answers.knowledge_changes == "never"
    if answers.goal == "knowledge" and not small_and_stable and not rag:
        rag.append(_reason("rag-knowledge", "(give knowledge_size small and knowledge_changes never to burn it in)"))

    tune: list[Reason] = []
    if answers.goal in ("style", "format", "vocabulary", "reasoning"):
        tune.append(_reason(f"ft-{answers.goal}"))
    elif answers.goal == "knowledge" and small_and_stable and not rag:
        tune.append(_reason("ft-small-knowledge"))

    if tune and answers.examples < MIN_EXAMPLES:
        reasons = rag + tune + [_reason("few-examples", f"(you have {answers.examples})")]
        approach = "rag" if rag else "prompting"
        return _without_eval(Recommendation(approach, reasons, NEXT_STEPS[approach]), answers)
    if tune and not answers.has_eval_set:
        return Recommendation("build-eval-first", rag + tune + [_reason("no-eval")], NEXT_STEPS["build-eval-first"])
    if tune and rag:
        return Recommendation("both", rag + tune + [_reason("both-domain-assistant")], NEXT_STEPS["both"])
    if tune:
        return Recommendation("fine-tune", tune, NEXT_STEPS["fine-tune"])
    return _without_eval(Recommendation("rag", rag, NEXT_STEPS["rag"]), answers)  # every goal gives a tune or a RAG signal


def _without_eval(recommendation: Recommendation, answers: Answers) -> Recommendation:
    """Prompting or RAG instead of a fine-tune: without an eval set the approach stays (`no-eval`
    turns only a fine-tune into build-eval-first), but the eval comes first in the next step, so
    the prompt or the retrieval is judged on held-out prompts and a later fine-tune has its eval."""
    if answers.has_eval_set:
        return recommendation
    recommendation.reasons.append(_reason("no-eval", "(it also judges this prompt or retrieval, and any later fine-tune)"))
    recommendation.next_step = NEXT_STEPS["build-eval-first"].replace(", then ask again.", "; then: ") + recommendation.next_step[0].lower() + recommendation.next_step[1:]
    return recommendation


# ---------------------------------------------------------------- dataset signals


@dataclass
class DatasetSignals:
    """What the advisor reads from the selected dataset (file or saved version)."""

    path: str
    format: str
    shape: str  # instruction | preference | prompts | text
    examples: int
    eval_examples: int
    has_eval_split: bool
    token_p50: int
    token_p95: int
    token_max: int
    tokens_total: int
    token_source: str  # "tokenizer" or "approx (chars/4)"
    eval_pairs: list[tuple[str, str]] = field(default_factory=list)  # (prompt, reference) for the base-model check

    def describe(self) -> str:
        eval_text = f"eval split of {self.eval_examples}" if self.has_eval_split else "no eval split"
        return (f"{self.examples} examples ({self.format}, {self.shape}), {eval_text}; tokens per example "
                f"p50 {self.token_p50}, p95 {self.token_p95}, max {self.token_max} ({self.token_source})")


SHAPES = {"preference": "preference", "kto": "preference", "prompt_only": "prompts", "text": "text"}
EVAL_SIBLINGS = (".eval", ".heldout", ".test", ".validation")


def _eval_sibling(path: Path) -> Path | None:
    """`data.jsonl` has an eval split when `data.eval.jsonl` (or .heldout/.test/.validation) sits beside it."""
    if not path.is_file():
        return None
    for tag in EVAL_SIBLINGS:
        candidate = path.with_name(path.stem + tag + path.suffix)
        if candidate.is_file():
            return candidate
    return None


def _pair(example: dict) -> tuple[str, str] | None:
    messages = example.get("messages") or []
    users = [m for m in messages if m.get("role") == "user"]
    replies = example.get("chosen") or [m for m in messages if m.get("role") == "assistant"]
    if not users or not replies:
        return None
    return users[-1]["content"], replies[-1]["content"]


def dataset_signals(path: str | Path, *, model: str | None = "embedded", eval_path: str | Path | None = None) -> DatasetSignals:
    """Signals from the dataset; token lengths through the model's chat template when its tokenizer loads."""
    from .data import load_dataset_file
    from .data import split as one_split

    loaded = load_dataset_file(path)
    chosen = one_split.make_split(loaded)  # the one split: a saved version's eval rows (a plain file has none)
    evaluation = one_split.examples(loaded, chosen.eval)
    eval_file = Path(eval_path) if eval_path else _eval_sibling(Path(path))
    if not evaluation and eval_file is not None:
        evaluation = list(load_dataset_file(eval_file).conversations)
    examples = one_split.examples(loaded, chosen.train)
    lengths, source = _token_lengths(examples, model)
    ordered = sorted(lengths) or [0]
    pick = lambda q: ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]  # noqa: E731
    pairs = [p for p in (_pair(e) for e in evaluation) if p]
    return DatasetSignals(
        path=str(path),
        format=loaded.format,
        shape=SHAPES.get(loaded.format, "instruction"),
        examples=len(examples),
        eval_examples=len(evaluation),
        has_eval_split=bool(evaluation),
        token_p50=pick(0.5),
        token_p95=pick(0.95),
        token_max=ordered[-1],
        tokens_total=sum(lengths),
        token_source=source,
        eval_pairs=pairs,
    )


def _token_lengths(examples: list[dict], model: str | None) -> tuple[list[int], str]:
    if model:
        try:
            from .data.profile import token_lengths, tokenizer_for

            return [total for _, _, total in token_lengths(examples, tokenizer_for(model))], "tokenizer"
        except StudioError:
            pass  # the model's tokenizer is not available offline: fall back to the rough count
    chars = [sum(len(str(m.get("content", ""))) for m in e.get("messages", [])) + sum(len(str(m.get("content", ""))) for m in e.get("rejected", [])) for e in examples]
    return [max(1, c // 4) for c in chars], "approx (chars/4)"  # ~4 characters per token for English


# ---------------------------------------------------------------- "the model already does the task?"


@dataclass
class CheckRow:
    prompt: str
    reference: str
    answer: str
    score: float


@dataclass
class BaseCheck:
    rows: list[CheckRow]
    mean_score: float
    already_good: bool
    threshold: float = ALREADY_GOOD_SCORE

    def describe(self) -> str:
        verdict = "already does the task" if self.already_good else "does not do the task yet"
        return f"base model {verdict}: mean score {self.mean_score:.2f} over {len(self.rows)} eval prompts (threshold {self.threshold})"


def _words(text: str) -> list[str]:
    table = str.maketrans({c: " " for c in string.punctuation})
    return text.lower().translate(table).split()


def answer_score(answer: str, reference: str) -> float:
    """1.0 for an exact (normalised) match, else token F1 as in SQuAD: a cheap, model-free agreement score."""
    a, r = _words(answer), _words(reference)
    if not a or not r:
        return 0.0
    if a == r:
        return 1.0
    common = sum(min(a.count(w), r.count(w)) for w in set(r))
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(r)
    return 2 * precision * recall / (precision + recall)


def sample_pairs(pairs: list[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    """Evenly spaced, so the sample is the same every time and spans the set."""
    if n >= len(pairs):
        return list(pairs)
    step = len(pairs) / n
    return [pairs[int(i * step)] for i in range(n)]


def check_base_model(pairs: list[tuple[str, str]], *, model: str = "embedded", sample: int = 5, max_new_tokens: int = 96,
                     system_prompt: str = "", progress=None) -> BaseCheck:
    """Run the base model (greedy) on a sample of eval prompts and score its answers against the references."""
    from .chat import ChatEngine
    from .engine import GenerationSettings

    if not pairs:
        raise StudioError("no eval prompts with reference answers to check the base model on.",
                          hint="Add an eval split (Data tab) or a `<name>.eval.jsonl` file beside the dataset.")
    chosen = sample_pairs(pairs, sample)
    engine = ChatEngine.base_only(model)
    settings = GenerationSettings(system_prompt=system_prompt, temperature=0.0, max_new_tokens=max_new_tokens)
    rows = []
    for index, (prompt, reference) in enumerate(chosen):
        if progress:
            progress(index, len(chosen))
        answer = engine.answer([{"role": "user", "content": prompt}], tuned=False, settings=settings)
        rows.append(CheckRow(prompt, reference, answer, round(answer_score(answer, reference), 3)))
    mean = sum(r.score for r in rows) / len(rows)
    return BaseCheck(rows, round(mean, 3), mean >= ALREADY_GOOD_SCORE)


# ---------------------------------------------------------------- method picker and presets


@dataclass
class Preset:
    method: str
    values: dict  # RunConfig keys
    reasons: dict  # key -> one-line reason
    estimate: dict | None = None

    def to_dict(self) -> dict:
        return {"method": self.method, "values": self.values, "reasons": self.reasons, "estimate": self.estimate}

    def run_config_values(self, data: str = "", model: str = "embedded") -> dict:
        """Keys and values for `RunConfig.from_dict` (only keys RunConfig knows). An empty `data` and
        a model Train cannot load (an estimator-only architecture name) are left out, so applying
        the preset keeps what the Train form already has for them."""
        from .config import RunConfig

        known = set(RunConfig.__dataclass_fields__)
        values = {"model": model if trainable_model(model) else None, "method": self.method, "data": data or None, **self.values}
        return {k: v for k, v in values.items() if k in known and v is not None}


@dataclass
class MethodChoice:
    method: str
    reasons: list[tuple[str, str]]  # (rule, text)
    preset: Preset


def _round_up(value: int, step: int) -> int:
    return max(step, int(math.ceil(value / step)) * step)


def trainable_model(model: str | None) -> bool:
    """Whether a run can load `model`: `embedded`, a local folder or file, or a hub id. A bare
    architecture name (`Llama-3.1-8B`) only sizes the estimate."""
    from .models import is_hub_id

    text = str(model or "").strip()
    return text in ("", "embedded", "default") or Path(text).expanduser().exists() or is_hub_id(text)


DEFAULT_MAX_LENGTH = 512  # without a dataset to measure
GRPO_RESPONSE_LENGTH = 128  # GRPO preset: new tokens per sampled completion


def pick_method(*, shape: str = "instruction", goal: str = "style", examples: int = 1000, token_p95: int | None = None,
                model: str = "embedded", device: str = "gpu", wants_scalar_reward: bool = False,
                has_principles: bool = False, checkable_answers: bool = False, method: str | None = None) -> MethodChoice:
    """Choose among the techniques and size a preset; every choice says why in one line. `method`: size
    the preset for this method (any in the registry, by its spec) instead of choosing one."""
    from .config import METHODS
    from .estimator import Setup, estimate, load_architecture, memory
    from .methods import registry as method_registry

    reasons: list[tuple[str, str]] = []
    if method is not None:
        if method not in METHODS:
            raise StudioError(f"method '{method}' is not a known method; choose one of {', '.join(METHODS)}.", where="method")
        reasons.append(("method-given", f"method {method} as asked: {METHODS[method]}."))
    elif shape == "preference" and wants_scalar_reward:
        method = "rlhf" if "rlhf" in METHODS else "ppo"
        reasons.append(("method-shape", "preference pairs and a scalar reward wanted → RLHF (reward model, then PPO)."))
    elif shape == "preference":
        method = "dpo"
        reasons.append(("method-shape", "preference pairs (chosen/rejected) → DPO: no reward model, reference = adapter off."))
    elif shape == "text":
        method = "full"
        reasons.append(("method-shape", "raw documents (no prompts) → full fine-tuning with the loss on every token (continued pre-training)."))
    elif checkable_answers and shape in ("instruction", "prompts") and not has_principles:
        method = "grpo"
        reasons.append(("method-shape", "answers a rule can check (a format, an exact or numeric answer) and no preference pairs → GRPO with "
                                        "verifiable rewards: the check is the reward, no reward model and no written answers needed."))
    elif shape == "prompts" or has_principles:
        method = "constitutional"
        reasons.append(("method-shape", "prompts plus principles → Constitutional AI: critique and revise, then train on the revisions."))
    else:
        method = "lora"
        reasons.append(("method-shape", "instruction pairs → supervised LoRA on the chat template (the loss on the replies only)."))

    arch = load_architecture(model)
    max_length = min(4096, _round_up(max(token_p95, 32), 64)) if token_p95 else DEFAULT_MAX_LENGTH
    grpo_knobs = {}
    if method == "grpo":  # max_length holds the prompt and the sampled completion
        max_length += GRPO_RESPONSE_LENGTH
        grpo_knobs = {"completion_length": GRPO_RESPONSE_LENGTH}
    batch = 8 if arch.params < 1e9 else 4
    gradient_checkpointing = arch.params >= 1e9

    if method == "lora":
        # Small models with plenty of data: full instruction tuning fits and learns more than an adapter.
        full = memory(arch, Setup(method="instruction", seq=max_length, batch=batch, gradient_checkpointing=gradient_checkpointing, device=device))
        if arch.params < 1e9 and examples >= 2000 and goal in ("reasoning", "vocabulary") and full.fits_24gb:
            method = "instruction"
            reasons.append(("method-goal", f"a small model ({arch.params / 1e6:.0f}M) and {examples} examples: full instruction tuning fits ({full.peak_gib:.1f} GiB) and can learn more than an adapter."))
    if method == "lora" and device == "gpu":
        lora = memory(arch, Setup(method="lora", seq=max_length, batch=1, gradient_checkpointing=True))
        if not lora.fits_24gb:
            method = "qlora"
            reasons.append(("method-hardware", f"bf16 LoRA needs {lora.peak_gib:.1f} GiB even at batch 1 → QLoRA (4-bit base) to fit 24 GB."))
        else:
            reasons.append(("method-hardware", f"bf16 LoRA fits a 24 GB card ({lora.peak_gib:.1f} GiB at batch 1) → no need for 4-bit QLoRA."))

    est_method = method_registry.spec(method).estimate or "lora"
    setup = Setup(method=est_method, seq=max_length, batch=batch, gradient_checkpointing=gradient_checkpointing, device=device, **grpo_knobs)
    fitted = estimate(arch, setup)
    if device == "gpu" and not fitted.fits_24gb:
        gradient_checkpointing = True
        setup = Setup(method=est_method, seq=max_length, batch=batch, gradient_checkpointing=True, device=device, **grpo_knobs)
        fitted = estimate(arch, setup)
        batch = max(1, min(batch, fitted.max_batch_24gb))
        setup.batch = batch
        fitted = estimate(arch, setup)

    rank = {"style": 16, "format": 16, "vocabulary": 32, "reasoning": 64, "knowledge": 32}.get(goal, 16)
    if examples < 500:
        rank = min(rank, 16)
    adapters = method_registry.trains_adapter(method)
    tiny = arch.params < 3e8
    lr = method_registry.spec(method).learning_rate[0 if tiny else 1]  # the registry's preset
    epochs = 3 if examples < 300 else 2 if examples < 2000 else 1
    grad_accum = max(1, 16 // batch) if examples >= 256 else 1
    values = {
        "num_train_epochs": epochs,
        "learning_rate": lr,
        "max_length": max_length,
        "per_device_train_batch_size": batch,
        "gradient_accumulation_steps": grad_accum,
        "gradient_checkpointing": gradient_checkpointing,
    }
    why = {
        "num_train_epochs": f"{examples} examples: " + ("small sets need a few passes." if epochs == 3 else "two passes learn without memorising." if epochs == 2 else "one pass is enough; more overfits."),
        "learning_rate": "a tiny model needs a larger step to move." if tiny and adapters else ("adapters tolerate 1e-4..1e-3." if adapters else "every weight moves: keep it small (1e-5..5e-5)."),
        "max_length": (f"covers 95% of your examples (p95 = {token_p95} tokens, rounded up to 64); longer ones are truncated." if token_p95
                       else f"no dataset loaded: {DEFAULT_MAX_LENGTH} tokens, a common default; load your data to size it to your examples."),
        "per_device_train_batch_size": f"largest that fits comfortably ({fitted.peak_gib:.1f} GiB estimated on {device}).",
        "gradient_accumulation_steps": f"effective batch {batch * grad_accum}: smoother updates." if grad_accum > 1 else "few examples: update every step.",
        "gradient_checkpointing": "recompute activations to fit the card." if gradient_checkpointing else "the model is small: skip the recompute and train faster.",
    }
    if adapters:
        values.update({"lora_r": rank, "lora_alpha": 2 * rank})
        why["lora_r"] = f"goal '{goal}': " + ("a format or style needs little capacity." if rank <= 16 else "more capacity for new vocabulary or reasoning patterns.")
        why["lora_alpha"] = "2 × rank, the usual scaling."
    if method == "grpo":
        grpo_values, grpo_why = grpo_preset(goal, shape, batch * grad_accum)
        values.update(grpo_values)
        why.update(grpo_why)
    preset = Preset(method, values, why, estimate=fitted.to_dict())
    return MethodChoice(method, reasons, preset)


def grpo_preset(goal: str, shape: str, batch: int) -> tuple[dict, dict]:
    """GRPO's knobs: a starting reward list for the goal, and whole groups of completions per batch."""
    if goal == "format":
        rewards = [{"type": "json_valid", "weight": 1.0}, {"type": "regex", "pattern": r"^\s*\{", "weight": 0.5}]
        reward_why = "goal 'format': valid JSON scores 1 (add a `schema` to check the fields), a leading { gives partial credit."
    elif shape == "instruction":
        rewards = [{"type": "numeric" if goal == "reasoning" else "exact", "weight": 1.0}, {"type": "length", "max": 400, "weight": 0.2}]
        reward_why = "your data's replies are the references: " + ("the final number must match" if goal == "reasoning" else "the answer must match") + "; a small length reward keeps answers short."
    else:
        rewards = [{"type": "length", "max": 400, "weight": 1.0}]
        reward_why = "prompts without references: start from a length band and add a regex or your own Python reward for what you check."
    generations = 4 if batch % 4 == 0 else 2  # batch: per device x accumulation, which must hold whole groups
    values = {"rewards": rewards, "num_generations": generations, "response_length": GRPO_RESPONSE_LENGTH, "kl_coef": 0.04}
    why = {
        "rewards": reward_why,
        "num_generations": f"{generations} completions per prompt: the advantage is each one's reward against its group's mean (each batch of {batch} holds whole groups).",
        "response_length": "new tokens per completion: sampling time grows with it, so keep it to what an answer needs.",
        "kl_coef": "a small pull toward the base model keeps the policy from drifting while it chases the reward.",
    }
    return values, why


def advise(answers: Answers, *, signals: DatasetSignals | None = None, model: str = "embedded", device: str = "gpu",
           wants_scalar_reward: bool = False, has_principles: bool = False, checkable_answers: bool = False) -> Recommendation:
    """Decision, plus method and preset when the answer involves fine-tuning."""
    recommendation = decide(answers)
    if recommendation.approach in ("fine-tune", "both"):
        choice = pick_method(
            shape=signals.shape if signals else "instruction",
            goal=answers.goal,
            examples=signals.examples if signals else answers.examples,
            token_p95=signals.token_p95 if signals else None,
            model=model,
            device=device,
            wants_scalar_reward=wants_scalar_reward,
            has_principles=has_principles,
            checkable_answers=checkable_answers,
        )
        recommendation.method = choice.method
        recommendation.preset = choice.preset
        recommendation.reasons += [Reason(rule, text) for rule, text in choice.reasons]
    return recommendation


def answers_from_signals(signals: DatasetSignals, **questionnaire) -> Answers:
    """The questionnaire, with the dataset's own count and eval split filled in."""
    return Answers(examples=signals.examples, has_eval_set=signals.has_eval_split, **questionnaire)


