"""Layers: import-linter's contracts (pyproject.toml) hold, and the UI process's pre-flight check
of a run loads no ML library."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

PREFLIGHT = """
import sys
from studio.config import RunConfig
from studio.jobs.train import preflight
preflight(RunConfig.from_dict({cfg!r}))
heavy = sorted(m for m in ("torch", "transformers", "trl", "peft") if m in sys.modules)
print(",".join(heavy) or "none")
"""


def test_import_contracts_hold():
    lint = shutil.which("lint-imports", path=str(REPO / ".venv" / "bin")) or shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (requirements.txt pins it)")
    result = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("cfg", [
    {"method": "lora", "data": "assets/demo/json_answers.jsonl"},
    {"method": "dpo", "data": "assets/demo/preference_pairs.jsonl"},
    {"method": "ppo", "data": "assets/demo/preference_pairs.jsonl"},
    {"method": "constitutional", "data": "assets/demo/prompts.jsonl"},
    {"method": "grpo", "data": "assets/demo/prompts.jsonl", "rewards": [{"type": "json_valid"}]},
    {"method": "kto", "data": "assets/demo/preference_pairs.jsonl"},
], ids=lambda c: c["method"])
def test_preflight_imports_no_ml_library(cfg, studio_home):
    """What runner.start runs in the UI process before it spawns the trainer."""
    result = subprocess.run([sys.executable, "-c", PREFLIGHT.format(cfg=cfg)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "none"
