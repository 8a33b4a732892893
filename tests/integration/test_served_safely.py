"""Served beyond loopback with a login: typed paths are confined to the studio home and the owner's
--allow-path roots (the Data tab's `load_dataset` API refuses a private file elsewhere); the
password stays out of argv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import launch
from tests.conftest import REPO, free_port


def test_auth_from_file_or_environment_and_argv_warns(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STUDIO_AUTH", "carol:env-pw")
    assert launch.read_auth(launch.parse_args([])) == [("carol", "env-pw")]
    assert "warning" not in capsys.readouterr().err
    monkeypatch.delenv("STUDIO_AUTH")
    assert launch.read_auth(launch.parse_args(["--auth", "dave:pw"])) == [("dave", "pw")]
    assert "process list" in capsys.readouterr().err


def test_public_server_refuses_a_path_outside_its_roots(tmp_path):
    from gradio_client import Client

    home, shared = tmp_path / "home", tmp_path / "shared"
    home.mkdir(), shared.mkdir()
    secret = tmp_path / "private.jsonl"  # outside the studio home and every --allow-path root
    secret.write_text(json.dumps({"instruction": "my bank pin?", "output": "TOP-SECRET-4711"}) + "\n")
    allowed = shared / "team.jsonl"
    allowed.write_text("".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\n" for i in range(3)))
    creds = tmp_path / "users"
    creds.write_text("alice:s3cret\n")
    port = free_port()
    env = {**os.environ, "STUDIO_HOME": str(home)}
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "launch.py", "--host", "0.0.0.0", "--port", str(port), "--auth-file", str(creds),
                               "--allow-path", str(shared)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 240
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.5)
        client = Client(url, auth=("alice", "s3cret"), verbose=False)
        refused = client.predict(None, str(secret), "auto-detect", "", api_name="/load_dataset")
        assert "outside the folders this studio may read" in refused[0], refused[0]
        assert "TOP-SECRET" not in json.dumps(refused, default=str)
        assert not list((home / "datasets").glob("private*")) if (home / "datasets").exists() else True
        accepted = client.predict(None, str(allowed), "auto-detect", "", api_name="/load_dataset")
        assert "Detected format" in accepted[0], accepted[0]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_run_config_paths_are_confined(tmp_path, monkeypatch, studio_home):
    import pytest

    from studio.config import RunConfig
    from studio.errors import StudioError
    from studio.paths import ALLOW_ENV, CONFINE_ENV, confine_config

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    monkeypatch.setenv(CONFINE_ENV, "1")
    monkeypatch.setenv(ALLOW_ENV, str(tmp_path / "shared"))
    demo = str(REPO / "assets" / "demo" / "json_answers.jsonl")
    confine_config(RunConfig(method="lora", data=demo))  # the shipped demo data is always readable
    for field, value in (("model", str(outside)), ("constitution", str(outside / "c.yaml")), ("data", "/etc/passwd")):
        with pytest.raises(StudioError, match=f"^{field}: .* outside the folders"):
            confine_config(RunConfig(**{"method": "constitutional" if field == "constitution" else "lora", "data": demo, field: value}))


def test_model_sources_are_confined_only_when_they_name_a_path(tmp_path, monkeypatch, studio_home):
    import pytest

    from studio.errors import StudioError
    from studio.paths import CONFINE_ENV, confine_model

    monkeypatch.setenv(CONFINE_ENV, "1")
    for source in ("embedded", "HuggingFaceTB/SmolLM2-135M-Instruct", "20260101-120000-lora-run", ""):
        confine_model(source, "judge")  # not paths: nothing to confine
    confine_model(str(studio_home / "models" / "mine"), "judge")
    for source in (str(tmp_path / "elsewhere"), "/etc/model.gguf", "~/model"):
        with pytest.raises(StudioError, match="^judge: .* outside the folders"):
            confine_model(source, "judge")
