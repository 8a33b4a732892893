"""Chat tab: the base model and a tuned run answer the same prompt side by side, both streaming."""

from __future__ import annotations

import gradio as gr

from studio.chat import ChatEngine, GenerationSettings
from studio.jobs import registry

from .common import error_text, status_html


def chat_run_choices() -> list[tuple[str, str]]:
    usable = [r for r in registry.list_runs() if (r.run_dir / "adapter").is_dir() or (r.run_dir / "model").is_dir()]
    return [(f"{r.name} · {r.status} · {r.id}", r.id) for r in usable]


def _history_messages(history: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in history if isinstance(m.get("content"), str)]


def respond(run_id, prompt, base_history, tuned_history, system_prompt, temperature, top_p, max_tokens, seed):
    """Stream both answers; each side keeps its own multi-turn history."""
    base_history = list(base_history or [])
    tuned_history = list(tuned_history or [])
    if not (prompt or "").strip():
        yield base_history, tuned_history, status_html("Type a prompt first.", "warn"), gr.skip()
        return
    if not run_id:
        yield base_history, tuned_history, status_html("Pick a trained run first (train one in the Train tab).", "warn"), gr.skip()
        return
    try:
        record = registry.get(run_id)
        if record is None:
            raise ValueError(f"run {run_id} not found")
        engine = ChatEngine.for_run(record)
    except Exception as err:  # noqa: BLE001
        yield base_history, tuned_history, status_html(error_text(err), "error"), gr.skip()
        return
    settings = GenerationSettings(
        system_prompt=system_prompt or "",
        temperature=float(temperature),
        top_p=float(top_p),
        max_new_tokens=int(max_tokens),
        seed=int(seed),
    )
    user = {"role": "user", "content": prompt}
    base_messages = _history_messages(base_history) + [user]
    tuned_messages = _history_messages(tuned_history) + [user]
    base_history = base_history + [user, {"role": "assistant", "content": ""}]
    tuned_history = tuned_history + [user, {"role": "assistant", "content": ""}]
    for base_text, tuned_text in engine.stream_pair_histories(base_messages, tuned_messages, settings):
        base_history[-1]["content"] = base_text
        tuned_history[-1]["content"] = tuned_text
        yield base_history, tuned_history, status_html("generating…", "info"), ""
    yield base_history, tuned_history, status_html(f"Done · {engine.base_side.label} vs {engine.tuned_side.label}", "ok"), ""


def build() -> dict:
    gr.Markdown("### 3 · Chat\nThe same prompt goes to the base model (adapter off) and the tuned model (adapter on). One copy of the base weights is in memory.")
    with gr.Row():
        run_picker = gr.Dropdown(label="Tuned run", choices=chat_run_choices(), elem_id="chat-run", scale=4)
        refresh = gr.Button("↻ Refresh runs", scale=1, elem_id="chat-refresh")
    with gr.Accordion("Generation settings", open=False):
        system_prompt = gr.Textbox(label="System prompt", placeholder="(the model's default)")
        with gr.Row():
            temperature = gr.Slider(0, 1.5, value=0.0, step=0.05, label="Temperature (0 = greedy)")
            top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="Top-p")
            max_tokens = gr.Slider(8, 1024, value=96, step=8, label="Max new tokens")
            seed = gr.Number(value=0, precision=0, label="Seed")
    with gr.Row():
        base_chat = gr.Chatbot(label="Base model", height=380, elem_id="chat-base")
        tuned_chat = gr.Chatbot(label="Tuned model", height=380, elem_id="chat-tuned")
    prompt = gr.Textbox(label="Prompt", placeholder="Ask both models something…", elem_id="chat-prompt")
    with gr.Row():
        send = gr.Button("Send to both", variant="primary", elem_id="chat-send")
        regenerate = gr.Button("Regenerate last", elem_id="chat-regenerate")
        clear = gr.Button("Clear", elem_id="chat-clear")
    status = gr.HTML(elem_id="chat-status")

    inputs = [run_picker, prompt, base_chat, tuned_chat, system_prompt, temperature, top_p, max_tokens, seed]
    outputs = [base_chat, tuned_chat, status, prompt]
    send.click(respond, inputs, outputs)
    prompt.submit(respond, inputs, outputs)

    def pop_last(base_history, tuned_history):
        """Drop the last exchange and return its prompt, so it can be asked again."""
        base_history, tuned_history = list(base_history or []), list(tuned_history or [])
        last_prompt = next((m["content"] for m in reversed(base_history) if m["role"] == "user"), "")
        return base_history[:-2], tuned_history[:-2], last_prompt

    regenerate.click(pop_last, [base_chat, tuned_chat], [base_chat, tuned_chat, prompt]).then(respond, inputs, outputs)
    clear.click(lambda: ([], [], ""), None, [base_chat, tuned_chat, status])
    refresh.click(lambda: gr.update(choices=chat_run_choices()), None, run_picker)
    return {"run_picker": run_picker, "refresh_choices": lambda: gr.update(choices=chat_run_choices())}
