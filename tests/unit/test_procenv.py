"""The one process environment: set by the CLI before torch is imported, passed to UI-launched runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from studio import procenv

REPO = Path(__file__).resolve().parents[2]
OURS = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF", "OMP_WAIT_POLICY", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")

PROBE = """
import json, os, sys
import studio.__main__  # what `python -m studio train` runs first
print(json.dumps({"torch_imported": "torch" in sys.modules, **{k: os.environ.get(k) for k in %r}}))
""" % (OURS,)


def clean_env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in OURS}
    return {**env, "STUDIO_HOME": str(home), "PYTHONPATH": str(REPO), **extra}


def test_the_cli_sets_the_environment_before_torch_is_imported(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], env=clean_env(tmp_path), capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["torch_imported"] is False  # the settings are read when torch loads: they must come first
    assert seen["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    assert seen["OMP_WAIT_POLICY"] == "PASSIVE"
    assert seen["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "cache" / "torchinductor")
    assert seen["TRITON_CACHE_DIR"] == str(tmp_path / "cache" / "triton")


def test_the_users_own_settings_win(tmp_path):
    env = clean_env(tmp_path, PYTORCH_ALLOC_CONF="max_split_size_mb:128", OMP_WAIT_POLICY="ACTIVE", TRITON_CACHE_DIR="/elsewhere")
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, cwd=REPO, timeout=120)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["PYTORCH_CUDA_ALLOC_CONF"] is None and seen["PYTORCH_ALLOC_CONF"] == "max_split_size_mb:128"
    assert seen["OMP_WAIT_POLICY"] == "ACTIVE" and seen["TRITON_CACHE_DIR"] == "/elsewhere"
    assert seen["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "cache" / "torchinductor")


def test_ui_launched_runs_get_the_same_environment(tmp_path, monkeypatch):
    from studio.jobs.runner import training_env

    for name in OURS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    env = training_env()
    assert {k: env[k] for k in procenv.defaults()} == procenv.defaults()
    assert env["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True" and env["PYTHONUNBUFFERED"] == "1"
    assert "PYTORCH_CUDA_ALLOC_CONF" not in os.environ  # building a child's environment changes nothing here


def test_apply_fills_only_what_is_missing():
    environ = {"STUDIO_HOME": "/h", "OMP_WAIT_POLICY": "ACTIVE", "PYTORCH_CUDA_ALLOC_CONF": ""}
    added = procenv.apply(environ)
    assert "OMP_WAIT_POLICY" not in added and environ["OMP_WAIT_POLICY"] == "ACTIVE"
    assert environ["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"  # an empty value counts as unset
    assert environ["TRITON_CACHE_DIR"] == "/h/cache/triton"
