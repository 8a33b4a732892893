"""Load dataset files, detect the format, validate every row and convert to the internal form.

Internal form: see `studio.data.formats` ({"messages": [...]} plus prompt/chosen/rejected, completion/
label or text where the format has them). Problems are collected per row (1-based row, file line,
field) instead of failing the file; nothing is dropped silently (`Loaded.dropped_by_reason`).

For the trainers, `to_trl(loaded, kind)` (or `loaded.to_trl(kind)`) returns lists of dicts in TRL's
conversational forms:
- "messages":          {"messages": [...]}                        SFTTrainer, whole conversation
- "prompt_completion": {"prompt": [...], "completion": [assistant]} SFTTrainer, loss on the reply
- "text":              {"text": str}                               SFTTrainer, continued pre-training
- "preference":        {"prompt": [...], "chosen": [assistant], "rejected": [assistant]}  DPO, reward
- "kto":               {"prompt": [...], "completion": [assistant], "label": bool}        KTO
                       (preference data unpairs into one desirable and one undesirable row each)
- "prompt_only":       {"prompt": [...]}  PPO, Constitutional AI (any conversational format works:
                       the prompt is everything before the last assistant reply)
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ..errors import StudioError
from .formats import FORMAT_HELP, FORMATS, SFT_FORMATS, RowError, convert, detect_format, prompt_and_reply, to_messages
from .readers import Record, iter_records, raw_text

try:
    import orjson

    def _canonical(example: dict) -> bytes:
        return orjson.dumps(example, option=orjson.OPT_SORT_KEYS)
except ImportError:  # pragma: no cover

    def _canonical(example: dict) -> bytes:
        return json.dumps(example, sort_keys=True).encode()


DETECT_ROWS = 200  # rows buffered to decide the format before streaming the rest
TRL_KINDS = ("messages", "prompt_completion", "text", "preference", "kto", "prompt_only")


@dataclass
class Problem:
    row: int  # 1-based, within its file
    line: int | None  # 1-based file line, for line-oriented files
    field: str
    message: str
    kind: str = "invalid"  # short category, for the drop report
    severity: str = "error"  # error: the row is dropped; warning: the row is kept
    file: str | None = None  # set when several files were loaded

    def __str__(self) -> str:
        where = (f"{self.file} " if self.file else "") + f"row {self.row}" + (f" (line {self.line})" if self.line else "")
        kept = " (kept)" if self.severity == "warning" else ""
        return f"{where}, field '{self.field}': {self.message}{kept}"

    def to_json(self) -> dict:
        return {"row": self.row, "line": self.line, "field": self.field, "message": self.message, "kind": self.kind, "severity": self.severity, "file": self.file}


@dataclass
class Loaded:
    path: Path
    format: str
    rows: list  # raw rows as read ({} where a row could not be read)
    conversations: list[dict]  # internal form, usable rows only (train split for a saved version)
    problems: list[Problem] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)  # row id (index into `rows`) of each conversation; see studio.data.split
    origins: list[tuple] = field(default_factory=list)  # (file, row, line) of each raw row
    broken: dict[int, str] = field(default_factory=dict)  # index -> the raw text of an unreadable row
    paths: list[Path] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)
    eval_conversations: list[dict] = field(default_factory=list)  # eval split of a saved version
    manifest: dict | None = None  # a saved version's manifest
    eval_kept: list[int] = field(default_factory=list)  # row id of each eval conversation (a saved version's eval split)

    @property
    def dropped_by_reason(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.problems if p.severity == "error").most_common())

    @property
    def warnings_by_reason(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.problems if p.severity == "warning").most_common())

    @property
    def dropped(self) -> int:
        return len(self.rows) - len(self.conversations) - len(self.eval_conversations)

    @property
    def summary(self) -> str:
        text = f"{len(self.rows)} rows, format '{self.format}', {len(self.conversations) + len(self.eval_conversations)} usable"
        if self.dropped:
            reasons = ", ".join(f"{n} {k}" for k, n in self.dropped_by_reason.items())
            text += f", {self.dropped} dropped ({reasons})"
        warnings = self.warnings_by_reason
        if warnings:
            text += ", kept with warnings: " + ", ".join(f"{n} {k}" for k, n in warnings.items())
        return text

    def raw_text(self, index: int) -> str:
        """The row as the user wrote it (the broken line itself for an unreadable row)."""
        if index in self.broken:
            return self.broken[index]
        return json.dumps(self.rows[index], ensure_ascii=False, default=str)

    def to_trl(self, kind: str, *, split: str = "train") -> list[dict]:
        return to_trl(self, kind, split=split)

    def preference_rows(self) -> list[dict]:
        return to_trl(self, "preference")

    def kto_rows(self) -> list[dict]:
        return to_trl(self, "kto")

    def prompts(self) -> list[dict]:
        return to_trl(self, "prompt_only")


def to_trl(loaded: Loaded, kind: str, *, split: str = "train") -> list[dict]:
    """Rows in TRL's conversational form for one trainer kind (see the module docstring)."""
    examples = loaded.conversations if split == "train" else loaded.eval_conversations
    fmt = loaded.format
    if kind not in TRL_KINDS:
        raise StudioError(f"unknown data kind {kind!r}; use one of {', '.join(TRL_KINDS)}.")
    if kind == "messages":
        _need(fmt not in ("prompt_only",), fmt, kind)
        return [{"messages": e["messages"], **({"tools": e["tools"]} if e.get("tools") else {})} for e in examples]
    if kind == "prompt_completion":
        _need(fmt not in ("prompt_only", "text"), fmt, kind)
        return [{"prompt": e["messages"][:-1], "completion": e["messages"][-1:]} for e in examples]
    if kind == "text":
        _need(fmt == "text", fmt, kind)
        return [{"text": e["text"]} for e in examples]
    if kind == "preference":
        _need(fmt == "preference", fmt, kind)
        return [{"prompt": e["prompt"], "chosen": e["chosen"], "rejected": e["rejected"]} for e in examples]
    if kind == "kto":
        _need(fmt in ("kto", "preference"), fmt, kind)
        if fmt == "kto":
            return [{"prompt": e["prompt"], "completion": e["completion"], "label": e["label"]} for e in examples]
        rows = []
        for e in examples:
            rows += [{"prompt": e["prompt"], "completion": e["chosen"], "label": True}, {"prompt": e["prompt"], "completion": e["rejected"], "label": False}]
        return rows
    _need(fmt != "text", fmt, kind)
    return [{"prompt": e["prompt"] if "prompt" in e else prompt_and_reply(e)[0]} for e in examples]


