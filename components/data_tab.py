"""Data tab: load files (any supported type, several at once), override the format and map columns,
see every problem, profile token lengths, see which tokens are trained, clean with a preview,
edit rows, then split, mix and save a version that the Train tab uses.

Per-session state (gr.State): the loaded sources, format, mapping and pending edits. Every callback
re-reads the (copied) files, so nothing mutable is shared between browser sessions.
"""

from __future__ import annotations

from collections import Counter

import gradio as gr
import pandas as pd

from studio.data import FORMAT_HELP, FORMATS, import_file, load_dataset_files, preview_rows
from studio.data.clean import CleanOptions, plan_clean
from studio.data.cli import parse_fill
from studio.data.formats import USED_COLUMNS, placeholder_name, row_placeholders
from studio.data.readers import FILE_TYPES
from studio.data.render import MODES, notes, render, tokens_html
from studio.data.versions import apply_edits, list_versions, prepare
from studio.paths import confine, datasets_dir
from studio.resources import asset

from .common import error_text, status_html

DEMO_DATASET = str(asset("demo/json_answers.jsonl"))
PAGE_SIZE = 20
PROBLEM_COLUMNS = ["file", "row", "line", "field", "problem", "kept?"]
EDIT_COLUMNS = ["#", "delete", "example (JSON)"]
AUTO = "auto-detect"


def _fresh_state() -> dict:
    return {"paths": [], "fmt": None, "mapping": "", "edits": {}, "deleted": []}


def _load(state: dict):
    return load_dataset_files(state["paths"], state["fmt"], mapping=state["mapping"] or None)


def _problems_frame(loaded) -> pd.DataFrame:
    rows = [
        {"file": p.file or "", "row": p.row, "line": p.line, "field": p.field, "problem": p.message, "kept?": "kept" if p.severity == "warning" else "dropped"}
        for p in loaded.problems[:1000]
    ]
    return pd.DataFrame(rows, columns=PROBLEM_COLUMNS)


def _report(loaded) -> str:
    lines = [f"**{loaded.summary}.**"]
    if loaded.dropped_by_reason:
        lines.append("Dropped, by reason: " + ", ".join(f"{reason} × {n}" for reason, n in loaded.dropped_by_reason.items()) + ". Fix them in *Edit rows*, or they stay out.")
    if loaded.eval_conversations:
        lines.append(f"Saved version: {len(loaded.conversations)} train, {len(loaded.eval_conversations)} eval examples.")
    columns = sorted({k for row in loaded.rows[:200] if isinstance(row, dict) for k in row})
    lines.append("Columns: " + ", ".join(f"`{c}`" for c in columns[:20]))
    unused = [c for c in columns if c not in USED_COLUMNS.get(loaded.format, ()) and c != "split"]
    if unused:
        lines.append("Not used: " + ", ".join(f"`{c}`" for c in unused) + f" (the '{loaded.format}' format does not read them; map them to a field to use them).")
    labels = [e["label"] for e in loaded.conversations + loaded.eval_conversations if "label" in e]
    if labels:
        lines.append(f"KTO labels: {sum(labels)} desirable, {len(labels) - sum(labels)} undesirable. SFT methods train on the desirable rows only; method kto learns from both.")
    found = placeholder_counts(loaded)
    if found:
        lines.append("⚠️ Unresolved placeholders: " + ", ".join(f"`{k}` × {n}" for k, n in found.items()) + ". Fill them in *Split & save* before saving, or the model learns the literal text.")
    return "\n\n".join(lines)


def placeholder_counts(loaded) -> dict[str, int]:
    counts: Counter = Counter()
    for row in loaded.rows:
        for found in row_placeholders(row, loaded.format).values():
            counts.update(found)
    return dict(counts.most_common())


def fill_template(state: dict) -> str:
    """One `name=` line per unresolved placeholder of the loaded data (the fill box's starting text)."""
    if not state or not state.get("paths"):
        return ""
    try:
        names = dict.fromkeys(placeholder_name(k) for k in placeholder_counts(_load(state)))
    except Exception:  # noqa: BLE001 - the load itself already reported the problem
        return ""
    return "\n".join(f"{name}=" for name in names)


