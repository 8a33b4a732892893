"""GPU bench on real-length data, through `python -m studio train`, with plain TRL in the same job.

    python bench/realdata_bench.py --parts lora8b,dpo8b,qlora8b --out gpu_realdata.json

Models are random-initialised real architectures (assets/architectures/Llama-3-8B.json) saved once
as local HF folders: vocab 49,152 with the embedded model's tokenizer (STUDIO_GPU_TOKENIZER_DIR, a
copy of its tokenizer files), and vocab 128,256 (Llama-3's) with a word-level tokenizer. The data are
English words with row lengths drawn to follow public sets (`alpaca_rows`, `preference_pairs`). The
24 GB card is emulated: every studio process caps itself with `set_per_process_memory_fraction` at
22.49 GiB and gets STUDIO_GPU_MEMORY_GIB=22.49 (`--as-studio` below); the TRL baselines run uncapped
(their defaults do not fit a 24 GB card at these lengths), as plain scripts that follow TRL's docs.

Each studio run is one `python -m studio train` process with its own STUDIO_HOME: "cold" is the first
on this machine with an empty home (no compiled kernels), "warm" the second with the same home.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CAP_GIB = 22.49  # an RTX 4090's 23.99 GiB less the CUDA context
WORK = Path(os.environ.get("BENCH_WORK", "/tmp/studio-bench"))
TINY = os.environ.get("BENCH_TINY") == "1"  # CPU dry run of the plumbing: a toy model, a few rows
GIB = 1024**3
DEADLINE = time.time() + float(os.environ.get("BENCH_SECONDS", 1e9))  # the device call's limit: no run starts that cannot end
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json", "special_tokens_map.json")

# ---------------------------------------------------------------- data with public-set lengths
WORDS = (
    "the of and to in is was for that with as on by at from his her they this which be are an have not one "
    "had were but all their there been has more when will would who so no she other its may these can only "
    "about out into time some two than first then them also new after like very over people where most could "
    "between many years before through way even because same back made year well any such work good world "
    "under part still might long great never each small found own place while again three state high number "
    "since against water government however both life during house must without power another important "
    "children family system early school often water group country problem point question answer result "
    "example reason method model data value change level figure table section study analysis process rate "
    "energy market price cost growth health light music history language science history nature city road "
    "write explain describe list summarize compare translate classify generate rewrite identify create suggest"
).split()


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, words)))


def lognormal(rng: random.Random, median: float, sigma: float, low: int, high: int) -> int:
    return int(min(high, max(low, rng.lognormvariate(math.log(median), sigma))))


def alpaca_rows(count: int, seed: int = 0) -> list[dict]:
    """Alpaca-style rows (instruction, optional input, output) with Alpaca-like lengths: short
    instructions (median 14 words), an input on 40% of rows (median 25), outputs log-normal with a
    long tail (median 60 words, up to 1,200): ~160 tokens per row with a chat template, as in the
    52k Alpaca set (22 MB of JSON, ~420 characters a row). Log-normal fits, not the set itself."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        row = {"instruction": text(rng, lognormal(rng, 14, 0.5, 3, 80)), "input": "",
               "output": text(rng, lognormal(rng, 60, 0.9, 1, 1200))}
        if rng.random() < 0.4:
            row["input"] = text(rng, lognormal(rng, 25, 0.8, 2, 400))
        rows.append(row)
    return rows


