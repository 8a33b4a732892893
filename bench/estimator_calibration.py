"""Estimator calibration: the advisor's memory estimate next to the peak the studio's trainer really reaches.

CPU (measured here): each configuration trains 2 steps of the embedded model through the studio's
own path (`studio.jobs.train.execute`, i.e. TRL's SFTTrainer) in a fresh subprocess, on examples
long enough to be truncated at max_length. Measured = peak RSS of that process minus its RSS after
the imports (interpreter and libraries are not training memory); the estimate is
`studio.estimator.memory(..., device="cpu")`.

GPU (H200, measured by bench/gpu_bench.py, raw runs in bench/results/gpu.json): every run of the
studio's own path (perf.apply + TRL) there, with the settings it really used (batch, length,
checkpointing, CPU offload), next to `studio.estimator.memory` for those settings. Measured =
max_memory_reserved; for runs under the 24 GB cap whose reservation hit the cap, the allocator's
reservation says nothing, so max_memory_allocated is compared with the estimate less its allocator
slack (marked "allocated"). Issue 7's plain HF+PEFT figures are kept as reference rows.

    .venv/bin/python bench/estimator_calibration.py            # CPU runs here + GPU rows from gpu.json
    .venv/bin/python bench/estimator_calibration.py --rescore  # estimates only, same measurements
"""

from __future__ import annotations

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

CPU_CONFIGS = [  # small shapes: a busy 2-core CPU trains only a few hundred tokens/s; most telling first
    dict(method="lora", max_length=128, per_device_train_batch_size=4, gradient_checkpointing=False),
    dict(method="full", max_length=128, per_device_train_batch_size=2, gradient_checkpointing=False),
    dict(method="lora", max_length=512, per_device_train_batch_size=2, gradient_checkpointing=True),
    dict(method="lora", max_length=512, per_device_train_batch_size=2, gradient_checkpointing=False),
    dict(method="instruction", max_length=256, per_device_train_batch_size=2, gradient_checkpointing=False),
    dict(method="lora", max_length=256, per_device_train_batch_size=2, gradient_checkpointing=False),
]
# Issue 7's measured plain HF+PEFT peaks (one H200, SDPA, LoRA r=16 all-linear, random tokens).
GPU_REFERENCE = [
    dict(arch="Llama-3-8B", method="lora", seq=2048, batch=4, gradient_checkpointing=True, qlora_fp32_upcast=False, lora_dropout=0.05, fast_path=False, measured_gib=31.5),
    dict(arch="Llama-3-8B", method="qlora", seq=2048, batch=2, gradient_checkpointing=False, qlora_fp32_upcast=True, lora_dropout=0.05, fast_path=False, measured_gib=92.8),
    dict(arch="Qwen2.5-0.5B", method="qlora", seq=2048, batch=8, gradient_checkpointing=False, qlora_fp32_upcast=True, lora_dropout=0.05, fast_path=False, measured_gib=119.5),
]
OUT = REPO / "bench" / "results" / "estimator_calibration.json"
STEPS = 2  # the second step runs with the optimiser state allocated: the steady-state peak


def long_dataset(path: Path, rows: int = 24) -> Path:
    words = "the quick brown fox jumps over the lazy dog while seven wizards quietly judge boxing matches".split()
    with path.open("w") as out:
        for n in range(rows):
            text = " ".join(words[(n + k) % len(words)] for k in range(700))
            out.write(json.dumps({"instruction": f"Write passage {n}.", "input": "", "output": text}) + "\n")
    return path


def child(config_path: str) -> None:
    """Runs in a fresh process: baseline RSS after imports, then one short training run."""
    import psutil
    import torch  # noqa: F401
    import transformers  # noqa: F401
    import trl  # noqa: F401
    import peft  # noqa: F401

    from studio.jobs.train import execute
    from studio.models import resolve

    resolve("embedded")
    baseline = psutil.Process().memory_info().rss
    started = time.time()
    execute(config_path)
    wall = time.time() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"baseline_bytes": baseline, "peak_bytes": peak, "wall_s": wall}))


