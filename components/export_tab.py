"""Export tab: adapter, merged safetensors or GGUF with a model card, as a zip download.

The export runs as `python -m studio export ... --zip` in a subprocess; this tab only polls it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import gradio as gr

from studio import export

from .common import chat_run_choices, error_text, session_temp_dir, status_html, stream_cli

FORMAT_HELP = {
    "adapter": "the LoRA adapter folder (small; needs the base model and peft)",
    "merged": "merged full model as safetensors (loads with plain transformers, no peft)",
    "gguf": "GGUF for llama.cpp / Ollama (llama and qwen2 models), quantized and checked by llama.cpp itself, with an Ollama Modelfile",
}


def card_markdown(text: str) -> str:
    """The card for the Markdown view: its YAML metadata as a code block (Markdown shows front matter as
    one run-on paragraph), then its body; huggingface_hub's ModelCard splits the two."""
    from huggingface_hub import ModelCard

    card = ModelCard(text)
    meta = card.data.to_yaml().strip() if card.data.to_dict() else ""
    return (f"```yaml\n{meta}\n```\n\n" if meta else "") + card.text.lstrip("\n")


def run_export(run_id, fmt, gguf_types, ollama=True, push=""):
    if not run_id:
        yield status_html("Pick a trained run first.", "warn"), None, ""
        return
    if fmt == "gguf" and not gguf_types:
        yield status_html("Pick at least one GGUF type.", "warn"), None, ""
        return
    out = export.exports_dir() / f"{export.safe_name(run_id)}-{fmt}-{time.strftime('%Y%m%d-%H%M%S')}"
    # the zip goes to a temp folder of this session (removed when it ends): Gradio serves downloads from there
    zip_path = session_temp_dir("studio-export-") / f"{out.name}.zip"
    args = ["export", run_id, "--format", fmt, "--out", str(out), "--zip", str(zip_path)]
    if fmt == "gguf":
        for qtype in gguf_types or []:
            args += ["--quant", qtype]
        if ollama:
            args.append("--ollama")
    if (push or "").strip():
        args += ["--push", push.strip()]
    try:
        for elapsed, text in stream_cli(args):
            if elapsed == "done":
                summary = json.loads(text[: text.rindex("}") + 1])
                card = card_markdown((Path(summary["out"]) / "README.md").read_text())
                checks = summary.get("verification") or {}
                note = ""
                if fmt == "merged" and checks:
                    note = " Loads with plain transformers; " + ("same answer as the tuned model." if checks.get("same_answer") else "answer differs from the tuned model.")
                elif fmt == "gguf":
                    note = " " + "; ".join(f"{k}: {export.check_line(v)}" for k, v in (summary.get("checks") or {}).items())
                    if summary.get("conversion_check"):
                        note += f"; f16 conversion: {export.check_line(summary['conversion_check'])}"
                if summary.get("base_model_note"):
                    note += f" Note: {summary['base_model_note']}"
                if summary.get("pushed"):
                    note += f" Uploaded: {summary['pushed']}"
                yield status_html(f"Exported {', '.join(summary['files'])} to {summary['out']}.{note}", "ok"), summary["zip"], card
                return
            yield status_html(f"Exporting… {elapsed:.0f}s" + (f" · {text}" if text else ""), "info"), None, ""
    except Exception as err:  # noqa: BLE001
        yield status_html(error_text(err), "error"), None, ""


def build() -> dict:
    gr.Markdown("### 6 · Export\nShip the tuned model: " + "; ".join(f"**{k}**: {v}" for k, v in FORMAT_HELP.items()) + ". Every export carries a model card (README.md).")
    with gr.Row():
        run_picker = gr.Dropdown(label="Run", choices=chat_run_choices(), elem_id="export-run", scale=4)
        refresh = gr.Button("↻ Refresh runs", scale=1)
    with gr.Row():
        fmt = gr.Radio(list(FORMAT_HELP), value="adapter", label="Format", elem_id="export-format")
        gguf_types = gr.CheckboxGroup(list(export.QUANTS), value=[export.DEFAULT_QUANT], label="GGUF types (q4_k_m: Ollama / llama.cpp)", visible=False, elem_id="export-gguf-types")
        ollama = gr.Checkbox(value=True, label="Ollama Modelfile", visible=False, elem_id="export-ollama")
    fmt.change(lambda f: [gr.update(visible=f == "gguf")] * 2, fmt, [gguf_types, ollama])  # GGUF's options only for GGUF
    push = gr.Textbox(label="Push to the Hub (optional repo id, needs a token)", placeholder="me/my-model", elem_id="export-push")
    start = gr.Button("Export", variant="primary", elem_id="export-start")
    status = gr.HTML(elem_id="export-status")
    download = gr.File(label="Download (zip)", interactive=False, elem_id="export-download")
    with gr.Accordion("Model card (README.md)", open=False):
        card = gr.Markdown(elem_id="export-card")
    start.click(run_export, [run_picker, fmt, gguf_types, ollama, push], [status, download, card])
    refresh.click(lambda: gr.update(choices=chat_run_choices()), None, run_picker)
    return {"run_picker": run_picker, "refresh_choices": lambda: gr.update(choices=chat_run_choices())}