def preference_pairs(count: int, seed: int = 1) -> list[dict]:
    """Preference pairs with UltraFeedback/HH-like lengths: prompts median 60 words (long tail to
    1,500), chosen answers median 180 words, rejected median 150 (each log-normal), so a 1,024-token
    window truncates the longest few. Log-normal fits, not the sets themselves."""
    rng = random.Random(seed)
    return [{"prompt": text(rng, lognormal(rng, 60, 1.0, 4, 1500)),
             "chosen": text(rng, lognormal(rng, 180, 0.7, 5, 1500)),
             "rejected": text(rng, lognormal(rng, 150, 0.8, 5, 1500))} for _ in range(count)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# ---------------------------------------------------------------- models
def word_tokenizer(folder: Path, vocab_size: int, chat_template: str) -> None:
    """A word-level tokenizer of `vocab_size` entries (the words above, then fillers), chat-templated."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<|im_start|>", "<|im_end|>", "<pad>"]
    names = specials + ["system", "user", "assistant"] + sorted(set(WORDS))
    vocab = {name: i for i, name in enumerate(names)}
    vocab.update({f"filler{i}": i for i in range(len(vocab), vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<pad>")
    fast.chat_template = chat_template
    fast.save_pretrained(folder)


def model_folder(vocab: int) -> Path:
    """A random-initialised Llama-3-8B-shaped model saved as a local HF folder (built once per machine)."""
    folder = WORK / f"llama3-8b-random-{vocab // 1000}k"
    if (folder / "config.json").is_file() and ((folder / "model.safetensors.index.json").is_file() or (folder / "model.safetensors").is_file()):
        return folder
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tokenizer_dir = Path(os.environ.get("STUDIO_GPU_TOKENIZER_DIR", ""))
    if not (tokenizer_dir / "tokenizer.json").is_file():
        sys.exit("set STUDIO_GPU_TOKENIZER_DIR to a copy of the embedded model's tokenizer files")
    spec = json.loads((REPO / "assets" / "architectures" / "Llama-3-8B.json").read_text())
    spec.pop("architectures", None)
    model_type = spec.pop("model_type")
    spec.update(vocab_size=vocab, max_position_embeddings=131072, rope_theta=500000.0, bos_token_id=1, eos_token_id=2, pad_token_id=None)
    if TINY:
        spec.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16)
    folder.mkdir(parents=True, exist_ok=True)
    if vocab == 49152:
        for name in TOKENIZER_FILES:
            if (tokenizer_dir / name).is_file():
                shutil.copy(tokenizer_dir / name, folder / name)
    else:
        word_tokenizer(folder, vocab, (tokenizer_dir / "chat_template.jinja").read_text())
    config = AutoConfig.for_model(model_type, **spec)
    torch.manual_seed(0)
    started = time.time()
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder, max_shard_size="5GB")
    (folder / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    del model
    log(f"built {folder.name} in {time.time() - started:.0f}s")
    return folder


# ---------------------------------------------------------------- runs
def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def as_studio(argv: list[str]) -> None:
    """`python -m studio ARGV` in this process, capped to the emulated 24 GB card. The studio's own
    process environment (studio.procenv) goes first, as `python -m studio` does it."""
    import runpy

    from studio import procenv

    procenv.apply()
    import torch

    if torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory / GIB
        torch.cuda.set_per_process_memory_fraction(CAP_GIB / total)
    sys.argv = ["studio", *argv]
    runpy.run_module("studio", run_name="__main__", alter_sys=True)


def studio_run(name: str, config: dict, home: Path, timeout: float) -> dict:
    """One `python -m studio train` process; its wall time, first-step time, rates and peak memory."""
    import yaml

    run_yaml = WORK / "configs" / f"{name}.yaml"
    run_yaml.parent.mkdir(parents=True, exist_ok=True)
    run_yaml.write_text(yaml.safe_dump({"name": name, "save_steps": 100000, "logging_steps": 1, "eval_fraction": 0.0, **config}))
    env = {**os.environ, "STUDIO_HOME": str(home), "STUDIO_GPU_MEMORY_GIB": str(CAP_GIB), "PYTHONUNBUFFERED": "1"}
    timeout = min(timeout, DEADLINE - time.time())
    if timeout < 30:
        return {"ok": False, "exit": "not run: out of time"}
    started = time.time()
    try:
        proc = subprocess.run([sys.executable, __file__, "--as-studio", "train", str(run_yaml)], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = "timeout", exc.stdout or "", exc.stderr or ""
        out, err = (x.decode() if isinstance(x, bytes) else x for x in (out, err))
    wall = time.time() - started
    result = {"ok": code == 0, "exit": code, "wall_s": round(wall, 1)}
    runs = sorted((home / "runs").glob("*"), key=lambda p: p.stat().st_mtime)
    if not runs:
        return {**result, "stderr_tail": err[-3000:]}
    run_dir = runs[-1]
    result["run_dir"] = run_dir.name
    log_text = (run_dir / "log.txt").read_text() if (run_dir / "log.txt").is_file() else ""
    result["log_lines"] = [line.split(" ", 3)[-1][:400] for line in log_text.splitlines()
                           if any(k in line for k in ("fast path", "liger", "packing", "varlen", "error", "ERROR", "Out of", "WARNING"))][:12]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()] if (run_dir / "metrics.jsonl").is_file() else []
    steps = [r for r in rows if "loss" in r]
    loaded = next((stamp(line) for line in log_text.splitlines() if "fast path:" in line or "trainable parameters" in line), None)
    if steps:
        result["steps"] = steps[-1]["step"]
        result["final_loss"] = steps[-1]["loss"]
        result["peak_reserved_gib"] = max((r.get("gpu_peak_gib") or 0) for r in steps)
        if loaded:
            result["first_step_after_model_load_s"] = round(steps[0]["time"] - loaded, 1)
        result["step_times_s"] = [round(b["time"] - a["time"], 2) for a, b in zip(steps, steps[1:])]
        if len(steps) > 3 and steps[-1].get("num_tokens") is not None:
            k = 2  # steady: from the third logged step on
            result["steady_tokens_per_s"] = round((steps[-1]["num_tokens"] - steps[k]["num_tokens"]) / (steps[-1]["time"] - steps[k]["time"]), 1)
        if len(steps) > 1:
            result["after_first_step_s"] = round(steps[-1]["time"] - steps[0]["time"], 1)
    if not result["ok"]:
        result["stderr_tail"] = err[-3000:]
    return result


def stamp(line: str) -> float | None:
    """The time of a log.txt line ('2026-11-30 12:00:00,123 INFO ...')."""
    try:
        return time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000
    except (ValueError, IndexError):
        return None


def baseline_run(kind: str, spec: dict, timeout: float) -> dict:
    """The TRL baseline in its own process (uncapped), `--baseline KIND` below."""
    out = WORK / f"baseline-{kind}-{spec['tag']}.json"
    out.unlink(missing_ok=True)
    timeout = min(timeout, DEADLINE - time.time())
    if timeout < 30:
        return {"ok": False, "exit": "not run: out of time"}
    started = time.time()
    try:
        proc = subprocess.run([sys.executable, __file__, "--baseline", kind, "--spec", json.dumps(spec), "--result", str(out)],
                              cwd=REPO, capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        code, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, err = "timeout", (exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr) or ""
    result = json.loads(out.read_text()) if out.is_file() else {}
    result.update(ok=code == 0 and bool(result), exit=code, wall_s=round(time.time() - started, 1))
    if not result["ok"]:
        result["stderr_tail"] = err[-3000:]
    return result


def run_baseline(kind: str, spec: dict, result_path: Path) -> None:
    """Plain TRL + PEFT as TRL's docs show it: the model by path, LoRA r16 all-linear, the config's
    defaults (bf16, gradient checkpointing, padded batches), the same rows and chat template."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback

    marks = []

    class Marks(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            marks.append((time.time(), 0, 0))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                marks.append((time.time(), state.global_step, logs.get("num_tokens", 0)))

    peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    rows = [json.loads(line) for line in Path(spec["data"]).read_text().splitlines()]
    common = dict(output_dir=str(WORK / f"trl-{kind}"), per_device_train_batch_size=spec["batch"], max_length=spec["max_length"],
                  num_train_epochs=1, logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True,
                  **({"bf16": False, "use_cpu": True} if not torch.cuda.is_available() else {}))  # CPU: the dry run only
    if kind == "sft":
        from trl import SFTConfig, SFTTrainer

        def user(row):
            return row["instruction"] if not row["input"].strip() else f"{row['instruction']}\n\n{row['input']}"

        data = Dataset.from_list([{"prompt": [{"role": "user", "content": user(r)}], "completion": [{"role": "assistant", "content": r["output"]}]} for r in rows])
        trainer = SFTTrainer(model=spec["model"], args=SFTConfig(learning_rate=2e-4, **common), train_dataset=data, peft_config=peft_config, callbacks=[Marks()])
    else:
        from trl import DPOConfig, DPOTrainer

        data = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}], "chosen": [{"role": "assistant", "content": r["chosen"]}],
                                   "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])
        trainer = DPOTrainer(model=spec["model"], args=DPOConfig(learning_rate=5e-6, **common), train_dataset=data, peft_config=peft_config, callbacks=[Marks()])
    loaded = time.time()
    output = trainer.train()
    result = {"train_runtime_s": round(output.metrics.get("train_runtime", 0), 1), "steps": trainer.state.global_step,
              "first_step_after_train_begin_s": round(marks[1][0] - marks[0][0], 1) if len(marks) > 1 else None,
              "first_step_after_model_load_s": round(marks[1][0] - loaded, 1) if len(marks) > 1 else None,
              "step_times_s": [round(b[0] - a[0], 2) for a, b in zip(marks[1:], marks[2:])],
              "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / GIB, 2) if torch.cuda.is_available() else 0.0}
    if len(marks) > 4 and marks[-1][2]:
        result["steady_tokens_per_s"] = round((marks[-1][2] - marks[3][2]) / (marks[-1][0] - marks[3][0]), 1)
    if len(marks) > 2:
        result["after_first_step_s"] = round(marks[-1][0] - marks[1][0], 1)
    result_path.write_text(json.dumps(result))


def stalls(step_times: list[float]) -> dict:
    """Steps that took more than twice the median: compiles, allocator retries."""
    if not step_times:
        return {}
    ordered = sorted(step_times)
    median = ordered[len(ordered) // 2]
    slow = [(i + 2, t) for i, t in enumerate(step_times) if t > 2 * median]
    return {"median_step_s": median, "slow_steps": slow[:20]}


# ---------------------------------------------------------------- parts
def part_lora8b(result: dict) -> None:
    """8B LoRA, ~1,000 Alpaca-length rows, one epoch at max_length 2048: studio cold then warm, then TRL."""
    rows = alpaca_rows(40 if TINY else 1000)
    data = write_jsonl(WORK / "data" / "alpaca.jsonl", rows)
    model = model_folder(49152)
    entry = result.setdefault("lora8b", {"rows": len(rows), "max_length": 2048, "batch": 4})
    home = WORK / "home-lora"
    shutil.rmtree(home, ignore_errors=True)
    config = dict(model=str(model), method="lora", data=str(data), max_length=2048, per_device_train_batch_size=4, num_train_epochs=1)
    for label in ("studio_cold", "studio_warm"):
        log(f"lora8b {label}")
        entry[label] = studio_run(f"lora8b-{label}", config, home, timeout=420)
        log(f"  {summary(entry[label])}")
        save(result)
    log("lora8b TRL baseline")
    entry["trl"] = baseline_run("sft", {"tag": "lora", "model": str(model), "data": str(data), "batch": 4, "max_length": 2048}, timeout=420)
    log(f"  {summary(entry['trl'])}")
    for label in ("studio_cold", "studio_warm"):
        if entry[label].get("ok") and entry["trl"].get("ok"):
            entry[label]["epoch_speedup"] = round(entry["trl"]["wall_s"] / entry[label]["wall_s"], 3)
            if entry[label].get("steady_tokens_per_s") and entry["trl"].get("steady_tokens_per_s"):
                entry[label]["steady_speedup"] = round(entry[label]["steady_tokens_per_s"] / entry["trl"]["steady_tokens_per_s"], 3)
    save(result)


def part_dpo8b(result: dict) -> None:
    """8B DPO (LoRA, reference = adapter off), 300 pairs, max_length 1024, 4 pairs a step, vocab 49k and 128k."""
    pairs = preference_pairs(8 if TINY else int(os.environ.get("BENCH_DPO_PAIRS", 300)))
    data = write_jsonl(WORK / "data" / "pairs.jsonl", pairs)
    vocabs = [int(v) for v in os.environ.get("BENCH_DPO_VOCABS", "49152,128256").split(",")]
    for vocab in vocabs:
        model = model_folder(vocab)
        key = f"dpo8b_{vocab // 1000}k"
        entry = result.setdefault(key, {"pairs": len(pairs), "max_length": 1024, "batch_pairs": 4, "vocab": vocab})
        home = WORK / f"home-dpo-{vocab}"
        shutil.rmtree(home, ignore_errors=True)
        log(f"{key} studio")
        config = dict(model=str(model), method="dpo", data=str(data), max_length=1024, per_device_train_batch_size=4, num_train_epochs=1, learning_rate=5e-6)
        entry["studio"] = studio_run(key, config, home, timeout=400)
        entry["studio"].update(stalls(entry["studio"].get("step_times_s", [])))
        log(f"  {summary(entry['studio'])}")
        save(result)
        log(f"{key} TRL DPOTrainer")
        entry["trl"] = baseline_run("dpo", {"tag": f"dpo{vocab}", "model": str(model), "data": str(data), "batch": 4, "max_length": 1024}, timeout=400)
        entry["trl"].update(stalls(entry["trl"].get("step_times_s", [])))
        log(f"  {summary(entry['trl'])}")
        for side in ("studio", "trl"):
            run = entry[side]
            if run.get("ok") and run.get("after_first_step_s") and run.get("steps", 0) > 1:
                run["pairs_per_s"] = round((run["steps"] - 1) * 4 / run["after_first_step_s"], 3)  # whole epoch less the first step
        if entry["studio"].get("pairs_per_s") and entry["trl"].get("pairs_per_s"):
            entry["speedup"] = round(entry["studio"]["pairs_per_s"] / entry["trl"]["pairs_per_s"], 3)
            entry["epoch_speedup"] = round(entry["trl"]["wall_s"] / entry["studio"]["wall_s"], 3)
        save(result)


def long_row(tokenizer, length: int, answer_words: int = 400) -> tuple[dict, int, int]:
    """One instruction row of about `length` tokens (chat template included) whose answer ends inside
    the window. Returns (row, total tokens, answer tokens)."""
    rng = random.Random(length)
    answer = text(rng, answer_words)
    words = max(10, length)
    for _ in range(6):  # fit the document to the window: a few tokenizer passes
        document = text(random.Random(length + 1), words)
        messages = [{"role": "user", "content": document + "\n\nSummarize the text above."}, {"role": "assistant", "content": answer}]
        total = len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))
        if total <= length and total > length - 64:
            break
        words = max(10, int(words * (length - 32) / total))
    prompt = len(tokenizer.apply_chat_template(messages[:1], tokenize=True, add_generation_prompt=True, return_dict=False))
    return {"instruction": messages[0]["content"], "input": "", "output": answer}, total, total - prompt


