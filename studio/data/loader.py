"""Load a dataset file and turn every row into the internal conversational form.

Internal form: {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}.
Problems are collected per row (1-based row, file line, field) instead of failing the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import StudioError

FORMATS = ("alpaca", "messages", "sharegpt", "prompt_completion")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


@dataclass
class Problem:
    row: int  # 1-based
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f" (line {self.line})" if self.line else "")
        return f"{where}, field '{self.field}': {self.message}"


@dataclass
class Loaded:
    path: Path
    format: str
    rows: list[dict]  # raw rows, as read
    conversations: list[dict]  # internal form, good rows only
    problems: list[Problem] = field(default_factory=list)

    @property
    def summary(self) -> str:
        dropped = len(self.rows) - len(self.conversations)
        text = f"{len(self.rows)} rows, format '{self.format}', {len(self.conversations)} usable"
        return text + (f", {dropped} dropped ({len(self.problems)} problems)" if dropped else "")


def read_rows(path: Path) -> tuple[list[dict], list[int | None], list[Problem]]:
    """Rows from .json (a list) or .jsonl (one object per line), with file line numbers."""
    if not path.exists():
        raise StudioError(f"file not found: {path}.", hint="Check the path, or upload the file in the Data tab.")
    if path.is_dir():
        raise StudioError(f"{path} is a folder; give a .json or .jsonl file.")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise StudioError(f"cannot read {path}: {err.strerror}.", hint="Check the file's permissions.") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise StudioError("the file is not valid UTF-8.", where=f"{path} line {line}", hint="Re-save it as UTF-8.") from None
    if not text.strip():
        raise StudioError("the dataset is empty.", where=str(path), hint="Add at least one example.")
    rows: list[dict] = []
    lines: list[int | None] = []
    problems: list[Problem] = []
    stripped = text.lstrip()
    if path.suffix.lower() == ".json" or stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise StudioError(f"not valid JSON ({err.msg}).", where=f"{path} line {err.lineno}") from None
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        if not isinstance(data, list):
            raise StudioError("expected a list of examples.", where=str(path))
        for item in data:
            rows.append(item)
            lines.append(None)
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                rows.append({})
                problems.append(Problem(len(rows), number, "(line)", f"broken JSON: {err.msg} at column {err.colno}"))
            lines.append(number)
    if not rows:
        raise StudioError("the dataset has no examples.", where=str(path))
    return rows, lines, problems


def detect_format(row: dict) -> str | None:
    if not isinstance(row, dict):
        return None
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row and "output" in row:
        return "alpaca"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    return None


def to_messages(row: dict, fmt: str) -> list[dict]:
    """Convert one row; raises ValueError('field: message') on a bad row."""
    if fmt == "alpaca":
        instruction, extra, output = row.get("instruction"), row.get("input") or "", row.get("output")
        for name, value in (("instruction", instruction), ("output", output), ("input", extra)):
            if not isinstance(value, str):
                raise ValueError(f"{name}: expected text, got {type(value).__name__}")
        if not instruction.strip():
            raise ValueError("instruction: empty")
        if not output.strip():
            raise ValueError("output: empty response")
        messages = [{"role": "system", "content": row["system"]}] if row.get("system") else []
        user = instruction if not extra.strip() else f"{instruction}\n\n{extra}"
        return messages + [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    if fmt == "prompt_completion":
        prompt, completion = row.get("prompt"), row.get("completion")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt: expected non-empty text")
        if not isinstance(completion, str) or not completion.strip():
            raise ValueError("completion: empty response")
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    if fmt == "messages":
        turns, key, content = row.get("messages"), "role", "content"
    else:
        turns, key, content = row.get("conversations"), "from", "value"
    name = "messages" if fmt == "messages" else "conversations"
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"{name}: expected a non-empty list of turns")
    messages = []
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise ValueError(f"{name}[{index}]: expected an object")
        role = SHAREGPT_ROLES.get(str(turn.get(key, "")).lower()) if fmt == "sharegpt" else turn.get(key)
        if role not in ("system", "user", "assistant"):
            raise ValueError(f"{name}[{index}].{key}: unknown role {turn.get(key)!r}")
        text = turn.get(content)
        if not isinstance(text, str):
            raise ValueError(f"{name}[{index}].{content}: expected text, got {type(text).__name__}")
        messages.append({"role": role, "content": text})
    body = [m for m in messages if m["role"] != "system"]
    if not body or body[0]["role"] != "user":
        raise ValueError(f"{name}: the first non-system turn must be from the user")
    for before, after in zip(body, body[1:]):
        if before["role"] == after["role"]:
            raise ValueError(f"{name}: two '{after['role']}' turns in a row (turns must alternate)")
    if body[-1]["role"] != "assistant" or not body[-1]["content"].strip():
        raise ValueError(f"{name}: the last turn must be a non-empty assistant reply")
    return messages


def load_dataset_file(path: str | Path, fmt: str | None = None) -> Loaded:
    """Read, detect and convert. Raises StudioError only when the file as a whole is unusable."""
    path = Path(path).expanduser()
    rows, lines, problems = read_rows(path)
    if fmt is None:
        detected = [detect_format(r) for r in rows if r]
        counts = {f: detected.count(f) for f in FORMATS if f in detected}
        if not counts:
            keys = sorted(rows[0].keys())[:6] if isinstance(rows[0], dict) else type(rows[0]).__name__
            raise StudioError(
                f"cannot tell the dataset format from the fields {keys}.",
                where=str(path),
                hint="Use alpaca (instruction/input/output), chat `messages` (role/content), "
                "sharegpt `conversations`, or prompt/completion.",
            )
        fmt = max(counts, key=counts.get)
    conversations = []
    broken_rows = {p.row for p in problems}
    for index, (row, line) in enumerate(zip(rows, lines), start=1):
        if index in broken_rows:
            continue
        row_fmt = detect_format(row)
        if row_fmt != fmt:
            problems.append(Problem(index, line, "(row)", f"looks like '{row_fmt or 'unknown'}', not '{fmt}' like the rest"))
            continue
        try:
            conversations.append({"messages": to_messages(row, fmt)})
        except ValueError as err:
            name, _, message = str(err).partition(": ")
            problems.append(Problem(index, line, name, message))
    if not conversations:
        first = f" First problem: {problems[0]}." if problems else ""
        raise StudioError(f"no usable examples in the dataset.{first}", where=str(path))
    return Loaded(path, fmt, rows, conversations, sorted(problems, key=lambda p: p.row))
