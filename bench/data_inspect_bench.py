"""Inspect a generated 1M-row (~500 MB) JSONL: time and peak RSS, studio vs plain library.

- studio:   `python -m studio data inspect FILE --json` (streams; validates every row, finds
            duplicates, token stats on a 2,000-row sample with the embedded tokenizer)
- baselines: every line json.loads'ed into one list (the studio's old loader), and
            `pandas.read_json(FILE, lines=True)` (fails on the file's broken lines)
Each runs in its own process, one after the other in this one invocation; peak RSS is the process's
ru_maxrss. Writes bench/results/data_inspect.json.

    .venv/bin/python bench/data_inspect_bench.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEASURE = """
import os, resource, subprocess, sys, time
started = time.time()
result = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.time() - started
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{wall} {peak_kb} {result.returncode}")
sys.stderr.write(result.stderr[-2000:])
if os.environ.get("BENCH_STDOUT"):
    open(os.environ["BENCH_STDOUT"], "w").write(result.stdout)
"""
BASELINE_PANDAS = "import sys, pandas; frame = pandas.read_json(sys.argv[1], lines=True); print(len(frame))"
# The plain-stdlib reader (what the studio did before streaming): every row in a list, bad lines skipped.
BASELINE_JSON = """
import json, sys
rows = []
for line in open(sys.argv[1], encoding="utf-8"):
    try:
        rows.append(json.loads(line))
    except json.JSONDecodeError:
        pass
print(len(rows))
"""


def generate(path: Path, rows: int) -> None:
    """Alpaca rows of ~500 bytes; every 10,000th line broken, every 1,000th a duplicate."""
    words = "model data token train answer question eval loss adapter layer prompt reply dataset".split()
    with path.open("w") as handle:
        for i in range(rows):
            if i % 10_000 == 9_999:
                handle.write('{"instruction": "broken\n')
                continue
            seed = i - 1 if i % 1000 == 999 else i
            local = random.Random(seed)
            text = " ".join(local.choice(words) for _ in range(60))
            handle.write(json.dumps({"instruction": f"Question {seed}: {text[:150]}", "input": "", "output": f"Answer {seed}: {text}"}) + "\n")


def measure(command: list[str], stdout_to: Path | None = None) -> dict:
    env = {**os.environ, **({"BENCH_STDOUT": str(stdout_to)} if stdout_to else {})}
    out = subprocess.run([sys.executable, "-c", MEASURE, *command], cwd=REPO, capture_output=True, text=True, env=env)
    wall, peak_kb, code = out.stdout.split()
    return {"wall_s": round(float(wall), 1), "peak_rss_mb": round(int(peak_kb) / 1024, 1), "exit_code": int(code), "stderr_tail": out.stderr[-300:]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "big.jsonl"
        started = time.time()
        generate(data, args.rows)
        size_mb = data.stat().st_size / 2**20
        print(f"generated {args.rows} rows, {size_mb:.0f} MB in {time.time() - started:.0f}s", flush=True)
        studio = measure([sys.executable, "-m", "studio", "data", "inspect", str(data), "--json"], Path(tmp) / "report.json")
        print("studio", studio, flush=True)
        studio_no_tokens = measure([sys.executable, "-m", "studio", "data", "inspect", str(data), "--json", "--no-tokens"])
        print("studio --no-tokens", studio_no_tokens, flush=True)
        report = json.loads((Path(tmp) / "report.json").read_text()) if studio["exit_code"] == 0 else {}
        baseline = None if args.skip_baseline else measure([sys.executable, "-c", BASELINE_JSON, str(data)])
        print("baseline", baseline, flush=True)
        pandas = None if args.skip_baseline else measure([sys.executable, "-c", BASELINE_PANDAS, str(data)])
        print("pandas", pandas, flush=True)
    result = {
        "command": f".venv/bin/python bench/data_inspect_bench.py --rows {args.rows}",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(), "load_avg_1m": os.getloadavg()[0]},
        "file": {"rows": args.rows, "size_mb": round(size_mb, 1)},
        "studio_inspect": {**studio, "what": "python -m studio data inspect FILE --json (all rows validated + dedup index + 2000-row token sample)"},
        "studio_inspect_no_tokens": {**studio_no_tokens, "what": "the same with --no-tokens (no tokenizer import)"},
        "studio_report": {k: report.get(k) for k in ("format", "rows", "valid_rows", "dropped_by_reason", "warnings_by_reason", "problem_count")},
        "baseline_json_list": baseline and {**baseline, "what": "json.loads of every line into one list (bad lines skipped)"},
        "baseline_pandas_read_json": pandas and {**pandas, "what": "pandas.read_json(FILE, lines=True); exit_code 1 = it cannot read a file with a broken line"},
    }
    if baseline and baseline["exit_code"] == 0:
        result["ratio"] = {"rss_baseline_over_studio": round(baseline["peak_rss_mb"] / studio["peak_rss_mb"], 2), "time_studio_over_baseline": round(studio["wall_s"] / baseline["wall_s"], 2)}
    out = REPO / "bench" / "results" / "data_inspect.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
