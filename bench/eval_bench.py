"""Evaluation bench (issue 14): does `python -m studio eval RUN` with its defaults finish the demo
run's evaluation in <= 3 minutes on this CPU, and what per-token rate does the UI's estimate use?

Trains the demo run (one LoRA epoch of assets/demo/json_answers.jsonl on the embedded model, as
tests/conftest.py's shared demo run) into a fresh STUDIO_HOME unless --home names one that holds it,
then times the evaluation with the CLI's defaults (wall clock: process start, model load, eval loss,
answers, the 68-item probe, report). Records the rates the run measured (seconds per answer token at
the max-new-tokens budget, seconds per loss example), which `studio.evaluate.measured_rates` uses
for the UI's "expected time" until a machine has measured its own. A shared 2-core box makes wall
clock depend on whatever else runs: the load average at the start and end is recorded, and the CPU
seconds of the eval process (user + sys), which do not depend on the load.

    .venv/bin/python bench/eval_bench.py [--home DIR]
Writes bench/results/eval_bench.json, and its rates into assets/eval/rates.json (package data).
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
DATA = REPO / "assets" / "demo" / "json_answers.jsonl"
OUT = REPO / "bench" / "results" / "eval_bench.json"
SHIPPED = REPO / "assets" / "eval" / "rates.json"  # the rates the studio ships (studio.evaluate.measured_rates)
LIMIT_SECONDS = 180


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studio", *args], cwd=REPO, env={**os.environ, "STUDIO_HOME": str(home)}, capture_output=True, text=True)


def demo_run(home: Path) -> str:
    runs = json.loads(cli(home, "runs", "list", "--json").stdout or "[]")
    done = [r for r in runs if r["status"] == "completed" and Path(r["dataset"]).name == DATA.name]
    if done:
        return done[0]["id"]
    config = home / "run.yaml"
    config.write_text(f"model: embedded\nmethod: lora\ndata: {DATA}\nnum_train_epochs: 1\nlearning_rate: 1.0e-3\nmax_length: 256\nper_device_train_batch_size: 8\n")
    result = cli(home, "train", str(config))
    if result.returncode != 0:
        sys.exit(result.stderr[-2000:])
    return Path(result.stdout.strip().splitlines()[-1]).name


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a STUDIO_HOME that holds the demo run (default: a fresh one)")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="eval-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    run_id = demo_run(home)
    (home / "eval_rates.json").unlink(missing_ok=True)  # time the defaults, not a previous measurement
    load_before = os.getloadavg()
    started, cpu_before = time.time(), child_cpu_seconds()
    result = cli(home, "eval", run_id, "--json")
    seconds, cpu = time.time() - started, child_cpu_seconds() - cpu_before
    if result.returncode != 0:
        sys.exit(result.stderr[-2000:])
    results = json.loads(result.stdout.strip().splitlines()[-1])
    record = {
        "command": ".venv/bin/python bench/eval_bench.py",
        "what": "python -m studio eval DEMO_RUN --json with the CLI defaults, wall clock including process start and model load",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "model": "embedded",
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "defaults": results["options"],
        "examples": results["eval_data"]["examples"],
        "eval_data": results["eval_data"]["kind"],
        "probe_items": len(results.get("probes", {}).get("items", [])),
        "seconds_total": round(seconds, 1),
        "seconds_in_evaluate_run": results["seconds"],
        "cpu_seconds": round(cpu, 1),  # user + sys of the eval process: what an idle box must do, whatever the load
        "cpu_seconds_per_core_on_2_cores": round(cpu / 2, 1),  # the wall clock an idle 2-core box needs if both cores are busy throughout
        "limit_seconds": LIMIT_SECONDS,
        "within_limit": seconds <= LIMIT_SECONDS,
        "rates": {k: results["rates"][k] for k in ("gen_s_per_token", "loss_s_per_example")},
        "verdicts": {name: m["verdict"] for name, m in results["metrics"].items()},
    }
    OUT.write_text(json.dumps(record, indent=2) + "\n")
    shipped = {"what": "seconds per answer token and per loss example of the embedded model's demo-run evaluation on a CPU, "
                       "the Evaluate tab's expected time until this machine has measured its own",
               "source": "bench/results/eval_bench.json (written with this file by bench/eval_bench.py)",
               **{key: record[key] for key in ("command", "machine", "model", "measured", "rates")}}
    SHIPPED.write_text(json.dumps(shipped, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