def estimate_row(row: dict) -> dict:
    """Fill the estimate columns of a measured row from the current estimator."""
    from studio.estimator import Setup, load_architecture, memory

    device = "cpu" if row["where"].startswith("cpu") else "gpu"
    if row.get("compare") == "allocated":  # the reservation hit the cap: compare the allocation with the estimate less its slack
        setup = Setup(method=row["method"], seq=row["seq"], batch=row["batch"], gradient_checkpointing=row["gradient_checkpointing"],
                      device=device, lora_dropout=row.get("lora_dropout", 0.0), activation_offloading=row.get("activation_offloading", False),
                      fused_loss=row.get("fused_loss"))
        estimate = memory(load_architecture(row["arch"]), setup)
        estimated = estimate.peak_gib - estimate.parts_gib.get("overhead", 0.0)
        return {**row, "estimated_gib": round(estimated, 3), "error_pct": round(100 * (estimated - row["measured_gib"]) / row["measured_gib"], 1)}
    setup = Setup(method=row["method"], seq=row["seq"], batch=row["batch"], gradient_checkpointing=row["gradient_checkpointing"],
                  device=device, qlora_fp32_upcast=row.get("qlora_fp32_upcast", False), lora_dropout=row.get("lora_dropout", 0.0),
                  fast_path=row.get("fast_path", True), activation_offloading=row.get("activation_offloading", False),
                  fused_loss=row.get("fused_loss"))
    estimated = memory(load_architecture(row["arch"]), setup).peak_gib
    return {**row, "estimated_gib": round(estimated, 3), "error_pct": round(100 * (estimated - row["measured_gib"]) / row["measured_gib"], 1)}


def write(rows: list[dict]) -> Path:
    cpu = [r for r in rows if r["where"].startswith("cpu")]
    gpu = [r for r in rows if r["where"].startswith("h200 (studio")]
    summary = {
        "command": ".venv/bin/python bench/estimator_calibration.py",
        "rescore_command": ".venv/bin/python bench/estimator_calibration.py --rescore  # estimates only, same measurements",
        "gpu_measurements": "bench/results/gpu.json (python3 bench/gpu_bench.py on the lent H200 machine; commands there)",
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
        "steps_per_config": STEPS,
        "cpu_max_abs_error_pct": max((abs(r["error_pct"]) for r in cpu), default=None),
        "cpu_within_15pct": sum(abs(r["error_pct"]) <= 15 for r in cpu),
        "cpu_configs": len(cpu),
        "gpu_configs": len(gpu),
        "gpu_within_15pct": sum(abs(r["error_pct"]) <= 15 for r in gpu),
        "gpu_max_abs_error_pct": max((abs(r["error_pct"]) for r in gpu), default=None),
        "rows": rows,
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(summary, indent=2) + "\n")
    return OUT


GPU_RESULT = REPO / "bench" / "results" / "gpu.json"
ARCH_NAMES = {"llama3-8b": "Llama-3-8B", "qwen2.5-14b": "Qwen2.5-14B"}


