"""Assembles the tabs into one Gradio app under an app shell: a header with the status bar
(hardware, active run, queue; clicking it opens the run), a stepper Data → Method → Train → Chat →
Evaluate → Export that ticks what this browser session has done and lights the tab on screen, and the tabs.
Per-session state lives in gr.State only."""

from __future__ import annotations

import html
import sqlite3

import gradio as gr

from studio.jobs import overview
from studio.resources import asset

from . import chat_tab, data_tab, evaluate_tab, export_tab, method_tab, runs_tab, train_tab
from .common import chat_run_choices, end_session
from .theme import studio_theme

CSS = asset("studio.css").read_text() if asset("studio.css").is_file() else ""
THEME = studio_theme()
STATUS_POLL_SECONDS = 3.0  # one registry read and one nvidia-smi query per tick
# The guided flow; Runs is a tab but not a step.
STEPS = (("data", "Data"), ("method", "Method"), ("train", "Train"), ("chat", "Chat"), ("evaluate", "Evaluate"), ("export", "Export"))
# Buttons in tabs this module does not build that count as doing a step (looked up by elem_id).
STEP_BUTTONS = {"chat": ("chat-send", "ab-send", "suite-run"), "evaluate": ("eval-start",), "export": ("export-start",)}


def _session_closed() -> None:
    """app.unload wants no output: drop the closed session's temp folders (their count is for tests)."""
    end_session()


def status_bar_html():
    """The status bar's content: hardware · active run · queue (unchanged for a tick when the registry is busy)."""
    esc = html.escape
    try:
        now = overview.overview()
    except (OSError, sqlite3.Error):
        return gr.skip()
    icon = "gpu" if now.hardware.gpu else "cpu"
    parts = [f'<span class="sb-item sb-hw sb-{icon}" title="Hardware">{esc(now.hardware.label)}</span>']
    if now.active:
        kind = "sb-live" if now.active.status == "running" else "sb-waiting"
        parts.append(f'<span class="sb-item sb-run {kind}" title="Open this run in the Train tab" data-run="{esc(now.active.id)}">'
                     f'<span class="sb-dot"></span>{esc(now.active.describe())}</span>')
    elif not now.evals:
        parts.append('<span class="sb-item sb-run sb-idle">No run active</span>')
    for job in now.evals:  # evaluations are jobs too: 'Evaluating NAME · k/N examples · ETA'
        kind = "sb-live" if job.status == "running" else "sb-waiting"
        parts.append(f'<span class="sb-item sb-run sb-eval {kind}" title="Evaluation job {esc(job.id)} (Evaluate tab)" data-eval="{esc(job.run_id)}">'
                     f'<span class="sb-dot"></span>{esc(job.describe())}</span>')
    parts.append(f'<span class="sb-item sb-queue">Queue: {now.queued}</span>')
    return f'<div class="sb" role="status">{"".join(parts)}</div>'


def open_active_run(done):
    """Clicking the status bar: the Train tab (and its step lit), watching the active run; with no
    training run but an evaluation going, the Evaluate tab on the evaluated run (it reattaches to the job)."""
    now = overview.overview()
    if now.active is None:
        if now.evals:
            return [gr.Tabs(selected="evaluate"), gr.skip(), *show("evaluate")(done), gr.update(choices=chat_run_choices(), value=now.evals[0].run_id)]
        return [gr.skip()] * (4 + len(STEPS))
    return [gr.Tabs(selected="train"), gr.update(choices=train_tab.run_choices(), value=now.active.id), *show("train")(done), gr.skip()]


def step_label(step: str, title: str, done: set) -> str:
    number = [s for s, _ in STEPS].index(step) + 1
    return f"✓  {title}" if step in done else f"{number}  {title}"


def stepper(done: set, current: str | None) -> list:
    """Updates for every step button: ticked when done, lit when its tab is the one on screen."""
    return [gr.update(value=step_label(s, t, done), elem_classes=stepper_classes(s, done, current)) for s, t in STEPS]


def mark(step: str):
    """An event handler that ticks `step` for this session and redraws the stepper."""
    def handler(done, current=None):
        done = set(done or ()) | {step}
        return [sorted(done)] + stepper(done, current)
    return handler


def show(tab: str):
    """An event handler for `tab` coming on screen: remembers it and lights its step (Runs is no step)."""
    def handler(done):
        return [tab] + stepper(set(done or ()), tab)
    return handler


def stepper_classes(step: str, done: set, current: str | None = None) -> list[str]:
    return ["studio-step"] + (["done"] if step in done else []) + (["current"] if step == current else [])


def blocks_by_elem_id(app: gr.Blocks) -> dict:
    return {block.elem_id: block for block in app.blocks.values() if getattr(block, "elem_id", None)}


