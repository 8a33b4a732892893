"""Load benchmark: p50/p95 chat first-token latency for N concurrent sessions while a run trains.

    .venv/bin/python bench/load_bench.py [--sessions 10] [--max-tokens 24]

Needs a completed run: trains the demo (one LoRA epoch) first in a temporary $STUDIO_HOME.
Writes bench/results/load.json. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=24)
    args = parser.parse_args()
    from bench.loadlib import rss_mb, run_load

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ["STUDIO_HOME"] = str(home)
        config = home / "run.yaml"
        config.write_text(f"data: {REPO / 'assets/demo/json_answers.jsonl'}\nmax_steps: 8\nlearning_rate: 1.0e-3\nmax_length: 128\nper_device_train_batch_size: 8\n")
        subprocess.run([sys.executable, "-m", "studio", "train", str(config)], cwd=REPO, check=True, capture_output=True)
        from studio.config import RunConfig
        from studio.jobs import registry, runner

        tuned = registry.list_runs()[0]
        port = 7911
        server = subprocess.Popen([sys.executable, "launch.py", "--port", str(port)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/"
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        training = runner.start(RunConfig.from_dict({"data": str(REPO / "assets/demo/json_answers.jsonl"), "max_steps": 200, "max_length": 64, "per_device_train_batch_size": 2, "save_steps": 1000}))
        try:
            idle = run_load(url, tuned.id, sessions=1, max_tokens=args.max_tokens, poll_seconds=0)
            before = rss_mb(server.pid)
            loaded = run_load(url, tuned.id, sessions=args.sessions, max_tokens=args.max_tokens, poll_seconds=5.0)
            after = rss_mb(server.pid)
        finally:
            runner.cancel(training.id)
            server.terminate()
    result = {
        "command": f".venv/bin/python bench/load_bench.py --sessions {args.sessions} --max-tokens {args.max_tokens}",
        "date": time.strftime("%Y-%m-%d"),
        "cpu_count": os.cpu_count(),
        "baseline_one_session_no_contention_but_training": idle,
        "concurrent": loaded,
        "server_rss_mb_before_after": [round(before), round(after)],
    }
    out = REPO / "bench" / "results" / "load.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