def studio_gpu_runs() -> list[dict]:
    """Every studio-path run in gpu.json, as (settings, measured) rows."""
    if not GPU_RESULT.is_file():
        return []
    result = json.loads(GPU_RESULT.read_text())
    runs = []

    def add(label, arch, method, figures, seq, capped):
        settings = figures["settings"]
        at_cap = capped and figures["peak_reserved_gib"] >= result["qlora_8b"]["cap_gib"] - 0.5
        runs.append({
            "where": "h200 (studio path, bench/gpu_bench.py)", "run": label, "arch": arch, "method": method, "seq": seq,
            "batch": settings["per_device_train_batch_size"], "gradient_checkpointing": settings["gradient_checkpointing"],
            "activation_offloading": settings.get("activation_offloading", False), "lora_dropout": 0.0, "fast_path": True,
            "fused_loss": bool(settings.get("use_liger_kernel")) if method == "dpo" else None,
            "compare": "allocated" if at_cap and figures.get("peak_allocated_gib") else "reserved",
            "measured_gib": figures["peak_allocated_gib"] if at_cap and figures.get("peak_allocated_gib") else figures["peak_reserved_gib"],
        })

    for mix, entry in result.get("lora_8b", {}).items():
        if isinstance(entry, dict) and "studio" in entry and "settings" in entry["studio"]:
            add(f"lora_8b.{mix}.studio", "Llama-3-8B", "lora", entry["studio"], 2048, False)
    for key, figures in result.get("calibration", {}).items():
        if figures.get("ok"):
            add(f"calibration.{key}", ARCH_NAMES[figures["arch"]], figures["method"], figures, figures["length"], True)
    q14 = result.get("qlora_14b", {}).get("studio_2048x1", {})
    if q14.get("ok"):
        add("qlora_14b.studio_2048x1", "Qwen2.5-14B", "qlora", q14, 2048, True)
    for length, figures in result.get("qlora_8b", {}).get("contexts", {}).items():
        if figures.get("ok"):
            add(f"qlora_8b.contexts.{length}", "Llama-3-8B", "qlora", figures, int(length), True)
    for name in ("studio", "studio_24gb"):
        figures = result.get("dpo_8b", {}).get(name, {})
        if "settings" in figures:  # rows padded to the longest of the batch: the estimate takes max_length rows
            add(f"dpo_8b.{name}", "Llama-3-8B", "dpo", figures | {"peak_allocated_gib": None}, result["dpo_8b"]["max_length"], name.endswith("24gb"))
    return runs


def gpu_rows() -> list[dict]:
    measured = [estimate_row(run) for run in studio_gpu_runs()]
    reference = [estimate_row({"where": "h200 (issue 7 figure, not measured here)", **ref}) for ref in GPU_REFERENCE]
    return measured + reference


def main() -> None:
    import yaml

    from studio.paths import models_dir  # every child shares the converted embedded model

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = long_dataset(tmp / "long.jsonl")
        for index, knobs in enumerate(CPU_CONFIGS):
            config = tmp / f"run{index}.yaml"
            config.write_text(yaml.safe_dump({"model": "embedded", "data": str(data), "max_steps": STEPS, "save_steps": 1000,
                                              "learning_rate": 1e-4, **knobs}))
            env = {**os.environ, "STUDIO_HOME": str(tmp / f"home{index}"), "STUDIO_MODELS_DIR": str(models_dir())}
            result = subprocess.run([sys.executable, __file__, "--child", str(config)], cwd=REPO, env=env, capture_output=True, text=True)
            if result.returncode:
                raise SystemExit(result.stderr[-3000:])
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            tokens = STEPS * knobs["max_length"] * knobs["per_device_train_batch_size"]
            row = estimate_row({
                "where": "cpu (measured)", "arch": "SmolLM2-135M", "method": knobs["method"], "seq": knobs["max_length"],
                "batch": knobs["per_device_train_batch_size"], "gradient_checkpointing": knobs["gradient_checkpointing"],
                "measured_gib": round((measured["peak_bytes"] - measured["baseline_bytes"]) / 2**30, 3),
                "tokens_per_s_incl_load": round(tokens / measured["wall_s"], 1),
            })
            rows.append(row)
            print(json.dumps(row), flush=True)
            write(rows + gpu_rows())  # partial results survive an interrupted run
    print(f"wrote {write(rows + gpu_rows())}")


def rescore() -> None:
    """Re-run the estimates (not the measurements) after an estimator change."""
    table = json.loads(OUT.read_text())
    rows = [estimate_row(r) for r in table["rows"] if r["where"].startswith("cpu")] + gpu_rows()  # GPU rows re-read from gpu.json
    for row in rows:
        print(json.dumps(row))
    print(f"wrote {write(rows)}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    elif sys.argv[1:] == ["--rescore"]:
        rescore()
    else:
        main()
