"""Evaluate tab: base vs tuned on held-out data, with paired CIs, honest labels and the capability probe.

The evaluation is a job (studio.jobs.evaljob): its own process, in the registry as kind `eval`. This
tab starts it, polls its progress.json (k/N examples · ETA), cancels it, and reattaches to a running
one after a reload. Before it starts, the tab states the expected time from a measured rate.
"""

from __future__ import annotations

import threading
from pathlib import Path

import gradio as gr

from studio import evaluate
from studio.jobs import evaljob, registry
from studio.paths import confine, confine_model

from .common import chat_run_choices, downloadable, error_text, status_html, stop_button

POLL_SECONDS = 1.0
DEFAULTS = evaluate.EvalOptions()


def _options(eval_file, max_examples, max_new_tokens, probes, judge, drop_overlap=True) -> evaluate.EvalOptions:
    if eval_file:
        confine(eval_file, "eval file")  # served beyond loopback: the studio home, uploads and --allow-path roots only
    confine_model(judge, "judge")
    return evaluate.EvalOptions(data=eval_file or None, max_examples=int(max_examples), max_new_tokens=int(max_new_tokens),
                                probes=bool(probes), judge=(judge or "").strip() or None, drop_overlap=bool(drop_overlap))


def _outputs_for(results: dict | None):
    if not results:
        return None, None, None, None, None, None
    figs = evaluate.figures(results)
    figs += [None] * (3 - len(figs))
    table = [list(row) for row in evaluate.summary_rows(results)]
    files = [downloadable(Path(results[key])) for key in ("report", "card") if results.get(key) and Path(results[key]).is_file()]
    card = next((f for f in files if f.endswith(Path(results["card"]).name)), None) if results.get("card") else None
    return table, figs[0], figs[1], figs[2], files or None, card


def progress_html(job, state: dict | None) -> str:
    """The running job: a bar and 'k/N examples · ETA · phase'."""
    if not state:
        return status_html(f"Evaluation {job.id} is starting: loading the model…", "info")
    fraction = state["done"] / state["total"] if state["total"] else 0
    bar = (f'<div class="eval-progress-bar" style="background:#e5e7eb;border-radius:4px;height:8px;margin-top:6px">'
           f'<div style="width:{100 * fraction:.0f}%;background:#6366f1;height:8px;border-radius:4px"></div></div>')
    return status_html("Evaluating: " + evaluate.describe_progress(state), "info")[:-len("</div>")] + bar + "</div>"


def expected_text(run_id, eval_file, max_examples, max_new_tokens, probes, judge, drop_overlap=True) -> str:
    if not run_id:
        return ""
    record = registry.get(run_id)
    if record is None:
        return ""
    try:
        expected = evaluate.expected_time(record, _options(eval_file, max_examples, max_new_tokens, probes, judge, drop_overlap))
    except Exception as err:  # noqa: BLE001 - a bad eval file is shown here, before anything starts
        return status_html(error_text(err), "warn")
    text, kind = "Expected: " + evaluate.describe_expected(expected), "info"
    if not evaluate.is_held_out(expected["source"]):
        text += " ⚠ These rows were trained on (not held out): pick a held-out eval file for a verdict on new inputs."
        kind = "warn"
    overlap = evaluate.overlap_warning(expected["source"])  # an eval file checked against the run's training rows
    if overlap:
        text += " ⚠ " + overlap
        kind = "warn"
    return status_html(text, kind)


def start_eval(run_id, eval_file, max_examples, max_new_tokens, probes, judge, drop_overlap=True):
    if not run_id:
        return status_html("Pick a trained run first.", "warn"), gr.skip()
    try:
        job = evaljob.start(run_id, _options(eval_file, max_examples, max_new_tokens, probes, judge, drop_overlap))
    except Exception as err:  # noqa: BLE001
        return status_html(error_text(err), "error"), gr.skip()
    return progress_html(job, None), {"run": None}


def cancel_eval(run_id):
    job = evaljob.active_for(run_id) if run_id else None
    if job is None:
        return status_html("No evaluation of this run is running.", "warn")
    threading.Thread(target=evaljob.cancel, args=(job.id,), daemon=True).start()
    return status_html(f"Stopping evaluation {job.id} (within 10 s)…", "warn", transient=True)


def _finished_view(run_id: str):
    """The newest finished job of the run (its outcome) and the latest results."""
    record = registry.get(run_id)
    jobs = evaljob.jobs_for(run_id)
    results = evaluate.latest_results(record) if record else None
    last = jobs[0] if jobs else None
    if last is not None and last.status in ("cancelled", "failed", "interrupted") and not (results and results.get("job_id") == last.id):
        note = f"Last evaluation {last.status}: {last.message or ''}".strip()
        if results:
            text, kind = evaluate.headline(results)
            return status_html(note + " · Showing the previous results: " + text, "warn"), results
        return status_html(note, "warn"), None
    if not results:
        return status_html("Not evaluated yet: press Evaluate.", "info"), None
    text, kind = evaluate.headline(results)
    return status_html(text, kind), results


def poll(run_id, shown, *options):
    """`_poll`'s outputs plus the Cancel button, red only while this run's evaluation is live
    (sent only when that changes)."""
    outputs = _poll(run_id, shown, *options)
    key = outputs[2]
    live = bool(isinstance(key, dict) and key.get("job") and key.get("status") in ("queued", "running"))
    was_live = bool(isinstance(shown, dict) and shown.get("status") in ("queued", "running"))
    return outputs + (stop_button(live) if shown is None or live != was_live else gr.skip(),)


