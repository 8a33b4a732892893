"""Data tab: upload a file or give a path, see the detected format, problems and a preview."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from studio.data import import_file, preview_rows

from .common import error_text, status_html

DEMO_DATASET = "assets/demo/json_answers.jsonl"


def load_dataset(upload, path_text: str):
    """Returns (status html, preview dataframe, problems dataframe, dataset path for the session)."""
    source = upload if upload else (path_text or "").strip()
    if not source:
        return status_html("Upload a file or type a path first.", "warn"), None, None, None
    try:
        stored, loaded = import_file(source)
    except Exception as err:  # noqa: BLE001 - every failure becomes a message, never a traceback
        return status_html(error_text(err), "error"), None, None, None
    problems = pd.DataFrame(
        [{"row": p.row, "line": p.line, "field": p.field, "problem": p.message} for p in loaded.problems[:500]],
        columns=["row", "line", "field", "problem"],
    )
    text = f"Detected format: {loaded.format} — {loaded.summary}. Saved as {stored}."
    return status_html(text, "ok" if not loaded.problems else "warn"), pd.DataFrame(preview_rows(loaded)), problems, str(stored)


def build(dataset_path: gr.State) -> None:
    gr.Markdown("### 1 · Data\nDrop in a JSON/JSONL file (alpaca `instruction/output`, chat `messages`, sharegpt `conversations` or `prompt/completion`), or type a path.")
    with gr.Row():
        upload = gr.File(label="Dataset file", file_types=[".json", ".jsonl"], type="filepath", elem_id="data-upload")
        with gr.Column():
            path_box = gr.Textbox(label="…or a path on this machine", placeholder=DEMO_DATASET, elem_id="data-path")
            load_button = gr.Button("Load dataset", variant="primary", elem_id="data-load")
            demo_button = gr.Button("Use the demo dataset (answers in JSON)", elem_id="data-demo")
    status = gr.HTML(elem_id="data-status")
    preview = gr.Dataframe(label="Preview (first 20 examples)", interactive=False, wrap=True, elem_id="data-preview")
    problems = gr.Dataframe(label="Problems (row, line, field)", interactive=False, elem_id="data-problems")

    outputs = [status, preview, problems, dataset_path]
    load_button.click(load_dataset, [upload, path_box], outputs)
    upload.upload(load_dataset, [upload, path_box], outputs)
    demo_button.click(lambda: load_dataset(None, DEMO_DATASET), None, outputs)