def part_qlora8b(result: dict) -> None:
    """8B QLoRA, batch 1, one long row per run through `python -m studio train`: the longest that trains
    under the cap (one fresh process per length)."""
    from transformers import AutoTokenizer

    model = model_folder(49152)
    tokenizer = AutoTokenizer.from_pretrained(model)
    entry = result.setdefault("qlora8b_context", {"cap_gib": CAP_GIB, "runs": {}})
    plan = [int(x) for x in os.environ.get("BENCH_CONTEXTS", "81920,98304,90112").split(",")]
    deadline = min(DEADLINE, time.time() + float(os.environ.get("BENCH_CONTEXT_SECONDS", 480)))
    tried = set()
    while plan and time.time() < deadline - 60:
        length = plan.pop(0)
        if length in tried:
            continue
        tried.add(length)
        row, total, answer = long_row(tokenizer, 512 if TINY else length)
        data = write_jsonl(WORK / "data" / f"long-{length}.jsonl", [row])
        log(f"qlora8b context {length} (row: {total} tokens, answer {answer})")
        home = WORK / f"home-ctx-{length}"
        shutil.rmtree(home, ignore_errors=True)
        config = dict(model=str(model), method="qlora", data=str(data), max_length=length, per_device_train_batch_size=1, max_steps=1)
        run = studio_run(f"ctx{length}", config, home, timeout=max(60, deadline - time.time()))
        run.update(row_tokens=total, answer_tokens=answer, trained_tokens=answer if run.get("ok") and run.get("final_loss") is not None else 0)
        entry["runs"][str(length)] = run
        log(f"  {summary(run)}")
        ok = [int(k) for k, v in entry["runs"].items() if v.get("ok") and v.get("trained_tokens", 0) > 0]
        entry["max_context"] = max(ok) if ok else 0
        entry["trained_tokens"] = entry["runs"][str(entry["max_context"])]["trained_tokens"] if ok else 0
        if not run.get("ok") and not ok and length > 65536 and os.environ.get("BENCH_STEP_DOWN", "1") == "1":
            plan = [length - 8192] + plan  # step down until one fits
        save(result)


