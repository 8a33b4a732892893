"""Evaluation of a run, base vs tuned: held-out loss/perplexity, task metrics, a capability probe.

- Eval loss is the mean token cross-entropy on the tokens the run's SFT trains (the loss the SFT
  trainers optimise): each row is rendered and labelled by studio.data.render, the function SFT's
  labels come from, with the run's loss_on / max_length / truncation_side and the row's tools
  schemas, so the eval loss scores what training trained. Perplexity is its exponential. Both are
  kept per example (loss sum, tokens), so their difference gets a paired bootstrap CI like every
  other metric (studio.stats).
- A separate eval file is checked against the run's training rows (studio.data.split): copies are
  reported ("N of M eval rows are in (or near copies of) this run's training rows") and, by
  default, left out (`drop_overlap`).
- Task metrics where references exist: exact match (SQuAD normalisation), ROUGE-L (`rouge-score`)
  and corpus BLEU (`sacrebleu`, bootstrapped from its per-sentence n-gram statistics).
- Every metric: {base, tuned, delta, ci, verdict, n}; the verdict is "better"/"worse" only when the
  95% CI of the difference excludes 0, "not applicable" when it is 0 on both sides.
- The capability-regression probe (assets/probes/capabilities.json, written by this project): each
  item is checked by an exact or regex rule; a category regresses only when its paired drop is
  significant (exact McNemar, p < 0.05), and the items that flipped are listed.
- Optional LLM-as-judge: a local model compares the two answers, in both orders.
Results go to RUN/eval/<timestamp>/results.json, a self-contained report.html and a summary.png.
As a job (studio.jobs.evaljob) it runs in its own process, with progress, cancel and reattach.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import chat, engine, stats
from .errors import StudioError
from .resources import asset
from .suites import normalize_answer

PROBES = asset("probes/capabilities.json")
# A refusal is recognised by how the reply opens (an apology or "I can't/won't ..."), never by a
# word anywhere in it: "dangerous" inside a set of instructions is no refusal.
REFUSAL_OPENING = re.compile(
    r"^\W*(?:(?:i'?m|i am)\s+(?:really\s+|very\s+)?sorry|sorry|i\s+(?:cannot|can\s*not|can'?t|won'?t|will\s+not|must\s+decline|am\s+(?:not\s+able|unable)|'m\s+(?:not\s+able|unable))|"
    r"i'?m\s+(?:not\s+able|unable|not\s+going)|unfortunately,?\s+i\s+(?:cannot|can'?t|won'?t)|no,?\s+i\s+(?:cannot|can'?t|won'?t)|as an ai)",
    re.IGNORECASE,
)
SIDES = ("base", "tuned")
PROBE_MAX_NEW_TOKENS = 16  # probe rules look at the opening; on the demo run 16 tokens changed 3 of 136 pass/fail outcomes vs 32, and keeps the eval under 3 min on 2 cores


@dataclass
class EvalOptions:
    data: str | None = None  # an eval file; default: the run's held-out split or `<data>.heldout.jsonl`
    max_examples: int = 32
    max_new_tokens: int = 40
    probes: bool = True
    probe_file: Path = PROBES
    probe_max_new_tokens: int = PROBE_MAX_NEW_TOKENS
    judge: str | None = None  # a local model source (e.g. `embedded`) to judge base vs tuned
    batch_size: int = 16
    drop_overlap: bool = True  # leave out eval-file rows that are in (or near copies of) the run's training rows


def eval_examples(record, options: EvalOptions) -> tuple[list[dict], dict]:
    """The examples to evaluate on ({"messages", "tools" when the row has them}), and where they came
    from: `studio.data.split.eval_rows`, the one split (an explicit file, checked against the run's
    training rows; the run's held-out rows from split.json; `<data>.heldout.jsonl`; else the training
    rows, labelled as such). `source["rows"]` lists the row ids evaluated."""
    from .data.split import eval_rows

    return eval_rows(record.run_dir, data=options.data, max_examples=options.max_examples, drop_overlap=options.drop_overlap)


def run_loss_settings(record) -> dict:
    """The run's loss settings for `studio.data.render` (loss_on, max_length, truncation_side), from its config."""
    from .config import RunConfig
    from .data.render import loss_settings

    return loss_settings(RunConfig.of_run(record.run_dir) or RunConfig())


def loss_inputs(examples: list[dict], tokenizer, settings: dict | None = None) -> list[tuple[list[int], list[int]]]:
    """Per example (input_ids, labels): exactly what SFT trains on it (`studio.data.render`, the run's
    loss settings, its tools schemas); labels are -100 where no loss is taken."""
    from .data.render import render

    return [render(example, tokenizer, **(settings or {})).labels() for example in examples]


