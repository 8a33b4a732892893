"""Shared fixtures: every test gets its own $STUDIO_HOME; the converted model cache is shared."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO_DATA = REPO / "assets" / "demo" / "json_answers.jsonl"
HELDOUT = REPO / "assets" / "demo" / "heldout_prompts.json"
SHARED_MODELS = Path(os.environ.get("STUDIO_MODELS_DIR") or Path.home() / ".fine-tuning-studio" / "models")

os.environ["STUDIO_MODELS_DIR"] = str(SHARED_MODELS)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def studio_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "studio_home"
    home.mkdir()
    monkeypatch.setenv("STUDIO_HOME", str(home))
    return home


def run_cli(*args: str, home: Path, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m studio ...` exactly as a user would, with its own STUDIO_HOME."""
    full_env = {**os.environ, "STUDIO_HOME": str(home), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "studio", *args], cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def write_yaml(path: Path, **values) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def trained_demo_run(tmp_path_factory):
    """One real LoRA epoch of the demo dataset through the CLI, shared by every test that needs a
    trained run (eval, export, chat). Returns (studio_home, completed CLI result)."""
    home = tmp_path_factory.mktemp("demo_home")
    config = write_yaml(
        tmp_path_factory.mktemp("demo_cfg") / "run.yaml",
        model="embedded",
        method="lora",
        data=str(DEMO_DATA),
        num_train_epochs=1,
        learning_rate=1.0e-3,
        max_length=256,
        per_device_train_batch_size=8,
    )
    result = run_cli("train", str(config), home=home)
    assert result.returncode == 0, result.stderr[-3000:]
    return home, result
