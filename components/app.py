"""Assembles the tabs into one Gradio app. Per-session state lives in gr.State only."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from . import chat_tab, data_tab, evaluate_tab, export_tab, method_tab, train_tab
from . import runs_tab

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CSS = (ASSETS / "studio.css").read_text() if (ASSETS / "studio.css").exists() else ""


def build_app() -> gr.Blocks:
    with gr.Blocks(title="Fine-tuning Studio") as app:
        gr.Markdown("# Fine-tuning Studio\nData → Train → Chat. Everything runs on this machine; nothing is uploaded.", elem_id="studio-title")
        dataset_path = gr.State(None)
        with gr.Tabs() as tabs:
            with gr.Tab("Data", id="data"):
                data_tab.build(dataset_path)
            with gr.Tab("Method", id="method") as method_tab_item:
                method = method_tab.build(dataset_path)
            with gr.Tab("Train", id="train"):
                train = train_tab.build(dataset_path)
            with gr.Tab("Runs", id="runs") as runs_tab_item:
                runs = runs_tab.build()
            with gr.Tab("Chat", id="chat") as chat_tab_item:
                chat = chat_tab.build()
            with gr.Tab("Evaluate", id="evaluate") as evaluate_tab_item:
                evaluation = evaluate_tab.build()
            with gr.Tab("Export", id="export") as export_tab_item:
                exporting = export_tab.build()
        app.load(train["refresh_choices"], None, train["run_picker"])
        # Method tab's "Apply" fills the Train tab's form with the recommended RunConfig values, then shows it.
        form_keys = list(train["form"])
        method["apply"].click(lambda values: method_tab.train_updates(values, form_keys), method["preset"], [train["form"][k] for k in form_keys]).then(
            lambda: gr.Tabs(selected="train"), None, tabs)
        method_tab_item.select(method["refresh_runs"], None, method["rag_run"])
        runs_tab_item.select(runs["refresh_all"], None, runs["refresh_targets"])
        chat_tab_item.select(chat["refresh_all"], None, chat["refresh_targets"])
        evaluate_tab_item.select(evaluation["refresh_choices"], None, evaluation["run_picker"])
        export_tab_item.select(exporting["refresh_choices"], None, exporting["run_picker"])
    return app