def summary(run: dict) -> str:
    keys = ("ok", "wall_s", "first_step_after_model_load_s", "steady_tokens_per_s", "pairs_per_s", "peak_reserved_gib", "steps", "final_loss")
    return json.dumps({k: run[k] for k in keys if k in run})


PARTS = {"lora8b": part_lora8b, "dpo8b": part_dpo8b, "qlora8b": part_qlora8b}
OUT: Path | None = None


def save(result: dict) -> None:
    result["summary"] = headline(result)
    if OUT:
        OUT.write_text(json.dumps(result, indent=2) + "\n")


def headline(result: dict) -> dict:
    """The keys issue 16 asks for."""
    lora = result.get("lora8b", {})
    return {
        "lora8b_epoch_speedup_cold": lora.get("studio_cold", {}).get("epoch_speedup"),
        "lora8b_first_step_s_cold": lora.get("studio_cold", {}).get("first_step_after_model_load_s"),
        "lora8b_epoch_speedup_warm": lora.get("studio_warm", {}).get("epoch_speedup"),
        "lora8b_steady_speedup": lora.get("studio_warm", {}).get("steady_speedup"),
        "dpo8b_speedup_49k": result.get("dpo8b_49k", {}).get("speedup"),
        "dpo8b_speedup_128k": result.get("dpo8b_128k", {}).get("speedup"),
        "dpo8b_peak_gib_49k": result.get("dpo8b_49k", {}).get("studio", {}).get("peak_reserved_gib"),
        "dpo8b_peak_gib_128k": result.get("dpo8b_128k", {}).get("studio", {}).get("peak_reserved_gib"),
        "qlora8b_max_context_24gb": result.get("qlora8b_context", {}).get("max_context"),
        "qlora8b_trained_tokens": result.get("qlora8b_context", {}).get("trained_tokens"),
    }


