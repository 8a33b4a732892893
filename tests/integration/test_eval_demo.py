"""`python -m studio eval` on the shared demo run: the tune lowers held-out loss; the probe runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def test_eval_json_base_vs_tuned(trained_demo_run):
    home, _ = trained_demo_run
    (run,) = json.loads(run_cli("runs", "list", "--json", home=home).stdout)
    result = run_cli("eval", run["id"], "--json", "--max-new-tokens", "20", home=home)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    base, tuned = results["base"], results["tuned"]
    print({k: (round(base[k], 3), round(tuned[k], 3)) for k in base})
    assert results["eval_data"]["kind"] == "held-out file" and results["eval_data"]["examples"] == 10
    assert tuned["eval_loss"] < base["eval_loss"]
    assert tuned["perplexity"] < base["perplexity"]
    assert tuned["rouge_l"] > base["rouge_l"]  # the held-out references are in the taught JSON shape
    categories = results["probes"]["categories"]
    assert set(categories) == {"arithmetic", "facts", "instruction following", "refusal"}
    assert results["regressions"] == [c for c, v in categories.items() if v["base"] - v["tuned"] >= 0.25]
    report = Path(results["report"])
    assert report.is_file() and report.parent == Path(run["run_dir"]) / "eval"
    page = report.read_text()
    assert "Plotly.newPlot" in page and "Capability probe" in page
    assert json.loads((report.parent / "results.json").read_text())["tuned"]["eval_loss"] == tuned["eval_loss"]


def test_eval_of_an_unknown_run_is_one_line(trained_demo_run):
    home, _ = trained_demo_run
    result = run_cli("eval", "no-such-run", home=home)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: no run with id no-such-run")
    assert "Traceback" not in result.stderr
