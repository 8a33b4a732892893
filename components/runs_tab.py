"""Runs tab: every run in the registry; compare runs (overlaid curves + config differences);
resume or cancel a run; evaluation jobs (running ones with "k/N examples · ETA", finished ones with
their report). Thin: the registry, runner, overview and figures are studio's."""

from __future__ import annotations

import re
import time

import gradio as gr
import pandas as pd

from studio.jobs import overview, registry, runner
from studio.jobs.metrics import read_metrics
from studio.jobs.overview import tail_metrics
from studio.jobs.train import latest_checkpoint
from studio.plots import compare_figure, config_diff

from .common import downloadable, empty_state, error_text, status_html, stop_button
from .run_monitor import run_config

# "last loss": the last logged training loss (what the curve ends on); "avg loss": the trainer's
# train_loss, the mean over the whole run, which is higher than the last point of a falling curve.
COLUMNS = ["id", "name", "status", "method", "model", "device", "created", "last loss", "avg loss (trainer)", "message"]
NO_RUNS = "No runs yet. Start one in the Train tab (or `python -m studio train run.yaml` in a terminal): it is listed here."
PICK_TWO = "Pick two or more runs above and press Compare: their loss curves are overlaid and the settings that differ are listed."
EVAL_COLUMNS = ["evaluation", "run", "status", "progress / result", "started", "report"]
EVAL_POLL_SECONDS = 3.0


def last_logged_loss(record) -> float | None:
    rows = tail_metrics(record.run_dir / "metrics.jsonl", max_bytes=16 * 1024)
    return next((r["loss"] for r in reversed(rows) if isinstance(r.get("loss"), (int, float))), None)


def runs_table() -> pd.DataFrame:
    rows = []
    for r in registry.list_runs():
        last, mean = last_logged_loss(r), r.final_metrics.get("train_loss")
        rows.append([r.id, r.name, r.status, r.method, r.model, r.device or "", time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created)),
                     f"{last:.4f}" if last is not None else "", f"{mean:.4f}" if isinstance(mean, (int, float)) else "", r.message or ""])
    return pd.DataFrame(rows, columns=COLUMNS)


def evals_view(jobs=None):
    """The evaluations table (running: 'k/N examples · ETA'; finished: the eval-loss verdict and the
    report's path) and the report picker's choices (jobs whose report.html exists)."""
    jobs = overview.eval_jobs() if jobs is None else jobs
    rows = [[j.id, j.run_name, j.status, j.progress_text(), time.strftime("%Y-%m-%d %H:%M", time.localtime(j.created)),
             str(j.report) if j.report else ""] for j in jobs]
    table = pd.DataFrame(rows, columns=EVAL_COLUMNS)
    choices = [(f"{j.run_name} · {j.id}", j.id) for j in jobs if j.report]
    return gr.update(value=table, visible=not table.empty), gr.update(choices=choices)


def poll_evals(shown):
    """Every few seconds: redraw the evaluations only when one changed (progress moves while it runs)."""
    jobs = overview.eval_jobs()
    key = [[j.id, j.status, j.progress_text()] for j in jobs]
    if key == shown:
        return gr.skip(), gr.skip(), shown
    return (*evals_view(jobs), key)


def report_file(job_id):
    """The picked evaluation's self-contained report.html, as a download (a copy: the studio home is not served)."""
    job = next((j for j in overview.eval_jobs() if j.id == job_id), None) if job_id else None
    return downloadable(job.report) if job and job.report else None


def refresh_all():
    table = runs_table()
    ids = [r.id for r in registry.list_runs()]
    return (gr.update(value=table, visible=not table.empty), gr.update(value=empty_state(NO_RUNS), visible=table.empty),
            gr.update(choices=ids), gr.update(choices=ids), *evals_view())


def short_id(run_id: str) -> str:
    """`20261130-121501-lora-data` -> `121501` (the start time); other ids stay whole."""
    match = re.match(r"\d{8}-(\d{6})-", run_id)
    return match.group(1) if match else run_id


def legend_labels(records) -> list[str]:
    """Short id + name; the full id where two would still read the same (same name, same second)."""
    labels = [f"{short_id(r.id)} · {r.name}" for r in records]
    return [f"{r.id} · {r.name}" if labels.count(label) > 1 else label for r, label in zip(records, labels)]


