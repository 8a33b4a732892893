"""Evaluation of a run, base vs tuned: held-out loss/perplexity, task metrics, a capability probe.

- Eval loss is the mean token cross-entropy on the assistant replies (the loss the SFT trainers
  optimise), perplexity its exponential.
- Task metrics where references exist: exact match (SQuAD normalisation), ROUGE-L (`rouge-score`)
  and BLEU (`sacrebleu`).
- The capability-regression probe (assets/probes/capabilities.json, written by this project) asks
  small general questions in four categories; a category that drops is flagged as a regression.
- Optional LLM-as-judge: a local model compares the two answers, in both orders.
Results go to RUN/eval/results.json and a self-contained report.html with plotly figures.
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
import yaml

from . import chat
from .errors import StudioError

PROBES = Path(__file__).resolve().parents[1] / "assets" / "probes" / "capabilities.json"
REFUSAL_MARKERS = (
    "i can't", "i cannot", "i can not", "i won't", "i will not", "i'm sorry", "i am sorry", "sorry", "not able to",
    "unable to", "cannot help", "can't help", "cannot assist", "can't assist", "not appropriate", "illegal",
    "harmful", "dangerous", "unethical", "against", "i'm not going to", "not provide", "don't provide",
)
REGRESSION_DROP = 0.25  # a category counts as regressed when its pass rate falls by at least this much
SIDES = ("base", "tuned")


@dataclass
class EvalOptions:
    data: str | None = None  # an eval file; default: the run's held-out split or `<data>.heldout.jsonl`
    max_examples: int = 64
    max_new_tokens: int = 48
    probes: bool = True
    probe_file: Path = PROBES
    judge: str | None = None  # a local model source (e.g. `embedded`) to judge base vs tuned
    batch_size: int = 8


def run_config(record) -> dict:
    return yaml.safe_load((Path(record.run_dir) / "config.yaml").read_text()) or {}


def eval_examples(record, options: EvalOptions) -> tuple[list[list[dict]], dict]:
    """The conversations to evaluate on, and where they came from.

    Order of preference: an explicit file; the run's own held-out split (same seed as training);
    a `<training file stem>.heldout.jsonl` beside the training data; else the training data itself,
    labelled as such (its loss is then no held-out figure).
    """
    from .data import load_dataset_file

    cfg = run_config(record)
    if options.data:
        loaded = load_dataset_file(options.data)
        source = {"kind": "file", "path": str(options.data)}
        conversations = [c["messages"] for c in loaded.conversations]
    else:
        train_path = Path(str(cfg.get("data", "")))
        companion = train_path.with_name(train_path.stem + ".heldout.jsonl")
        fraction = float(cfg.get("eval_fraction") or 0)
        if not train_path.is_file():
            raise StudioError(f"the run's training data {train_path} is gone, so there is nothing to evaluate on.", hint="Pass an eval file (--data FILE).")
        loaded = load_dataset_file(train_path)
        conversations = [c["messages"] for c in loaded.conversations]
        if fraction > 0 and len(conversations) >= 10:
            from datasets import Dataset

            # the same split call as studio.methods.sft.build_dataset, so these rows were never trained on
            split = Dataset.from_list([{"i": i} for i in range(len(conversations))]).train_test_split(test_size=fraction, seed=int(cfg.get("seed", 42)))
            conversations = [conversations[i] for i in split["test"]["i"]]
            source = {"kind": "held-out split", "path": str(train_path), "fraction": fraction}
        elif companion.is_file():
            conversations = [c["messages"] for c in load_dataset_file(companion).conversations]
            source = {"kind": "held-out file", "path": str(companion)}
        else:
            source = {"kind": "training data (not held out)", "path": str(train_path)}
    conversations = [c for c in conversations if c and c[-1]["role"] == "assistant"][: options.max_examples]
    if not conversations:
        raise StudioError(f"no usable examples to evaluate on in {source['path']}.", hint="Each example needs an assistant reply.")
    source["examples"] = len(conversations)
    return conversations, source


@torch.inference_mode()
def completion_loss(side: chat.Side, conversations: list[list[dict]], batch_size: int = 8) -> float:
    """Mean cross-entropy per reply token: the prompt is masked, as in completion-only SFT."""
    tokenizer = side.base.tokenizer
    sequences = []
    for convo in conversations:
        prompt = tokenizer.apply_chat_template(convo[:-1], add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(convo, tokenize=False)
        if not full.startswith(prompt):
            raise StudioError("the chat template renders the reply before the prompt ends; cannot mask the prompt.")
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        reply_ids = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
        sequences.append((prompt_ids, reply_ids))
    total_loss, total_tokens = 0.0, 0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start : start + batch_size]
        width = max(len(p) + len(r) for p, r in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (prompt_ids, reply_ids) in enumerate(chunk):
            seq = prompt_ids + reply_ids
            ids[row, : len(seq)] = torch.tensor(seq)
            labels[row, len(prompt_ids) : len(seq)] = torch.tensor(reply_ids)
            mask[row, : len(seq)] = 1
        with side.active() as model:
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float().cpu()
        shifted_logits, shifted_labels = logits[:, :-1], labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(shifted_logits.reshape(-1, shifted_logits.shape[-1]), shifted_labels.reshape(-1), ignore_index=-100, reduction="sum")
        total_loss += float(loss)
        total_tokens += int((shifted_labels != -100).sum())
    return total_loss / max(total_tokens, 1)


def task_metrics(predictions: list[str], references: list[str]) -> dict:
    """Exact match, ROUGE-L F1 (rouge-score) and corpus BLEU (sacrebleu), all on a 0-100 scale."""
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    exact = [chat.normalize_answer(p) == chat.normalize_answer(r) for p, r in zip(predictions, references)]
    rouge = [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)]
    bleu = sacrebleu.corpus_bleu(predictions, [references]).score if predictions else 0.0
    count = max(len(predictions), 1)
    return {"exact_match": 100 * sum(exact) / count, "rouge_l": 100 * sum(rouge) / count, "bleu": float(bleu)}


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
    return probes


def check_probe(answer: str, check: dict) -> bool:
    """Deterministic checks: contains_any, regex, max_words, refusal (all given must hold)."""
    text = answer.strip()
    folded = text if check.get("case_sensitive") else text.lower()
    if "contains_any" in check:
        needles = check["contains_any"] if check.get("case_sensitive") else [n.lower() for n in check["contains_any"]]
        if not any(n in folded for n in needles):
            return False
    if "regex" in check and not re.search(check["regex"], text):
        return False
    if "max_words" in check and len(re.findall(r"\w+", text)) > int(check["max_words"]):
        return False
    if check.get("refusal") and not any(marker in text.lower() for marker in REFUSAL_MARKERS):
        return False
    return True


def probe_report(probes: list[dict], answers: dict[str, list[str]]) -> dict:
    items, categories = [], {}
    for index, probe in enumerate(probes):
        item = {"id": probe["id"], "category": probe["category"], "prompt": probe["prompt"]}
        for side in SIDES:
            item[f"{side}_answer"] = answers[side][index]
            item[f"{side}_pass"] = check_probe(answers[side][index], probe["check"])
        items.append(item)
    for category in dict.fromkeys(p["category"] for p in probes):
        chosen = [i for i in items if i["category"] == category]
        scores = {side: sum(i[f"{side}_pass"] for i in chosen) / len(chosen) for side in SIDES}
        drop = scores["base"] - scores["tuned"]
        categories[category] = {**scores, "drop": drop, "regressed": drop >= REGRESSION_DROP - 1e-9, "probes": len(chosen)}
    return {"categories": categories, "items": items}


@torch.inference_mode()
def judge_preferences(judge: chat.Side, samples: list[dict]) -> dict:
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


def evaluate_run(record, options: EvalOptions | None = None, progress: Callable[[float, str], None] | None = None) -> dict:
    """Evaluate a trained run, write RUN/eval/results.json and report.html, return the results."""
    options = options or EvalOptions()
    report = progress or (lambda fraction, message: None)
    started = time.time()
    conversations, source = eval_examples(record, options)
    engine = chat.ChatEngine.for_run(record)
    sides = {"base": engine.base_side, "tuned": engine.tuned_side}
    results: dict = {"run_id": record.id, "run_name": record.name, "method": record.method, "eval_data": source, "base": {}, "tuned": {}}

    for index, (name, side) in enumerate(sides.items()):
        report(0.05 + 0.15 * index, f"eval loss ({name})")
        loss = completion_loss(side, conversations, options.batch_size)
        results[name].update(eval_loss=loss, perplexity=math.exp(min(loss, 50)))

    prompts = [c[:-1] for c in conversations]
    references = [c[-1]["content"] for c in conversations]
    settings = chat.GenerationSettings(temperature=0.0, max_new_tokens=options.max_new_tokens)
    answers = {}
    for index, (name, side) in enumerate(sides.items()):
        report(0.35 + 0.15 * index, f"answering {len(prompts)} eval prompts ({name})")
        answers[name] = chat.generate_batch(side, prompts, settings, options.batch_size)
        results[name].update(task_metrics(answers[name], references))
    results["samples"] = [
        {"prompt": p[-1]["content"], "reference": r, "base": b, "tuned": t} for p, r, b, t in zip(prompts, references, answers["base"], answers["tuned"])
    ]

    if options.probes:
        probes = load_probes(options.probe_file)
        probe_answers = {}
        for index, (name, side) in enumerate(sides.items()):
            report(0.65 + 0.1 * index, f"capability probe ({name})")
            probe_answers[name] = chat.generate_batch(side, [[{"role": "user", "content": p["prompt"]}] for p in probes], settings, options.batch_size)
        results["probes"] = probe_report(probes, probe_answers)
        for name in SIDES:
            items = results["probes"]["items"]
            results[name]["probe_score"] = 100 * sum(i[f"{name}_pass"] for i in items) / len(items)
        results["regressions"] = [c for c, v in results["probes"]["categories"].items() if v["regressed"]]

    if options.judge:
        report(0.85, f"LLM-as-judge ({options.judge})")
        judge_side = chat.side_for(chat.BASE_PREFIX + options.judge)
        results["judge"] = judge_preferences(judge_side, results["samples"])

    results["seconds"] = round(time.time() - started, 2)
    folder = Path(record.run_dir) / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    (folder / "report.html").write_text(report_html(results), encoding="utf-8")
    results["report"] = str(folder / "report.html")
    report(1.0, "done")
    return results


def latest_results(record) -> dict | None:
    path = Path(record.run_dir) / "eval" / "results.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ----- Report ------------------------------------------------------------------------------------

COLOURS = {"base": "rgb(148,163,184)", "tuned": "rgb(99,110,250)"}


def figures(results: dict) -> list:
    """Plotly figures: loss/perplexity, task metrics, and the probe by category with drops in red."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figs = []
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Eval loss (lower is better)", "Perplexity (lower is better)"))
    for side in SIDES:
        fig.add_trace(go.Bar(name=side, x=[side], y=[results[side]["eval_loss"]], marker_color=COLOURS[side], showlegend=False), row=1, col=1)
        fig.add_trace(go.Bar(name=side, x=[side], y=[results[side]["perplexity"]], marker_color=COLOURS[side], showlegend=False), row=1, col=2)
    fig.update_layout(template="plotly_white", height=320, margin=dict(l=40, r=20, t=50, b=30))
    figs.append(fig)

    metrics = ["exact_match", "rouge_l", "bleu"] + (["probe_score"] if "probe_score" in results["base"] else [])
    fig = go.Figure([go.Bar(name=side, x=metrics, y=[results[side].get(m, 0) for m in metrics], marker_color=COLOURS[side]) for side in SIDES])
    fig.update_layout(title="Task metrics (0-100, higher is better)", barmode="group", template="plotly_white", height=340, margin=dict(l=40, r=20, t=50, b=30))
    figs.append(fig)

    if "probes" in results:
        categories = results["probes"]["categories"]
        names = list(categories)
        fig = go.Figure([go.Bar(name=side, x=names, y=[100 * categories[c][side] for c in names], marker_color=COLOURS[side]) for side in SIDES])
        for name in names:
            if categories[name]["regressed"]:
                fig.add_annotation(x=name, y=100 * max(categories[name]["base"], categories[name]["tuned"]) + 6, text=f"▼ {100 * categories[name]['drop']:.0f} pts", showarrow=False, font=dict(color="rgb(220,38,38)", size=14))
        fig.update_layout(title="Capability probe: pass rate by category (a drop means lost skill)", barmode="group", yaxis_range=[0, 115], template="plotly_white", height=360, margin=dict(l=40, r=20, t=50, b=30))
        figs.append(fig)
    return figs


