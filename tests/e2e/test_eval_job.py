"""In a real browser on the shared demo run: an evaluation is a job. It states the expected time
before it starts, shows "k/N examples · ETA" while it runs, is still shown with its progress after a
reload (the page reattaches to it), and Cancel stops it within 10 s."""

from __future__ import annotations

import os
import re
import time

import pytest

from studio.jobs import registry

pytestmark = pytest.mark.e2e

PROGRESS = re.compile(r"(\d+)/(\d+) examples")
WITH_ETA = re.compile(r"\d+/\d+ examples · ETA \d")


def open_evaluate(page, url: str) -> None:
    page.goto(url)
    page.get_by_role("tab", name="Evaluate").click()


def test_eval_job_survives_a_reload_and_cancels_within_10_s(demo_server, page, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(demo_server["home"]))
    open_evaluate(page, demo_server["url"])
    page.locator("#eval-run input").click()
    page.get_by_role("option").filter(has_text=demo_server["run_id"]).first.click()
    expected = page.locator("#eval-expected")
    expected.get_by_text("Expected:").wait_for(timeout=30_000)
    assert "examples" in expected.inner_text() and ("about" in expected.inner_text() or "no measured rate" in expected.inner_text())
    assert page.locator("#eval-cancel").is_disabled()  # red and enabled only while an evaluation runs
    page.locator("#eval-start").click()
    status = page.locator("#eval-status")
    status.get_by_text(PROGRESS).wait_for(timeout=60_000)
    status.get_by_text(WITH_ETA).wait_for(timeout=90_000)  # from the measured rate, or after the first batch on a new machine

    page.reload()  # a new page: nothing picked; it must find the running evaluation by itself
    page.get_by_role("tab", name="Evaluate").click()
    status = page.locator("#eval-status")
    status.get_by_text(PROGRESS).wait_for(timeout=15_000)
    assert "Evaluating" in status.inner_text(), status.inner_text()
    assert demo_server["run_id"] in page.locator("#eval-run input").input_value()
    (job,) = [j for j in registry.list_runs(kind="eval") if j.status in ("queued", "running")]
    assert job.dataset == demo_server["run_id"]
    # an evaluation is a job like a run: the status bar and the Runs tab show it with its progress
    page.locator("#studio-status").get_by_text(re.compile(r"Evaluating .* \d+/\d+ examples")).wait_for(timeout=15_000)
    page.get_by_role("tab", name="Runs").click()
    evals = page.locator("#runs-evals")
    deadline = time.time() + 15
    while time.time() < deadline and not (evals.is_visible() and PROGRESS.search(evals.inner_text())):
        time.sleep(0.25)
    assert PROGRESS.search(evals.inner_text()) and job.id in evals.inner_text(), evals.inner_text()
    page.get_by_role("tab", name="Evaluate").click()
    status.get_by_text(PROGRESS).wait_for(timeout=15_000)

    started = time.time()
    page.locator("#eval-cancel").click()
    while time.time() - started < 15:  # stopped = recorded as cancelled and the process gone
        job = registry.get(job.id)
        if job.status not in ("queued", "running") and not registry.is_alive(job.pid, job.pid_start):
            break
        time.sleep(0.1)
    took = time.time() - started
    assert job.status == "cancelled" and took <= 10, (job.status, took)
    status.get_by_text("Last evaluation cancelled").wait_for(timeout=10_000)
    assert not (job.run_dir / "results.json").exists() and os.path.isdir(job.run_dir)

    # a finished evaluation fills the plots, not only the table and the banner (a browser pass saw the
    # three plots empty): the smallest one that finishes, 4 examples and no probe
    page.get_by_text("Options", exact=True).click()
    page.locator("#eval-max-examples input[type=number]").fill("4")
    page.locator("#eval-max-examples input[type=number]").press("Enter")
    page.locator("#eval-probes input[type=checkbox]").uncheck()
    page.locator("#eval-start").click()
    status.get_by_text(re.compile(r"Eval loss \d+\.\d+ → ")).wait_for(timeout=180_000)  # the headline, not the "eval loss (base)" phase
    for plot in ("#eval-delta-plot", "#eval-loss-plot"):  # plotly drew its SVG with one marker per metric
        page.locator(f"{plot} .js-plotly-plot .main-svg").first.wait_for(timeout=30_000)
        assert page.locator(f"{plot} .scatterlayer .trace").count() >= 2, plot
    assert "eval loss" in page.locator("#eval-table").inner_text()
