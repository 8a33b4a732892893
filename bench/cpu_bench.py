"""CPU benchmark (issue 7, goal 5): the studio's path vs the plain TRL + PEFT script a user would write.

Both train one LoRA epoch of the demo dataset on the embedded model (SmolLM2-135M), same
hyperparameters, same machine, one after the other in this one invocation. The baseline keeps TRL's
SFTConfig defaults (gradient checkpointing on) and the LoRA dropout of PEFT's examples (0.05); the
studio runs its own defaults (no checkpointing for a small model, dropout 0). Tokens/s count the
tokens TRL trained (num_tokens). A shared 2-core box makes wall-clock rates depend on whatever else
runs, so each run also reports tokens per CPU-second of its own process (getrusage of the finished
child, process start and model load included), and the load average at the end: run it on an idle
box. Prints and writes bench/results/cpu.json.

    .venv/bin/python bench/cpu_bench.py
"""

from __future__ import annotations

import json
import os
import resource
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO / "assets" / "demo" / "json_answers.jsonl"
SETTINGS = dict(num_train_epochs=1, learning_rate=1.0e-3, max_length=256, per_device_train_batch_size=8, lora_r=16, lora_alpha=32)


def studio_run(home: Path) -> dict:
    import yaml

    config = home / "run.yaml"
    config.write_text(yaml.safe_dump({"model": "embedded", "method": "lora", "data": str(DATA), **SETTINGS}))
    started, cpu_before = time.time(), child_cpu_seconds()
    result = subprocess.run([sys.executable, "-m", "studio", "train", str(config)], cwd=REPO, env={**os.environ, "STUDIO_HOME": str(home)}, capture_output=True, text=True)
    wall, cpu = time.time() - started, child_cpu_seconds() - cpu_before
    if result.returncode:
        raise SystemExit(result.stderr[-2000:])
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "loss" in r]
    summary = next(r for r in rows if "train_runtime" in r)
    return {
        "wall_seconds_including_process_start": round(wall, 1),
        "train_runtime_seconds": round(summary["train_runtime"], 1),
        "tokens": train[-1]["num_tokens"],
        "tokens_per_second": round(train[-1]["num_tokens"] / summary["train_runtime"], 1),
        "process_cpu_seconds": round(cpu, 1),
        "tokens_per_cpu_second": round(train[-1]["num_tokens"] / cpu, 2),
        "final_loss": round(train[-1]["loss"], 4),
    }


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


BASELINE = r'''
import json, sys, time
import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer
model_dir, data, out, s = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
rows = [json.loads(l) for l in open(data)]
ds = Dataset.from_list([{"prompt": [{"role": "user", "content": r["instruction"]}], "completion": [{"role": "assistant", "content": r["output"]}]} for r in rows])
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir)
args = SFTConfig(output_dir=out, num_train_epochs=s["num_train_epochs"], learning_rate=s["learning_rate"], max_length=s["max_length"],
                 per_device_train_batch_size=s["per_device_train_batch_size"], logging_steps=1, report_to=[], save_strategy="no", disable_tqdm=True,
                 bf16=torch.cuda.is_available())
trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok,
                     peft_config=LoraConfig(r=s["lora_r"], lora_alpha=s["lora_alpha"], lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"))
t = time.time(); result = trainer.train(); runtime = time.time() - t
tokens = trainer.state.log_history[-2]["num_tokens"]
print(json.dumps({"train_runtime_seconds": round(result.metrics["train_runtime"], 1), "tokens": tokens,
                  "tokens_per_second": round(tokens / result.metrics["train_runtime"], 1), "final_loss": round(trainer.state.log_history[-2]["loss"], 4)}))
'''


def baseline_run(home: Path) -> dict:
    from studio import models

    os.environ["STUDIO_HOME"] = str(home)
    model_dir = models.resolve("embedded").path  # the baseline starts from the same converted weights
    started, cpu_before = time.time(), child_cpu_seconds()
    result = subprocess.run([sys.executable, "-c", BASELINE, str(model_dir), str(DATA), str(home / "baseline"), json.dumps(SETTINGS)], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(result.stderr[-2000:])
    data = json.loads(result.stdout.strip().splitlines()[-1])
    data["wall_seconds_including_process_start"] = round(time.time() - started, 1)
    cpu = child_cpu_seconds() - cpu_before
    data["process_cpu_seconds"] = round(cpu, 1)
    data["tokens_per_cpu_second"] = round(data["tokens"] / cpu, 2)
    return data


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        studio = studio_run(home)
        baseline = baseline_run(home)
    import torch

    result = {
        "command": ".venv/bin/python bench/cpu_bench.py",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "settings": SETTINGS,
        "studio": studio,
        "baseline_plain_trl_peft": baseline,
        "studio_vs_baseline_tokens_per_second": round(studio["tokens_per_second"] / baseline["tokens_per_second"], 3),
        "studio_vs_baseline_tokens_per_cpu_second": round(studio["tokens_per_cpu_second"] / baseline["tokens_per_cpu_second"], 3),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    out = REPO / "bench" / "results" / "cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
