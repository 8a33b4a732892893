"""The Train tab's right-hand side: run picker, status with progress/ETA, live plots, the copyable
command; plus clone-run and presets, which fill the tab's form. Thin: everything is studio.jobs."""

from __future__ import annotations

import html
import time

import gradio as gr

from studio.config import RunConfig
from studio.jobs import presets, registry, runner
from studio.jobs.metrics import read_metrics
from studio.jobs.progress import progress_from
from studio.plots import loss_figure, metrics_figure

from .common import error_text, status_html, stop_button

STATUS_KIND = {"completed": "ok", "failed": "error", "cancelled": "warn", "interrupted": "warn"}
POLL_SECONDS = 0.5  # a row written to metrics.jsonl reaches the browser within ~1 s (see tests/e2e/test_runs_live.py)
METRICS_POLL_SECONDS = 2.0


def run_choices() -> list[tuple[str, str]]:
    """Name and id only: the status is in the banner below, which is live (a label would go stale)."""
    return [(f"{r.name} · {r.id}", r.id) for r in registry.list_runs()]


def run_config(run_id) -> dict | None:
    """The run's saved config.yaml (read typed, through RunConfig.of_run) as a mapping, or None."""
    record = registry.get(run_id) if run_id else None
    cfg = RunConfig.of_run(record.run_dir) if record else None
    return cfg.to_dict() if cfg else None


def default_run() -> str | None:
    """Reattach: the newest live run, else the newest run."""
    runs = registry.list_runs()
    live = [r for r in runs if r.status in ("running", "queued")]
    return (live or runs)[0].id if (live or runs) else None


def config_summary(run_id) -> str:
    """One line of the watched run's settings (RunConfig.summary: what its method uses)."""
    record = registry.get(run_id) if run_id else None
    cfg = RunConfig.of_run(record.run_dir) if record else None
    if cfg is None:
        return ""
    items = " · ".join(f"<span><b>{html.escape(key)}</b> {html.escape(value)}</span>" for key, value in cfg.summary())
    return f'<div class="studio-config-summary">{items}</div>'


def progress_bar(fraction: float) -> str:
    return f'<div class="studio-progress"><div class="studio-progress-fill" style="width:{100 * fraction:.1f}%"></div></div>'


def describe(record, rows) -> str:
    progress = progress_from(rows, record.started, record.finished or time.time())
    text = f"{record.status.upper()} · {record.name} · {progress.describe() if record.status != 'queued' else 'waiting for its turn'}"
    if record.message:
        text += f" — {record.message}"
    warnings = [r["warning"] for r in rows if r.get("warning")]
    if warnings and record.status == "running":
        text += f" — ⚠️ {warnings[-1]}"
    return status_html(text, STATUS_KIND.get(record.status, "info")) + progress_bar(1.0 if record.status == "completed" else progress.fraction)


NO_RUN = "No run yet. Load a dataset in the Data tab (or type a path in Dataset), then press Start training: the loss curve appears here."


def refresh(run_id, seen, log_scale=False, was_live=None):
    """Fast timer tick: status, progress and the loss plot (only redrawn when new rows arrived);
    the Stop button only when the run's liveness changed."""
    if not run_id:
        return status_html(NO_RUN, "info"), gr.skip(), seen, gr.skip(), *_stop_if_changed(False, was_live)
    record = registry.get(run_id)
    if record is None:
        return status_html(f"Run {run_id} is gone from the registry.", "error"), gr.skip(), seen, gr.skip(), *_stop_if_changed(False, was_live)
    rows = read_metrics(record.run_dir / "metrics.jsonl")
    command_file = record.run_dir / "command.txt"
    command = command_file.read_text().strip() if command_file.exists() else gr.skip()
    status = describe(record, rows)
    stop = _stop_if_changed(record.status in ("running", "queued"), was_live)
    if len(rows) == seen:
        return status, gr.skip(), seen, command, *stop
    return status, loss_figure(rows, title=f"Loss · {record.name}", log_scale=log_scale), len(rows), command, *stop


