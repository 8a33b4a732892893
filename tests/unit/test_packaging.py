"""The studio as a package: pyproject's console script resolves, shipped files are found through
studio.resources from any working directory (also in an installed copy, with no checkout beside it),
and a child `python -m studio` needs no cwd."""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import shutil
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


INSTALLED_PROBE = """
import json, sys
from studio import evaluate, export, resources

class Record:  # what measured_rates reads of a run record
    run_dir, model = sys.argv[1], "embedded"

print(json.dumps({"studio": evaluate.__file__, "assets": str(resources.assets_root()),
                  "requirements": export.LLAMA_REQUIREMENTS.read_text(), "rates": evaluate.measured_rates(Record())}))
"""


def test_an_installed_copy_finds_what_it_ships_without_a_checkout(tmp_path):
    """Laid out as pip installs the wheel: `studio`, and `studio_assets` holding pyproject's package data
    only, with no requirements-llama.txt, bench/ or assets/ beside them; run from another cwd. The GGUF
    export's llama.cpp pin and Evaluate's expected-time rates come from the package data."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "studio", site / "studio", ignore=shutil.ignore_patterns("__pycache__"))
    globs = PYPROJECT["tool"]["setuptools"]["package-data"][resources.ASSETS_PACKAGE]
    for file in (REPO / "assets").rglob("*"):
        name = file.relative_to(REPO / "assets").as_posix()
        if file.is_file() and (name == "__init__.py" or any(fnmatch.fnmatch(name, pattern) for pattern in globs)):
            (site / resources.ASSETS_PACKAGE / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, site / resources.ASSETS_PACKAGE / name)
    run_dir, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    run_dir.mkdir()
    elsewhere.mkdir()
    (run_dir / "config.yaml").write_text("model: embedded\nmethod: lora\ndata: x.jsonl\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "STUDIO_HOME": str(tmp_path / "home"), "PYTHONPATH": str(site),
           "CUDA_VISIBLE_DEVICES": ""}  # the shipped rates are a CPU measurement
    result = subprocess.run([sys.executable, "-c", INSTALLED_PROBE, str(run_dir)], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["studio"].startswith(str(site)) and seen["assets"] == str(site / resources.ASSETS_PACKAGE)
    assert seen["requirements"] == (REPO / "assets" / "requirements-llama.txt").read_text() and "llama-cpp-python==" in seen["requirements"]
    shipped = json.loads(resources.asset("eval/rates.json").read_text())
    assert seen["rates"] == {**shipped["rates"], "from": f"bench/eval_bench.py on {shipped['machine']}"}


def test_one_llama_pin_and_the_shipped_eval_rates_are_the_bench_measurement():
    """make, pip's [llama] extra and the export read one pin file; the shipped rates are bench/eval_bench.py's."""
    from studio import export

    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["optional-dependencies"]["llama"]["file"] == ["assets/requirements-llama.txt"]
    assert "$(LLAMA_STAMP): assets/requirements-llama.txt" in (REPO / "Makefile").read_text()
    assert export.LLAMA_REQUIREMENTS == resources.asset("requirements-llama.txt")
    bench = json.loads((REPO / "bench" / "results" / "eval_bench.json").read_text())
    shipped = json.loads(resources.asset("eval/rates.json").read_text())
    assert {key: shipped[key] for key in ("command", "machine", "model", "measured", "rates")} == \
           {key: bench[key] for key in ("command", "machine", "model", "measured", "rates")}


def test_no_module_climbs_from_its_own_file_to_the_checkout():
    """Only studio.resources may locate files from __file__ (its checkout fallback for assets/) or the cwd:
    an installed copy has no checkout around it, and the studio runs from any working directory."""
    climbers = [str(source.relative_to(REPO)) for folder in ("studio", "components") for source in (REPO / folder).rglob("*.py")
                if source.name != "resources.py" and re.search(r"\b__file__\b|Path\.cwd\(\)|os\.getcwd\(\)", source.read_text())]
    assert climbers == []
