"""Prompt suites and their reports: a CSV/JSON/JSONL list of prompts (optional references) kept
under $STUDIO_HOME/suites, run on both sides of a chat engine, scored by exact match (Wilson
intervals, sign test on the prompts only one side got), and written as report.md + report.html
(jinja2 template `suite_report.html.j2`).

Reading, saving and reporting suites is torch-free; only `run_prompt_suite` loads the generation
engine (`studio.engine`), imported there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .errors import StudioError

if TYPE_CHECKING:
    from .chat import ChatEngine
    from .engine import GenerationSettings

SUITE_SUFFIXES = (".csv", ".json", ".jsonl")
PROMPT_KEYS = ("prompt", "instruction", "question", "input")
REFERENCE_KEYS = ("reference", "expected", "answer", "output")


@dataclass
class SuitePrompt:
    prompt: str
    reference: str | None = None


def load_prompt_suite(path: str | Path) -> list[SuitePrompt]:
    """Prompts from CSV (a `prompt` column, optional `reference`), JSON (a list of strings or
    objects) or JSONL. Every bad row is reported with its row and line."""
    import csv
    import io
    import json

    path = Path(path)
    if path.suffix.lower() not in SUITE_SUFFIXES:
        raise StudioError(f"a prompt suite is a .csv, .json or .jsonl file, got {path.name}.", where=str(path))
    if not path.is_file():
        raise StudioError(f"prompt suite not found: {path}.", hint="Check the path.")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise StudioError("the file is not valid UTF-8.", where=f"{path} byte {err.start}", hint="Re-save it as UTF-8.") from None
    items: list[tuple[str, object]] = []  # (where, raw item)
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if not any(k in header for k in PROMPT_KEYS):
            raise StudioError(f"the CSV needs a `prompt` column (found: {', '.join(header) or 'no header'}).", where=f"{path} line 1")
        for number, row in enumerate(reader, start=1):
            items.append((f"{path} row {number} (line {reader.line_num})", {(k or "").strip().lower(): v for k, v in row.items()}))
    elif path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    items.append((f"{path} line {number}", json.loads(line)))
                except json.JSONDecodeError as err:
                    raise StudioError(f"not valid JSON ({err.msg}).", where=f"{path} line {number}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise StudioError(f"not valid JSON ({err.msg}).", where=f"{path} line {err.lineno}") from None
        if isinstance(data, dict):
            data = data.get("prompts", data.get("probes"))
        if not isinstance(data, list):
            raise StudioError("expected a list of prompts (or {\"prompts\": [...]}).", where=str(path))
        items = [(f"{path} item {number}", item) for number, item in enumerate(data, start=1)]
    prompts = [_suite_prompt(where, item) for where, item in items]
    if not prompts:
        raise StudioError("the prompt suite has no prompts.", where=str(path), hint="Add at least one row.")
    return prompts


def _suite_prompt(where: str, item) -> SuitePrompt:
    if isinstance(item, str):
        item = {"prompt": item}
    if not isinstance(item, dict):
        raise StudioError(f"expected a prompt string or an object, got {type(item).__name__}.", where=where)
    prompt = next((item[k] for k in PROMPT_KEYS if isinstance(item.get(k), str) and item[k].strip()), None)
    if prompt is None:
        raise StudioError("field 'prompt' is missing or empty.", where=where, hint="Give every row a non-empty prompt.")
    reference = next((str(item[k]) for k in REFERENCE_KEYS if item.get(k) not in (None, "")), None)
    return SuitePrompt(prompt.strip(), reference)


def suites_dir() -> Path:
    from .paths import studio_home

    folder = studio_home() / "suites"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_prompt_suite(name: str, prompts: list[SuitePrompt]) -> Path:
    """Keep a suite under $STUDIO_HOME/suites/NAME.json so it can be run again later."""
    import json

    from .paths import safe_name

    path = suites_dir() / f"{safe_name(name, what='prompt suite')}.json"
    path.write_text(json.dumps({"prompts": [p.__dict__ for p in prompts]}, indent=2, ensure_ascii=False))
    return path


def saved_suites() -> list[Path]:
    return sorted(suites_dir().glob("*.json"))


@dataclass
class SuiteResult:
    left_label: str
    right_label: str
    rows: list[dict]  # prompt, reference, left, right, left_match, right_match
    settings: GenerationSettings


def run_prompt_suite(engine: ChatEngine, prompts: list[SuitePrompt], settings: GenerationSettings, progress: Callable[[int, int], None] | None = None, batch_size: int = 8) -> SuiteResult:
    """Run every prompt on both sides (batched per side) and pair the answers up."""
    from .engine import generate_batch, without_cut_marker

    conversations = [[{"role": "user", "content": p.prompt}] for p in prompts]
    left: list[str] = []
    right: list[str] = []
    total = 2 * len(conversations)
    for start in range(0, len(conversations), batch_size):
        chunk = conversations[start : start + batch_size]
        left += generate_batch(engine.base_side, chunk, settings, batch_size, show_cut=True)
        right += generate_batch(engine.tuned_side, chunk, settings, batch_size, show_cut=True)
        if progress:
            progress(len(left) + len(right), total)
    rows = []
    for prompt, left_answer, right_answer in zip(prompts, left, right):
        row = {"prompt": prompt.prompt, "reference": prompt.reference, "left": left_answer, "right": right_answer}
        if prompt.reference is not None:
            row["left_match"] = normalize_answer(without_cut_marker(left_answer)) == normalize_answer(prompt.reference)
            row["right_match"] = normalize_answer(without_cut_marker(right_answer)) == normalize_answer(prompt.reference)
        rows.append(row)
    return SuiteResult(engine.base_side.label, engine.tuned_side.label, rows, settings)


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation for exact match: case, punctuation, articles and spacing."""
    import re
    import string

    text = (text or "").lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def suite_scores(result: SuiteResult) -> str | None:
    """Exact match per side with Wilson intervals, and a sign test on the prompts where only one side
    matched (the paired comparison); None when no prompt has a reference."""
    from . import stats

    scored = [r for r in result.rows if r["reference"] is not None]
    if not scored:
        return None
    n = len(scored)
    parts = []
    for side, label in (("left", result.left_label), ("right", result.right_label)):
        k = sum(r[f"{side}_match"] for r in scored)
        low, high = stats.wilson(k, n)
        parts.append(f"{label} {k}/{n} ({100 * k / n:.0f}%, 95% CI {100 * low:.0f}–{100 * high:.0f}%)")
    left_only = sum(r["left_match"] and not r["right_match"] for r in scored)
    right_only = sum(r["right_match"] and not r["left_match"] for r in scored)
    p_value = stats.sign_test(left_only, left_only + right_only)
    verdict = "a clear difference" if p_value < stats.ALPHA else "no clear difference"
    return (f"Exact match: {' · '.join(parts)}. Only left matched: {left_only}, only right: {right_only}; "
            f"sign test p={p_value:.3f}: {verdict}.")