def _edit_page(state: dict, loaded, page: int) -> tuple[pd.DataFrame, str]:
    pages = max(1, -(-len(loaded.rows) // PAGE_SIZE))
    page = min(max(1, int(page or 1)), pages)
    start = (page - 1) * PAGE_SIZE
    rows = []
    for index in range(start, min(start + PAGE_SIZE, len(loaded.rows))):
        text = state["edits"].get(str(index), loaded.raw_text(index))
        rows.append({"#": index + 1, "delete": index in state["deleted"], "example (JSON)": text})
    pending = len(state["edits"]) + len(state["deleted"])
    return pd.DataFrame(rows, columns=EDIT_COLUMNS), f"Page {page} of {pages} · {pending} pending change(s)"


def load_dataset(files, path_text: str, fmt: str, mapping: str):
    """Returns status, report, preview, problems, edit table, page label, state, dataset path."""
    sources = [f for f in (files or []) if f] or ([p.strip() for p in (path_text or "").split(",") if p.strip()])
    empty = (None, None, None, None, "", _fresh_state(), None)
    if not sources:
        return (status_html("Upload a file or type a path first.", "warn"), *empty)
    state = _fresh_state()
    state["fmt"] = None if fmt in (None, "", AUTO) else fmt
    state["mapping"] = (mapping or "").strip()
    try:
        stored = [str(import_file(confine(source, "data"), state["fmt"], mapping=state["mapping"] or None)[0]) for source in sources]
        state["paths"] = stored
        loaded = _load(state)
    except Exception as err:  # noqa: BLE001 - every failure becomes a message, never a traceback
        return (status_html(error_text(err), "error"), *empty)
    simple = len(stored) == 1 and not state["fmt"] and not state["mapping"]
    text = f"Detected format: {loaded.format} — {loaded.summary}."
    text += " Ready to train." if simple else " Save a version (below) to train on it."
    slots = placeholder_counts(loaded)
    if slots:  # trainable, but the model would learn "{{name}}" literally: said here, not only in the report
        text += f" {sum(slots.values())} unresolved placeholder(s) ({', '.join(slots)}): fill them in Split & save and train on that version."
    table, label = _edit_page(state, loaded, 1)
    return (
        status_html(text, "ok" if not loaded.problems and not slots else "warn"),
        _report(loaded),
        pd.DataFrame(preview_rows(loaded)),
        _problems_frame(loaded),
        table,
        label,
        state,
        stored[0] if simple else gr.skip(),
    )


def profile_dataset(state: dict, model: str, max_length: float, progress=gr.Progress()):
    if not state or not state.get("paths"):
        return None, None, "Load a dataset first.", None
    try:
        from studio.data.profile import length_figure, profile, tokenizer_for, turns_figure

        progress(0.1, desc="Loading the tokenizer…")
        loaded = _load(state)
        tokenizer = tokenizer_for((model or "embedded").strip())
        progress(0.4, desc="Counting tokens…")
        examples = loaded.conversations + loaded.eval_conversations
        result = profile(examples, tokenizer, int(max_length or 0) or None)
    except Exception as err:  # noqa: BLE001
        return None, None, error_text(err), None
    stats = result.stats
    text = (
        f"**{stats['examples']} examples.** Total tokens: mean {stats['total']['mean']}, p95 {stats['total']['p95']}, max {stats['total']['max']}. "
        f"Prompt mean {stats['prompt']['mean']}, response mean {stats['response']['mean']}."
    )
    if stats.get("max_length"):
        text += f" **{stats['truncated']} ({stats['truncated_pct']}%) would be truncated at max_length {stats['max_length']}.**"
    text += f" Near-duplicate clusters: {len(result.clusters)}."
    clusters = pd.DataFrame(result.cluster_rows(examples), columns=["size", "rows", "example"])
    return length_figure(result.lengths, stats.get("max_length")), turns_figure(result.turns), text, clusters


def render_example(state: dict, model: str, number: float, mode: str, max_length: float):
    if not state or not state.get("paths"):
        return status_html("Load a dataset first.", "warn")
    try:
        from studio.data.profile import tokenizer_for

        loaded = _load(state)
        examples = loaded.conversations + loaded.eval_conversations
        index = int(number or 1) - 1
        if not 0 <= index < len(examples):
            return status_html(f"Pick an example between 1 and {len(examples)}.", "warn")
        mode_key = next((k for k, v in MODES.items() if v == mode), "all_assistant")
        cutoff = int(max_length or 0) or None
        rendered = render(examples[index], tokenizer_for((model or "embedded").strip()), loss_on=mode_key, max_length=cutoff)
    except Exception as err:  # noqa: BLE001
        return status_html(error_text(err), "error")
    return tokens_html(rendered.tokens(), notes(rendered, cutoff))


def _clean_options(dedup, near_dup, threshold, drop_empty, scrub_pii, min_tokens, max_tokens) -> CleanOptions:
    return CleanOptions(
        drop_empty=bool(drop_empty),
        exact_dedup=bool(dedup),
        near_dup_threshold=float(threshold) if near_dup else None,
        min_tokens=int(min_tokens) if min_tokens else None,
        max_tokens=int(max_tokens) if max_tokens else None,
        scrub_pii=bool(scrub_pii),
    )


def preview_clean(state: dict, model: str, dedup, near_dup, threshold, drop_empty, scrub_pii, min_tokens, max_tokens):
    if not state or not state.get("paths"):
        return "Load a dataset first.", None
    try:
        options = _clean_options(dedup, near_dup, threshold, drop_empty, scrub_pii, min_tokens, max_tokens)
        loaded = _load(state)
        examples = loaded.conversations + loaded.eval_conversations
        totals = None
        if options.min_tokens or options.max_tokens:
            from studio.data.profile import token_lengths, tokenizer_for

            totals = [t for _, _, t in token_lengths(examples, tokenizer_for((model or "embedded").strip()))]
        plan = plan_clean(examples, options, total_tokens=totals)
    except Exception as err:  # noqa: BLE001
        return error_text(err), None
    numbers = [loaded.origins[i][1] for i in loaded.kept] if len(loaded.kept) == len(examples) else None
    frame = pd.DataFrame(plan.preview(row_numbers=numbers), columns=["row", "action", "reason", "detail", "example"])
    return f"Preview (nothing changed yet): {plan.summary()}.", frame


def _merge_page(state: dict, table) -> dict:
    """Fold the visible page's edits and delete ticks into the session's pending changes."""
    if table is None or not state or not state.get("paths"):
        return state
    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    if frame.empty or "#" not in frame:
        return state
    loaded = _load(state)
    state = {**state, "edits": dict(state["edits"]), "deleted": list(state["deleted"])}
    for _, row in frame.iterrows():
        index = int(row["#"]) - 1
        if not 0 <= index < len(loaded.rows):
            continue
        text = str(row["example (JSON)"])
        if text.strip() != loaded.raw_text(index).strip():
            state["edits"][str(index)] = text
        else:
            state["edits"].pop(str(index), None)
        deleted = str(row["delete"]).lower() in ("true", "1")
        if deleted and index not in state["deleted"]:
            state["deleted"].append(index)
        elif not deleted and index in state["deleted"]:
            state["deleted"].remove(index)
    return state


def change_page(state: dict, table, page: float, step: int):
    state = _merge_page(state, table)
    if not state or not state.get("paths"):
        return state, None, "", 1
    loaded = _load(state)
    new_page = max(1, int(page or 1) + step)
    frame, label = _edit_page(state, loaded, new_page)
    return state, frame, label, int(label.split()[1])


def save_version(state: dict, table, name: str, eval_fraction: float, seed: float, mix_ratio: float, model: str, dedup, near_dup, threshold, drop_empty, scrub_pii, min_tokens, max_tokens, fill_text: str = ""):
    """Apply edits, clean, split, mix and save. Returns status, versions table, state, dataset path."""
    state = _merge_page(state, table)
    if not state or not state.get("paths"):
        return status_html("Load a dataset first.", "warn"), gr.skip(), state, gr.skip()
    try:
        loaded = _load(state)
        edited_from = None
        if state["edits"] or state["deleted"]:
            edits = {int(k): v for k, v in state["edits"].items()}
            edited = apply_edits(loaded, edits, set(state["deleted"]), datasets_dir() / ".edits")
            edited_from, loaded = loaded, load_dataset_files([edited], loaded.format)
        options = _clean_options(dedup, near_dup, threshold, drop_empty, scrub_pii, min_tokens, max_tokens)
        result = prepare(
            state["paths"], (name or "").strip() or "dataset", clean=options, model=(model or "embedded").strip(),
            eval_fraction=float(eval_fraction or 0), seed=int(seed or 0), mix_ratio=float(mix_ratio or 0),
            loaded=loaded, edited_from=edited_from, fill={k: v for k, v in parse_fill(fill_text).items() if v},
        )
    except Exception as err:  # noqa: BLE001
        return status_html(error_text(err), "error"), gr.skip(), state, gr.skip()
    counts = result.manifest["counts"]
    text = f"Saved {result.manifest['name']} {result.manifest['version']}: {counts['train']} train, {counts['eval']} eval examples → {result.path}. The Train tab now uses it."
    filled = {name for name, value in parse_fill(fill_text).items() if value}
    left = {slot: n for slot, n in placeholder_counts(loaded).items() if placeholder_name(slot) not in filled}
    warnings = list(result.warnings) + ([f"Still unresolved (no value given): {', '.join(f'{slot} × {n}' for slot, n in left.items())}; the model learns them literally."] if left else [])
    if warnings:
        text += " ⚠️ " + " ".join(warnings)
    data_file = str(result.path / "data.parquet")
    return status_html(text, "warn" if warnings else "ok"), versions_frame(), state, data_file


def versions_frame() -> pd.DataFrame:
    rows = [
        {"name": m["name"], "version": m["version"], "format": m["format"], "train": m["counts"]["train"], "eval": m["counts"]["eval"], "created": m["created"], "path": m["path"]}
        for m in list_versions()
    ]
    return pd.DataFrame(rows, columns=["name", "version", "format", "train", "eval", "created", "path"])


def use_version(path: str):
    path = (path or "").strip()
    if not path:
        return status_html("Type a version path from the table.", "warn"), gr.skip()
    return status_html(f"The Train tab now uses {path}.", "ok"), str(path.rstrip("/") + ("" if path.endswith(".parquet") else "/data.parquet"))


def build(dataset_path: gr.State) -> None:
    state = gr.State(_fresh_state())
    gr.Markdown(
        "### 1 · Data\nDrop in one or more files (" + ", ".join(FILE_TYPES) + "), or type a path (a file, a saved `datasets` folder, or a saved version). "
        "The format is detected; override it and map columns if needed. Your files are copied, never modified."
    )
    with gr.Row():
        upload = gr.File(label="Dataset files", file_types=list(FILE_TYPES), file_count="multiple", type="filepath", elem_id="data-upload")
        with gr.Column():
            path_box = gr.Textbox(label="…or a path on this machine (comma-separate several)", placeholder=DEMO_DATASET, elem_id="data-path")
            with gr.Row():
                fmt = gr.Dropdown([AUTO, *FORMATS], value=AUTO, label="Format", info="; ".join(f"{k}: {v}" for k, v in list(FORMAT_HELP.items())[:3]) + "…", elem_id="data-format")
                mapping = gr.Textbox(label="Column mapping (file_column=field)", placeholder="question=instruction, answer=output", elem_id="data-mapping")
            with gr.Row():
                load_button = gr.Button("Load dataset", variant="primary", elem_id="data-load")
                demo_button = gr.Button("Use the demo dataset (answers in JSON)", elem_id="data-demo")
    status = gr.HTML(status_html("No dataset yet: drop a file above, type a path, or press “Use the demo dataset”.", "info"), elem_id="data-status")
    report = gr.Markdown(elem_id="data-report")
    with gr.Tabs():
        with gr.Tab("Preview & problems"):
            preview = gr.Dataframe(headers=["user", "assistant", "turns"], label="Preview (first 20 examples)", interactive=False, wrap=True, elem_id="data-preview")
            problems = gr.Dataframe(headers=PROBLEM_COLUMNS, label="Problems (file, row, line, field)", interactive=False, wrap=True, elem_id="data-problems")
        with gr.Tab("Profile"):
            with gr.Row():
                model = gr.Textbox(value="embedded", label="Model (its tokenizer and chat template)", elem_id="data-model")
                max_length = gr.Number(value=512, precision=0, label="max_length (token cutoff)", elem_id="data-max-length")
                profile_button = gr.Button("Profile", elem_id="data-profile")
            profile_text = gr.Markdown(elem_id="data-profile-text")
            length_plot = gr.Plot(label="Token lengths", elem_id="data-length-plot")
            turns_plot = gr.Plot(label="Turns", elem_id="data-turns-plot")
            clusters = gr.Dataframe(headers=["size", "rows", "example"], label="Largest near-duplicate clusters", interactive=False, wrap=True, elem_id="data-clusters")
        with gr.Tab("Tokens with loss"):
            with gr.Row():
                example_number = gr.Number(value=1, precision=0, label="Example #", elem_id="data-example")
                mode = gr.Radio(list(MODES.values()), value=MODES["all_assistant"], label="Loss on", elem_id="data-mode")
                render_button = gr.Button("Show tokens", elem_id="data-render")
            tokens_view = gr.HTML(elem_id="data-tokens")
        with gr.Tab("Clean"):
            with gr.Row():
                dedup = gr.Checkbox(value=True, label="Exact duplicates")
                near_dup = gr.Checkbox(value=False, label="Near duplicates (MinHash LSH)")
                threshold = gr.Slider(0.5, 1.0, value=0.85, step=0.01, label="Near-dup similarity")
                drop_empty = gr.Checkbox(value=True, label="Empty / whitespace rows")
                scrub_pii = gr.Checkbox(value=False, label="Scrub PII (emails, phones, keys)")
            with gr.Row():
                min_tokens = gr.Number(value=None, precision=0, label="Min tokens (optional)")
                max_tokens = gr.Number(value=None, precision=0, label="Max tokens (optional)")
                clean_button = gr.Button("Preview cleaning", elem_id="data-clean-preview")
            clean_text = gr.Markdown(elem_id="data-clean-text")
            clean_table = gr.Dataframe(headers=["row", "action", "reason", "detail", "example"], label="What cleaning would change", interactive=False, wrap=True, elem_id="data-clean-table")
        with gr.Tab("Edit rows"):
            gr.Markdown("Edit the JSON of a row or tick *delete*, then page on or save a version. Broken rows show their original line, so you can fix them here.")
            edit_table = gr.Dataframe(headers=EDIT_COLUMNS, datatype=["number", "bool", "str"], interactive=True, wrap=True, elem_id="data-edit-table")
            with gr.Row():
                prev_button = gr.Button("◀ Previous", elem_id="data-prev")
                page = gr.Number(value=1, precision=0, label="Page", elem_id="data-page")
                next_button = gr.Button("Next ▶", elem_id="data-next")
                page_label = gr.Markdown(elem_id="data-page-label")
        with gr.Tab("Split & save"):
            gr.Markdown("Saving applies your edits and the cleaning options, splits train/eval, optionally mixes in a general-capability slice, and writes a new version (parquet + manifest). The original file is never overwritten.")
            with gr.Row():
                name = gr.Textbox(value="my-dataset", label="Dataset name", elem_id="data-name")
                eval_fraction = gr.Slider(0, 0.5, value=0.1, step=0.01, label="Eval fraction", elem_id="data-eval-fraction")
                seed = gr.Number(value=42, precision=0, label="Seed")
                mix_ratio = gr.Slider(0, 0.5, value=0.0, step=0.01, label="General-capability mix ratio", info="against catastrophic forgetting")
            fill_box = gr.Textbox(
                label="Fill placeholders (name=value, one per line)", lines=2, elem_id="data-fill",
                info="Unresolved {{name}}, {name} and <NAME> slots found in the data are listed here on load; values given are written into the saved version.",
            )
            save_button = gr.Button("Save as new version", variant="primary", elem_id="data-save")
            save_status = gr.HTML(elem_id="data-save-status")
            versions = gr.Dataframe(value=versions_frame, label="Saved versions", interactive=False, wrap=True, elem_id="data-versions")
            with gr.Row():
                version_path = gr.Textbox(label="Train on a saved version (paste its path)", elem_id="data-version-path")
                use_button = gr.Button("Use this version", elem_id="data-use-version")

    load_outputs = [status, report, preview, problems, edit_table, page_label, state, dataset_path]
    load_inputs = [upload, path_box, fmt, mapping]
    load_button.click(load_dataset, load_inputs, load_outputs).then(fill_template, state, fill_box)
    upload.upload(load_dataset, load_inputs, load_outputs).then(fill_template, state, fill_box)
    demo_button.click(lambda f, m: load_dataset(None, DEMO_DATASET, f, m), [fmt, mapping], load_outputs).then(fill_template, state, fill_box)
    profile_button.click(profile_dataset, [state, model, max_length], [length_plot, turns_plot, profile_text, clusters])
    render_button.click(render_example, [state, model, example_number, mode, max_length], tokens_view)
    clean_inputs = [dedup, near_dup, threshold, drop_empty, scrub_pii, min_tokens, max_tokens]
    clean_button.click(preview_clean, [state, model, *clean_inputs], [clean_text, clean_table])
    prev_button.click(lambda s, t, p: change_page(s, t, p, -1), [state, edit_table, page], [state, edit_table, page_label, page])
    next_button.click(lambda s, t, p: change_page(s, t, p, 1), [state, edit_table, page], [state, edit_table, page_label, page])
    page.submit(lambda s, t, p: change_page(s, t, p, 0), [state, edit_table, page], [state, edit_table, page_label, page])
    save_button.click(save_version, [state, edit_table, name, eval_fraction, seed, mix_ratio, model, *clean_inputs, fill_box], [save_status, versions, state, dataset_path])
    use_button.click(use_version, version_path, [save_status, dataset_path])

