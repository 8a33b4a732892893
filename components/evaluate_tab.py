"""Evaluate tab: base vs tuned on held-out data, task metrics and the capability probe, with plots.

The evaluation runs as `python -m studio eval RUN --json` in a subprocess; this tab only polls it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import gradio as gr

from studio import evaluate
from studio.errors import StudioError
from studio.jobs import registry

from .chat_tab import chat_run_choices
from .common import error_text, status_html

REPO = Path(__file__).resolve().parents[1]


def stream_cli(args: list[str], timeout: float = 3600):
    """Run `python -m studio ARGS` as a subprocess; yield (elapsed seconds, last stderr line) while it
    runs, then ("done", stdout) or raise StudioError with its one-line error."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen([sys.executable, "-m", "studio", *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.time()
    import threading

    stderr_lines: list[str] = []
    reader = threading.Thread(target=lambda: stderr_lines.extend(iter(process.stderr.readline, "")), daemon=True)
    reader.start()
    while process.poll() is None:
        if time.time() - started > timeout:
            process.kill()
            raise StudioError(f"`{args[0]}` took longer than {timeout:.0f}s and was stopped.")
        last = next((line.strip() for line in reversed(stderr_lines) if line.strip().startswith("[")), "")
        yield time.time() - started, last
        time.sleep(0.5)
    stdout = process.stdout.read()
    reader.join(timeout=2)
    if process.returncode != 0:
        message = next((line.strip() for line in reversed(stderr_lines) if line.startswith("error:")), None)
        raise StudioError(message[len("error:"):].strip() if message else f"`{args[0]}` failed (exit {process.returncode}): {''.join(stderr_lines)[-400:]}")
    yield "done", stdout


def downloadable(path: Path) -> str:
    """A copy in the temp dir: Gradio serves downloads only from there, the cwd or allowed_paths."""
    import shutil
    import tempfile

    target = Path(tempfile.mkdtemp(prefix="studio-download-")) / path.name
    shutil.copy2(path, target)
    return str(target)


def _outputs_for(results: dict | None):
    if not results:
        return None, None, None, None, None
    figs = evaluate.figures(results)
    figs += [None] * (3 - len(figs))
    table = [list(row) for row in evaluate.summary_rows(results)]
    report = Path(results.get("report") or "")
    return table, figs[0], figs[1], figs[2], downloadable(report) if report.is_file() else None


def _headline(results: dict) -> str:
    base, tuned = results["base"], results["tuned"]
    text = f"Eval loss {base['eval_loss']:.3f} → {tuned['eval_loss']:.3f} on {results['eval_data']['examples']} examples ({results['eval_data']['kind']})."
    if results.get("regressions"):
        return text + " ⚠ Capability regression in: " + ", ".join(results["regressions"]) + "."
    return text + (" No capability regression." if "probes" in results else "")


def run_eval(run_id, eval_file, max_examples, max_new_tokens, probes, judge):
    empty = (None, None, None, None, None)
    if not run_id:
        yield status_html("Pick a trained run first.", "warn"), *empty
        return
    args = ["eval", run_id, "--json", "--max-examples", str(int(max_examples)), "--max-new-tokens", str(int(max_new_tokens))]
    if eval_file:
        args += ["--data", eval_file]
    if not probes:
        args.append("--no-probes")
    if (judge or "").strip():
        args += ["--judge", judge.strip()]
    try:
        for elapsed, text in stream_cli(args):
            if elapsed == "done":
                results = json.loads(text.strip().splitlines()[-1])
                kind = "warn" if results.get("regressions") else "ok"
                yield status_html(_headline(results), kind), *_outputs_for(results)
                return
            yield status_html(f"Evaluating… {elapsed:.0f}s" + (f" · {text}" if text else ""), "info"), *empty
    except Exception as err:  # noqa: BLE001
        yield status_html(error_text(err), "error"), *empty


def show_last(run_id):
    record = registry.get(run_id) if run_id else None
    results = evaluate.latest_results(record) if record else None
    if not results:
        return status_html("Not evaluated yet: press Evaluate.", "info"), *_outputs_for(None)
    results["report"] = str(Path(record.run_dir) / "eval" / "report.html")
    return status_html("Last evaluation: " + _headline(results), "warn" if results.get("regressions") else "ok"), *_outputs_for(results)


def build() -> dict:
    gr.Markdown("### 4 · Evaluate\nDid the tune help, and did it cost general skills? Base vs tuned on held-out data, task metrics, and a capability probe (arithmetic, facts, instruction following, refusal).")
    with gr.Row():
        run_picker = gr.Dropdown(label="Run", choices=chat_run_choices(), elem_id="eval-run", scale=4)
        refresh = gr.Button("↻ Refresh runs", scale=1)
    with gr.Accordion("Options", open=False):
        with gr.Row():
            eval_file = gr.File(label="Eval file (default: the run's held-out split, or DATA.heldout.jsonl)", type="filepath", file_types=[".json", ".jsonl"])
            with gr.Column():
                max_examples = gr.Slider(4, 512, value=64, step=4, label="Max examples")
                max_new_tokens = gr.Slider(8, 256, value=48, step=8, label="Max new tokens per answer")
                probes = gr.Checkbox(value=True, label="Capability-regression probe")
                judge = gr.Textbox(label="LLM-as-judge model (optional, local)", placeholder="e.g. embedded or a local folder")
    start = gr.Button("Evaluate", variant="primary", elem_id="eval-start")
    status = gr.HTML(elem_id="eval-status")
    table = gr.Dataframe(headers=["metric", "base", "tuned", "verdict"], label="Base vs tuned", interactive=False, elem_id="eval-table")
    with gr.Row():
        loss_plot = gr.Plot(label="Loss")
        metrics_plot = gr.Plot(label="Task metrics")
    probe_plot = gr.Plot(label="Capability probe", elem_id="eval-probe-plot")
    report = gr.File(label="Report (self-contained HTML)", interactive=False, elem_id="eval-report")

    outputs = [status, table, loss_plot, metrics_plot, probe_plot, report]
    start.click(run_eval, [run_picker, eval_file, max_examples, max_new_tokens, probes, judge], outputs)
    run_picker.change(show_last, [run_picker], outputs)
    refresh.click(lambda: gr.update(choices=chat_run_choices()), None, run_picker)
    return {"run_picker": run_picker, "refresh_choices": lambda: gr.update(choices=chat_run_choices())}
