"""Evaluation jobs (registry kind `eval`) in the status bar and the Runs tab: the logic lives in
studio.jobs.overview (k/N examples · ETA while running, the outcome and report once finished)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from studio.jobs import overview, registry


def _eval_job(job_id: str, run, folder: str):
    return registry.create(job_id, name=f"eval of {run.name}", method="eval", model="embedded", dataset=run.id, kind="eval",
                           run_dir=run.run_dir / "eval" / folder)


def test_eval_jobs_show_progress_while_running_and_their_report_once_done(studio_home):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = registry.create("run-a", name="demo tune", method="lora", model="embedded", dataset="d.jsonl")
        registry.finish(run.id, "completed")
        done = _eval_job("eval-0-run-a", run, "0")
        registry.finish(done.id, "completed", None, {"eval_loss": {"base": 1.736, "tuned": 1.602, "delta": -0.134, "ci": [-0.2, -0.05], "verdict": "better"}})
        (done.run_dir / "report.html").write_text("<html>report</html>")
        time.sleep(0.01)
        failed = _eval_job("eval-1-run-a", run, "1")
        registry.finish(failed.id, "failed", "the run's training data x.jsonl is gone.")
        time.sleep(0.01)
        running = _eval_job("eval-2-run-a", run, "2")
        registry.mark_running(running.id, sleeper.pid)

        jobs = {j.id: j for j in overview.eval_jobs()}
        assert jobs[running.id].progress_text().startswith("starting")  # no progress.json yet
        (running.run_dir / "progress.json").write_text(json.dumps({"done": 12, "total": 64, "phase": "answers (base)", "eta": 65.0}))
        jobs = {j.id: j for j in overview.eval_jobs()}
        assert [j.id for j in overview.eval_jobs()] == [running.id, failed.id, done.id]  # newest first
        assert jobs[running.id].progress_text() == "12/64 examples · ETA 1m05s · answers (base)"
        assert jobs[running.id].describe() == "Evaluating demo tune · 12/64 examples · ETA 1m05s · answers (base)"
        assert jobs[running.id].run_id == run.id and jobs[running.id].report is None
        assert jobs[done.id].progress_text() == "eval loss 1.736 → 1.602 (better)"
        assert jobs[done.id].report == done.run_dir / "report.html"
        assert jobs[failed.id].progress_text() == "failed: the run's training data x.jsonl is gone."

        (running.run_dir / "progress.json").write_text(json.dumps({"done": 0, "total": 64, "phase": "eval loss (base)", "eta": None}))
        assert overview.eval_jobs()[0].progress_text() == "0/64 examples · ETA … · eval loss (base)"  # no rate measured yet

        now = overview.overview()
        assert [j.id for j in now.evals] == [running.id]  # only live evaluations
        assert now.active is None and now.queued == 0  # an evaluation is no training run

        from components.app import open_active_run, status_bar_html
        from components.runs_tab import evals_view

        bar = status_bar_html()
        assert "Evaluating demo tune · 0/64 examples · ETA …" in bar and "No run active" not in bar
        clicked = open_active_run([])  # no training run, an evaluation going: the click opens Evaluate on that run
        assert clicked[0].selected == "evaluate" and clicked[-1]["value"] == run.id
        table, picker = evals_view()
        rows = table["value"].values.tolist()
        assert [r[0] for r in rows] == [running.id, failed.id, done.id]
        assert rows[2][3] == "eval loss 1.736 → 1.602 (better)" and rows[2][5].endswith("report.html") and rows[0][5] == ""
        assert [value for _, value in picker["choices"]] == [done.id]  # only finished jobs with a report

        sleeper.kill()
        sleeper.wait()
        assert overview.overview().evals == []  # the killed job is reconciled, never "running" forever
        assert overview.eval_jobs()[0].status == "interrupted"
        assert "No run active" in status_bar_html()
    finally:
        sleeper.kill()
        sleeper.wait()