def _stop_if_changed(live: bool, was_live) -> tuple:
    return (gr.skip(), was_live) if live == was_live else (stop_button(live), live)


def refresh_metrics(run_id, seen):
    """Slow timer tick: the secondary panels, kept off the fast path so the loss plot stays live."""
    record = registry.get(run_id) if run_id else None
    if record is None:
        return gr.skip(), seen
    rows = read_metrics(record.run_dir / "metrics.jsonl")
    if len(rows) == seen:
        return gr.skip(), seen
    return metrics_figure(rows), len(rows)


def refresh_completions(run_id, seen):
    """Slow timer tick: GRPO's table of sampled completions (RUN/completions.jsonl), hidden for other methods."""
    from studio.plots import completions_table
    from studio.runfiles import COMPLETIONS_FILE, read_completions

    record = registry.get(run_id) if run_id else None
    path = record.run_dir / COMPLETIONS_FILE if record else None
    size = path.stat().st_size if path is not None and path.exists() else 0
    if size == seen:
        return gr.skip(), seen
    if not size:
        return gr.update(visible=False), 0
    header, rows = completions_table(read_completions(record.run_dir))
    return gr.update(value={"headers": header, "data": rows}, visible=True), size


def redraw_loss(run_id, log_scale):
    record = registry.get(run_id) if run_id else None
    if record is None:
        return gr.skip()
    return loss_figure(read_metrics(record.run_dir / "metrics.jsonl"), title=f"Loss · {record.name}", log_scale=log_scale)


def build_monitor(stop: gr.Button) -> dict:
    """Create the monitoring widgets (call inside the tab's right column) and wire the timer;
    `stop` (the tab's Stop button) turns red only while the watched run is live."""
    for warm_up in (loss_figure, metrics_figure):  # load plotly's validators now, not on the first live point
        warm_up([{"step": 1, "loss": 1.0, "learning_rate": 1.0}]).to_json()
    run_picker = gr.Dropdown(label="Watching run", choices=[], allow_custom_value=True, elem_id="train-run")
    status = gr.HTML(status_html(NO_RUN, "info"), elem_id="train-status")
    with gr.Column(visible=False, elem_id="train-watch") as watch:  # shown once a run is watched: no empty plots
        summary = gr.HTML(elem_id="train-config-summary")
        log_scale = gr.Checkbox(value=False, label="Log-scale loss", elem_id="train-log-scale")
        plot = gr.Plot(label="Loss", elem_id="train-plot")
        with gr.Accordion("Learning rate, grad norm, tokens/s, memory and method metrics", open=True):
            metrics_plot = gr.Plot(label="Metrics", elem_id="train-metrics")
            completions = gr.Dataframe(label="GRPO: sampled completions of the last logged steps, with each reward", visible=False, wrap=True,
                                       interactive=False, elem_id="train-completions")
        command = gr.Textbox(label="Equivalent CLI command", interactive=False, buttons=["copy"], elem_id="train-command")
    seen_rows, seen_metric_rows, live = gr.State(-1), gr.State(-1), gr.State(None)
    timer, slow_timer = gr.Timer(POLL_SECONDS), gr.Timer(METRICS_POLL_SECONDS)
    run_picker.change(lambda run_id: (-1, -1, gr.update(visible=bool(run_id)), config_summary(run_id)), run_picker, [seen_rows, seen_metric_rows, watch, summary])
    log_scale.change(redraw_loss, [run_picker, log_scale], plot)
    # always_last: a tick that lands while the previous one runs is served right after it, not dropped
    timer.tick(refresh, [run_picker, seen_rows, log_scale, live], [status, plot, seen_rows, command, stop, live], show_progress="hidden", trigger_mode="always_last")
    slow_timer.tick(refresh_metrics, [run_picker, seen_metric_rows], [metrics_plot, seen_metric_rows], show_progress="hidden")
    seen_completions = gr.State(-1)
    run_picker.change(lambda: -1, None, seen_completions)
    slow_timer.tick(refresh_completions, [run_picker, seen_completions], [completions, seen_completions], show_progress="hidden")
    return {"run_picker": run_picker, "status": status, "plot": plot, "command": command, "run_config": run_config}


