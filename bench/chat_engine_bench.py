"""Chat generation before and after the batched engine: first-token latency and tokens/s, base and tuned.

    .venv/bin/python bench/chat_engine_bench.py --before COMMIT [--sessions 10] [--prompts 2] [--max-tokens 32]
        [--repeats 2] [--beside-training]

BEFORE is the studio at COMMIT (checked out with `git worktree add` into a temporary folder): its
chat decoded base and tuned by interleaving one batch-of-1 step per side, switching the LoRA
adapter under a lock. AFTER is this checkout (studio.engine: continuous batching, one forward for
every row of every session, PEFT mixed-adapter batches). Both run the same worker in a fresh
process, in one run, alternating (before, after, after, before, ...) so that background load hits
both: the embedded model with the studio's default LoRA adapter (random weights: the compute of a
trained one), greedy, `ChatEngine.stream_pair` as the Chat tab calls it.

Per variant: cold (process start -> first token of both sides, model load included) and warm
(1 session, then N concurrent sessions, each a thread sending P prompts one after the other).
First token: from sending a prompt to the first non-empty text of that side. Tokens/s per side: the
answer's tokens over the time from sending to that side's last token (one session's view); total:
every answer's tokens over the phase's wall time. The load average is recorded around every phase.
`--beside-training` runs everything beside `python -m studio train` of the demo, as issue 14 describes.
Writes bench/results/chat_engine.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROMPTS = [
    "Write a long story about a lighthouse keeper who finds a message in a bottle.",
    "Explain in detail how a bicycle works, part by part.",
    "Describe a walk through a busy market in a city you like, with many details.",
    "List as many fruits as you can, with one sentence about each.",
]


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))], 3)


# ----- the worker (runs against one checkout: BEFORE or AFTER) ----------------------------------

def worker(root: str, adapter: str, sessions: int, prompts: int, max_tokens: int, started: float) -> dict:
    sys.path.insert(0, root)
    from studio import chat  # noqa: E402 - the checkout under test

    # the cut-marker helper lives in studio.engine since the engine; BEFORE's checkout has it in chat
    without_cut_marker = getattr(chat, "without_cut_marker", None) or __import__("studio.engine", fromlist=["engine"]).without_cut_marker

    settings = chat.GenerationSettings(temperature=0.0, max_new_tokens=max_tokens)
    base = chat.POOL.base("embedded")
    base.ensure_adapter("bench", Path(adapter))
    engine = chat.ChatEngine(chat.Side(base, None, "base"), chat.Side(base, "bench", "tuned"))
    tokenizer = base.tokenizer
    count_lock = threading.Lock()

    def phase(count: int) -> dict:
        results: list[dict] = []
        guard = threading.Lock()

        def session(index: int) -> None:
            for n in range(prompts):
                local = run_one(PROMPTS[(index + n) % len(PROMPTS)])
                with guard:
                    results.append(local)

        load_before = os.getloadavg()
        began = time.perf_counter()
        threads = [threading.Thread(target=session, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        out = {"sessions": count, "answers_per_side": len(results), "wall_s": round(wall, 2),
               "load_average_before": [round(x, 2) for x in load_before], "load_average_after": [round(x, 2) for x in os.getloadavg()]}
        for side, name in ((0, "base"), (1, "tuned")):
            firsts = [r["first_token_s"][side] for r in results if r["first_token_s"][side] is not None]
            rates = [r["tokens"][side] / r["seconds"][side] for r in results if r["seconds"][side] > 0]
            out[name] = {"first_token_p50_s": pct(firsts, 50), "first_token_p95_s": pct(firsts, 95),
                         "tokens_per_s_per_answer_median": round(statistics.median(rates), 2) if rates else None,
                         "tokens": sum(r["tokens"][side] for r in results)}
        out["tokens_per_s_total"] = round((out["base"]["tokens"] + out["tuned"]["tokens"]) / wall, 2)
        return out

    def run_one(prompt: str) -> dict:
        sent_wall, sent = time.time(), time.perf_counter()
        first: list[float | None] = [None, None]
        last = [sent, sent]
        texts, seen = ("", ""), ["", ""]
        for texts in engine.stream_pair([{"role": "user", "content": prompt}], settings):
            now = time.perf_counter()
            for side in (0, 1):
                if texts[side] and first[side] is None:
                    first[side] = now - sent
                if texts[side] != seen[side]:
                    last[side], seen[side] = now, texts[side]
        with count_lock:  # one encode at a time on the shared Rust tokenizer ("Already borrowed")
            tokens = [len(tokenizer(without_cut_marker(t), add_special_tokens=False)["input_ids"]) for t in texts]
        return {"first_token_s": first, "tokens": tokens, "seconds": [last[s] - sent for s in (0, 1)], "sent_wall": sent_wall}

    cold = run_one(PROMPTS[0])  # the process's first answer: imports and model load above, first forwards here
    cold_first = cold["sent_wall"] - started + max(t for t in cold["first_token_s"] if t is not None)
    phase(1)  # warm-up (kernels, allocator) not reported
    return {"cold_first_token_s_from_process_start": round(cold_first, 2), "warm_1_session": phase(1), f"warm_{sessions}_sessions": phase(sessions)}


# ----- the orchestrator ------------------------------------------------------------------------

def make_adapter(folder: Path) -> None:
    """The studio's default LoRA adapter for the embedded model (random B: the compute of a trained one)."""
    sys.path.insert(0, str(REPO))
    import torch
    from peft import get_peft_model

    from studio import models
    from studio.config import RunConfig
    from studio.methods.common import lora_config

    torch.manual_seed(0)
    config = lora_config(RunConfig())
    config.init_lora_weights = False
    get_peft_model(models.load_causal_lm(models.resolve("embedded")), config).save_pretrained(str(folder))