def _need(ok: bool, fmt: str, kind: str) -> None:
    if not ok:
        needs = {"preference": "prompt/chosen/rejected pairs (format 'preference')", "kto": "labelled completions (format 'kto' or 'preference')", "text": "raw documents (format 'text')"}
        raise StudioError(
            f"this method needs {needs.get(kind, 'conversations with an assistant reply')}, but the dataset's format is '{fmt}'.",
            hint="Pick a dataset in the right format, or override the format and map the columns in the Data tab.",
        )


def parse_mapping(text: str | dict | None) -> dict[str, str]:
    """'question=instruction, answer=output' -> {"question": "instruction", "answer": "output"}."""
    if not text:
        return {}
    if isinstance(text, dict):
        return {str(k).strip(): str(v).strip() for k, v in text.items() if str(k).strip() and str(v).strip()}
    mapping = {}
    for part in str(text).replace("\n", ",").split(","):
        if not part.strip():
            continue
        source, sep, target = part.replace("->", "=").replace(":", "=").partition("=")
        if not sep or not source.strip() or not target.strip():
            raise StudioError(f"column mapping '{part.strip()}' is not of the form file_column=field.", hint="Example: question=instruction, answer=output")
        mapping[source.strip()] = target.strip()
    return mapping


def _apply_mapping(data, mapping: dict[str, str]):
    if not mapping or not isinstance(data, dict):
        return data
    renamed = {k: v for k, v in data.items() if k not in mapping}
    renamed.update({mapping[k]: v for k, v in data.items() if k in mapping})
    return renamed


@dataclass
class ScanResult:
    format: str
    rows: int = 0
    valid: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    dropped_by_reason: Counter = field(default_factory=Counter)
    warnings_by_reason: Counter = field(default_factory=Counter)
    columns: dict[str, int] = field(default_factory=dict)
    formats_seen: Counter = field(default_factory=Counter)


