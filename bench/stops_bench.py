"""Stops bench: do runs trained by the studio learn to END their answers?

Two parts, both written into bench/results/stops.json (each part replaces its own entry):

- render: for the chat templates the studio meets (the embedded SmolLM2 ChatML; TRL's training
  templates of Qwen2.5, Llama 3, Phi-3, Gemma; Qwen3's original template, which rewrites earlier
  turns), does every assistant turn's trained span (studio.data.render, what SFT trains) hold the
  token that ends the turn? `--label before` run against the tree before the fix records the bug.
- demo: trains the demo run (one LoRA epoch of assets/demo/json_answers.jsonl on the embedded model,
  as tests/conftest.py's trained_demo_run does; `--trainings N` of them, or `--home DIR` adding to the
  runs there; every run in it is measured), then greedy-answers the 10 held-out prompts (assets/demo/heldout_prompts.json) with the
  base and the tuned model through studio.engine (generate_batch, max_new_tokens 128) and counts the
  answers that end by a stop token before the limit. Then exports the f16 GGUF with an Ollama
  Modelfile (studio.export: its own llama.cpp check, 3 shortest eval prompts to EOS), reads the
  GGUF's eos/eot ids and the Modelfile's stop lines, and lets llama.cpp answer the same 10 held-out
  prompts to 128 tokens, counting end-of-generation stops and the token each one stopped on.

    .venv/bin/python bench/stops_bench.py --part render [--label after]
    PYTHONPATH=<tree before the fix> .venv/bin/python bench/stops_bench.py --part render --label before
    .venv/bin/python bench/stops_bench.py --part demo [--trainings 2] [--home DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "assets" / "demo" / "json_answers.jsonl"
HELDOUT = REPO / "assets" / "demo" / "heldout_prompts.json"
OUT = REPO / "bench" / "results" / "stops.json"
MAX_NEW_TOKENS = 128
sys.path.append(str(REPO))  # appended: a PYTHONPATH naming another tree (the code before a fix) comes first
DEMO_CONFIG = {"model": "embedded", "method": "lora", "data": str(DATA), "num_train_epochs": 1, "learning_rate": 1.0e-3,
               "max_length": 256, "per_device_train_batch_size": 8}  # tests/conftest.py's trained_demo_run
CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
    {"role": "assistant", "content": "Rome."},
]
# template (a TRL chat_templates file, or the embedded tokenizer's own) -> the token ending an assistant turn
TEMPLATES = {"embedded (SmolLM2 ChatML)": (None, "<|im_end|>"), "qwen2_5_training": ("qwen2_5_training", "<|im_end|>"),
             "llama3_training": ("llama3_training", "<|eot_id|>"), "phi3_training": ("phi3_training", "<|end|>"),
             "gemma_training": ("gemma_training", "<end_of_turn>"), "qwen3 (rewrites earlier turns)": ("qwen3", "<|im_end|>")}
SPECIALS = ["<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|begin_of_text|>", "<|end|>", "<|user|>", "<|assistant|>",
            "<|system|>", "<start_of_turn>", "<end_of_turn>", "<think>", "</think>"]


def render_part() -> dict:
    """Per template: assistant turns, and how many of them train their end-of-turn token."""
    import trl

    from studio.data.profile import tokenizer_for
    from studio.data.render import render

    embedded = tokenizer_for("embedded")
    rows = {}
    for label, (name, end) in TEMPLATES.items():
        tokenizer = embedded
        if name:
            tokenizer = copy.deepcopy(embedded)
            tokenizer.add_tokens(SPECIALS, special_tokens=True)
            tokenizer.chat_template = (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text()
        messages = CONVERSATION[1:] if name and name.startswith("gemma") else CONVERSATION  # Gemma has no system role
        rendered = render({"messages": messages}, tokenizer)
        runs = [tokenizer.convert_ids_to_tokens(run) for run in rendered.trained_runs()]
        rows[label] = {"assistant_turns": 2, "trained_runs": len(runs), "turns_training_their_end_token": sum(end in run for run in runs),
                       "end_token": end, "trained_text": rendered.trained_text}
    return rows


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studio", *args], cwd=REPO, env={**os.environ, "STUDIO_HOME": str(home)}, capture_output=True, text=True)


def train_demo(home: Path) -> str:
    import yaml

    config = home / "demo.yaml"
    config.write_text(yaml.safe_dump(DEMO_CONFIG, sort_keys=False))
    started = time.time()
    result = cli(home, "train", str(config))
    if result.returncode != 0:
        sys.exit(result.stderr[-3000:])
    print(f"trained in {time.time() - started:.0f} s", file=sys.stderr)
    return Path(result.stdout.strip().splitlines()[-1]).name


def engine_stops(side, prompts: list[str]) -> dict:
    """Greedy answers through the studio's one generation engine; an answer without the cut marker ended by a stop token."""
    from studio import engine

    settings = engine.GenerationSettings(temperature=0.0, max_new_tokens=MAX_NEW_TOKENS)
    texts = engine.generate_batch(side, [[{"role": "user", "content": p}] for p in prompts], settings, show_cut=True)
    cut_marker = engine.CUT_MARKER.format(n=MAX_NEW_TOKENS)
    return {"stopped": sum(not t.endswith(cut_marker) for t in texts), "total": len(texts), "answers": texts}


