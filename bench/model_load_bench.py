"""Embedded-model load times: the studio's checksummed safetensors cache vs loading the GGUF directly.

One invocation measures, each in a fresh process: (1) the first use, which converts the GGUF into
the cache; (2) a cached load through the studio; (3) the baseline a user would write,
`from_pretrained(dir, gguf_file=...)`, which de-quantises on every load. Writes
bench/results/model_load.json.

    .venv/bin/python bench/model_load_bench.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

STUDIO_LOAD = """
import time; t = time.time()
from studio import models
r = models.resolve("embedded"); tok = models.load_tokenizer(r); m = models.load_causal_lm(r)
print(time.time() - t)
"""
BASELINE_LOAD = """
import time; t = time.time()
from transformers import AutoModelForCausalLM, AutoTokenizer
from studio.models import embedded_gguf_path
p = embedded_gguf_path()
tok = AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name); m = AutoModelForCausalLM.from_pretrained(p.parent, gguf_file=p.name)
print(time.time() - t)
"""


def timed(code: str, models_dir: Path) -> float:
    env = {**os.environ, "STUDIO_MODELS_DIR": str(models_dir), "STUDIO_HOME": str(models_dir.parent)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return round(float(out.stdout.strip().splitlines()[-1]), 2)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        models_dir = Path(tmp) / "models"
        first = timed(STUDIO_LOAD, models_dir)
        cached = [timed(STUDIO_LOAD, models_dir) for _ in range(3)]
        baseline = timed(BASELINE_LOAD, models_dir)
    result = {
        "command": ".venv/bin/python bench/model_load_bench.py",
        "date": time.strftime("%Y-%m-%d"),
        "cpu_count": os.cpu_count(),
        "studio_first_use_with_conversion_s": first,
        "studio_cached_load_s": cached,
        "baseline_gguf_from_pretrained_s": baseline,
        "cached_vs_baseline_speedup": round(baseline / min(cached), 1),
        "note": "times are tokenizer + weights load in a fresh process, excluding interpreter start",
    }
    out = REPO / "bench" / "results" / "model_load.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