def run_worker(root: Path, adapter: Path, args) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(root), "--adapter", str(adapter),
               "--sessions", str(args.sessions), "--prompts", str(args.prompts), "--max-tokens", str(args.max_tokens)]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root), "BENCH_STARTED": str(time.time())})
    if done.returncode:
        raise SystemExit(f"worker for {root} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_training(home: Path) -> subprocess.Popen:
    config = home / "train.yaml"
    config.write_text(f"data: {REPO / 'assets/demo/json_answers.jsonl'}\nmax_steps: 400\nmax_length: 128\nper_device_train_batch_size: 2\nsave_steps: 10000\n")
    env = {**os.environ, "STUDIO_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "studio", "train", str(config)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(60)  # past model load, into the training steps
    return proc


def summary(before: list[dict], after: list[dict], sessions: int) -> dict:
    def median(runs: list[dict], *keys) -> float | None:
        values = []
        for run in runs:
            value = run
            for key in keys:
                value = value[key]
            values.append(value)
        return round(statistics.median(values), 3) if values else None

    out = {}
    for phase in ("warm_1_session", f"warm_{sessions}_sessions"):
        for side in ("base", "tuned"):
            for metric in ("first_token_p50_s", "first_token_p95_s", "tokens_per_s_per_answer_median"):
                b, a = median(before, phase, side, metric), median(after, phase, side, metric)
                out[f"{phase}.{side}.{metric}"] = {"before": b, "after": a, "after_over_before": round(a / b, 2) if a and b else None}
        b, a = median(before, phase, "tokens_per_s_total"), median(after, phase, "tokens_per_s_total")
        out[f"{phase}.tokens_per_s_total"] = {"before": b, "after": a, "after_over_before": round(a / b, 2) if a and b else None}
    b, a = median(before, "cold_first_token_s_from_process_start"), median(after, "cold_first_token_s_from_process_start")
    out["cold_first_token_s"] = {"before": b, "after": a}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", help="the commit before the engine (its chat.py decodes interleaved)")
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--prompts", type=int, default=2, help="prompts each session sends, one after the other")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="before/after pairs (alternating order)")
    parser.add_argument("--beside-training", action="store_true")
    parser.add_argument("--worker")
    parser.add_argument("--adapter")
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, args.adapter, args.sessions, args.prompts, args.max_tokens, started=float(os.environ["BENCH_STARTED"]))
        print(json.dumps(result))
        return
    if not args.before:
        parser.error("--before COMMIT is required")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the app and the tests run (see tests/conftest.py)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        before_root = tmp / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before_root), args.before], cwd=REPO, check=True, capture_output=True)
        training = None
        try:
            make_adapter(tmp / "adapter")
            if args.beside_training:
                (tmp / "home").mkdir()
                training = start_training(tmp / "home")
            runs: dict[str, list[dict]] = {"before": [], "after": []}
            load_start = os.getloadavg()
            for repeat in range(args.repeats):
                order = [("before", before_root), ("after", REPO)]
                for name, root in order if repeat % 2 == 0 else order[::-1]:
                    print(f"{name} (repeat {repeat + 1}) ...", file=sys.stderr, flush=True)
                    runs[name].append(run_worker(root, tmp / "adapter", args))
            load_end = os.getloadavg()
        finally:
            if training is not None:
                os.killpg(training.pid, 15)
                training.wait()
            subprocess.run(["git", "worktree", "remove", "--force", str(before_root)], cwd=REPO, capture_output=True)
    niceness = os.nice(0)
    command = (f"{'nice -n %d ' % niceness if niceness else ''}.venv/bin/python bench/chat_engine_bench.py --before {args.before} --sessions {args.sessions} --prompts {args.prompts} "
               f"--max-tokens {args.max_tokens} --repeats {args.repeats}" + (" --beside-training" if args.beside_training else ""))
    after_commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    result = {
        "command": command,
        "what": "Chat base vs tuned (ChatEngine.stream_pair, greedy, embedded model + default LoRA adapter): BEFORE = interleaved batch-of-1 "
                "steps with adapter switches; AFTER = studio.engine continuous batching with PEFT mixed-adapter batches",
        "before_commit": args.before,
        "after_commit": after_commit + (" + working tree" if subprocess.run(["git", "diff", "--quiet", "--", "studio"], cwd=REPO).returncode else ""),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads default",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "beside_training": args.beside_training,
        "load_average_start_end": [[round(x, 2) for x in load_start], [round(x, 2) for x in load_end]],
        "summary_median_over_repeats": summary(runs["before"], runs["after"], args.sessions),
        "runs": runs,
    }
    suffix = "_beside_training" if args.beside_training else ""
    out = REPO / "bench" / "results" / f"chat_engine{suffix}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary_median_over_repeats"], indent=2))


if __name__ == "__main__":
    main()
