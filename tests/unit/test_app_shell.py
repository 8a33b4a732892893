"""The app shell's pieces without a browser: the status-bar overview, run labels for the Runs tab,
the Data preview of public formats, user-facing file names, and the --app window command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

PUBLIC = REPO / "tests" / "data" / "public"


def test_tail_metrics_reads_only_complete_rows_of_a_long_file(tmp_path):
    from studio.jobs.overview import tail_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": i, "loss": 1.0 / i, "pad": "x" * 100}) + "\n" for i in range(1, 5001)))
    rows = tail_metrics(path, max_bytes=4096)
    assert rows and rows[-1]["step"] == 5000 and all(set(r) == {"step", "loss", "pad"} for r in rows)
    assert len(rows) < 40  # a tail, not the 600 KB file
    assert tail_metrics(tmp_path / "missing.jsonl") == []


def test_overview_names_the_hardware_the_active_run_and_the_queue(studio_home):
    from studio.jobs import overview, registry

    now = overview.overview()
    assert re.fullmatch(r"CPU · \d+ cores|.+ · [\d.]+/\d+ GiB", now.hardware.label), now.hardware.label
    assert now.active is None and now.queued == 0

    sleeper = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(3)]
    try:
        for index, process in enumerate(sleeper):
            record = registry.create(f"run-{index}", name=f"run {index}", method="lora", model="embedded", dataset="d.jsonl")
            if index == 0:
                registry.mark_running(record.id, process.pid)
                rows = [{"step": s, "time": time.time() + s, "loss": 2.0 / s, "max_steps": 10} for s in (1, 2, 3)]
                (record.run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            else:
                registry.mark_queued(record.id, process.pid, "cuda:0")
        now = overview.overview()
        assert now.active.id == "run-0" and now.queued == 2
        text = now.active.describe()
        assert text.startswith("run 0 · step 3/10 · loss 0.667 · ETA "), text
    finally:
        for process in sleeper:
            process.kill()
            process.wait()


def test_the_stepper_lights_the_tab_on_screen_and_ticks_what_was_done():
    from components.app import STEPS, mark, show

    def classes(updates):
        return {step: update["elem_classes"] for (step, _), update in zip(STEPS, updates)}

    current, *updates = show("chat")(["data"])
    assert current == "chat"
    assert classes(updates) == {"data": ["studio-step", "done"], "method": ["studio-step"], "train": ["studio-step"],
                                "chat": ["studio-step", "current"], "evaluate": ["studio-step"], "export": ["studio-step"]}
    _, *updates = show("runs")(["data"])  # Runs is a tab, not a step: nothing lit
    assert not any("current" in c for c in classes(updates).values())
    done, *updates = mark("train")(["data"], "train")  # ticking a step keeps the lit one
    assert done == ["data", "train"] and classes(updates)["train"] == ["studio-step", "done", "current"]
    assert classes(updates)["data"] == ["studio-step", "done"]


def test_runs_that_share_a_name_get_distinct_legends():
    from types import SimpleNamespace

    from components.runs_tab import legend_labels, short_id

    same = [SimpleNamespace(id=f"20261130-1215{n:02d}-lora-data", name="lora on data.jsonl") for n in (1, 7)]
    assert legend_labels(same) == ["121501 · lora on data.jsonl", "121507 · lora on data.jsonl"]
    same_second = [SimpleNamespace(id="20261130-121501-lora-data", name="x"), SimpleNamespace(id="20261130-121501-lora-data-2", name="x")]
    assert len(set(legend_labels(same_second))) == 2
    assert short_id("cmp-a") == "cmp-a"


def test_resume_without_a_checkpoint_says_it_restarts_from_step_0(studio_home, monkeypatch):
    from components import runs_tab
    from studio.jobs import registry

    record = registry.create("no-ckpt", name="n", method="lora", model="embedded", dataset="d.jsonl")
    registry.finish(record.id, "interrupted", "killed")
    monkeypatch.setattr(runs_tab.runner, "start", lambda resume_id: registry.get(resume_id))  # only the message is checked here
    assert "from step 0" in runs_tab.resume(record.id)
    checkpoint = record.run_dir / "checkpoints" / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}")  # a whole checkpoint (the weights are not opened without a file)
    message = runs_tab.resume(record.id)
    assert "from its last checkpoint (step 4)" in message and "studio-transient" in message


@pytest.mark.parametrize("name, columns", [
    ("preference_mixed.jsonl", {"prompt", "chosen", "rejected"}),
    ("kto_en_demo.json", {"prompt", "completion", "label"}),
    ("glaive_toolcall_demo.json", {"user", "assistant", "turns"}),
])
def test_the_data_preview_shows_each_format_in_its_own_columns(name, columns):
    from studio.data import load_dataset_file, preview_rows

    rows = preview_rows(load_dataset_file(PUBLIC / name))
    assert rows and columns <= set(rows[0])
    assert all(any(str(row[c]).strip() for row in rows) for c in columns), "a column is blank"
    if name.startswith("glaive"):
        assert any(str(row["assistant"]).startswith("→ ") for row in rows), "tool calls are written out"


def test_messages_name_the_users_file_not_gradios_upload_copy():
    from gradio.utils import get_upload_folder

    from components.common import error_text
    from studio.errors import StudioError

    upload = Path(get_upload_folder()) / ("c8acfc" + "0" * 58) / "bad_empty.jsonl"
    text = error_text(StudioError("the dataset is empty.", where=str(upload)))
    assert "bad_empty.jsonl" in text and str(upload.parent) not in text


def test_app_window_uses_a_chromium_family_browser_with_app_url(monkeypatch, tmp_path):
    sys.path.insert(0, str(REPO))
    import launch

    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    started = []
    monkeypatch.setattr(launch.subprocess, "Popen", lambda args, **kw: started.append(args))
    assert "app window" in launch.open_window("http://127.0.0.1:7860/")
    assert started == [[str(fake), "--app=http://127.0.0.1:7860/", "--new-window"]]

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(launch, "MAC_APP_BROWSERS", ())
    opened = []
    monkeypatch.setattr(launch.webbrowser, "open", lambda url: opened.append(url) or True)
    assert launch.open_window("http://127.0.0.1:7860/") == "opened in the default browser" and opened


def test_the_export_tab_shows_the_cards_metadata_as_yaml_not_a_run_on_paragraph():
    from components.export_tab import card_markdown

    text = "---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\nlibrary_name: peft\ntags:\n- lora\n---\n\n# my run\n\nFine-tuned.\n"
    shown = card_markdown(text)
    assert shown.startswith("```yaml\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\n") and "\n```\n\n# my run" in shown
    assert "---" not in shown
    assert card_markdown("# no metadata\n").strip() == "# no metadata"


def test_the_advisor_starts_from_this_machines_hardware(monkeypatch):
    from components import method_tab
    from studio.jobs import overview

    monkeypatch.setattr(overview.shutil, "which", lambda name: None)  # no nvidia-smi: a CPU box
    assert method_tab.default_device() == "cpu"
    monkeypatch.setattr(overview, "hardware", lambda: overview.Hardware("NVIDIA H200 · 1.0/139 GiB", True))
    assert method_tab.default_device() == "gpu"