def build_app() -> gr.Blocks:
    with gr.Blocks(title="Fine-tuning Studio", fill_width=True) as app:
        with gr.Row(elem_id="studio-header", equal_height=True):
            gr.HTML('<div class="brand"><span class="brand-mark">◆</span><span class="brand-name">Fine-tuning Studio</span>'
                    '<span class="brand-note">everything runs on this machine; nothing is uploaded</span></div>',
                    elem_id="studio-title")
            status_bar = gr.HTML("", elem_id="studio-status")
        done_steps, current_tab = gr.State([]), gr.State("data")
        with gr.Row(elem_id="studio-stepper"):
            step_buttons = {step: gr.Button(step_label(step, title, set()), size="sm", elem_id=f"step-{step}", elem_classes=stepper_classes(step, set(), "data"))
                            for step, title in STEPS}
        dataset_path = gr.State(None)
        with gr.Tabs(elem_id="studio-tabs") as tabs:
            with gr.Tab("Data", id="data") as data_tab_item:
                data_tab.build(dataset_path)
            with gr.Tab("Method", id="method") as method_tab_item:
                method = method_tab.build(dataset_path)
            with gr.Tab("Train", id="train") as train_tab_item:
                train = train_tab.build(dataset_path)
            with gr.Tab("Runs", id="runs") as runs_tab_item:
                runs = runs_tab.build()
            with gr.Tab("Chat", id="chat") as chat_tab_item:
                chat = chat_tab.build()
            with gr.Tab("Evaluate", id="evaluate") as evaluate_tab_item:
                evaluation = evaluate_tab.build()
            with gr.Tab("Export", id="export") as export_tab_item:
                exporting = export_tab.build()

        # Reattach: the Train tab watches the live (or newest) run, its form filled from that run's config.
        app.load(train["restore"], None, train["restore_targets"])
        # Method tab's "Apply" fills the Train tab's form with the recommended RunConfig values, then shows it.
        form_keys = list(train["form"])
        method["apply"].click(lambda values: method_tab.train_updates(values, form_keys), method["preset"], [train["form"][k] for k in form_keys]).then(
            lambda: gr.Tabs(selected="train"), None, tabs).then(show("train"), done_steps, [current_tab, *step_buttons.values()])

        # What each tab reloads when shown, by the user or by the stepper / status bar.
        on_show = {
            "method": (method["refresh_runs"], method["rag_run"]),
            "train": (train["refresh_choices"], train["run_picker"]),  # choices only: it keeps the run it watches
            "runs": (runs["refresh_all"], runs["refresh_targets"]),
            "chat": (chat["refresh_all"], chat["refresh_targets"]),
            "evaluate": (evaluation["refresh_choices"], evaluation["run_picker"]),
            "export": (exporting["refresh_choices"], exporting["run_picker"]),
        }
        items = {"method": method_tab_item, "train": train_tab_item, "runs": runs_tab_item, "chat": chat_tab_item,
                 "evaluate": evaluate_tab_item, "export": export_tab_item}
        for name, item in items.items():
            refresh, targets = on_show[name]
            item.select(refresh, None, targets)
        # The stepper lights the tab on screen: picked by its tab header, a step button, Apply or the status bar.
        shown_outputs = [current_tab, *step_buttons.values()]
        for name, item in {"data": data_tab_item, **items}.items():
            item.select(show(name), done_steps, shown_outputs, show_progress="hidden")
        for step, button in step_buttons.items():
            event = button.click(lambda s=step: gr.Tabs(selected=s), None, tabs)
            button.click(show(step), done_steps, shown_outputs, show_progress="hidden")
            if step in on_show:
                event.then(on_show[step][0], None, on_show[step][1])

        # The status bar: polled, and a click opens the active run.
        app.load(status_bar_html, None, status_bar, show_progress="hidden")
        gr.Timer(STATUS_POLL_SECONDS).tick(status_bar_html, None, status_bar, show_progress="hidden")
        status_bar.click(open_active_run, done_steps, [tabs, train["run_picker"], *shown_outputs, evaluation["run_picker"]])

        # The stepper ticks what this session did.
        stepper_outputs = [done_steps, *step_buttons.values()]
        stepper_inputs = [done_steps, current_tab]
        dataset_path.change(lambda p, d, c: mark("data")(d, c) if p else [gr.skip()] * len(stepper_outputs), [dataset_path, *stepper_inputs], stepper_outputs)
        method["advise"].click(mark("method"), stepper_inputs, stepper_outputs)
        train["started"].change(lambda run_id, d, c: mark("train")(d, c) if run_id else [gr.skip()] * len(stepper_outputs), [train["started"], *stepper_inputs], stepper_outputs)
        by_id = blocks_by_elem_id(app)
        for step, elem_ids in STEP_BUTTONS.items():
            for elem_id in elem_ids:
                if elem_id in by_id:
                    by_id[elem_id].click(mark(step), stepper_inputs, stepper_outputs)
        # Temp copies this browser session made for downloads go when it closes.
        app.unload(_session_closed)
    return app
