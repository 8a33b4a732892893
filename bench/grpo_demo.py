"""GRPO demo (issue 19): teach the embedded model JSON-shaped answers by reward alone.

No answer is ever shown to the model: the prompts (assets/demo/grpo_prompts.jsonl, the demo
questions with a one-line format instruction) go through `method: grpo` with two rewards, a strict
`json_valid` with a JSON Schema ({"topic", "answer"} strings) and a format `regex`. Before and after,
the same two rewards score the model's answers to the 10 held-out questions
(assets/demo/heldout_prompts.json, never trained on): greedy, and SAMPLES sampled answers each at
temperature 1. The "format reward" is their mean (1 = valid JSON with both keys and the regex's shape).

    .venv/bin/python bench/grpo_demo.py            # CPU, writes bench/results/grpo_demo.json
    .venv/bin/python bench/grpo_demo.py --probe    # base-model rates only (choosing the prompt)

The training run is the studio's own CLI (`python -m studio train run.yaml`) in a subprocess; its
wall time and CPU seconds (getrusage of the child) are recorded with the load average, since a
shared box makes wall time depend on whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PROMPTS = REPO / "assets" / "demo" / "grpo_prompts.jsonl"
HELDOUT = REPO / "assets" / "demo" / "heldout_prompts.json"
OUT = REPO / "bench" / "results" / "grpo_demo.json"
SAMPLES = 4
INSTRUCTION = 'Reply with only a JSON object with two keys, "topic" and "answer".'
EXAMPLE = 'Respond with JSON only. Example: {"topic": "geography", "answer": "Paris"}'
# How a question is asked (the same before training, in training and after); --probe compares them.
VARIANTS = {
    "instruction": lambda q: [{"role": "user", "content": f"{q}\n{INSTRUCTION}"}],  # no values to copy
    "example": lambda q: [{"role": "user", "content": f"{q}\n{EXAMPLE}"}],
    "system": lambda q: [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": q}],
}
VARIANT = "instruction"  # both measured (bench/results/grpo_demo.json); "example" got copied verbatim by the tuned model
SCHEMA = {"type": "object", "required": ["topic", "answer"], "properties": {"topic": {"type": "string"}, "answer": {"type": "string"}}}
# The target is the first two (their mean is the "format reward"); the third only opens the way: at
# the start a sampled answer opens with a brace more often than it is valid JSON, so the group
# advantage has something to see (bench/results/grpo_demo.json has the base rates).
REWARDS = [
    {"type": "json_valid", "schema": SCHEMA, "name": "json_schema", "weight": 1.0},
    {"type": "regex", "pattern": r'^\s*\{.*"answer"\s*:.*\}\s*$', "name": "format", "weight": 1.0},
    {"type": "regex", "pattern": r"^\s*\{", "name": "opens_brace", "weight": 0.5},
]
TARGET = ("json_schema", "format")
# the recipe timed on 2 idle cores (bench/results/grpo_demo.json): 20 steps, kl_coef 0 (no reference pass)
SETTINGS = dict(model="embedded", method="grpo", gpus="cpu", max_steps=20, learning_rate=5.0e-4, per_device_train_batch_size=8, gradient_accumulation_steps=2,
                num_generations=4, response_length=32, max_length=160, kl_coef=0.0, lora_r=16, lora_alpha=32, logging_steps=1, save_steps=1000, seed=0)


def prompt_messages(question: str) -> list[dict]:
    return VARIANTS[VARIANT](question)


def write_prompts() -> None:
    """The demo questions (assets/demo/json_answers.jsonl) as prompt-only rows: no answers given."""
    rows = [json.loads(line) for line in (REPO / "assets" / "demo" / "json_answers.jsonl").read_text().splitlines() if line.strip()]
    heldout = set(json.loads(HELDOUT.read_text()))
    PROMPTS.write_text("".join(json.dumps({"prompt": prompt_messages(r["instruction"])}) + "\n" for r in rows if r["instruction"] not in heldout))


def format_scores(model, tokenizer, questions: list[str], *, sample: bool) -> dict:
    import torch

    from studio.rewards import build_reward_funcs

    funcs, weights, names = build_reward_funcs(REWARDS)
    texts = [tokenizer.apply_chat_template(prompt_messages(q), tokenize=False, add_generation_prompt=True) for q in questions]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    torch.manual_seed(1234)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=SETTINGS["response_length"], do_sample=sample, temperature=1.0 if sample else None, top_p=None, top_k=None,
                             num_return_sequences=SAMPLES if sample else 1, pad_token_id=tokenizer.pad_token_id)
    answers = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    prompts = [[{"role": "user", "content": q}] for q in questions for _ in range(SAMPLES if sample else 1)]
    per = {name: func(prompts, answers) for name, func in zip(names, funcs)}
    means = {name: round(sum(values) / len(values), 4) for name, values in per.items()}
    means["format_reward"] = round(sum(means[n] for n in TARGET) / len(TARGET), 4)
    return {"n": len(answers), **means, "examples": answers[:3]}


def evaluate(adapter: Path | None) -> dict:
    from studio import models
    from studio.methods.common import prepare_tokenizer

    resolved = models.resolve("embedded")
    tokenizer = prepare_tokenizer(resolved)
    tokenizer.padding_side = "left"
    model = models.load_causal_lm(resolved)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    questions = json.loads(HELDOUT.read_text())
    return {"greedy": format_scores(model, tokenizer, questions, sample=False), "sampled": format_scores(model, tokenizer, questions, sample=True)}


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train(home: Path, settings: dict) -> dict:
    import yaml

    config = home / "grpo_demo.yaml"
    config.write_text(yaml.safe_dump({**settings, "data": str(PROMPTS), "rewards": REWARDS}, sort_keys=False))
    command = [sys.executable, "-m", "studio", "train", str(config)]
    started, cpu_before = time.time(), child_cpu_seconds()
    from studio.paths import models_dir

    env = {**os.environ, "STUDIO_HOME": str(home), "STUDIO_MODELS_DIR": str(models_dir())}  # reuse the converted embedded model
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall, cpu = time.time() - started, child_cpu_seconds() - cpu_before
    if result.returncode != 0:
        raise SystemExit(f"training failed:\n{result.stderr[-3000:]}")
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "reward" in r]
    curve = [{"step": r["step"], "reward": round(r["reward"], 3), **{k.split("/")[1]: round(v, 3) for k, v in r.items() if k.startswith("rewards/") and k.endswith("/mean")},
              "kl": round(r["kl"], 4) if isinstance(r.get("kl"), (int, float)) else None, "mean_length": r.get("completions/mean_length")} for r in steps]
    return {"run_dir": str(run_dir), "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "config": yaml.safe_load(config.read_text()),
            "curve": curve, "command": f"STUDIO_HOME={home} python {' '.join(command[1:])}", "adapter": str(run_dir / "adapter")}


def main() -> None:
    global VARIANT
    parser = argparse.ArgumentParser()
    parser.add_argument("--probe", action="store_true", help="only the base model's format rates")
    parser.add_argument("--steps", type=int, default=SETTINGS["max_steps"])
    parser.add_argument("--lr", type=float, default=SETTINGS["learning_rate"])
    parser.add_argument("--kl", type=float, default=SETTINGS["kl_coef"], help="kl_coef (0: no reference pass, TRL's default beta)")
    parser.add_argument("--gpu", action="store_true", help="train on the GPU (recipe search); the demo itself is CPU")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--variant", default=VARIANT, choices=list(VARIANTS))
    args = parser.parse_args()
    if args.probe:
        for VARIANT in VARIANTS:
            print("probe", VARIANT, json.dumps(evaluate(None)), flush=True)
        return
    VARIANT = args.variant
    write_prompts()
    base = evaluate(None)
    print("base", json.dumps(base), flush=True)
    settings = {**SETTINGS, "max_steps": args.steps, "learning_rate": args.lr, "kl_coef": args.kl, "gpus": "" if args.gpu else "cpu"}
    with tempfile.TemporaryDirectory() as tmp:
        run = train(Path(tmp), settings)
        tuned = evaluate(Path(run["adapter"]))
    print("tuned", json.dumps(tuned), flush=True)
    result = {
        "what": "GRPO on the embedded SmolLM2-135M-Instruct (LoRA) with rewards only (json_valid + schema, format regex); format reward on 10 held-out questions",
        "command": " ".join([".venv/bin/python", "bench/grpo_demo.py", *sys.argv[1:]]),
        "train_command": run["command"],
        "base": base, "tuned": tuned,
        "train_wall_seconds": run["wall_seconds"], "train_cpu_seconds": run["cpu_seconds"],
        "reward_curve": run["curve"], "config": run["config"],
        "machine": {"cpus": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch_threads": torch_threads(),
                    "platform": platform.platform(), "processor": platform.processor(), "load_average_at_end": os.getloadavg()},
        "prompt_variant": VARIANT, "held_out_questions": len(json.loads(HELDOUT.read_text())), "samples_per_question": SAMPLES,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"format reward (held-out, sampled): {base['sampled']['format_reward']} -> {tuned['sampled']['format_reward']}; "
          f"greedy: {base['greedy']['format_reward']} -> {tuned['greedy']['format_reward']}; training {run['wall_seconds']} s wall, {run['cpu_seconds']} CPU-s")


if __name__ == "__main__":
    main()
