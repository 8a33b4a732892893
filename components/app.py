"""Assembles the tabs into one Gradio app. Per-session state lives in gr.State only."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from . import chat_tab, data_tab, train_tab

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CSS = (ASSETS / "studio.css").read_text() if (ASSETS / "studio.css").exists() else ""


def build_app() -> gr.Blocks:
    with gr.Blocks(title="Fine-tuning Studio") as app:
        gr.Markdown("# Fine-tuning Studio\nData → Train → Chat. Everything runs on this machine; nothing is uploaded.", elem_id="studio-title")
        dataset_path = gr.State(None)
        with gr.Tabs():
            with gr.Tab("Data", id="data"):
                data_tab.build(dataset_path)
            with gr.Tab("Train", id="train"):
                train = train_tab.build(dataset_path)
            with gr.Tab("Chat", id="chat") as chat_tab_item:
                chat = chat_tab.build()
        app.load(train["refresh_choices"], None, train["run_picker"])
        chat_tab_item.select(chat["refresh_choices"], None, chat["run_picker"])
    return app
