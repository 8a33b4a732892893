import json
import subprocess
import sys
import time

from studio.jobs import registry
from studio.jobs.metrics import read_metrics, truncate_after
from studio.jobs.progress import progress_from, smooth


def test_dead_running_run_is_marked_interrupted(studio_home):
    record = registry.create("r1", name="n", method="lora", model="embedded", dataset="d")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    registry.mark_running("r1", child.pid)
    assert registry.get("r1").status == "running"
    child.kill()
    child.wait()
    got = registry.get("r1")
    assert got.status == "interrupted"
    assert "resume" in got.message
    assert record.run_dir.is_dir()


def test_registry_survives_reopen_and_lists_newest_first(studio_home):
    registry.create("a", name="first", method="lora", model="embedded", dataset="d")
    time.sleep(0.01)
    registry.create("b", name="second", method="full", model="embedded", dataset="d")
    registry.finish("a", "completed", final_metrics={"train_loss": 0.5})
    runs = registry.list_runs()
    assert [r.id for r in runs] == ["b", "a"]
    assert runs[1].final_metrics == {"train_loss": 0.5}


def test_truncate_after_drops_later_steps_and_half_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 8)) + '{"step": 8, "lo')
    assert [r["step"] for r in read_metrics(path)] == list(range(1, 8))
    truncate_after(path, 4)
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4]


def test_progress_and_eta():
    rows = [{"step": s, "loss": 2.0 - s * 0.1, "time": 100.0 + 2 * s, "max_steps": 10} for s in range(1, 6)]
    progress = progress_from(rows, started=100.0, now=111.0)
    assert progress.step == 5 and progress.max_steps == 10
    assert progress.eta_s == 10.0
    assert "step 5/10 (50%)" in progress.describe() and "ETA 10s" in progress.describe()


def test_eta_is_unknown_until_a_step_interval_is_timed_and_never_0_while_steps_remain():
    def row(step, time, max_steps=6):
        return {"step": step, "loss": 1.0, "time": time, "max_steps": max_steps}

    first = progress_from([row(1, 100.0)], started=90.0, now=101.0)  # one step: no interval yet
    assert first.eta_s is None and "ETA …" in first.describe()
    untimed = progress_from([{"step": 1, "loss": 1.0, "max_steps": 6}, {"step": 2, "loss": 0.9, "max_steps": 6}], started=90.0, now=101.0)
    assert untimed.eta_s is None and untimed.eta_text == "ETA …"
    same_instant = progress_from([row(1, 100.0), row(2, 100.0)], started=90.0, now=101.0)  # no duration: still unknown
    assert same_instant.eta_s is None and same_instant.eta_text == "ETA …"
    fast = progress_from([row(1, 100.0), row(2, 100.05)], started=90.0, now=101.0)  # 4 steps at 50 ms: 0.2 s left
    assert fast.eta_s == 1.0 and "ETA 1s" in fast.describe() and "ETA 0s" not in fast.describe()
    done = progress_from([row(s, 100.0 + s) for s in range(1, 7)], started=90.0, now=107.0)
    assert done.eta_s == 0.0 and done.eta_text is None and "ETA" not in done.describe()
    # A chain's next stage counts from step 1 again: its pace is not measured across the stages.
    stage = [row(1, 100.0, 2), row(2, 103.0, 2), row(1, 200.0, 4)]
    assert progress_from(stage, started=90.0, now=201.0).eta_text == "ETA …"
    assert progress_from(stage + [row(2, 205.0, 4)], started=90.0, now=206.0).eta_s == 10.0


def test_the_status_bar_says_eta_unknown_before_the_second_step():
    from studio.jobs.overview import ActiveRun

    run = ActiveRun("r", "lora on data", "running", progress_from([{"step": 1, "loss": 2.0, "time": 100.0, "max_steps": 6}], 90.0, 101.0))
    assert run.describe() == "lora on data · step 1/6 · loss 2.000 · ETA …"


def test_smoothing_starts_at_first_value_and_lags():
    values = [1.0, 0.0, 0.0, 0.0]
    out = smooth(values)
    assert out[0] == 1.0
    assert 0 < out[-1] < out[1] < 1.0