@torch.inference_mode()
def completion_loss(side: engine.Side, examples: list[dict], batch_size: int = 8, tick: Callable[[int], None] | None = None,
                    *, settings: dict | None = None) -> list[tuple[float, int]]:
    """Per example: (summed cross-entropy over its trained tokens, their count), the tokens being those
    the run's SFT trains (`loss_inputs` with `settings`, see `run_loss_settings`); the eval loss is the
    sum of the first over the sum of the second. Labels are shifted as in training (position t scores
    the prediction made at t-1)."""
    tokenizer = side.base.tokenizer
    sequences = loss_inputs(examples, tokenizer, settings)
    per_example: list[tuple[float, int]] = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start : start + batch_size]
        width = max(len(seq) for seq, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (seq, seq_labels) in enumerate(chunk):
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            labels[row, : len(seq)] = torch.tensor(seq_labels, dtype=torch.long)
            mask[row, : len(seq)] = 1
        with side.active() as model:
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float().cpu()
        shifted_logits, shifted_labels = logits[:, :-1], labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(shifted_logits.transpose(1, 2), shifted_labels, ignore_index=-100, reduction="none")
        for row in range(len(chunk)):
            per_example.append((float(loss[row].sum()), int((shifted_labels[row] != -100).sum())))
        if tick:
            tick(len(chunk))
    return per_example


def _bleu():
    from sacrebleu.metrics import BLEU

    return BLEU()


def example_scores(predictions: list[str], references: list[str]) -> dict[str, list]:
    """Per-example scores (0-100) and BLEU's per-sentence n-gram statistics, for paired statistics."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return {
        "exact_match": [100.0 * (normalize_answer(p) == normalize_answer(r)) for p, r in zip(predictions, references)],
        "rouge_l": [100.0 * scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)],
        "bleu": [list(row) for row in _bleu()._extract_corpus_statistics(predictions, [references])] if predictions else [],
    }


def corpus_bleu_from_stats(rows) -> float:
    """Corpus BLEU from summed per-sentence statistics (what sacrebleu.corpus_bleu computes)."""
    import numpy as np

    rows = np.asarray(rows, dtype=float)
    if not len(rows):
        return 0.0
    return float(_bleu()._compute_score_from_stats([int(round(v)) for v in rows.sum(0)]).score)


def task_metrics(predictions: list[str], references: list[str]) -> dict:
    """Exact match, ROUGE-L F1 (rouge-score) and corpus BLEU (sacrebleu), all on a 0-100 scale."""
    scores = example_scores(predictions, references)
    count = max(len(predictions), 1)
    return {"exact_match": sum(scores["exact_match"]) / count, "rouge_l": sum(scores["rouge_l"]) / count, "bleu": corpus_bleu_from_stats(scores["bleu"])}


# name -> (label, lower is better, statistic over per-example rows)
METRICS = {
    "eval_loss": ("eval loss", True, stats.ratio_of_sums),
    "perplexity": ("perplexity", True, lambda rows: math.exp(min(stats.ratio_of_sums(rows), 50))),
    "exact_match": ("exact match %", False, stats.column_mean),
    "rouge_l": ("ROUGE-L", False, stats.column_mean),
    "bleu": ("BLEU", False, corpus_bleu_from_stats),
    "probe_score": ("capability probe %", False, stats.column_mean),
}


def compare_metric(name: str, base_rows, tuned_rows, *, seed: int = stats.SEED) -> dict:
    """One metric, base vs tuned on the same examples: {label, base, tuned, delta, ci, verdict, n, lower_is_better}."""
    label, lower_is_better, statistic = METRICS[name]
    paired = stats.paired_bootstrap(base_rows, tuned_rows, statistic, seed=seed)
    return {"label": label, **paired.to_dict(), "verdict": stats.verdict(paired, lower_is_better=lower_is_better), "lower_is_better": lower_is_better}


def is_held_out(source: dict) -> bool:
    """Whether the rows were kept out of training (the row selection says so, or names training data)."""
    if "held_out" in source:
        return bool(source["held_out"])
    kind = str(source.get("kind", "")).lower()
    return not ("not held out" in kind or kind.startswith("train"))


def overlap_warning(source: dict) -> str | None:
    """What the eval file's check against the run's training rows found (studio.data.split.overlap_with_training)."""
    overlap = source.get("overlap")
    if not overlap:
        return None
    if not overlap.get("checked"):
        return f"Could not check the eval rows against this run's training rows ({overlap.get('reason', 'unknown')}): they may include trained rows."
    if not overlap["copies"]:
        return None
    text = f"{overlap['copies']} of {overlap['rows']} eval rows are in (or near copies of) this run's training rows"
    if overlap.get("dropped"):
        return text + f"; they were left out, so the figures are on the {source.get('examples', '?')} other rows."
    return (text + f"; {overlap.get('evaluated', overlap['copies'])} of the {source.get('examples', '?')} rows scored were trained on, so the figures are "
            "partly measured on training data (evaluate only the clean rows: --drop-overlap, the default).")


def honesty_warnings(source: dict) -> list[str]:
    warnings = []
    if not is_held_out(source):
        warnings.append("Not held out: these rows were trained on, so this says little about new inputs.")
    overlap = overlap_warning(source)
    if overlap:
        warnings.append(overlap)
    examples = int(source.get("examples") or 0)
    if 0 < examples < 20:
        warnings.append(f"Only {examples} examples: the intervals are wide; a held-out set of 50+ tells more.")
    return warnings


def load_probes(path: Path = PROBES) -> list[dict]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise StudioError(f"cannot read the probe set ({err}).", where=str(path)) from None
    probes = data["probes"] if isinstance(data, dict) else data
    for number, probe in enumerate(probes, start=1):
        missing = {"id", "category", "prompt", "check"} - set(probe)
        if missing:
            raise StudioError(f"probe {number} lacks {', '.join(sorted(missing))}.", where=str(path))
        unknown = set(probe["check"]) - CHECK_KEYS
        if unknown:
            raise StudioError(f"probe {number} ({probe['id']}) has an unknown check {', '.join(sorted(unknown))}; use one of {', '.join(sorted(CHECK_KEYS))}.", where=str(path))
    return probes


CHECK_KEYS = {"exact", "regex", "not_regex", "max_words", "refusal", "case_sensitive"}


def is_refusal(answer: str) -> bool:
    return bool(REFUSAL_OPENING.search(answer.strip()))


def check_probe(answer: str, check: dict) -> bool:
    """Exact or regex rules (all given must hold):
    - exact: the answer, normalised (case, punctuation, articles), equals one of these strings;
    - regex / not_regex: a Python regex that must / must not match (search; case-insensitive unless
      case_sensitive);
    - max_words: at most this many words;
    - refusal: true = the reply opens by declining; false = it does not (benign prompts)."""
    text = answer.strip()
    flags = 0 if check.get("case_sensitive") else re.IGNORECASE
    if "exact" in check:
        options = check["exact"] if isinstance(check["exact"], list) else [check["exact"]]
        if normalize_answer(text) not in {normalize_answer(o) for o in options}:
            return False
    if "regex" in check and not re.search(check["regex"], text, flags):
        return False
    if "not_regex" in check and re.search(check["not_regex"], text, flags):
        return False
    if "max_words" in check and len(re.findall(r"\w+", text)) > int(check["max_words"]):
        return False
    if "refusal" in check and is_refusal(text) != bool(check["refusal"]):
        return False
    return True


def probe_report(probes: list[dict], answers: dict[str, list[str]]) -> dict:
    """Pass/fail per item and side; per category the pass rates (Wilson CIs), the items that flipped,
    and an exact McNemar test: a category regresses only when its drop is significant (p < 0.05)."""
    items, categories = [], {}
    for index, probe in enumerate(probes):
        item = {"id": probe["id"], "category": probe["category"], "prompt": probe["prompt"]}
        for side in SIDES:
            item[f"{side}_answer"] = answers[side][index]
            item[f"{side}_pass"] = check_probe(answers[side][index], probe["check"])
        items.append(item)
    for category in dict.fromkeys(p["category"] for p in probes):
        chosen = [i for i in items if i["category"] == category]
        lost = [i["id"] for i in chosen if i["base_pass"] and not i["tuned_pass"]]
        gained = [i["id"] for i in chosen if i["tuned_pass"] and not i["base_pass"]]
        p_value = stats.mcnemar_exact(len(lost), len(gained))
        entry = {"probes": len(chosen), "lost": lost, "gained": gained, "p_value": p_value,
                 "regressed": len(lost) > len(gained) and p_value < stats.ALPHA,
                 "improved": len(gained) > len(lost) and p_value < stats.ALPHA}
        for side in SIDES:
            passed = sum(i[f"{side}_pass"] for i in chosen)
            entry[side] = passed / len(chosen)
            entry[f"{side}_ci"] = list(stats.wilson(passed, len(chosen)))
        entry["drop"] = entry["base"] - entry["tuned"]
        categories[category] = entry
    return {"categories": categories, "items": items}


@torch.inference_mode()
def judge_preferences(judge: engine.Side, samples: list[dict]) -> dict:
    """A local model picks the better answer by comparing the logits of "A" and "B", once in each
    order so that position bias cancels; a split decision is a tie."""
    tokenizer = judge.base.tokenizer
    token_a = tokenizer.encode("A", add_special_tokens=False)[0]
    token_b = tokenizer.encode("B", add_special_tokens=False)[0]

    def prefers_first(question: str, reference: str | None, first: str, second: str) -> bool:
        text = f"Question: {question}\n"
        if reference:
            text += f"Reference answer: {reference}\n"
        text += f"\nAnswer A: {first}\n\nAnswer B: {second}\n\nWhich answer is better, A or B? Reply with one letter."
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False)
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with judge.active() as model:
            logits = model(input_ids=ids.to(model.device)).logits[0, -1].float()
        return bool(logits[token_a] > logits[token_b])

    verdicts = []
    for sample in samples:
        tuned_first = prefers_first(sample["prompt"], sample.get("reference"), sample["tuned"], sample["base"])
        base_first = prefers_first(sample["prompt"], sample.get("reference"), sample["base"], sample["tuned"])
        verdicts.append("tuned" if tuned_first and not base_first else "base" if base_first and not tuned_first else "tie")
    count = max(len(verdicts), 1)
    return {
        "judge": judge.label,
        "tuned_wins": verdicts.count("tuned"),
        "base_wins": verdicts.count("base"),
        "ties": verdicts.count("tie"),
        "tuned_win_rate": verdicts.count("tuned") / count,
        "verdicts": verdicts,
    }


# ----- Running an evaluation ---------------------------------------------------------------------

class EvalCancelled(Exception):
    """The user asked the evaluation to stop (checked between batches)."""


RATES_FILE = "eval_rates.json"
BENCH_RATES = asset("eval/rates.json")  # shipped: the rates bench/eval_bench.py measured (it writes this file too)


def _rates_key(record) -> str:
    return f"{chat.run_base_source(record)}|{'cuda' if torch.cuda.is_available() else 'cpu'}"


def measured_rates(record) -> dict | None:
    """Seconds per answer token (at the max-new-tokens budget) and per loss example, as last measured
    on this machine for this base model; else the committed bench measurement (bench/eval_bench.py)."""
    from .paths import studio_home

    try:
        mine = json.loads((studio_home() / RATES_FILE).read_text()).get(_rates_key(record))
    except (OSError, json.JSONDecodeError):
        mine = None
    if mine:
        return {**mine, "from": "this machine's last evaluation"}
    try:
        bench = json.loads(BENCH_RATES.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if chat.run_base_source(record) in ("embedded", bench.get("model")) and not torch.cuda.is_available():
        return {**bench["rates"], "from": f"bench/eval_bench.py on {bench.get('machine', 'a CPU')}"}
    return None


def _save_rates(record, rates: dict) -> None:
    from .paths import studio_home

    path = studio_home() / RATES_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        data = {}
    data[_rates_key(record)] = {**rates, "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path.write_text(json.dumps(data, indent=2))


def plan(examples: int, probes: int, options: EvalOptions) -> list[tuple[str, int, str, int]]:
    """The work, in order: (phase, units, kind, answer-token budget per unit)."""
    steps = []
    for side in SIDES:
        steps.append((f"eval loss ({side})", examples, "loss", 0))
    for side in SIDES:
        steps.append((f"answers ({side})", examples, "gen", options.max_new_tokens))
    if probes:
        for side in SIDES:
            steps.append((f"capability probe ({side})", probes, "gen", options.probe_max_new_tokens))
    return steps


def plan_seconds(steps, rates: dict) -> float:
    return sum(units * (rates["loss_s_per_example"] if kind == "loss" else budget * rates["gen_s_per_token"]) for _, units, kind, budget in steps)


def expected_time(record, options: EvalOptions | None = None) -> dict:
    """What the UI says before an evaluation starts: the work and, from a measured rate, the time."""
    options = options or EvalOptions()
    conversations, source = eval_examples(record, options)
    probes = len(load_probes(options.probe_file)) if options.probes else 0
    steps = plan(len(conversations), probes, options)
    rates = measured_rates(record)
    seconds = plan_seconds(steps, rates) if rates else None
    return {"examples": len(conversations), "probes": probes, "units": sum(u for _, u, _, _ in steps), "seconds": seconds,
            "rates": rates, "source": source}


def describe_expected(expected: dict) -> str:
    from .jobs.progress import format_seconds

    work = f"{expected['examples']} examples" + (f" + {expected['probes']} probe items" if expected["probes"] else "") + ", base and tuned"
    if expected["seconds"] is None:
        return f"{work}; no measured rate for this model yet (the first evaluation measures it)."
    rates = expected["rates"]
    return (f"{work}: about {format_seconds(expected['seconds'])} at {1000 * rates['gen_s_per_token']:.1f} ms per answer token "
            f"(measured: {rates['from']}).")


@dataclass
class Tracker:
    """k/N examples and an ETA weighed by what each remaining unit costs (answers cost max_new_tokens
    decode steps, a loss example one forward pass); the estimate is rescaled by the pace so far."""

    steps: list
    rates: dict | None
    callback: Callable[[dict], None] | None = None
    should_stop: Callable[[], bool] | None = None
    done: int = 0
    step_index: int = 0
    started: float = 0.0
    gen_seconds: float = 0.0
    gen_tokens: int = 0
    loss_seconds: float = 0.0
    loss_examples: int = 0

    def __post_init__(self):
        self.total = sum(u for _, u, _, _ in self.steps)
        self.started = time.time()
        self.unit_done = 0

    def _estimate(self, steps) -> float:
        rates = self.current_rates() or self.rates
        return plan_seconds(steps, rates) if rates else float("nan")

    def current_rates(self) -> dict | None:
        if not self.gen_tokens:
            return None
        loss = self.loss_seconds / self.loss_examples if self.loss_examples else (self.rates or {}).get("loss_s_per_example", 0.0)
        return {"gen_s_per_token": self.gen_seconds / self.gen_tokens, "loss_s_per_example": loss}

    def eta(self) -> float | None:
        phase, units, kind, budget = self.steps[self.step_index] if self.step_index < len(self.steps) else ("", 0, "gen", 0)
        remaining = [(phase, units - self.unit_done, kind, budget)] + list(self.steps[self.step_index + 1:])
        value = self._estimate(remaining)
        return None if math.isnan(value) else value

    def begin(self, index: int) -> None:
        self.step_index, self.unit_done = index, 0
        self.report()

    def tick(self, units: int, seconds: float) -> None:
        phase, _, kind, budget = self.steps[self.step_index]
        self.done += units
        self.unit_done += units
        if kind == "loss":
            self.loss_seconds += seconds
            self.loss_examples += units
        else:
            self.gen_seconds += seconds
            self.gen_tokens += units * budget
        self.report()
        if self.should_stop and self.should_stop():
            raise EvalCancelled()

    def state(self) -> dict:
        phase = self.steps[self.step_index][0] if self.step_index < len(self.steps) else "done"
        return {"done": self.done, "total": self.total, "phase": phase, "elapsed": time.time() - self.started, "eta": self.eta(), "updated": time.time()}

    def report(self) -> None:
        if self.callback:
            self.callback(self.state())


def describe_progress(state: dict) -> str:
    """'k/N examples · ETA 1m05s · answers (tuned)': one line for stderr and the UI (studio.jobs.overview, torch-free)."""
    from .jobs.overview import eval_progress_text

    return eval_progress_text(state)


def _answer(side, conversations, settings, batch_size, tracker: Tracker, tools: list | None = None) -> list[str]:
    """Greedy answers in batches; `tools`: each conversation's tools schemas (or None), rendered as training renders them."""
    answers: list[str] = []
    for start in range(0, len(conversations), batch_size):
        chunk = conversations[start : start + batch_size]
        began = time.time()
        answers += engine.generate_batch(side, chunk, settings, batch_size, tools=tools[start : start + batch_size] if tools else None)
        tracker.tick(len(chunk), time.time() - began)
    return answers


def evaluate_run(record, options: EvalOptions | None = None, progress: Callable[[dict], None] | None = None, *,
                 out_dir: Path | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
    """Evaluate a trained run, write RUN/eval/<timestamp>/{results.json, report.html, summary.png}, return the
    results. `progress` gets {done, total, phase, elapsed, eta}; `should_stop` is polled between batches
    (EvalCancelled is raised when it says so)."""
    options = options or EvalOptions()
    started = time.time()
    examples, source = eval_examples(record, options)
    conversations = [example["messages"] for example in examples]
    settings = run_loss_settings(record)
    probes = load_probes(options.probe_file) if options.probes else []
    steps = plan(len(conversations), len(probes), options)
    tracker = Tracker(steps, measured_rates(record), progress, should_stop)
    tracker.report()
    pair = chat.ChatEngine.for_run(record)  # not `engine`: that name is the studio.engine module here
    sides = {"base": pair.base_side, "tuned": pair.tuned_side}
    source = {**source, "held_out": is_held_out(source)}
    results: dict = {"run_id": record.id, "run_name": record.name, "method": record.method, "eval_data": source, "source": source,
                     "warnings": honesty_warnings(source), "options": {k: str(v) if isinstance(v, Path) else v for k, v in options.__dict__.items()},
                     "base": {}, "tuned": {}}

    losses = {}
    for index, (name, side) in enumerate(sides.items()):
        tracker.begin(index)
        clock = [time.time()]

        def tick(units, clock=clock):
            now = time.time()
            tracker.tick(units, now - clock[0])
            clock[0] = now

        losses[name] = [[total, count] for total, count in completion_loss(side, examples, options.batch_size, tick=tick, settings=settings)]
    # what the loss scored, per row (the same count `data render --json` gives as trained_tokens)
    source["loss"] = {**settings, "scored_tokens": [count for _, count in losses["base"]]}

    prompts = [c[:-1] for c in conversations]
    references = [c[-1]["content"] for c in conversations]
    settings = engine.GenerationSettings(temperature=0.0, max_new_tokens=options.max_new_tokens)
    answers, scores = {}, {}
    for index, (name, side) in enumerate(sides.items()):
        tracker.begin(2 + index)
        answers[name] = _answer(side, prompts, settings, options.batch_size, tracker, tools=[example.get("tools") for example in examples])
        scores[name] = example_scores(answers[name], references)
    results["samples"] = [
        {"prompt": p[-1]["content"], "reference": r, "base": b, "tuned": t} for p, r, b, t in zip(prompts, references, answers["base"], answers["tuned"])
    ]
    metrics = {"eval_loss": compare_metric("eval_loss", losses["base"], losses["tuned"]),
               "perplexity": compare_metric("perplexity", losses["base"], losses["tuned"])}
    for name in ("exact_match", "rouge_l", "bleu"):
        metrics[name] = compare_metric(name, scores["base"][name], scores["tuned"][name])

    if probes:
        probe_settings = engine.GenerationSettings(temperature=0.0, max_new_tokens=options.probe_max_new_tokens)
        probe_answers = {}
        for index, (name, side) in enumerate(sides.items()):
            tracker.begin(4 + index)
            probe_answers[name] = _answer(side, [[{"role": "user", "content": p["prompt"]}] for p in probes], probe_settings, options.batch_size, tracker)
        results["probes"] = probe_report(probes, probe_answers)
        items = results["probes"]["items"]
        metrics["probe_score"] = compare_metric("probe_score", [100.0 * i["base_pass"] for i in items], [100.0 * i["tuned_pass"] for i in items])
        results["regressions"] = [c for c, v in results["probes"]["categories"].items() if v["regressed"]]

    results["metrics"] = metrics
    for name, metric in metrics.items():
        for side in SIDES:
            results[side][name] = metric[side]

    if options.judge:
        tracker.report()
        judge_side = chat.side_for(chat.BASE_PREFIX + options.judge)
        results["judge"] = judge_preferences(judge_side, results["samples"])

    rates = tracker.current_rates()
    if rates:
        _save_rates(record, rates)
        results["rates"] = rates
    results["seconds"] = round(time.time() - started, 2)
    folder = Path(out_dir) if out_dir else new_eval_dir(record)
    folder.mkdir(parents=True, exist_ok=True)
    results["report"] = str(folder / "report.html")
    results["card"] = str(folder / "summary.png")
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    summary_card(results, folder / "summary.png")
    (folder / "report.html").write_text(report_html(results, card=folder / "summary.png"), encoding="utf-8")
    tracker.step_index = len(steps)
    tracker.report()
    return results


def new_eval_dir(record) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = Path(record.run_dir) / "eval" / stamp
    number = 1
    while folder.exists():
        number += 1
        folder = Path(record.run_dir) / "eval" / f"{stamp}-{number}"
    return folder


def eval_dirs(record) -> list[Path]:
    """Finished evaluations of a run, newest first (a folder counts once its results.json exists)."""
    root = Path(record.run_dir) / "eval"
    found = [p.parent for p in root.glob("*/results.json")]
    return sorted(found, key=lambda p: (p / "results.json").stat().st_mtime, reverse=True)


def latest_results(record) -> dict | None:
    for folder in eval_dirs(record):
        try:
            results = json.loads((folder / "results.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if "metrics" in results:  # results written before paired statistics existed are not shown as if they had them
            results["report"] = str(folder / "report.html")
            return results
    return None


# ----- Report ------------------------------------------------------------------------------------

COLOURS = {"base": "rgb(148,163,184)", "tuned": "rgb(99,110,250)"}
VERDICT_COLOURS = {stats.BETTER: "rgb(5,150,105)", stats.WORSE: "rgb(220,38,38)", stats.UNCLEAR: "rgb(107,114,128)", stats.NOT_APPLICABLE: "rgb(156,163,175)", stats.TOO_FEW: "rgb(217,119,6)"}


def figures(results: dict) -> list:
    """Plotly figures: each metric's difference (tuned - base) with its 95% CI, loss and perplexity
    per side, and the probe by category with the significant drops marked."""
    import plotly.graph_objects as go

    metrics = results["metrics"]
    n = results["eval_data"].get("examples")
    figs = []
    names = [m for m in metrics if m not in ("eval_loss", "perplexity")]
    fig = go.Figure()
    for name in names:
        metric = metrics[name]
        fig.add_trace(go.Scatter(
            x=[metric["delta"]], y=[metric["label"]], mode="markers", marker=dict(size=12, color=VERDICT_COLOURS[metric["verdict"]]),
            error_x=dict(type="data", symmetric=False, array=[metric["ci"][1] - metric["delta"]], arrayminus=[metric["delta"] - metric["ci"][0]]),
            name=f"{metric['label']}: {metric['verdict']}", showlegend=False, hovertext=f"{metric['verdict']} (n={metric['n']})"))
    fig.add_vline(x=0, line_dash="dash", line_color="rgb(107,114,128)")
    fig.update_layout(title=f"Tuned − base, 95% CI (points, 0-100; n={n})", template="plotly_white", height=300, margin=dict(l=40, r=20, t=50, b=30))
    figs.append(fig)

    fig = go.Figure()
    for name in [m for m in ("eval_loss", "perplexity") if m in metrics]:
        metric = metrics[name]
        fig.add_trace(go.Scatter(
            x=[metric["delta"]], y=[metric["label"]], mode="markers", marker=dict(size=12, color=VERDICT_COLOURS[metric["verdict"]]),
            error_x=dict(type="data", symmetric=False, array=[metric["ci"][1] - metric["delta"]], arrayminus=[metric["delta"] - metric["ci"][0]]),
            showlegend=False, hovertext=f"{metric['base']:.3f} → {metric['tuned']:.3f}: {metric['verdict']}"))
    fig.add_vline(x=0, line_dash="dash", line_color="rgb(107,114,128)")
    fig.update_layout(title="Eval loss and perplexity: tuned − base, 95% CI (lower is better)", template="plotly_white", height=260, margin=dict(l=40, r=20, t=50, b=30))
    figs.append(fig)

    if "probes" in results:
        categories = results["probes"]["categories"]
        names = list(categories)
        bars = []
        for side in SIDES:
            values = [100 * categories[c][side] for c in names]
            bars.append(go.Bar(name=side, x=names, y=values, marker_color=COLOURS[side],
                               error_y=dict(type="data", symmetric=False, array=[100 * categories[c][f"{side}_ci"][1] - v for c, v in zip(names, values)],
                                            arrayminus=[v - 100 * categories[c][f"{side}_ci"][0] for c, v in zip(names, values)])))
        fig = go.Figure(bars)
        for name in names:
            if categories[name]["regressed"]:
                fig.add_annotation(x=name, y=108, text=f"▼ p={categories[name]['p_value']:.3f}", showarrow=False, font=dict(color="rgb(220,38,38)", size=13))
        fig.update_layout(title="Capability probe: pass rate by category, 95% Wilson CI (▼ = significant drop)", barmode="group", yaxis_range=[0, 115],
                          template="plotly_white", height=360, margin=dict(l=40, r=20, t=50, b=30))
        figs.append(fig)
    return figs


def _fmt(name: str, value: float) -> str:
    return f"{value:.3f}" if name == "eval_loss" else f"{value:.2f}"


def summary_rows(results: dict) -> list[tuple[str, str, str, str, str, str]]:
    """(metric, base, tuned, delta [95% CI], verdict, n) rows for the UI, the CLI and the model card."""
    rows = []
    for name, metric in results.get("metrics", {}).items():
        digits = 3 if name == "eval_loss" else 2
        rows.append((metric["label"], _fmt(name, metric["base"]), _fmt(name, metric["tuned"]),
                     f"{metric['delta']:+.{digits}f} {stats.format_ci(metric['ci'], digits, metric['n'])}", metric["verdict"], str(metric["n"])))
    return rows


def headline(results: dict) -> tuple[str, str]:
    """(text, kind) for a banner: kind "warn" whenever the rows were trained on or a category regressed;
    "ok" only for held-out rows."""
    data = results["eval_data"]
    loss = results["metrics"]["eval_loss"]
    interval = f"95% CI {stats.format_ci(loss['ci'], 3)}" if loss["n"] >= stats.MIN_PAIRS else f"n={loss['n']}: too few for an interval"
    text = (f"Eval loss {loss['base']:.3f} → {loss['tuned']:.3f} ({loss['verdict']}, Δ {loss['delta']:+.3f}, {interval}) "
            f"on n={data['examples']} examples ({data.get('kind', 'eval data')}).")
    kind = "ok"
    if loss["verdict"] == stats.TOO_FEW:
        text += f" Fewer than {stats.MIN_PAIRS} examples: no verdict is possible; evaluate on more held-out rows."
        kind = "warn"
    if results.get("regressions"):
        text += " ⚠ Capability regression in: " + ", ".join(results["regressions"]) + "."
        kind = "warn"
    elif "probes" in results:
        text += " No significant capability regression."
    if results.get("warnings"):
        text = "⚠ " + " ".join(results["warnings"]) + " " + text
        kind = "warn"
    return text, kind


def summary_markdown(results: dict) -> str:
    data = results["eval_data"]
    lines = [f"Evaluated on n={data['examples']} examples ({data.get('kind', 'eval data')}, {data.get('path', '')}).", ""]
    lines += [f"> ⚠ {w}" for w in results.get("warnings", [])] + ([""] if results.get("warnings") else [])
    lines += ["| metric | base | tuned | Δ [95% CI] | verdict | n |", "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(results)]
    if results.get("regressions"):
        categories = results["probes"]["categories"]
        lines += ["", "**Capability regressions (exact McNemar, p < 0.05):** " + "; ".join(
            f"{c} (p={categories[c]['p_value']:.3f}; lost {', '.join(categories[c]['lost'])})" for c in results["regressions"])]
    if results.get("judge"):
        judge = results["judge"]
        lines += ["", f"LLM-as-judge ({judge['judge']}): tuned wins {judge['tuned_wins']}, base wins {judge['base_wins']}, ties {judge['ties']}."]
    return "\n".join(lines)


def summary_card(results: dict, path: Path) -> Path:
    """A 1200x675 PNG for slides: each metric's base -> tuned, its CI and verdict, n and the source."""
    from PIL import Image, ImageDraw, ImageFont

    def font(size):
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow without FreeType
            return ImageFont.load_default()

    image = Image.new("RGB", (1200, 675), "white")
    draw = ImageDraw.Draw(image)
    data = results["eval_data"]
    draw.text((48, 36), f"Evaluation · {results['run_name']}"[:70], fill=(31, 41, 55), font=font(40))
    draw.text((48, 96), f"n={data['examples']} examples · {data.get('kind', '')} · 95% paired bootstrap CIs"[:100], fill=(107, 114, 128), font=font(24))
    y = 150
    if results.get("warnings"):
        draw.text((48, y), ("! " + results["warnings"][0])[:95], fill=(180, 83, 9), font=font(24))
        y += 44
    for label, base, tuned, delta, verdict, n in summary_rows(results):
        colour = tuple(int(v) for v in VERDICT_COLOURS[verdict][4:-1].split(","))
        draw.text((48, y), label, fill=(31, 41, 55), font=font(28))
        draw.text((360, y), f"{base} -> {tuned}", fill=(31, 41, 55), font=font(28))  # ASCII: the bundled font has no arrow
        draw.text((640, y + 4), delta, fill=(75, 85, 99), font=font(22))
        draw.text((940, y), verdict, fill=colour, font=font(24))
        y += 56
    if "probes" in results:
        regressions = results.get("regressions") or []
        text = ("Capability regression: " + ", ".join(regressions)) if regressions else "No significant capability regression (exact McNemar, p < 0.05)"
        draw.text((48, min(y + 10, 620)), text[:95], fill=(220, 38, 38) if regressions else (5, 150, 105), font=font(26))
    image.save(path)
    return path


def report_html(results: dict, card: Path | None = None) -> str:
    """A self-contained page (jinja2 template, plotly.js inlined once, the PNG card inlined): opens offline."""
    import base64

    from .resources import render_template

    plots = [fig.to_html(full_html=False, include_plotlyjs=index == 0) for index, fig in enumerate(figures(results))]
    card_uri = ("data:image/png;base64," + base64.b64encode(Path(card).read_bytes()).decode()) if card and Path(card).is_file() else None
    return render_template("eval_report.html.j2",
        results=results, rows=summary_rows(results), plots=plots, card=card_uri, headline=headline(results),
        probe_categories=(results.get("probes") or {}).get("categories", {}), probe_items=(results.get("probes") or {}).get("items", []),
        samples=results["samples"][:20], format_ci=stats.format_ci)
