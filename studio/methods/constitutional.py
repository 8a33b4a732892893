"""Constitutional AI (Bai et al. 2022): the model critiques and revises its own answers against
principles, then trains on the result.

1. For every prompt (any prompt-only, instruction or preference file) the model answers.
2. It critiques that answer against a principle sampled from the constitution, then revises it.
3. SL-CAI (`cai_mode: sl`): SFT (LoRA) on prompt -> revision.
   RL-CAI (`cai_mode: rl`): the model, or `judge_model`, picks the better of the two answers
   (original, revision) under each pair's principle; the AI preference pairs train `dpo`.
   `both`: SFT first, then DPO continuing the SFT adapter (the reference is the SFT model).

Every intermediate is written to `cai/` in the run folder and saved as a dataset version
(transcripts, revisions and judgements as chat `messages`; the pairs as prompt/chosen/rejected).
Generation logs progress rows (`stage: generate`) and stops cleanly on Cancel.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from .. import models
from ..config import RunConfig
from ..errors import StudioError
from .chain import StageCancelled, cancel_requested, log_event, run_stage
from .common import copy_tree, prepare_tokenizer, train_prompts
from .constitution import DEFAULT_CONSTITUTION, load_constitution  # noqa: F401 (DEFAULT_CONSTITUTION re-exported)
from .context import RunContext
from .registry import MethodSpec

SPEC = MethodSpec("constitutional", "Constitutional AI: the model critiques and revises its answers against principles, then trains on them",
                  data="prompts", weights="adapter", order=110, knobs=("constitution", "cai_mode", "judge_model", "response_length", "dpo_beta"),
                  panels=("DPO reward margin", "DPO accuracy"), estimate="constitutional", pairs=True, learning_rate=(2e-4, 2e-4))

GENERATIONS = "generations.jsonl"


class Generator:
    """One model answering through the studio's generation engine (sampled, batched, a seed per answer)
    and judging by comparing logits. Its weights are its own (not the chat pool's): `close()` frees them."""

    def __init__(self, source: str, cfg: RunConfig):
        from ..engine import LoadedBase, Side

        self.resolved = models.resolve(source)
        self.side = Side(LoadedBase(self.resolved, tokenizer=prepare_tokenizer(self.resolved)), None, self.resolved.display_name)
        self.tokenizer = self.side.base.tokenizer
        self.cfg = cfg
        self._answered = 0  # answers so far: answer n samples with seed cfg.seed + n

    def reply(self, conversations: list[list[dict]]) -> list[str]:
        from ..engine import GenerationSettings, generate_batch

        settings = GenerationSettings(temperature=0.7, top_p=0.9, max_new_tokens=self.cfg.response_length, seed=self.cfg.seed + self._answered)
        self._answered += len(conversations)
        return generate_batch(self.side, conversations, settings, batch_size=max(1, len(conversations)))

    @torch.no_grad()
    def prefers_first(self, question: str) -> tuple[bool, float]:
        """Multiple-choice judgement as in the paper: compare the probabilities of (A) and (B)."""
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(text + "The answer is: (", return_tensors="pt", add_special_tokens=False)
        with self.side.active() as model:
            logits = model(**ids.to(model.device)).logits[0, -1]
        a, b = (self.tokenizer.encode(letter, add_special_tokens=False)[0] for letter in ("A", "B"))
        probs = torch.softmax(logits[[a, b]].float(), dim=0)
        return bool(probs[0] >= probs[1]), float(probs[0])

    def close(self) -> None:
        self.side.base.close()


def judge_question(prompt: list[dict], principle: dict, first: str, second: str) -> str:
    asked = prompt[-1]["content"]
    return (
        f"Consider this question from a user: {asked}\n\n{principle['judge']}\n"
        f"Options:\n(A) {first}\n(B) {second}\n\nAnswer with A or B."
    )


def generate(cfg: RunConfig, ctx: RunContext) -> list[dict] | None:
    """Original -> critique -> revision for every prompt. Returns None when cancelled."""
    folder = ctx.run_dir / "cai"
    folder.mkdir(exist_ok=True)
    done_file = folder / GENERATIONS
    if done_file.is_file():
        return [json.loads(line) for line in done_file.read_text().splitlines() if line.strip()]
    principles = load_constitution(cfg.constitution)
    prompts = train_prompts(cfg, ctx)  # held-out rows are never generated from or trained on
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    generator = Generator(cfg.model, cfg)
    records: list[dict] = []
    size = cfg.per_device_train_batch_size
    log_event(ctx, "generate", done=0, total=len(prompts), max_steps=len(prompts))
    for start in range(0, len(prompts), size):
        if cancel_requested(ctx):
            ctx.metrics.cancelled = True
            generator.close()
            return None
        batch = prompts[start : start + size]
        chosen = [rng.choice(principles) for _ in batch]
        originals = generator.reply(batch)
        critique_turns = [p + [{"role": "assistant", "content": o}, {"role": "user", "content": pr["critique"]}] for p, o, pr in zip(batch, originals, chosen)]
        critiques = generator.reply(critique_turns)
        revision_turns = [c + [{"role": "assistant", "content": k}, {"role": "user", "content": pr["revision"]}] for c, k, pr in zip(critique_turns, critiques, chosen)]
        revisions = generator.reply(revision_turns)
        for prompt, principle, original, critique, revision in zip(batch, chosen, originals, critiques, revisions):
            records.append({"prompt": prompt, "principle": principle["name"], "original": original, "critique": critique, "revision": revision,
                            "critique_request": principle["critique"], "revision_request": principle["revision"], "judge_request": principle["judge"]})
        log_event(ctx, "generate", done=len(records), total=len(prompts), step=len(records), max_steps=len(prompts),
                  **{"cai/revised_differs": sum(r["revision"] != r["original"] for r in records) / len(records)})
    generator.close()
    del generator
    _write(done_file, records)
    return records


def judge(cfg: RunConfig, ctx: RunContext, records: list[dict]) -> list[dict]:
    """AI feedback: for each prompt, which of (original, revision) is better under its principle."""
    generator = Generator(cfg.judge_model or cfg.model, cfg)
    rng = random.Random(cfg.seed + 1)
    judged = []
    for index, record in enumerate(records, start=1):
        answers = [record["original"], record["revision"]]
        if not all(a.strip() for a in answers) or answers[0] == answers[1]:
            continue
        swap = rng.random() < 0.5  # random order: small models favour one position
        first, second = (answers[1], answers[0]) if swap else (answers[0], answers[1])
        question = judge_question(record["prompt"], {"judge": record["judge_request"]}, first, second)
        picks_first, p_first = generator.prefers_first(question)
        better_is_revision = picks_first == swap
        judged.append({**record, "judge_question": question, "judge_choice": "A" if picks_first else "B", "p_A": round(p_first, 4),
                       "chosen": record["revision"] if better_is_revision else record["original"],
                       "rejected": record["original"] if better_is_revision else record["revision"]})
        if cancel_requested(ctx):
            ctx.metrics.cancelled = True
            break
        log_event(ctx, "judge", done=index, total=len(records), step=index, max_steps=len(records))
    return judged


def save_datasets(ctx: RunContext, records: list[dict], judged: list[dict] | None) -> dict[str, Path]:
    """Write every intermediate to cai/ and save each as a dataset version the Data tab lists."""
    from ..data import load_dataset_file
    from ..data.versions import save_version

    folder = ctx.run_dir / "cai"
    files = {
        "transcripts": _write(folder / "cai_transcripts.jsonl", ({"messages": r["prompt"] + [
            {"role": "assistant", "content": r["original"] or "(empty)"},
            {"role": "user", "content": r["critique_request"]},
            {"role": "assistant", "content": r["critique"] or "(empty)"},
            {"role": "user", "content": r["revision_request"]},
            {"role": "assistant", "content": r["revision"] or "(empty)"},
        ], "principle": r["principle"]} for r in records)),
        "revisions": _write(folder / "cai_revisions.jsonl", ({"messages": r["prompt"] + [{"role": "assistant", "content": r["revision"]}]} for r in records if r["revision"].strip())),
    }
    if judged is not None:
        files["judgements"] = _write(folder / "cai_judgements.jsonl", ({"messages": [{"role": "user", "content": j["judge_question"]}, {"role": "assistant", "content": f"({j['judge_choice']})"}], "p_A": j["p_A"]} for j in judged))
        files["preferences"] = _write(folder / "cai_preferences.jsonl", ({"prompt": j["prompt"], "chosen": j["chosen"], "rejected": j["rejected"]} for j in judged))
    for name, path in files.items():
        try:
            loaded = load_dataset_file(path)
            version = save_version(
                f"cai-{name}-{ctx.run_dir.name}", loaded.conversations, [], loaded.format, sources=[path], filters=[],
                counts={"rows": len(loaded.rows)}, extra={"produced_by": {"run": ctx.run_dir.name, "method": "constitutional", "intermediate": name}},
            )
            ctx.log(f"CAI {name}: {path} (dataset version {version})")
        except StudioError as err:  # e.g. an empty set: the file in cai/ still holds it
            ctx.log(f"CAI {name}: {path} (not saved as a dataset version: {err})")
    return files


def run(cfg: RunConfig, ctx: RunContext) -> dict:
    from dataclasses import replace

    from . import dpo, sft

    resume = (ctx.run_dir / "stages").is_dir() or ctx.resume_from is not None
    records = generate(cfg, ctx)
    if records is None:
        return {"global_step": 0}
    final: dict = {
        "cai/prompts": len(records),
        "cai/revised_differs": sum(r["revision"] != r["original"] for r in records) / max(len(records), 1),
    }
    judged = judge(cfg, ctx, records) if cfg.cai_mode in ("rl", "both") else None
    if ctx.metrics.cancelled:
        return {**final, "global_step": 0}
    files = save_datasets(ctx, records, judged)
    try:
        folder = None
        if cfg.cai_mode in ("sl", "both"):
            if not any(r["revision"].strip() for r in records):
                raise StudioError("every revision came out empty, so there is nothing to train on.", hint="Raise response_length or use a larger model.")
            folder, metrics = run_stage(ctx, "sft", replace(cfg, method="lora", data=str(files["revisions"])), sft.run, resume=resume)
            final.update({f"sft/{k}": v for k, v in metrics.items()})
        if cfg.cai_mode in ("rl", "both"):
            if not judged:
                raise StudioError("no AI preference pairs (every original and revision were identical or empty).", hint="Raise response_length or use a larger model.")
            init = str(folder / "adapter") if folder is not None else None
            runner = lambda c, stage_ctx: dpo.run(c, stage_ctx, init_adapter=init)  # noqa: E731
            folder, metrics = run_stage(ctx, "dpo", replace(cfg, method="dpo", data=str(files["preferences"])), runner, resume=resume)
            final.update({f"dpo/{k}": v for k, v in metrics.items()})
            final["cai/ai_pairs"] = len(judged)
            final["cai/judge_prefers_revision"] = sum(j["chosen"] == j["revision"] for j in judged) / len(judged)
    except StageCancelled as cancelled:
        return {**final, **cancelled.final, "global_step": cancelled.final.get("global_step", 0)}
    copy_tree(folder / "adapter", ctx.run_dir / "adapter")
    final["global_step"] = final.get("dpo/global_step", final.get("sft/global_step", 0))
    return final


def _write(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)
    return path