def suite_markdown(result: SuiteResult, title: str = "Prompt suite") -> str:
    def cell(text) -> str:
        return str(text if text is not None else "").replace("|", "\\|").replace("\n", "<br>")

    has_refs = any(r["reference"] is not None for r in result.rows)
    header = ["#", "Prompt"] + (["Reference"] if has_refs else []) + [result.left_label, result.right_label]
    lines = [f"# {title}", "", f"Left: **{result.left_label}** · Right: **{result.right_label}** · "
             f"temperature {result.settings.temperature}, max {result.settings.max_new_tokens} new tokens, seed {result.settings.seed}", ""]
    if has_refs:
        lines += [suite_scores(result), ""]
    lines += ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    for number, row in enumerate(result.rows, start=1):
        values = [number, row["prompt"]] + ([row["reference"]] if has_refs else []) + [row["left"], row["right"]]
        lines.append("| " + " | ".join(cell(v) for v in values) + " |")
    return "\n".join(lines) + "\n"


def suite_html(result: SuiteResult, title: str = "Prompt suite") -> str:
    """A self-contained page (jinja2 template: inline CSS, no scripts, no external links) for stakeholders."""
    from .resources import render_template

    has_refs = any(r["reference"] is not None for r in result.rows)
    return render_template("suite_report.html.j2", result=result, title=title, has_refs=has_refs, scores=suite_scores(result) if has_refs else "")


def write_suite_report(result: SuiteResult, folder: Path, title: str = "Prompt suite") -> tuple[Path, Path]:
    """Write report.html and report.md into folder; returns both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    html_path, md_path = folder / "report.html", folder / "report.md"
    html_path.write_text(suite_html(result, title), encoding="utf-8")
    md_path.write_text(suite_markdown(result, title), encoding="utf-8")
    return html_path, md_path
