"""Chat tab: two sides answer the same prompt, streaming together; blind A/B votes; prompt suites."""

from __future__ import annotations

import time

import gradio as gr

from studio import chat, suites, votes
from studio.chat import ChatEngine
from studio.engine import GenerationSettings, without_cut_marker
from studio.errors import StudioError
from studio.jobs import registry

from .common import chat_run_choices, downloadable, error_text, status_html

ITS_BASE = "__its_base__"  # the left side defaults to the picked run's own base model


def compare_choices() -> list[tuple[str, str]]:
    return [("its base model (adapter off)", ITS_BASE)] + chat.side_choices()


def _history_messages(history: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": without_cut_marker(m["content"])} for m in history if isinstance(m.get("content"), str)]


def _settings(system_prompt, temperature, top_p, max_tokens, seed) -> GenerationSettings:
    return GenerationSettings(
        system_prompt=system_prompt or "", temperature=float(temperature), top_p=float(top_p), max_new_tokens=int(max_tokens), seed=int(seed or 0)
    )


def _engine(run_id: str, compare: str | None) -> ChatEngine:
    record = registry.get(run_id)
    if record is None:
        raise StudioError(f"run {run_id} not found.", hint="Refresh the run list.")
    if not compare or compare == ITS_BASE:
        return ChatEngine.for_run(record)
    return ChatEngine.for_choices(compare, run_id)


def respond(run_id, compare, prompt, base_history, tuned_history, system_prompt, temperature, top_p, max_tokens, seed):
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
        engine = _engine(run_id, compare)
    except Exception as err:  # noqa: BLE001
        yield base_history, tuned_history, status_html(error_text(err), "error"), gr.skip()
        return
    settings = _settings(system_prompt, temperature, top_p, max_tokens, seed)
    user = {"role": "user", "content": prompt}
    base_messages = _history_messages(base_history) + [user]
    tuned_messages = _history_messages(tuned_history) + [user]
    base_history = base_history + [user, {"role": "assistant", "content": ""}]
    tuned_history = tuned_history + [user, {"role": "assistant", "content": ""}]
    started = time.time()
    for base_text, tuned_text in engine.stream_pair_histories(base_messages, tuned_messages, settings):
        base_history[-1]["content"] = base_text
        tuned_history[-1]["content"] = tuned_text
        yield base_history, tuned_history, status_html("generating…", "info"), ""
    took = time.time() - started
    yield base_history, tuned_history, status_html(f"Done in {took:.1f}s · left: {engine.base_side.label} · right: {engine.tuned_side.label}", "ok"), ""


# ----- Blind A/B ---------------------------------------------------------------------------------

def blind_send(first, second, prompt, system_prompt, temperature, top_p, max_tokens, seed, state):
    """Shuffle the pair for a new round and stream both answers under neutral labels."""
    if not (prompt or "").strip():
        yield [], [], status_html("Type a prompt first.", "warn"), state
        return
    try:
        round_ = votes.BlindRound.shuffled(first, second)
        engine = ChatEngine.for_choices(round_.left, round_.right)
    except Exception as err:  # noqa: BLE001
        yield [], [], status_html(error_text(err), "error"), state
        return
    state = {"left": round_.left, "right": round_.right, "first": first, "second": second, "prompt": prompt, "voted": False}
    user = {"role": "user", "content": prompt}
    left_history = [user, {"role": "assistant", "content": ""}]
    right_history = [user, {"role": "assistant", "content": ""}]
    settings = _settings(system_prompt, temperature, top_p, max_tokens, seed)
    for left_text, right_text in engine.stream_pair_histories([user], [user], settings):
        left_history[-1]["content"] = left_text
        right_history[-1]["content"] = right_text
        yield left_history, right_history, status_html("generating…", "info"), state
    state = {**state, "left_answer": left_history[-1]["content"], "right_answer": right_history[-1]["content"]}
    yield left_history, right_history, status_html("Which answer is better? Vote left, right or tie.", "info"), state


def blind_vote(vote: str, state):
    if not state or not state.get("left"):
        return status_html("Send a prompt first, then vote.", "warn"), state
    if state.get("voted"):
        return status_html("This round already has a vote; send a new prompt for the next round.", "warn"), state
    counts = votes.record_vote(votes.BlindRound(state["left"], state["right"]), vote, state.get("prompt", ""), state.get("left_answer", ""), state.get("right_answer", ""))
    state = {**state, "voted": True}
    return status_html(f"Vote saved ({vote}). {counts['total']} votes for this pair so far; press Reveal to see who is who.", "ok"), state


def export_votes(first, second, name):
    """Stakeholder votes -> preference pairs (chosen = the voted answer) -> a dataset version for DPO."""
    try:
        if not first or not second or first == second:
            raise StudioError("pick the two sides whose votes to export.")
        folder = votes.export_votes(first, second, name or "ab-votes")
    except Exception as err:  # noqa: BLE001
        return status_html(error_text(err), "error")
    import json

    manifest = json.loads((folder / "manifest.json").read_text())
    return status_html(f"Saved {manifest['counts']['pairs']} preference pairs as {manifest['name']} {manifest['version']} "
                       f"({manifest['counts']['ties_skipped']} ties skipped): train DPO with data: {folder}", "ok")


def blind_reveal(first, second, state):
    if not first or not second or first == second:
        return "Pick two different sides first."
    round_ = votes.BlindRound(state["left"], state["right"]) if state and state.get("left") else None
    labels = dict((value, label) for label, value in chat.side_choices())
    return votes.reveal_text(round_, first, second, label=lambda c: labels.get(c, c))


# ----- Prompt suites -----------------------------------------------------------------------------

def run_suite(upload, saved, save_name, left, right, max_tokens, seed, progress=gr.Progress()):
    """Load the suite (upload or saved), run it on both sides, write the report for download."""
    from studio.paths import confine, studio_home

    try:
        path = upload or saved
        if path:
            confine(path, "prompt suite")  # served beyond loopback: the studio home, uploads and --allow-path roots only
        if not path:
            raise StudioError("upload a CSV/JSON prompt suite or pick a saved one.")
        prompts = suites.load_prompt_suite(path)
        if upload and (save_name or "").strip():
            suites.save_prompt_suite(save_name, prompts)
        if not left or not right:
            raise StudioError("pick both sides.")
        engine = ChatEngine.for_choices(left, right)
        settings = GenerationSettings(temperature=0.0, max_new_tokens=int(max_tokens), seed=int(seed or 0))
        progress(0, desc=f"{len(prompts)} prompts")
        result = suites.run_prompt_suite(engine, prompts, settings, progress=lambda done, total: progress(done / total, desc=f"{done}/{total} answers"))
        folder = studio_home() / "suites" / "reports" / time.strftime("%Y%m%d-%H%M%S")
        html_path, md_path = suites.write_suite_report(result, folder, title=f"Prompt suite · {len(prompts)} prompts")
    except Exception as err:  # noqa: BLE001
        return status_html(error_text(err), "error"), gr.skip(), None, gr.skip()
    table = [[r["prompt"], r["reference"] or "", r["left"], r["right"]] for r in result.rows]
    headers = ["prompt", "reference", result.left_label, result.right_label]
    status = f"Ran {len(prompts)} prompts on both sides. Report: {html_path.name} and {md_path.name}."
    files = [downloadable(html_path), downloadable(md_path)]
    return status_html(status, "ok"), gr.update(value=table, headers=headers), files, gr.update(choices=_saved_suite_choices())


def _saved_suite_choices() -> list[tuple[str, str]]:
    return [(p.stem, str(p)) for p in suites.saved_suites()]


def _generation_settings(prefix: str):
    with gr.Accordion("Generation settings", open=False, elem_id=f"{prefix}-settings"):
        system_prompt = gr.Textbox(label="System prompt", placeholder="(the model's default)")
        with gr.Row():
            temperature = gr.Slider(0, 1.5, value=0.0, step=0.05, label="Temperature (0 = greedy)")
            top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="Top-p")
            max_tokens = gr.Slider(8, 1024, value=96, step=8, label="Max new tokens", elem_id=f"{prefix}-max-tokens")
            seed = gr.Number(value=0, precision=0, label="Seed", elem_id=f"{prefix}-seed")
    return system_prompt, temperature, top_p, max_tokens, seed