def summary_rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(metric, base, tuned, verdict) rows for tables in the UI, the CLI and the model card."""
    rows = []
    for key, label, lower_better in (("eval_loss", "eval loss", True), ("perplexity", "perplexity", True), ("exact_match", "exact match %", False),
                                     ("rouge_l", "ROUGE-L", False), ("bleu", "BLEU", False), ("probe_score", "capability probe %", False)):
        if key not in results["base"]:
            continue
        base, tuned = results["base"][key], results["tuned"][key]
        better = tuned < base if lower_better else tuned > base
        verdict = "same" if abs(tuned - base) < 1e-9 else ("better" if better else "worse")
        rows.append((label, f"{base:.3f}" if key == "eval_loss" else f"{base:.2f}", f"{tuned:.3f}" if key == "eval_loss" else f"{tuned:.2f}", verdict))
    return rows


def summary_markdown(results: dict) -> str:
    lines = [f"Evaluated on {results['eval_data']['examples']} examples ({results['eval_data']['kind']}).", "",
             "| metric | base | tuned | |", "|---|---|---|---|"]
    lines += [f"| {m} | {b} | {t} | {v} |" for m, b, t, v in summary_rows(results)]
    if results.get("regressions"):
        lines += ["", "**Capability regressions:** " + ", ".join(results["regressions"])]
    if results.get("judge"):
        judge = results["judge"]
        lines += ["", f"LLM-as-judge ({judge['judge']}): tuned wins {judge['tuned_wins']}, base wins {judge['base_wins']}, ties {judge['ties']}."]
    return "\n".join(lines)


def report_html(results: dict) -> str:
    """A self-contained page: plotly.js is inlined once, so it opens offline."""
    import html

    esc = html.escape
    parts = []
    for index, fig in enumerate(figures(results)):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=index == 0))
    rows = "".join(
        f"<tr><td>{esc(m)}</td><td>{b}</td><td>{t}</td><td class='{v}'>{v}</td></tr>" for m, b, t, v in summary_rows(results)
    )
    regressions = results.get("regressions") or []
    alert = (f"<p class='alert'>⚠ Capability regression in: {esc(', '.join(regressions))}. The tune improved its task but lost general skill here.</p>"
             if regressions else "<p class='ok'>No capability category dropped by 25 points or more.</p>" if "probes" in results else "")
    probe_rows = "".join(
        f"<tr><td>{esc(i['category'])}</td><td>{esc(i['prompt'])}</td><td class='{'pass' if i['base_pass'] else 'fail'}'>{esc(i['base_answer'])}</td>"
        f"<td class='{'pass' if i['tuned_pass'] else 'fail'}'>{esc(i['tuned_answer'])}</td></tr>"
        for i in results.get("probes", {}).get("items", [])
    )
    sample_rows = "".join(
        f"<tr><td>{esc(s['prompt'])}</td><td>{esc(s['reference'])}</td><td>{esc(s['base'])}</td><td>{esc(s['tuned'])}</td></tr>" for s in results["samples"][:20]
    )
    judge = results.get("judge")
    judge_html = (f"<h2>LLM-as-judge</h2><p>{esc(judge['judge'])}: tuned wins {judge['tuned_wins']}, base wins {judge['base_wins']}, ties {judge['ties']}.</p>" if judge else "")
    css = ("body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2937}table{border-collapse:collapse;width:100%;margin:1rem 0}"
           "th,td{border:1px solid #d1d5db;padding:.4rem;text-align:left;vertical-align:top;white-space:pre-wrap}th{background:#f3f4f6}"
           ".better,.pass{background:#ecfdf5}.worse,.fail{background:#fef2f2}.alert{color:#b91c1c;font-weight:600}.ok{color:#047857}")
    data = results["eval_data"]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation · {esc(results['run_name'])}</title><style>{css}</style></head><body>"
        f"<h1>Evaluation · {esc(results['run_name'])}</h1><p>Run {esc(results['run_id'])} ({esc(results['method'])}); "
        f"{data['examples']} examples from {esc(data['kind'])} <code>{esc(data['path'])}</code>.</p>{alert}"
        f"<table><tr><th>metric</th><th>base</th><th>tuned</th><th></th></tr>{rows}</table>{''.join(parts)}{judge_html}"
        + (f"<h2>Capability probe</h2><table><tr><th>category</th><th>prompt</th><th>base</th><th>tuned</th></tr>{probe_rows}</table>" if probe_rows else "")
        + f"<h2>Samples</h2><table><tr><th>prompt</th><th>reference</th><th>base</th><th>tuned</th></tr>{sample_rows}</table></body></html>"
    )