def merge(specs: list[str]) -> dict:
    """Part files (FILE, or FILE=KEY to file its context runs under KEY instead) -> one result: the
    context runs of every file with the same key are pooled and the longest that trained is recomputed."""
    merged: dict = {"command": [], "parts": []}
    for spec in specs:
        path, _, key = spec.partition("=")
        part = json.loads(Path(path).read_text())
        merged["parts"].append(spec)
        merged["command"] += [c for c in part.get("command", []) if c not in merged["command"]]
        merged["environment"] = part.get("environment", merged.get("environment"))
        for name, value in part.items():
            if name in ("command", "summary", "environment", "errors") or not isinstance(value, dict):
                continue
            target = merged.setdefault(key if key and name == "qlora8b_context" else name, {})
            for field, item in value.items():
                if field == "runs":
                    target.setdefault("runs", {}).update({k: {x: y for x, y in run.items() if x != "stderr_tail"} for k, run in item.items()})
                elif isinstance(item, dict):
                    target[field] = {x: y for x, y in item.items() if x != "stderr_tail"}
                else:
                    target[field] = item
    for name, entry in merged.items():
        if name.startswith("qlora8b_context") and "runs" in entry:
            ok = [int(k) for k, v in entry["runs"].items() if v.get("ok") and v.get("trained_tokens", 0) > 0]
            entry["max_context"] = max(ok) if ok else 0
            entry["trained_tokens"] = entry["runs"][str(max(ok))]["trained_tokens"] if ok else 0
            entry["failed"] = sorted(int(k) for k, v in entry["runs"].items() if not v.get("ok"))
    merged["summary"] = headline(merged)
    return {"summary": merged.pop("summary"), **merged}