def scan(
    paths: Iterable[str | Path],
    fmt: str | None = None,
    *,
    mapping: dict[str, str] | str | None = None,
    on_record: Callable[[int, Record, dict | None, tuple], None] | None = None,
    problem_limit: int | None = None,
    find_duplicates: bool = True,
) -> ScanResult:
    """Stream every row of every file through detection and validation.

    `on_record(index, record, example_or_None, origin)` sees each row; memory stays bounded unless
    the callback keeps rows. Problems beyond `problem_limit` are counted, not kept.
    """
    paths = [Path(p).expanduser() for p in paths]
    if not paths:
        raise StudioError("no dataset file given.")
    mapping = parse_mapping(mapping)
    forced = fmt not in (None, "", "auto")
    if forced and fmt not in FORMATS:
        raise StudioError(f"unknown format '{fmt}'.", hint="Use one of: " + ", ".join(FORMATS) + ".")
    result = ScanResult(format=fmt if forced else "")
    seen: dict[int, object] = {}  # hash of a converted example -> the row (and file) of its first copy
    index = 0
    many = len(paths) > 1
    for path in paths:
        label = path.name if many else None
        manifest = _manifest_for(path)
        file_forced = forced or manifest is not None
        if manifest is not None and not forced:
            result.format = manifest["format"]
        records = iter_records(path)
        buffer = []
        for record in records:
            record.data = _apply_mapping(record.data, mapping)
            buffer.append(record)
            if len(buffer) >= DETECT_ROWS:
                break
        if not buffer:
            raise StudioError("the dataset has no examples.", where=str(path), hint="Add at least one example.")
        _check_mapping(mapping, buffer, path)
        if not result.format:
            result.format = _detect(buffer, path)
        for record in _chain(buffer, records, mapping):
            result.rows += 1
            origin = (label, record.row, record.line)
            example = None
            problem = None
            if record.error:
                name, message, kind = record.error
                problem = Problem(record.row, record.line, name, message, kind)
            else:
                if isinstance(record.data, dict):
                    for key in record.data:
                        result.columns[key] = result.columns.get(key, 0) + 1
                row_format = detect_format(record.data)
                result.formats_seen[row_format or "unknown"] += 1
                if not file_forced and row_format is not None and row_format != result.format:
                    problem = Problem(record.row, record.line, "(row)", f"mixed schemas: this row looks like '{row_format}', the file is '{result.format}'", "mixed schema")
                else:
                    try:
                        example = convert(record.data, result.format)
                    except RowError as err:
                        problem = Problem(record.row, record.line, err.field, err.message, err.kind)
            if problem is None and find_duplicates:
                digest = int.from_bytes(hashlib.blake2b(_canonical(example), digest_size=8).digest(), "big")
                first = seen.get(digest)
                if first is None:
                    seen[digest] = (label, record.row) if many else record.row  # a bare int: 1M rows stay ~100 MB
                else:
                    first = first if many else (label, first)
                    where = (f"{first[0]} " if many and first[0] != label else "") + f"row {first[1]}"
                    warning = Problem(record.row, record.line, "(row)", f"duplicate of {where}", "duplicate", "warning", label)
                    _add(result, warning, problem_limit)
            if problem is not None:
                problem.file = label
                _add(result, problem, problem_limit)
            else:
                result.valid += 1
            if on_record is not None:
                on_record(index, record, example, origin)
            index += 1
    return result


def _mapped(record: Record, mapping: dict) -> Record:
    record.data = _apply_mapping(record.data, mapping)
    return record


def _chain(buffer, records, mapping):
    buffer.reverse()
    while buffer:  # hand the detection buffer over row by row, so it does not stay in memory
        yield buffer.pop()
    for record in records:
        yield _mapped(record, mapping)


def _add(result: ScanResult, problem: Problem, limit: int | None) -> None:
    result.problem_count += 1
    (result.dropped_by_reason if problem.severity == "error" else result.warnings_by_reason)[problem.kind] += 1
    if limit is None or len(result.problems) < limit:
        result.problems.append(problem)


