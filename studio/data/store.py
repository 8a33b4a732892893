"""Saved datasets: an imported file is copied (never modified) into $STUDIO_HOME/datasets."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from ..paths import datasets_dir, safe_name
from .loader import Loaded, load_dataset_file


def import_file(source: str | Path, fmt: str | None = None, *, mapping: dict | str | None = None) -> tuple[Path, Loaded]:
    """Copy a user's file into the studio's dataset folder, keyed by content hash, and load it.

    The user's original is only read. Importing the same content twice reuses the same copy.
    Folders (a saved `datasets` folder or a studio version) are read in place, not copied.
    """
    source = Path(source).expanduser()
    loaded = load_dataset_file(source, fmt, mapping=mapping)  # validate first: a bad file is never stored
    if source.is_dir():
        return source, loaded
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    target_dir = datasets_dir() / f"{_safe(source.stem)}-{digest}"
    target = target_dir / source.name
    if not target.is_file():
        target_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        provenance = {
            "original_path": str(source),
            "sha256_prefix": digest,
            "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "format": loaded.format,
            "rows": len(loaded.rows),
            "usable": len(loaded.conversations),
            "problems": [str(p) for p in loaded.problems[:200]],
        }
        (target_dir / "provenance.json").write_text(json.dumps(provenance, indent=2))
    loaded.path = target
    return target, loaded


def _text(message: dict) -> str:
    """A message's text, with its tool calls written out (`→ name({...})`) so tool rows are not blank."""
    parts = [str(message.get("content") or "")]
    for call in message.get("tool_calls") or []:
        function = call.get("function", call) if isinstance(call, dict) else {}
        arguments = function.get("arguments", "")
        arguments = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        parts.append(f"→ {function.get('name', '?')}({arguments})")
    return "\n".join(p for p in parts if p)


def preview_rows(loaded: Loaded, limit: int = 20) -> list[dict]:
    """A flat preview of the first examples. Preference pairs: prompt / chosen / rejected; KTO rows:
    prompt / completion / label; conversations: user / assistant of the first turns (tool calls
    written out), the system prompt only when some example has one."""
    rows = []
    for convo in loaded.conversations[:limit]:
        messages = convo["messages"]
        first = lambda role: next((_text(m) for m in messages if m["role"] == role), "")  # noqa: E731
        last = lambda turns: _text(turns[-1]) if isinstance(turns, list) and turns else str(turns or "")  # noqa: E731
        if "rejected" in convo:
            prompt = [m for m in convo.get("prompt") or messages if m.get("role") == "user"]
            row = {"prompt": last(prompt), "chosen": last(convo.get("chosen")), "rejected": last(convo.get("rejected"))}
        elif "label" in convo and "completion" in convo:
            row = {"prompt": first("user"), "completion": last(convo.get("completion")), "label": "good" if convo["label"] else "bad"}
        else:
            tools = [_text(m) for m in messages if m.get("tool_calls")]
            row = {"user": first("user"), "assistant": first("assistant") or (tools[0] if tools else ""), "turns": len(messages)}
        row["system"] = first("system")  # last: usually empty, and long when present
        rows.append(row)
    if not any(row["system"] for row in rows):
        for row in rows:
            del row["system"]
    return rows


def _safe(name: str) -> str:
    return safe_name(name, limit=40, what="dataset file")