def compare(run_ids, log_scale):
    records = [r for r in (registry.get(run_id) for run_id in dict.fromkeys(run_ids or [])) if r is not None]
    if len(records) < 2:
        return gr.update(visible=False), gr.update(visible=False), status_html(PICK_TWO, "info")
    labels = legend_labels(records)
    series = [(label, read_metrics(r.run_dir / "metrics.jsonl")) for label, r in zip(labels, records)]
    configs = {label: run_config(r.id) or {} for label, r in zip(labels, records)}
    header, rows = config_diff(configs)
    note = f"{len(rows)} setting(s) differ." if rows else "The runs' settings are the same."
    return (gr.update(value=compare_figure(series, log_scale=log_scale), visible=True),
            gr.update(value=pd.DataFrame(rows, columns=header), visible=bool(rows)), status_html(note, "info"))


def resume(run_id):
    if not run_id:
        return status_html("Pick a run to resume.", "warn")
    record = registry.get(run_id)
    checkpoint = latest_checkpoint(record.run_dir) if record else None
    try:
        record = runner.start(resume_id=run_id)
    except Exception as err:  # noqa: BLE001
        return status_html(error_text(err), "error")
    where = (f"from its last checkpoint (step {checkpoint.rsplit('-', 1)[-1]})" if checkpoint
             else "from step 0: it saved no checkpoint before it stopped")
    return status_html(f"Resuming run {record.id} {where}; watch it in the Train tab.", "ok", transient=True)


def cancel(run_id):
    if not run_id:
        return status_html("Pick a run to cancel.", "warn")
    return status_html(runner.cancel_in_background(run_id), "info", transient=True)


def cancel_button(run_id):
    """Cancel is red only while the picked run is live."""
    record = registry.get(run_id) if run_id else None
    live = record is not None and record.status in ("running", "queued")
    return stop_button(live)


def build() -> dict:
    gr.Markdown("### Runs\nEvery run, whether started here or with `python -m studio train`. Running runs are checked against their process on every refresh.")
    refresh = gr.Button("↻ Refresh", size="sm", elem_id="runs-refresh")
    empty = gr.HTML(empty_state(NO_RUNS), elem_id="runs-empty")
    table = gr.Dataframe(value=pd.DataFrame(columns=COLUMNS), headers=COLUMNS, interactive=False, wrap=True, visible=False, elem_id="runs-table")
    with gr.Row():
        target = gr.Dropdown(label="Run", choices=[], scale=3, elem_id="runs-target")
        resume_button = gr.Button("Resume", elem_id="runs-resume")
        cancel_button_ = gr.Button("Cancel", variant="secondary", interactive=False, elem_id="runs-cancel")
    action = gr.HTML(elem_id="runs-action")
    gr.Markdown("#### Compare runs")
    with gr.Row():
        picked = gr.Dropdown(label="Runs to compare", choices=[], multiselect=True, scale=3, elem_id="runs-compare-pick")
        log_scale = gr.Checkbox(value=False, label="Log-scale loss", elem_id="runs-compare-log")
        compare_button = gr.Button("Compare", variant="primary", elem_id="runs-compare")
    compare_note = gr.HTML(status_html(PICK_TWO, "info"), elem_id="runs-compare-note")
    plot = gr.Plot(label="Loss curves", visible=False, elem_id="runs-compare-plot")
    diff = gr.Dataframe(value=pd.DataFrame(columns=["setting"]), headers=["setting"], label="Config differences", interactive=False,
                        visible=False, elem_id="runs-compare-diff")

    gr.Markdown("#### Evaluations\nEvaluation jobs (Evaluate tab or `python -m studio eval RUN --background`): a running one shows "
                "k/N examples · ETA; a finished one its eval-loss verdict and its report.")
    evals = gr.Dataframe(value=pd.DataFrame(columns=EVAL_COLUMNS), headers=EVAL_COLUMNS, interactive=False, wrap=True, visible=False, elem_id="runs-evals")
    with gr.Row():
        eval_pick = gr.Dropdown(label="Report of an evaluation", choices=[], scale=3, elem_id="runs-eval-pick")
        eval_report = gr.File(label="report.html (self-contained, opens offline)", interactive=False, scale=2, elem_id="runs-eval-report")
    evals_shown = gr.State(None)
    gr.Timer(EVAL_POLL_SECONDS).tick(poll_evals, evals_shown, [evals, eval_pick, evals_shown], show_progress="hidden")
    eval_pick.change(report_file, eval_pick, eval_report)

    targets = [table, empty, target, picked, evals, eval_pick]
    refresh.click(refresh_all, None, targets)
    resume_button.click(resume, target, action).then(refresh_all, None, targets)
    cancel_button_.click(cancel, target, action)
    target.change(cancel_button, target, cancel_button_)
    compare_button.click(compare, [picked, log_scale], [plot, diff, compare_note])
    log_scale.change(compare, [picked, log_scale], [plot, diff, compare_note])
    return {"refresh_all": refresh_all, "refresh_targets": targets}