def llama_cpp_stops(path: Path, tokenizer, prompts: list[str]) -> dict:
    """llama.cpp greedy answers to MAX_NEW_TOKENS, as studio.export.llama_cpp_check decides a stop
    (llama_vocab_is_eog); written here because that check lets only its 3 shortest prompts run to EOS."""
    from studio.export import ensure_llama_cpp

    llama_cpp = ensure_llama_cpp()
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False) for p in prompts]
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, n_batch=512, n_threads=os.cpu_count() or 1, seed=0, verbose=False)
    vocab = llm._model.vocab
    eog_ids = [i for i in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, i)]
    stopped, stop_tokens, answers = 0, {}, []
    for text in texts:
        got, stop = [], None
        for token in llm.generate(llm.tokenize(text.encode(), add_bos=True, special=True), top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                stop = tokenizer.convert_ids_to_tokens(token)
                break
            got.append(token)
            if len(got) >= MAX_NEW_TOKENS:
                break
        stopped += stop is not None
        if stop:
            stop_tokens[stop] = stop_tokens.get(stop, 0) + 1
        answers.append(llm.detokenize(got).decode("utf-8", errors="replace"))
    llm.close()
    return {"stopped": stopped, "total": len(texts), "stop_tokens": stop_tokens,
            "eog_tokens": {i: tokenizer.convert_ids_to_tokens(i) for i in eog_ids}, "answers": answers}


def demo_part(home: Path, trainings: int) -> dict:
    os.environ["STUDIO_HOME"] = str(home)
    import gguf

    from studio.chat import ChatEngine
    from studio.engine import _stop_ids
    from studio.export import export_run
    from studio.jobs import registry

    for _ in range(trainings):
        train_demo(home)
    run_ids = sorted(p.name for p in (home / "runs").iterdir() if (p / "adapter").is_dir())  # every demo run there
    prompts = json.loads(HELDOUT.read_text())
    result = {"max_new_tokens": MAX_NEW_TOKENS, "prompts": str(HELDOUT.relative_to(REPO)), "runs": []}
    for run_id in run_ids:
        record = registry.get(run_id)
        chat = ChatEngine.for_run(record)
        tokenizer = chat.base_side.base.tokenizer
        row = {"run": run_id, "engine_stop_tokens": sorted(tokenizer.convert_ids_to_tokens(i) for i in _stop_ids(tokenizer, chat.base_side.base.model)),
               "engine_base": engine_stops(chat.base_side, prompts), "engine_tuned": engine_stops(chat.tuned_side, prompts)}
        with tempfile.TemporaryDirectory(prefix="stops-bench-") as tmp:
            out = Path(tmp) / "gguf"
            started = time.time()
            summary = export_run(record, "gguf", out, quants=("f16",), ollama=True)
            row["export_seconds"] = round(time.time() - started, 1)
            check = summary["checks"]["f16"]
            row["export_check"] = {k: check[k] for k in ("agree", "total", "stopped", "stop_prompts", "stop_limit", "stops")}
            fields = gguf.GGUFReader(str(out / "model-f16.gguf")).fields
            row["gguf_metadata"] = {key: f"{fields[key].contents()} ({tokenizer.convert_ids_to_tokens(fields[key].contents())})"
                                    for key in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.bos_token_id") if key in fields}
            row["modelfile_stops"] = [line for line in (out / "Modelfile").read_text().splitlines() if line.startswith("PARAMETER stop")]
            row["llama_cpp_tuned_f16"] = llama_cpp_stops(out / "model-f16.gguf", tokenizer, prompts)
        result["runs"].append(row)
        print(json.dumps({k: v for k, v in row.items() if not isinstance(v, dict) or "answers" not in v}, indent=1), file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("render", "demo"), required=True)
    parser.add_argument("--label", default="after", help="render part: the entry's name (before/after the fix)")
    parser.add_argument("--home", help="demo part: a STUDIO_HOME whose demo runs to measure (default: train into a fresh one)")
    parser.add_argument("--trainings", type=int, help="demo part: how many demo runs to train first (default 1, or 0 with --home)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    command = "PYTHONPATH=<tree> " * (args.part == "render" and args.label == "before") + ".venv/bin/python " + " ".join([str(Path(__file__).relative_to(REPO)), *sys.argv[1:]])
    started = time.time()
    if args.part == "render":
        templates = render_part()
        results.setdefault("render", {})[args.label] = {"command": command, "seconds": round(time.time() - started, 1), "templates": templates}
    else:
        home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="stops-home-"))
        trainings = args.trainings if args.trainings is not None else 0 if args.home else 1
        entry = demo_part(home, trainings)
        results["demo"] = {"command": command, "seconds": round(time.time() - started, 1), **entry}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    print(OUT)


if __name__ == "__main__":
    main()
