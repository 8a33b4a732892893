"""Train tab: pick model, method and knobs; Start/Stop a background run; watch its live curve."""

from __future__ import annotations

import time

import gradio as gr

from studio.config import METHODS, RunConfig
from studio.jobs import registry, runner
from studio.jobs.metrics import read_metrics
from studio.jobs.progress import progress_from
from studio.plots import loss_figure

from .common import error_text, status_html

STATUS_KIND = {"completed": "ok", "failed": "error", "cancelled": "warn", "interrupted": "warn"}


def run_choices() -> list[tuple[str, str]]:
    return [(f"{r.name} · {r.status} · {r.id}", r.id) for r in registry.list_runs()]


def default_run() -> str | None:
    """Reattach: the newest live run, else the newest run."""
    runs = registry.list_runs()
    live = [r for r in runs if r.status in ("running", "queued")]
    return (live or runs or [None])[0].id if (live or runs) else None


def start_run(model, method, data_path, epochs, max_steps, learning_rate, batch_size, max_length, lora_r):
    raw = {
        "model": model or "embedded",
        "method": method,
        "data": data_path or "",
        "num_train_epochs": epochs,
        "max_steps": int(max_steps) if max_steps else -1,
        "learning_rate": learning_rate,
        "per_device_train_batch_size": batch_size,
        "max_length": max_length,
        "lora_r": lora_r,
        "lora_alpha": 2 * int(lora_r),
    }
    try:
        cfg = RunConfig.from_dict(raw, where="Train tab")
        record = runner.start(cfg)
    except Exception as err:  # noqa: BLE001
        return status_html(error_text(err), "error"), gr.update()
    return status_html(f"Started run {record.id}.", "ok"), gr.update(choices=run_choices(), value=record.id)


def stop_run(run_id):
    if not run_id:
        return status_html("No run selected.", "warn")
    return status_html(runner.cancel(run_id), "info")


def refresh(run_id, seen_rows):
    """Timer tick: status line, progress and the loss curve (only redrawn when new rows arrived)."""
    if not run_id:
        return status_html("No run yet: load a dataset, then press Start.", "info"), gr.skip(), seen_rows, gr.skip()
    record = registry.get(run_id)
    if record is None:
        return status_html(f"Run {run_id} is gone from the registry.", "error"), gr.skip(), seen_rows, gr.skip()
    rows = read_metrics(record.run_dir / "metrics.jsonl")
    progress = progress_from(rows, record.started, record.finished or time.time())
    text = f"{record.status.upper()} · {record.name} · {progress.describe()}"
    if record.message:
        text += f" — {record.message}"
    status = status_html(text, STATUS_KIND.get(record.status, "info"))
    command = (record.run_dir / "command.txt").read_text().strip() if (record.run_dir / "command.txt").exists() else ""
    if len(rows) == seen_rows:
        return status, gr.skip(), seen_rows, command or gr.skip()
    return status, loss_figure(rows, title=f"Loss · {record.name}"), len(rows), command


def build(dataset_path: gr.State) -> dict:
    gr.Markdown("### 2 · Train\nTraining runs in its own process: closing the browser does not stop it, and reopening the studio shows it again.")
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Textbox(value="embedded", label="Model", info="`embedded` (SmolLM2-135M-Instruct), a local folder, a .gguf file or a hub id", elem_id="train-model")
            method = gr.Dropdown(choices=[(f"{k} — {v}", k) for k, v in METHODS.items()], value="lora", label="Method", elem_id="train-method")
            data = gr.Textbox(label="Dataset", info="Filled in by the Data tab; or type a path", elem_id="train-data")
            with gr.Row():
                epochs = gr.Number(value=1, label="Epochs", minimum=0.01, elem_id="train-epochs")
                max_steps = gr.Number(value=0, label="Max steps (0 = use epochs)", precision=0, elem_id="train-max-steps")
            with gr.Row():
                learning_rate = gr.Number(value=1e-3, label="Learning rate", elem_id="train-lr")
                batch_size = gr.Number(value=8, label="Batch size", precision=0, minimum=1, elem_id="train-batch")
            with gr.Row():
                max_length = gr.Number(value=256, label="Max length (tokens)", precision=0, minimum=16, elem_id="train-maxlen")
                lora_r = gr.Number(value=16, label="LoRA rank", precision=0, minimum=1, elem_id="train-rank")
            with gr.Row():
                start = gr.Button("Start training", variant="primary", elem_id="train-start")
                stop = gr.Button("Stop", variant="stop", elem_id="train-stop")
            action = gr.HTML(elem_id="train-action")
        with gr.Column(scale=2):
            run_picker = gr.Dropdown(label="Watching run", choices=[], allow_custom_value=True, elem_id="train-run")
            status = gr.HTML(elem_id="train-status")
            plot = gr.Plot(label="Loss", elem_id="train-plot")
            command = gr.Textbox(label="Equivalent CLI command", interactive=False, buttons=["copy"], elem_id="train-command")
    seen_rows = gr.State(-1)
    timer = gr.Timer(1.0)

    dataset_path.change(lambda p: p or gr.skip(), dataset_path, data)
    start.click(
        start_run,
        [model, method, data, epochs, max_steps, learning_rate, batch_size, max_length, lora_r],
        [action, run_picker],
    )
    stop.click(stop_run, run_picker, action)
    run_picker.change(lambda: -1, None, seen_rows)
    timer.tick(refresh, [run_picker, seen_rows], [status, plot, seen_rows, command], show_progress="hidden")
    return {"run_picker": run_picker, "refresh_choices": lambda: gr.update(choices=run_choices(), value=default_run())}
