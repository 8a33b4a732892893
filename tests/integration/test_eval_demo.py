"""`python -m studio eval` on the shared demo run: paired metrics, honest labels, the probe, the job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.evaluate import PROBES
from tests.conftest import demo_listing, run_cli

pytestmark = pytest.mark.integration


def test_eval_json_base_vs_tuned(trained_demo_run, tmp_path):
    home, _ = trained_demo_run
    run = demo_listing(trained_demo_run)
    shipped = json.loads(PROBES.read_text())["probes"]  # two items per category keep the test short; bench/ runs all 68
    subset = [p for c in dict.fromkeys(p["category"] for p in shipped) for p in [q for q in shipped if q["category"] == c][:2]]
    (tmp_path / "probes.json").write_text(json.dumps({"probes": subset}))
    result = run_cli("eval", run["id"], "--json", "--max-new-tokens", "20", "--probe-file", str(tmp_path / "probes.json"), home=home)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "/64 examples · ETA" in result.stderr  # 2 x 10 loss + 2 x 10 answers + 2 x 12 probe items, on stderr
    results = json.loads(result.stdout.strip().splitlines()[-1])
    metrics = results["metrics"]
    print({k: (round(m["base"], 3), round(m["tuned"], 3), [round(c, 3) for c in m["ci"]], m["verdict"]) for k, m in metrics.items()})
    assert results["eval_data"]["kind"] == "held-out file" and results["eval_data"]["examples"] == 10 and results["eval_data"]["held_out"]
    for metric in metrics.values():
        assert {"base", "tuned", "delta", "ci", "verdict"} <= set(metric) and metric["n"] in (10, 12)
        assert metric["ci"][0] <= metric["delta"] <= metric["ci"][1]
    # the demo tune teaches the held-out answers' JSON shape: a drop in loss that 10 examples can show
    assert metrics["eval_loss"]["verdict"] == "better" and metrics["eval_loss"]["ci"][1] < 0
    categories = results["probes"]["categories"]
    assert set(categories) == {"arithmetic", "facts", "instruction following", "format", "refusal", "reasoning"}
    assert results["regressions"] == [c for c, v in categories.items() if v["regressed"]]
    assert all(v["p_value"] < 0.05 and len(v["lost"]) > len(v["gained"]) for c, v in categories.items() if c in results["regressions"])
    report = Path(results["report"])
    assert report.is_file() and report.parent.parent == Path(run["run_dir"]) / "eval"  # eval/<timestamp>/report.html
    page = report.read_text()
    assert "Plotly.newPlot" in page and "Capability probe" in page and "n = 10 examples" in page
    assert (report.parent / "summary.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((report.parent / "results.json").read_text())["metrics"]["eval_loss"]["tuned"] == metrics["eval_loss"]["tuned"]
    listed = json.loads(run_cli("runs", "list", "--json", home=home).stdout)  # eval jobs are not training runs
    assert run["id"] in [j["id"] for j in listed] and all(j["kind"] != "eval" for j in listed)


def test_eval_of_an_unknown_run_is_one_line(trained_demo_run):
    home, _ = trained_demo_run
    result = run_cli("eval", "no-such-run", home=home)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: no run with id no-such-run")
    assert "Traceback" not in result.stderr
