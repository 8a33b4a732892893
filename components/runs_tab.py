"""Runs tab: every run in the registry; compare runs (overlaid curves + config differences);
resume or cancel a run. Thin: the registry, runner and figures are studio's."""

from __future__ import annotations

import time

import gradio as gr
import pandas as pd
import yaml

from studio.jobs import registry, runner
from studio.jobs.metrics import read_metrics
from studio.plots import compare_figure, config_diff

from .common import error_text, status_html

COLUMNS = ["id", "name", "status", "method", "model", "device", "created", "final loss", "message"]


def runs_table() -> pd.DataFrame:
    rows = []
    for r in registry.list_runs():
        loss = r.final_metrics.get("train_loss")
        rows.append([r.id, r.name, r.status, r.method, r.model, r.device or "", time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created)),
                     f"{loss:.4f}" if isinstance(loss, (int, float)) else "", r.message or ""])
    return pd.DataFrame(rows, columns=COLUMNS)


def refresh_all():
    ids = [r.id for r in registry.list_runs()]
    return runs_table(), gr.update(choices=ids), gr.update(choices=ids)


def compare(run_ids, log_scale):
    run_ids = run_ids or []
    if not run_ids:
        return None, pd.DataFrame(columns=["setting"]), status_html("Pick two or more runs to compare.", "info")
    series, configs = [], {}
    for run_id in run_ids:
        record = registry.get(run_id)
        if record is None:
            continue
        label = f"{record.name} ({record.id[-6:]})"
        series.append((label, read_metrics(record.run_dir / "metrics.jsonl")))
        config_file = record.run_dir / "config.yaml"
        configs[label] = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    header, rows = config_diff(configs)
    note = f"{len(rows)} setting(s) differ." if len(configs) > 1 else "Pick a second run to see what differs."
    return compare_figure(series, log_scale=log_scale), pd.DataFrame(rows, columns=header), status_html(note, "info")


def resume(run_id):
    if not run_id:
        return status_html("Pick a run to resume.", "warn")
    try:
        record = runner.start(resume_id=run_id)
    except Exception as err:  # noqa: BLE001
        return status_html(error_text(err), "error")
    return status_html(f"Resuming run {record.id} from its last checkpoint; watch it in the Train tab.", "ok")


def cancel(run_id):
    if not run_id:
        return status_html("Pick a run to cancel.", "warn")
    return status_html(runner.cancel_in_background(run_id), "info")


def build() -> dict:
    gr.Markdown("### Runs\nEvery run, whether started here or with `python -m studio train`. Running runs are checked against their process on every refresh.")
    refresh = gr.Button("Refresh", size="sm", elem_id="runs-refresh")
    table = gr.Dataframe(value=None, headers=COLUMNS, interactive=False, wrap=True, elem_id="runs-table")
    with gr.Row():
        target = gr.Dropdown(label="Run", choices=[], scale=3, elem_id="runs-target")
        resume_button = gr.Button("Resume", elem_id="runs-resume")
        cancel_button = gr.Button("Cancel", variant="stop", elem_id="runs-cancel")
    action = gr.HTML(elem_id="runs-action")
    gr.Markdown("#### Compare runs")
    with gr.Row():
        picked = gr.Dropdown(label="Runs to compare", choices=[], multiselect=True, scale=3, elem_id="runs-compare-pick")
        log_scale = gr.Checkbox(value=False, label="Log-scale loss", elem_id="runs-compare-log")
        compare_button = gr.Button("Compare", variant="primary", elem_id="runs-compare")
    compare_note = gr.HTML(elem_id="runs-compare-note")
    plot = gr.Plot(label="Loss curves", elem_id="runs-compare-plot")
    diff = gr.Dataframe(label="Config differences", interactive=False, elem_id="runs-compare-diff")

    refresh.click(refresh_all, None, [table, target, picked])
    resume_button.click(resume, target, action).then(refresh_all, None, [table, target, picked])
    cancel_button.click(cancel, target, action)
    compare_button.click(compare, [picked, log_scale], [plot, diff, compare_note])
    log_scale.change(compare, [picked, log_scale], [plot, diff, compare_note])
    return {"refresh_all": refresh_all, "refresh_targets": [table, target, picked]}