SIDE_EMPTY = "Pick a tuned run on the right (train one in the Train tab first), type a prompt below and press **Send to both**."
BLIND_EMPTY = "Type a prompt and press **Send (new round)**: the two sides answer on unlabelled seats; vote, then reveal."

def build() -> dict:
    gr.Markdown("### 4 · Chat\nTwo sides answer the same prompt, streaming together. Runs on the same base share one copy of its weights, and both sides (and every open session) decode in one batched forward.")
    with gr.Tabs():
        with gr.Tab("Side by side", id="chat-side"):
            with gr.Row():
                compare_picker = gr.Dropdown(label="Left", choices=compare_choices(), value=ITS_BASE, elem_id="chat-compare", scale=3)
                run_picker = gr.Dropdown(label="Right: tuned run", choices=chat_run_choices(), elem_id="chat-run", scale=3)
                refresh = gr.Button("↻ Refresh runs", scale=1, elem_id="chat-refresh")
            system_prompt, temperature, top_p, max_tokens, seed = _generation_settings("chat")
            with gr.Row():
                base_chat = gr.Chatbot(label="Left", height=380, elem_id="chat-base", placeholder=SIDE_EMPTY)
                tuned_chat = gr.Chatbot(label="Right", height=380, elem_id="chat-tuned", placeholder=SIDE_EMPTY)
            prompt = gr.Textbox(label="Prompt", placeholder="Ask both models something…", elem_id="chat-prompt")
            with gr.Row():
                send = gr.Button("Send to both", variant="primary", elem_id="chat-send")
                regenerate = gr.Button("Regenerate last", elem_id="chat-regenerate")
                clear = gr.Button("Clear", elem_id="chat-clear")
            status = gr.HTML(elem_id="chat-status")

        with gr.Tab("Blind A/B", id="chat-blind"):
            gr.Markdown("Pick two sides (default: the base model against the latest completed tuned run); each prompt shuffles them "
                        "onto unlabelled left/right seats. Vote, then reveal. Votes are saved per pair and export as preference pairs for DPO.")
            with gr.Row():
                side_a = gr.Dropdown(label="A", choices=chat.side_choices(), value=lambda: votes.default_blind_pair()[0], elem_id="ab-a")
                side_b = gr.Dropdown(label="B", choices=chat.side_choices(), value=lambda: votes.default_blind_pair()[1], elem_id="ab-b")
            ab_settings = _generation_settings("ab")
            with gr.Row():
                left_chat = gr.Chatbot(label="Left", height=320, elem_id="ab-left", placeholder=BLIND_EMPTY)
                right_chat = gr.Chatbot(label="Right", height=320, elem_id="ab-right", placeholder=BLIND_EMPTY)
            ab_prompt = gr.Textbox(label="Prompt", elem_id="ab-prompt")
            with gr.Row():
                ab_send = gr.Button("Send (new round)", variant="primary", elem_id="ab-send")
                vote_left = gr.Button("⬅ Left is better", elem_id="ab-vote-left")
                vote_tie = gr.Button("Tie", elem_id="ab-vote-tie")
                vote_right = gr.Button("Right is better ➡", elem_id="ab-vote-right")
                reveal = gr.Button("Reveal", elem_id="ab-reveal")
            ab_status = gr.HTML(elem_id="ab-status")
            ab_result = gr.Textbox(label="Reveal", interactive=False, lines=3, elem_id="ab-result")
            with gr.Row():
                export_name = gr.Textbox(label="Export the votes as a preference dataset named", value="ab-votes", elem_id="ab-export-name", scale=3)
                export_button = gr.Button("Export votes → DPO pairs", elem_id="ab-export", scale=1)
            blind_state = gr.State({})

        with gr.Tab("Prompt suite", id="chat-suite"):
            gr.Markdown("Run a saved set of prompts (CSV with a `prompt` column and optional `reference`, or JSON/JSONL) on two sides; download the comparison as HTML or Markdown.")
            with gr.Row():
                suite_file = gr.File(label="Prompt suite (.csv, .json, .jsonl)", file_types=[".csv", ".json", ".jsonl"], type="filepath", elem_id="suite-file")
                with gr.Column():
                    suite_saved = gr.Dropdown(label="…or a saved suite", choices=_saved_suite_choices(), elem_id="suite-saved")
                    suite_name = gr.Textbox(label="Save the uploaded suite as", placeholder="(optional name)", elem_id="suite-name")
            with gr.Row():
                suite_left = gr.Dropdown(label="Left", choices=chat.side_choices(), elem_id="suite-left")
                suite_right = gr.Dropdown(label="Right", choices=chat.side_choices(), elem_id="suite-right")
                suite_tokens = gr.Slider(8, 512, value=48, step=8, label="Max new tokens (greedy)")
                suite_seed = gr.Number(value=0, precision=0, label="Seed")
            suite_start = gr.Button("Run the suite on both sides", variant="primary", elem_id="suite-run")
            suite_status = gr.HTML(elem_id="suite-status")
            suite_table = gr.Dataframe(label="Comparison", wrap=True, interactive=False, elem_id="suite-table")
            suite_download = gr.File(label="Report (HTML, Markdown)", file_count="multiple", interactive=False, elem_id="suite-download")

    inputs = [run_picker, compare_picker, prompt, base_chat, tuned_chat, system_prompt, temperature, top_p, max_tokens, seed]
    outputs = [base_chat, tuned_chat, status, prompt]
    send.click(respond, inputs, outputs)
    prompt.submit(respond, inputs, outputs)

    def pop_last(base_history, tuned_history, temperature, seed):
        """Drop the last exchange and return its prompt; a sampled answer gets the next seed."""
        base_history, tuned_history = list(base_history or []), list(tuned_history or [])
        last_prompt = next((m["content"] for m in reversed(base_history) if m["role"] == "user"), "")
        next_seed = int(seed or 0) + 1 if float(temperature) > 0 else seed
        return base_history[:-2], tuned_history[:-2], last_prompt, next_seed

    regenerate.click(pop_last, [base_chat, tuned_chat, temperature, seed], [base_chat, tuned_chat, prompt, seed]).then(respond, inputs, outputs)
    clear.click(lambda: ([], [], ""), None, [base_chat, tuned_chat, status])

    ab_inputs = [side_a, side_b, ab_prompt, *ab_settings, blind_state]
    ab_send.click(blind_send, ab_inputs, [left_chat, right_chat, ab_status, blind_state])
    ab_prompt.submit(blind_send, ab_inputs, [left_chat, right_chat, ab_status, blind_state])
    for button, vote in ((vote_left, "left"), (vote_right, "right"), (vote_tie, "tie")):
        button.click(lambda state, v=vote: blind_vote(v, state), [blind_state], [ab_status, blind_state])
    reveal.click(blind_reveal, [side_a, side_b, blind_state], ab_result)
    export_button.click(export_votes, [side_a, side_b, export_name], ab_status)

    suite_start.click(run_suite, [suite_file, suite_saved, suite_name, suite_left, suite_right, suite_tokens, suite_seed], [suite_status, suite_table, suite_download, suite_saved])

    def refresh_all():
        sides = chat.side_choices()
        return (gr.update(choices=chat_run_choices()), gr.update(choices=compare_choices()), gr.update(choices=sides), gr.update(choices=sides),
                gr.update(choices=sides), gr.update(choices=sides))

    refresh_targets = [run_picker, compare_picker, side_a, side_b, suite_left, suite_right]
    refresh.click(refresh_all, None, refresh_targets)
    return {"run_picker": run_picker, "refresh_choices": lambda: gr.update(choices=chat_run_choices()), "refresh_all": refresh_all, "refresh_targets": refresh_targets}
