"""Load: 10 concurrent sessions chat and poll the live plot while a run trains (loopback only)."""

from __future__ import annotations

import pytest

from bench.loadlib import rss_mb, run_load
from studio.config import RunConfig
from studio.jobs import registry, runner
from tests.conftest import DEMO_DATA

pytestmark = pytest.mark.integration


@pytest.fixture
def served_home(demo_server, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(demo_server["home"]))
    return demo_server["home"], demo_server["url"], demo_server["process"]


def test_ten_sessions_chat_and_poll_while_a_run_trains(served_home):
    home, url, server = served_home
    tuned = next(r for r in registry.list_runs() if r.status == "completed")
    training = runner.start(RunConfig.from_dict({"data": str(DEMO_DATA), "max_steps": 40, "max_length": 64, "per_device_train_batch_size": 2, "save_steps": 1000}))
    try:
        rss_before = rss_mb(server.pid)
        report = run_load(url, tuned.id, sessions=10, max_tokens=8, poll_seconds=3.0)  # the slider minimum is 8
        rss_after = rss_mb(server.pid)
        print(report, f"rss {rss_before:.0f} -> {rss_after:.0f} MB")
        assert report["errors"] == []
        assert report["completed"] == 10
        assert report["leaks"] == 0
        assert report["polls"] >= 10
        assert rss_after - rss_before < 1024, "the server's memory grew by more than 1 GB under load"
        assert registry.get(training.id).status == "running"  # the UI load did not disturb the run
    finally:
        runner.cancel(training.id)
