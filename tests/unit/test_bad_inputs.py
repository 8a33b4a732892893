"""The whole-file bad-input corpus (tests/data/bad/{datasets,configs,models}): every input gets one
clear StudioError line naming where the problem is, or a row-level problem report; never another
exception, never a hang."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.config import RunConfig
from studio.data import load_dataset_file
from studio.errors import StudioError
from studio.jobs.train import preflight
from tests.conftest import REPO

BAD = REPO / "tests" / "data" / "bad"


def _write_model_fixtures() -> None:
    """*.gguf and *.safetensors are git-ignored (weights never go in the repo), so the two tiny
    malformed model files are written here, before the configs that point at them are read."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_bad_inputs", REPO / "tests" / "data" / "make_bad_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.models()


_write_model_fixtures()
DATASETS = sorted(p for p in (BAD / "datasets").iterdir())
CONFIGS = sorted((BAD / "configs").glob("*.yaml"))


def test_corpus_is_large_enough():
    assert len(DATASETS) + len(CONFIGS) >= 50


@pytest.mark.parametrize("path", DATASETS, ids=lambda p: p.name)
def test_bad_dataset_files(path):
    try:
        loaded = load_dataset_file(path)
    except StudioError as err:
        message = str(err)
        assert "\n" not in message and str(path) in message, message
        return
    # Loaded: then every dropped row must be accounted for in the problem report.
    assert loaded.problems, f"{path.name} loaded with no problem reported"
    assert len(loaded.conversations) + len({p.row for p in loaded.problems}) >= len(loaded.rows)


def test_huge_single_row_is_handled(tmp_path):
    path = tmp_path / "huge.jsonl"
    path.write_text('{"instruction": "' + "x" * 20_000_000 + '", "output": "ok"}\n')
    loaded = load_dataset_file(path)
    assert len(loaded.conversations) == 1


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_bad_configs_fail_before_any_model_loads(path, studio_home, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StudioError) as info:
        preflight(RunConfig.from_yaml(path))
    message = str(info.value)
    assert "\n" not in message and len(message) < 600, message


@pytest.mark.parametrize(
    "name, needle",
    [
        ("model_random_bytes_gguf.yaml", "not a readable GGUF file"),
        ("model_unknown_arch_gguf.yaml", "architecture 'totally-unknown-arch'"),
        ("model_corrupt_safetensors.yaml", "not a valid safetensors file"),
        ("model_pickle_only.yaml", "pickle"),
        ("model_hub_offline.yaml", "not cached"),
    ],
)
def test_model_cases_hit_their_own_check(name, needle, studio_home, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StudioError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        preflight(RunConfig.from_yaml(BAD / "configs" / name))


@pytest.mark.parametrize("name", ["lr_nan.yaml", "model_corrupt_safetensors.yaml", "model_unknown_arch_gguf.yaml", "deeply_nested"])
def test_cli_gives_one_line_and_exit_2(name, studio_home):
    args = ["data", str(BAD / "datasets" / "deeply_nested.json")] if name == "deeply_nested" else ["train", str(BAD / "configs" / name)]
    result = subprocess.run([sys.executable, "-m", "studio", *args], cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "STUDIO_HOME": str(studio_home), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
