"""Chat side by side on a GPU: the old interleaved decoder against studio.engine, in one process.

The hobbyist's case: a 24 GB card (the process is capped at 22.49 GiB), an 8B-shaped Llama
(Llama-3.1-8B's layer sizes, random weights: none can be downloaded) with a rank-16 LoRA adapter on
every linear layer (random B, so tuned answers differ from base ones), the SmolLM2 tokenizer and its
chat template, and real chat prompts (assets/demo questions and the probe suite's items).

N browser sessions each ask one question and stream base and tuned answers side by side
(ChatEngine.stream_pair, 128 new tokens, sampled at temperature 0.7 so that answers run their length).
BEFORE is studio/chat.py as of commit 246238d (a batch of 1 per side and step, the adapter switched
between sides), AFTER is today's ChatEngine on studio.engine (continuous batching, base and tuned rows
in one forward through PEFT's adapter_names). Both see the same weights, prompts and settings.

    python bench/chat_engine_gpu.py --tokenizer .wheels/tok49k --out $OUT/chat_engine_gpu.json

BEFORE's source is bench/_chat_before.py, written from git when it is missing (the device copy has no
.git):  git show 246238d:studio/chat.py | sed 's/^from \\. import/from studio import/; s/^from \\.errors/from studio.errors/' > bench/_chat_before.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BEFORE_COMMIT = "246238d"
BEFORE_FILE = REPO / "bench" / "_chat_before.py"
GIB = 1024**3
LLAMA_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False)
TINY = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)  # --tiny: a CPU smoke run


def before_module():
    if not BEFORE_FILE.exists():
        source = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:studio/chat.py"], cwd=REPO, check=True, capture_output=True, text=True).stdout
        BEFORE_FILE.write_text(source.replace("from . import", "from studio import").replace("from .errors", "from studio.errors"))
    spec = importlib.util.spec_from_file_location("chat_before", BEFORE_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["chat_before"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def prompts() -> list[str]:
    questions = [json.loads(line)["instruction"] for line in (REPO / "assets/demo/json_answers.jsonl").read_text().splitlines() if line.strip()]
    return questions


def build(tokenizer_dir: str, rank: int, shape: dict, device: str):
    """The model, tokenizer and an adapter folder; `models.load_*` are pointed at them for both engines."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **shape)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # built in bf16 directly: an fp32 8B would not fit the 22.49 GiB cap
    with torch.device(device):
        model = LlamaForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    folder = Path("/tmp/chat_engine_gpu_adapter")
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM"))
    peft_model.save_pretrained(str(folder))
    base = peft_model.unload()  # the plain model again; each engine loads the adapter from the folder
    return base, tokenizer, folder


def session(engine_cls, base_side, tuned_side, question: str, settings, start: threading.Event, out: list, tokenizer):
    engine = engine_cls(base_side, tuned_side)
    start.wait()
    began = time.perf_counter()
    first = [None, None]
    last = [began, began]
    texts = ("", "")
    for texts in engine.stream_pair([{"role": "user", "content": question}], settings):
        now = time.perf_counter()
        for side in (0, 1):
            if texts[side] and first[side] is None:
                first[side] = now - began
            if texts[side]:
                last[side] = now
    tokens = [len(tokenizer.encode(t, add_special_tokens=False)) for t in texts]
    out.append({side: {"first_token_s": first[i], "tokens": tokens[i], "answer_s": last[i] - began} for i, side in enumerate(("base", "tuned"))})


