"""Method tab: should you fine-tune at all? Questionnaire + dataset signals -> approach, reasons and
next step; the base-model check; method and preset (Apply fills the Train tab); the memory/time/cost
estimator; and a three-way RAG comparison (base, base+RAG with citations, tuned)."""

from __future__ import annotations

import html

import gradio as gr

from studio import advisor, estimator
from studio.chat import ChatEngine
from studio.engine import GenerationSettings
from studio.errors import StudioError
from studio.jobs import registry

from .common import empty_state, error_text, status_html


def default_device() -> str:
    """This machine's kind (nvidia-smi, as the status bar): a CPU-only box is advised for its CPU, not a 4090."""
    from studio.jobs.overview import hardware

    return "gpu" if hardware().gpu else "cpu"

NOT_CHECKED = "not checked"
NO_DATASET = "No dataset selected: load one in the Data tab, or answer by hand."
NO_ADVICE = "Answer the questions on the left (the dataset fills in what it can), then press Advise."
NO_CHECK = "Press “Check the base model” to score it on a few of your eval prompts; its answers are listed here."


def read_signals(dataset_path, model):
    """Dataset changed: show its signals and fill the count and eval-split answers."""
    if not dataset_path:
        return status_html(NO_DATASET, "info"), gr.skip(), gr.skip(), None
    try:
        signals = advisor.dataset_signals(dataset_path, model=model or "embedded")
    except Exception as err:  # noqa: BLE001
        return status_html(error_text(err), "error"), gr.skip(), gr.skip(), None
    state = {k: v for k, v in signals.__dict__.items()}
    return status_html(signals.describe(), "ok"), signals.examples, signals.has_eval_split, state


def check_base(signals_state, model, sample, progress=gr.Progress()):
    """Run the base model on a sample of the eval split: the evidence for "already does the task?"."""
    if not signals_state or not signals_state.get("eval_pairs"):
        return status_html("No eval prompts with references: add an eval split in the Data tab first.", "warn"), gr.skip(), gr.skip()
    try:
        check = advisor.check_base_model(
            [tuple(p) for p in signals_state["eval_pairs"]], model=model or "embedded", sample=int(sample or 3), max_new_tokens=64,
            progress=lambda done, total: progress(done / total, desc=f"base model: prompt {done + 1} of {total}"),
        )
    except Exception as err:  # noqa: BLE001
        return status_html(error_text(err), "error"), gr.skip(), gr.skip()
    rows = [[r.prompt, r.reference, r.answer, r.score] for r in check.rows]
    return status_html(check.describe(), "ok" if not check.already_good else "warn"), gr.update(value=rows, visible=True), "yes" if check.already_good else "no"


def recommend(examples, goal, changes, citations, has_eval, size, already_good, model, device, scalar_reward, principles, signals_state, checkable=False):
    raw = {
        "examples": int(examples or 0),
        "goal": goal,
        "knowledge_changes": changes,
        "needs_citations": bool(citations),
        "has_eval_set": bool(has_eval),
        "knowledge_size": None if size == "unknown" else size,
        "base_model_already_good": None if already_good == NOT_CHECKED else already_good == "yes",
    }
    try:
        answers = advisor.Answers.from_dict(raw, where="Method tab")
        signals = advisor.DatasetSignals(**signals_state) if signals_state else None
        result = advisor.advise(answers, signals=signals, model=model or "embedded", device=device,
                                wants_scalar_reward=bool(scalar_reward), has_principles=bool(principles), checkable_answers=bool(checkable))
    except Exception as err:  # noqa: BLE001
        return status_html(error_text(err), "error"), None, gr.update(interactive=False)
    data_path = signals_state["path"] if signals_state else ""
    values = result.preset.run_config_values(data=data_path, model=model or "embedded") if result.preset else None
    note = "" if not values or "model" in values else (
        f'<p class="studio-note">“{html.escape(model)}” sizes the estimate only: Apply keeps the Train tab\'s model. '
        "To train it, pick a local folder or a hub id there.</p>")
    return recommendation_html(result) + note, values, gr.update(interactive=values is not None)