def _poll(run_id, shown, *options):
    """Every second: the running job's progress, or (once per finished job) its results and the
    expected time of the next one. On a page's first tick (`shown` is None) a running evaluation
    takes the picker, so a reload reattaches to it."""
    picker = gr.skip()
    if shown is None:
        running = next((j for j in registry.list_runs(kind=evaljob.KIND) if j.status in ("queued", "running")), None)
        if running is not None and running.dataset != run_id:
            run_id, picker = running.dataset, gr.update(value=running.dataset)
    if not run_id:
        return (gr.skip(), picker, {"run": None}, gr.skip()) + (gr.skip(),) * 6
    job = evaljob.active_for(run_id)
    if job is not None:
        key = {"run": run_id, "job": job.id, "status": job.status}
        return (progress_html(job, evaljob.read_progress(job)), picker, key, gr.skip()) + (gr.skip(),) * 6
    jobs = evaljob.jobs_for(run_id)
    key = {"run": run_id, "job": jobs[0].id if jobs else None, "status": jobs[0].status if jobs else None}
    if shown == key:
        return (gr.skip(), picker, shown, gr.skip()) + (gr.skip(),) * 6
    status, results = _finished_view(run_id)
    return (status, picker, key, expected_text(run_id, *options)) + _outputs_for(results)


def build() -> dict:
    gr.Markdown("### 5 · Evaluate\nDid the tune help, and did it cost general skills? Base vs tuned on held-out data: every difference "
                "comes with a 95% confidence interval, and a verdict only when the interval excludes 0. The capability probe "
                "(68 items: arithmetic, facts, instruction following, format, refusal, reasoning) flags a category only when its drop is significant.")
    with gr.Row():
        run_picker = gr.Dropdown(label="Run", choices=chat_run_choices(), elem_id="eval-run", scale=4)
        refresh = gr.Button("↻ Refresh runs", scale=1)
    with gr.Accordion("Options", open=False):
        with gr.Row():
            with gr.Column():
                eval_file = gr.File(label="Eval file (default: the run's held-out split)", type="filepath", file_types=[".json", ".jsonl"])
                drop_overlap = gr.Checkbox(value=DEFAULTS.drop_overlap, label="Evaluate only rows not trained on (a file's rows that copy the run's "
                                           "training rows are left out; the count is shown either way)", elem_id="eval-drop-overlap")
            with gr.Column():
                max_examples = gr.Slider(4, 512, value=DEFAULTS.max_examples, step=4, label="Max examples", elem_id="eval-max-examples")
                max_new_tokens = gr.Slider(8, 256, value=DEFAULTS.max_new_tokens, step=8, label="Max new tokens per answer", elem_id="eval-max-new-tokens")
                probes = gr.Checkbox(value=True, label="Capability-regression probe", elem_id="eval-probes")
                judge = gr.Textbox(label="LLM-as-judge model (optional, local)", placeholder="e.g. embedded or a local folder")
    expected = gr.HTML(elem_id="eval-expected")
    with gr.Row():
        start = gr.Button("Evaluate", variant="primary", elem_id="eval-start", scale=3)
        cancel = gr.Button("Cancel evaluation", variant="secondary", interactive=False, elem_id="eval-cancel", scale=1)
    status = gr.HTML(elem_id="eval-status")
    table = gr.Dataframe(headers=["metric", "base", "tuned", "Δ [95% CI]", "verdict", "n"], label="Base vs tuned (tuned − base, paired bootstrap)",
                         interactive=False, elem_id="eval-table")
    with gr.Row():
        delta_plot = gr.Plot(label="Differences with 95% CIs", elem_id="eval-delta-plot")
        loss_plot = gr.Plot(label="Loss and perplexity", elem_id="eval-loss-plot")
    probe_plot = gr.Plot(label="Capability probe", elem_id="eval-probe-plot")
    with gr.Row():
        report = gr.File(label="Report (self-contained HTML) and summary card (PNG)", file_count="multiple", interactive=False, elem_id="eval-report")
        card = gr.Image(label="Summary card for slides", interactive=False, elem_id="eval-card", type="filepath")
    shown = gr.State(None)  # what the status/results show: {"run", "job", "status"}; None until this page's first poll

    result_outputs = [table, delta_plot, loss_plot, probe_plot, report, card]
    option_inputs = [eval_file, max_examples, max_new_tokens, probes, judge, drop_overlap]
    start.click(start_eval, [run_picker, *option_inputs], [status, shown])
    cancel.click(cancel_eval, [run_picker], [status])
    for component in option_inputs:  # a run pick updates it on the next poll
        component.change(expected_text, [run_picker, *option_inputs], expected)
    run_picker.change(lambda: {"run": None}, None, shown)  # a new pick renders its results on the next poll
    gr.Timer(POLL_SECONDS).tick(poll, [run_picker, shown, *option_inputs], [status, run_picker, shown, expected, *result_outputs, cancel], show_progress="hidden")
    refresh.click(lambda: gr.update(choices=chat_run_choices()), None, run_picker)
    return {"run_picker": run_picker, "refresh_choices": lambda: gr.update(choices=chat_run_choices())}
