"""Shared fixtures: every test gets its own $STUDIO_HOME; the converted model cache is shared."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
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
# Two cores, and often two torch processes at once (the test process or app server beside a
# training subprocess): OpenMP's default busy-wait at every parallel region then starves the other
# process: with another training beside it, 10 greedy batch answers took 167 s instead of 16 s.
# Inherited by every subprocess (CLI, app servers, trainers).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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


def demo_run_id(trained_demo_run) -> str:
    """The demo run's id (its folder's name, the CLI's last line). Other tests' runs (the browser
    tests', the load test's) join its STUDIO_HOME, so pick it by id, never as the only run."""
    return Path(trained_demo_run[1].stdout.strip().splitlines()[-1]).name


def demo_listing(trained_demo_run) -> dict:
    """The demo run as `runs list --json` lists it (through the CLI, as a user would see it)."""
    home, _ = trained_demo_run
    runs = json.loads(run_cli("runs", "list", "--json", home=home).stdout)
    return next(r for r in runs if r["id"] == demo_run_id(trained_demo_run))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(home: Path, log_name: str, timeout: float = 300) -> tuple[subprocess.Popen, str]:
    """`python launch.py` on a free port with its own STUDIO_HOME; returns once the page answers."""
    port = free_port()
    log = open(home / log_name, "w")
    env = {**os.environ, "STUDIO_HOME": str(home), "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen([sys.executable, "launch.py", "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return server, url
        except OSError:
            if server.poll() is not None:
                raise RuntimeError((home / log_name).read_text())
            time.sleep(0.25)
    server.kill()
    raise RuntimeError(f"the studio did not start within {timeout:.0f} s")


@pytest.fixture(scope="session")
def demo_server(trained_demo_run):
    """One studio on the trained demo run's STUDIO_HOME for the whole session (the load test and the
    browser chat tests), so the app starts and loads the model once. Other runs can join that home
    (the load test trains and cancels one, which keeps an adapter): pick the demo run by `run_id`."""
    home, result = trained_demo_run
    run_id = demo_run_id(trained_demo_run)
    server, url = start_app(home, "demo_server.log")  # generous timeout: a loaded 2-core CI machine
    yield {"url": url, "home": home, "process": server, "run_id": run_id}
    server.terminate()
    server.wait(timeout=30)