def recommendation_html(result: advisor.Recommendation) -> str:
    esc = html.escape
    items = "".join(f"<li><code>{esc(r.rule)}</code> {esc(r.text)}</li>" for r in result.reasons)
    parts = [f'<div class="studio-advice" id="advice-approach" data-approach="{esc(result.approach)}">',
             f"<h3>Approach: {esc(result.approach)}</h3><ul>{items}</ul><p><b>Next step:</b> {esc(result.next_step)}</p>"]
    if result.preset:
        rows = "".join(f"<tr><td><code>{esc(k)}</code></td><td>{esc(str(v))}</td><td>{esc(result.preset.reasons.get(k, ''))}</td></tr>"
                       for k, v in result.preset.values.items())
        est = result.preset.estimate or {}
        parts.append(f"<p><b>Method:</b> <code>{esc(result.method)}</code> · estimated peak {est.get('peak_gib', '?')} GiB"
                     f" · fits 24 GB: {'yes' if est.get('fits_24gb') else 'no'}</p>"
                     f"<table><tr><th>setting</th><th>value</th><th>why</th></tr>{rows}</table>")
    return "".join(parts) + "</div>"


def train_updates(values: dict | None, keys: list[str]) -> list:
    """Apply: one update per Train-tab widget, in `keys` order (keys the preset lacks stay as they are)."""
    if not values:
        return [gr.skip() for _ in keys]
    return [gr.update(value=values[k]) if k in values else gr.skip() for k in keys]


def run_estimate(model, method, seq, batch, checkpointing, device, train_tokens):
    try:
        setup = estimator.Setup(method=method, seq=int(seq), batch=int(batch), gradient_checkpointing=bool(checkpointing), device=device)
        result = estimator.estimate(model or "embedded", setup, train_tokens=int(train_tokens) if train_tokens else None)
    except Exception as err:  # noqa: BLE001
        return status_html(error_text(err), "error")
    kind = "ok" if result.fits_24gb else "warn"
    return status_html(result.describe(), kind).replace("\n", "<br>")


def rag_run_choices() -> list[tuple[str, str]]:
    from studio import chat

    has = getattr(chat, "has_weights", lambda r: r.status == "completed")
    return [("(none: base model only)", "")] + [(f"{r.name} · {r.id}", r.id) for r in registry.list_runs() if has(r)]


def ask_three_ways(files, run_id, model, question, max_tokens):
    """Stream base, base+RAG (with the cited passages) and tuned answers to the same question."""
    from studio import rag

    if not (question or "").strip():
        yield "", "", "", status_html("Type a question first.", "warn")
        return
    try:
        paths = [getattr(f, "name", f) for f in (files or [])]
        if not paths:
            raise StudioError("no documents to retrieve from.", hint="Drop .txt, .md or .pdf files above.")
        index = rag.RagIndex.from_files(paths)
        hits = index.search(question, k=3)
        if run_id:
            record = registry.get(run_id)
            if record is None:
                raise StudioError(f"run {run_id} not found.", hint="Refresh the run list.")
            engine = ChatEngine.for_run(record)
        else:
            engine = ChatEngine.base_only(model or "embedded")
    except Exception as err:  # noqa: BLE001
        yield "", "", "", status_html(error_text(err), "error")
        return
    cited = rag.citations_text(hits) or "no passage matched the question"
    settings = GenerationSettings(temperature=0.0, max_new_tokens=int(max_tokens or 64))
    texts = ("", "", "")
    for texts in rag.stream_three(engine, question, index, settings):
        yield texts[0], texts[1], texts[2], status_html("answering…", "info")
    tuned_note = "" if run_id else " (no run picked: the third column is the base model)"
    yield texts[0], texts[1], texts[2], status_html(f"Retrieved from {len(index.passages)} passages:\n{cited}{tuned_note}", "ok")