def environment() -> dict:
    import importlib.metadata as md
    import platform

    import torch

    versions = {}
    for name in ("torch", "transformers", "trl", "peft", "bitsandbytes", "liger-kernel", "triton", "datasets"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "python": platform.python_version(), "versions": versions}


def main() -> None:
    global OUT
    if sys.argv[1:2] == ["--as-studio"]:
        return as_studio(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="lora8b,dpo8b,qlora8b")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu_realdata.json")
    parser.add_argument("--merge", nargs="+", help="merge part files (FILE or FILE=KEY) into --out")
    parser.add_argument("--build", type=int, help="only build the random model folder of this vocabulary size")
    parser.add_argument("--baseline", choices=["sft", "dpo"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.baseline:
        return run_baseline(opts.baseline, json.loads(opts.spec), opts.result)
    if opts.build:
        return print(model_folder(opts.build))
    if opts.merge:
        merged = merge(opts.merge)
        merged["merge_command"] = "python bench/realdata_bench.py " + " ".join(sys.argv[1:])
        opts.out.write_text(json.dumps(merged, indent=2) + "\n")
        return print(json.dumps(merged["summary"], indent=2))
    OUT = opts.out
    result = json.loads(OUT.read_text()) if OUT.is_file() else {}
    result.setdefault("command", []).append("python bench/realdata_bench.py " + " ".join(sys.argv[1:]))
    result["environment"] = environment()
    WORK.mkdir(parents=True, exist_ok=True)
    for name in opts.parts.split(","):
        log(f"part {name}")
        try:
            PARTS[name](result)
        except Exception as err:  # keep what the other parts measured
            import traceback

            traceback.print_exc()
            result.setdefault("errors", {})[name] = f"{type(err).__name__}: {err}"[:1000]
        save(result)
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