def stop_run(run_id):
    if not run_id:
        return status_html("No run selected.", "warn")
    return status_html(runner.cancel_in_background(run_id), "info", transient=True)


# --- clone run and presets: they fill the form owned by the Train tab -------------------------

def form_to_raw(keys: list[str], values: list) -> dict:
    """Widget values -> config keys (the form shows max_steps -1 as 0, and LoRA alpha 2 × rank as 0)."""
    raw = dict(zip(keys, values))
    if "max_steps" in raw:
        raw["max_steps"] = int(raw["max_steps"]) if raw["max_steps"] else -1
    if "lora_alpha" in raw and not raw["lora_alpha"] and raw.get("lora_r"):
        raw["lora_alpha"] = 2 * int(raw["lora_r"])
    return {k: v for k, v in raw.items() if v is not None}


def raw_to_form(keys: list[str], raw: dict) -> list:
    updates = []
    for key in keys:
        if key not in raw:
            updates.append(gr.skip())
        elif key == "max_steps":
            updates.append(0 if raw[key] in (-1, None) else raw[key])
        elif key == "lora_alpha" and "lora_r" in raw and raw[key] == 2 * raw["lora_r"]:
            updates.append(0)
        elif isinstance(raw[key], list):  # GRPO's rewards: the form's box holds YAML text
            from studio.rewards import rewards_to_text

            updates.append(rewards_to_text(raw[key]))
        else:
            updates.append(raw[key])
    return updates


def build_reuse(form: dict, run_picker) -> None:
    """Clone the watched run's config into the form; save/load named presets."""
    keys = list(form)
    widgets = list(form.values())
    with gr.Accordion("Clone a run · presets", open=False):
        with gr.Row():
            clone = gr.Button("Clone watched run into the form", size="sm", elem_id="train-clone")
        with gr.Row():
            preset_name = gr.Textbox(label="Preset name", scale=2, elem_id="train-preset-name")
            save = gr.Button("Save preset", size="sm", elem_id="train-preset-save")
        with gr.Row():
            preset_pick = gr.Dropdown(label="Presets", choices=presets.list_presets(), scale=2, elem_id="train-preset-pick")
            load = gr.Button("Load preset", size="sm", elem_id="train-preset-load")
        reuse_status = gr.HTML(elem_id="train-preset-status")

    def clone_run(run_id):
        raw = run_config(run_id)
        if raw is None:
            return [status_html("Pick a run with a saved config first.", "warn")] + [gr.skip()] * len(keys)
        return [status_html(f"Form filled from run {run_id}; change what you like and press Start.", "ok", transient=True)] + raw_to_form(keys, raw)

    def save_preset(name, *values):
        try:
            cfg = RunConfig.from_dict({**form_to_raw(keys, list(values)), "data": "preset"}, where="Train tab")
            saved = presets.save_preset(name, cfg)
        except Exception as err:  # noqa: BLE001
            return status_html(error_text(err), "error"), gr.skip()
        return status_html(f"Saved preset '{saved}'.", "ok", transient=True), gr.update(choices=presets.list_presets(), value=saved)

    def load_preset(name):
        try:
            raw = presets.load_preset(name or "")
        except Exception as err:  # noqa: BLE001
            return [status_html(error_text(err), "error")] + [gr.skip()] * len(keys)
        return [status_html(f"Loaded preset '{name}'.", "ok", transient=True)] + raw_to_form(keys, raw)

    clone.click(clone_run, run_picker, [reuse_status, *widgets])
    save.click(save_preset, [preset_name, *widgets], [reuse_status, preset_pick])
    load.click(load_preset, preset_pick, [reuse_status, *widgets])