def build(dataset_path: gr.State) -> dict:
    gr.Markdown("### 2 · Method · should you fine-tune at all?\nAnswer a few questions; the dataset fills in what it can. "
                "The advice names the rule behind each reason.")
    signals_state = gr.State(None)
    preset_state = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1):
            data_status = gr.HTML(status_html(NO_DATASET, "info"), elem_id="method-signals")
            goal = gr.Radio(list(advisor.GOALS), value="style", label="What must the model learn?", elem_id="method-goal")
            changes = gr.Radio(list(advisor.CHANGES), value="never", label="How often does the knowledge change?", elem_id="method-changes")
            size = gr.Radio(["unknown", "small", "large"], value="unknown", label="How much knowledge is involved?", elem_id="method-size")
            citations = gr.Checkbox(label="Answers must cite their sources", elem_id="method-citations")
            with gr.Row():
                examples = gr.Number(value=0, precision=0, minimum=0, label="Examples", elem_id="method-examples")
                has_eval = gr.Checkbox(label="I have an eval set", elem_id="method-has-eval")
            with gr.Row():
                model = gr.Textbox(value="embedded", label="Model (or a folder with config.json)", elem_id="method-model")
                device = gr.Radio(["gpu", "cpu"], value=default_device(), label="Hardware (gpu = 24 GB RTX 4090)", elem_id="method-device")
            with gr.Row():
                scalar_reward = gr.Checkbox(label="I want a scalar reward (RLHF)")
                principles = gr.Checkbox(label="I have written principles (Constitutional AI)")
                checkable = gr.Checkbox(label="A rule can check the answers: format, exact or numeric answer (GRPO)", elem_id="method-checkable")
            already_good = gr.Radio([NOT_CHECKED, "yes", "no"], value=NOT_CHECKED, label="Does the base model already do the task?", elem_id="method-already-good")
            with gr.Row():
                sample = gr.Number(value=3, precision=0, minimum=1, maximum=20, label="Eval prompts to try", elem_id="method-sample")
                check = gr.Button("Check the base model on my eval prompts", elem_id="method-check")
            check_status = gr.HTML(empty_state(NO_CHECK), elem_id="method-check-status")
            check_table = gr.Dataframe(headers=["prompt", "reference", "base answer", "score"], interactive=False, wrap=True, visible=False, elem_id="method-check-table")
        with gr.Column(scale=1):
            advise_button = gr.Button("Advise", variant="primary", elem_id="method-advise")
            advice = gr.HTML(empty_state(NO_ADVICE), elem_id="method-advice")
            apply_button = gr.Button("Apply to the Train tab", interactive=False, elem_id="method-apply")
            with gr.Accordion("Memory, time and cost estimator", open=False):
                with gr.Row():
                    est_method = gr.Dropdown(list(estimator.ESTIMATE_METHODS), value="lora", label="Method", elem_id="est-method")
                    est_device = gr.Radio(["gpu", "cpu"], value="gpu", label="Device")
                with gr.Row():
                    est_seq = gr.Number(value=2048, precision=0, minimum=16, label="Sequence length", elem_id="est-seq")
                    est_batch = gr.Number(value=1, precision=0, minimum=1, label="Batch", elem_id="est-batch")
                    est_checkpointing = gr.Checkbox(value=True, label="Gradient checkpointing")
                est_tokens = gr.Number(value=0, precision=0, label="Training tokens (dataset × epochs; 0 = skip time/cost)")
                est_button = gr.Button("Estimate", elem_id="est-run")
                est_out = gr.HTML(elem_id="est-out")
    with gr.Accordion("RAG as a live comparison: base · base + RAG · tuned", open=False):
        with gr.Row():
            docs = gr.File(file_count="multiple", file_types=[".txt", ".md", ".pdf"], label="Your documents (txt, md, pdf)", elem_id="rag-docs")
            with gr.Column():
                rag_run = gr.Dropdown(choices=rag_run_choices(), value="", label="Tuned run (optional)", elem_id="rag-run")
                question = gr.Textbox(label="Question", elem_id="rag-question")
                rag_tokens = gr.Number(value=64, precision=0, minimum=8, maximum=512, label="Max new tokens", elem_id="rag-tokens")
                ask = gr.Button("Ask three ways", variant="primary", elem_id="rag-ask")
        with gr.Row():
            base_out = gr.Textbox(label="Base", lines=6, elem_id="rag-base")
            rag_out = gr.Textbox(label="Base + RAG", lines=6, elem_id="rag-rag")
            tuned_out = gr.Textbox(label="Tuned", lines=6, elem_id="rag-tuned")
        rag_status = gr.HTML(elem_id="rag-status")

    dataset_path.change(read_signals, [dataset_path, model], [data_status, examples, has_eval, signals_state])
    check.click(check_base, [signals_state, model, sample], [check_status, check_table, already_good])
    advise_button.click(
        recommend,
        [examples, goal, changes, citations, has_eval, size, already_good, model, device, scalar_reward, principles, signals_state, checkable],
        [advice, preset_state, apply_button],
    )
    est_button.click(run_estimate, [model, est_method, est_seq, est_batch, est_checkpointing, est_device, est_tokens], est_out)
    ask.click(ask_three_ways, [docs, rag_run, model, question, rag_tokens], [base_out, rag_out, tuned_out, rag_status])
    return {"apply": apply_button, "advise": advise_button, "preset": preset_state, "refresh_runs": lambda: gr.update(choices=rag_run_choices()), "rag_run": rag_run}
