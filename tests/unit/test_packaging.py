"""The studio as a package: pyproject's console script resolves, shipped files are found through
studio.resources from any working directory, and a child `python -m studio` needs no cwd."""

from __future__ import annotations

import fnmatch
import importlib
import re
import subprocess
import sys
import tomllib

from studio import resources
from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_console_script_resolves_to_the_app_launcher():
    target = PYPROJECT["project"]["scripts"]["fine-tuning-studio"]
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attr))
    assert module_name in PYPROJECT["tool"]["setuptools"]["py-modules"]
    assert PYPROJECT["project"]["name"] == "fine-tuning-studio"


def test_every_asset_the_code_asks_for_exists_and_ships_as_package_data():
    """Each literal asset("...") in studio/ and components/ names an existing file or folder, and
    pyproject's package data for studio_assets covers it (else an installed studio lacks it)."""
    globs = PYPROJECT["tool"]["setuptools"]["package-data"][resources.ASSETS_PACKAGE]
    assert PYPROJECT["tool"]["setuptools"]["package-dir"][resources.ASSETS_PACKAGE] == "assets"
    asked = {name for folder in ("studio", "components") for source in (REPO / folder).rglob("*.py")
             for name in re.findall(r"""\basset\(["']([^"']+)["']\)""", source.read_text())}
    assert {"demo/json_answers.jsonl", "studio.css", "architectures", "probes/capabilities.json"} <= asked
    for name in asked:
        path = resources.asset(name)
        assert path.exists(), name
        files = [p.relative_to(REPO / "assets").as_posix() for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()]
        assert files, name
        for file in files:
            assert any(fnmatch.fnmatch(file, pattern) for pattern in globs), f"{file} is not in pyproject's package-data"


def test_cli_and_assets_work_from_another_working_directory(tmp_path):
    """No cwd = repository root: the child finds `studio` through child_env's PYTHONPATH alone."""
    env = resources.child_env({"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "STUDIO_HOME": str(tmp_path / "home")})
    help_run = subprocess.run([sys.executable, "-m", "studio", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert help_run.returncode == 0, help_run.stderr
    assert "train" in help_run.stdout
    probe = "from studio.resources import asset; from studio.estimator import known_architectures; " \
            "print(asset('demo/json_answers.jsonl').is_file(), len(known_architectures()))"
    lookup = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert lookup.returncode == 0, lookup.stderr
    found, architectures = lookup.stdout.split()
    assert found == "True" and int(architectures) == len(list((REPO / "assets" / "architectures").glob("*.json")))


def test_child_env_puts_this_package_first_once():
    env = resources.child_env({"PYTHONPATH": f"/elsewhere:{resources.PACKAGE_ROOT}"})
    parts = env["PYTHONPATH"].split(":")
    assert parts[0] == str(resources.PACKAGE_ROOT) and parts.count(str(resources.PACKAGE_ROOT)) == 1 and "/elsewhere" in parts
