"""Cost of GRPO's `numeric` reward per completion: math-verify's final-answer extraction (studio.rewards)
against the last-number regex it replaced, on GSM8K-shaped completions (tests/data/public/gsm8k_excerpt.jsonl
references; distinct completion texts, so the reference cache helps and the completion cache does not).

- cold: a fresh process importing studio.rewards and scoring one completion (sympy/latex parser warm-up included)
- warm: mean per completion over N more in the same process
Writes bench/results/numeric_reward.json.

    .venv/bin/python bench/numeric_reward_bench.py [--n 400]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, re, sys, time
sys.path.insert(0, sys.argv[1])
n, which = int(sys.argv[2]), sys.argv[3]
references = [json.loads(line)["answer"] for line in open(sys.argv[4])]
completions = [f"Step 1: {i} + {2 * i} = {3 * i}.\nSo the total is ${i:,}.00, and the answer is {i % 97}." for i in range(1, n + 2)]
started = time.perf_counter()
if which == "studio":
    from studio.rewards import numeric_score
    score = numeric_score
else:  # the replaced rule: the last number of each text
    NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
    def last(text):
        found = NUMBER.findall(text)
        return float(found[-1].replace(",", "")) if found else None
    def score(completion, reference):
        expected, got = last(reference), last(completion)
        return None if expected is None else float(got is not None and abs(got - expected) <= 1e-6)
score(completions[0], references[0])
cold = time.perf_counter() - started
started = time.perf_counter()
for i, completion in enumerate(completions[1:]):
    score(completion, references[i % len(references)])
warm = (time.perf_counter() - started) / n
print(json.dumps({"cold_s": round(cold, 3), "warm_ms_per_completion": round(warm * 1000, 3)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=400)
    args = parser.parse_args()
    data = REPO / "tests" / "data" / "public" / "gsm8k_excerpt.jsonl"
    results = {"command": f".venv/bin/python bench/numeric_reward_bench.py --n {args.n}",
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(), "load_avg_1m": os.getloadavg()[0]},
               "completions": args.n}
    for which in ("studio", "last_number_regex"):
        out = subprocess.run([sys.executable, "-c", CHILD, str(REPO), str(args.n), which, str(data)], capture_output=True, text=True, check=True)
        results[which] = json.loads(out.stdout.strip().splitlines()[-1])
    results["note"] = ("studio = math-verify (parse + verify, signal-alarm timeout); per GRPO step of 8 completions the warm cost is "
                       f"{results['studio']['warm_ms_per_completion'] * 8:.1f} ms")
    path = REPO / "bench" / "results" / "numeric_reward.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