def _manifest_for(path: Path) -> dict | None:
    folder = path if path.is_dir() else path.parent
    if (path.is_dir() or path.name == "data.parquet") and (folder / "manifest.json").is_file():
        try:
            return json.loads((folder / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None
    return None


def _check_mapping(mapping: dict, buffer: list[Record], path: Path) -> None:
    if not mapping:
        return
    columns: set = set()
    for record in buffer:
        if isinstance(record.data, dict):
            columns |= set(record.data)
    missing = [target for target in mapping.values() if target not in columns]
    if missing and columns:
        raise StudioError(f"column mapping: no column {', '.join(missing)} after mapping.", where=str(path), hint="Columns found: " + ", ".join(sorted(columns)[:12]) + ".")


def _detect(buffer: list[Record], path: Path) -> str:
    counts = Counter(detect_format(r.data) for r in buffer if r.data is not None)
    counts.pop(None, None)
    if counts:
        return counts.most_common(1)[0][0]
    readable = [r for r in buffer if r.data is not None]
    if not readable:
        utf = next((r for r in buffer if r.error and r.error[2] == "invalid UTF-8"), None)
        if utf is not None:
            raise StudioError("the file is not valid UTF-8.", where=f"{path} line {utf.line}", hint="Re-save it as UTF-8.")
        first = buffer[0]
        reason = first.error[1] if first.error else "it holds no example objects (found null)"
        raise StudioError(f"no readable rows; the first problem: {reason}.", where=f"{path}" + (f" line {first.line}" if first.line else ""), hint="Check that the file is JSON lines, JSON, CSV, Parquet or text.")
    sample = readable[0].data
    keys = sorted(sample.keys())[:8] if isinstance(sample, dict) else type(sample).__name__
    raise StudioError(
        f"cannot tell the dataset format from the fields {keys}.",
        where=str(path),
        hint="Map your columns (e.g. question=instruction, answer=output) or pick the format. Known formats: "
        + "; ".join(f"{k}: {v}" for k, v in FORMAT_HELP.items()) + ".",
    )


def load_dataset_files(paths: Iterable[str | Path], fmt: str | None = None, *, mapping: dict | str | None = None) -> Loaded:
    """Read, detect and convert one or several files into one dataset (rows kept in memory).

    Raises StudioError only when nothing usable remains. A saved version (its folder, or its
    data.parquet) keeps its train/eval split: `conversations` is train, `eval_conversations` eval.
    """
    paths = [Path(p).expanduser() for p in paths]
    rows: list = []
    origins: list = []
    broken: dict[int, str] = {}
    kept: list[int] = []
    eval_kept: list[int] = []
    conversations: list[dict] = []
    evaluation: list[dict] = []

    def keep(index: int, record: Record, example: dict | None, origin: tuple) -> None:
        rows.append(record.data if record.data is not None else {})
        origins.append(origin)
        if record.error:
            broken[index] = record.raw
        if example is not None:
            split = record.data.get("split") if isinstance(record.data, dict) else None
            if split == "eval":
                evaluation.append(example)
                eval_kept.append(index)
            else:
                conversations.append(example)
                kept.append(index)

    result = scan(paths, fmt, mapping=mapping, on_record=keep)
    problems = sorted(result.problems, key=lambda p: (p.file or "", p.row))
    if not conversations and not evaluation:
        utf = next((p for p in problems if p.kind == "invalid UTF-8"), None)
        if utf is not None:
            raise StudioError("the file is not valid UTF-8.", where=f"{paths[0]} line {utf.line}", hint="Re-save it as UTF-8.")
        first = f" First problem: {problems[0]}." if problems else ""
        raise StudioError(f"no usable examples in the dataset.{first}", where=str(paths[0]), hint="Fix the rows listed, or map the columns / pick the format.")
    manifest = _manifest_for(paths[0])
    return Loaded(
        paths[0], result.format, rows, conversations, problems, kept, origins, broken, paths,
        parse_mapping(mapping), evaluation, manifest, eval_kept,
    )


def load_dataset_file(path: str | Path, fmt: str | None = None, *, mapping: dict | str | None = None) -> Loaded:
    """Read, detect and convert one file (or a saved dataset folder). See `load_dataset_files`."""
    return load_dataset_files([path], fmt, mapping=mapping)


__all__ = [
    "FORMATS", "SFT_FORMATS", "Loaded", "Problem", "ScanResult", "detect_format", "load_dataset_file",
    "load_dataset_files", "parse_mapping", "raw_text", "scan", "to_messages", "to_trl",
]