def measure(name, module, base_model, tokenizer, adapter_folder, questions, sessions: int, max_new_tokens: int) -> dict:
    import torch

    resolved = SimpleNamespace(display_name="llama-8b-shape (random)", path=Path("/tmp/llama-8b-shape"))
    base = module.LoadedBase(resolved) if name == "before" else module.engine.LoadedBase(resolved, tokenizer)
    base.ensure_adapter("tuned", adapter_folder)
    side_cls = module.Side if name == "before" else module.engine.Side
    base_side, tuned_side = side_cls(base, None, "base"), side_cls(base, "tuned", "tuned")
    settings_cls = module.GenerationSettings
    results = {}
    for label, count in (("warmup", 1), ("1_session", 1), (f"{sessions}_sessions", sessions)):
        settings = settings_cls(temperature=0.7, top_p=0.9, max_new_tokens=max_new_tokens, seed=1)
        out: list = []
        start = threading.Event()
        threads = [threading.Thread(target=session, args=(module.ChatEngine, base_side, tuned_side, questions[i % len(questions)], settings, start, out, tokenizer))
                   for i in range(count)]
        for thread in threads:
            thread.start()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        began = time.perf_counter()
        start.set()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        if label == "warmup":
            results["cold_first_token_s"] = out[0]["base"]["first_token_s"]
            continue
        row = {"sessions": count, "wall_s": round(wall, 2)}
        for side in ("base", "tuned"):
            firsts = sorted(o[side]["first_token_s"] for o in out)
            rates = [o[side]["tokens"] / o[side]["answer_s"] for o in out if o[side]["answer_s"] > 0]
            row[side] = {"first_token_p50_s": round(statistics.median(firsts), 3), "first_token_p95_s": round(firsts[min(len(firsts) - 1, int(0.95 * len(firsts)))], 3),
                         "tokens_per_s_per_answer_median": round(statistics.median(rates), 1), "tokens": sum(o[side]["tokens"] for o in out)}
        row["tokens_per_s_total"] = round((row["base"]["tokens"] + row["tuned"]["tokens"]) / wall, 1)
        results[label] = row
    results["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 2) if torch.cuda.is_available() else None
    base.model.unload()  # the LoRA layers out again (PeftModel.from_pretrained injected them into the shared weights)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", default=str(REPO / ".wheels/tok49k"))
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--memory-gib", type=float, default=float(os.environ.get("STUDIO_GPU_MEMORY_GIB", 22.49)))
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model on the CPU: checks the script, measures nothing")
    parser.add_argument("--out", default=str(REPO / "bench/results/chat_engine_gpu.json"))
    args = parser.parse_args()
    import torch

    if torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.memory_gib * GIB / total))
    before = before_module()
    from studio import chat, models

    base_model, tokenizer, adapter_folder = build(args.tokenizer, args.rank, TINY if args.tiny else LLAMA_8B, "cuda" if torch.cuda.is_available() else "cpu")
    # both engines load "the model" through studio.models: point those loaders at the in-memory weights
    models.load_causal_lm = lambda resolved, **_: base_model
    models.load_tokenizer = lambda resolved, **_: tokenizer
    questions = prompts()
    runs = {}
    for name, module in (("before", before), ("after", chat)):
        runs[name] = measure(name, module, base_model, tokenizer, adapter_folder, questions, args.sessions, args.max_new_tokens)
        print(name, json.dumps(runs[name]), flush=True)
    summary = {}
    for label in ("1_session", f"{args.sessions}_sessions"):
        for side in ("base", "tuned"):
            for key in ("first_token_p50_s", "first_token_p95_s", "tokens_per_s_per_answer_median"):
                b, a = runs["before"][label][side][key], runs["after"][label][side][key]
                summary[f"{label}.{side}.{key}"] = {"before": b, "after": a, "after_over_before": round(a / b, 2) if b else None}
        b, a = runs["before"][label]["tokens_per_s_total"], runs["after"][label]["tokens_per_s_total"]
        summary[f"{label}.tokens_per_s_total"] = {"before": b, "after": a, "after_over_before": round(a / b, 2) if b else None}
    result = {"command": "python " + " ".join(["bench/chat_engine_gpu.py", *sys.argv[1:]]),
              "what": __doc__.split("\n\n")[0], "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "memory_cap_gib": args.memory_gib,
              "model": {"shape": "tiny (smoke run)" if args.tiny else "Llama-3.1-8B layer sizes, random init, bf16", "vocab": len(tokenizer), "lora_rank": args.rank},
              "sessions": args.sessions, "max_new_tokens": args.max_new_tokens, "before_commit": BEFORE_COMMIT,
              "versions": {"torch": torch.__version__, **{m: __import__(m).__version__ for m in ("transformers", "peft")}},
              "summary": summary, "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
