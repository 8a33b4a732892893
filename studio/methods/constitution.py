"""A constitution: the principles Constitutional AI critiques and revises against. Read before a run
starts (the UI's pre-flight check), so this module never imports torch."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import StudioError
from ..resources import asset

DEFAULT_CONSTITUTION = asset("demo/constitution.yaml")


def load_constitution(path: str | Path | None) -> list[dict]:
    """Principles: a list of {name, critique, revision[, judge]} from YAML or JSON."""
    path = Path(path).expanduser() if path and str(path).strip() else DEFAULT_CONSTITUTION
    if not path.is_file():
        raise StudioError(f"constitution file not found: {path}.", where="constitution", hint="Give a YAML/JSON file of principles, or leave it empty for the default.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise StudioError(f"not valid YAML/JSON ({getattr(err, 'problem', err)}).", where=str(path)) from None
    principles = raw.get("principles") if isinstance(raw, dict) else raw
    if not isinstance(principles, list) or not principles:
        raise StudioError("expected a non-empty list under `principles:`.", where=str(path))
    for index, item in enumerate(principles, start=1):
        if not isinstance(item, dict):
            raise StudioError(f"principle {index}: expected a mapping with critique and revision.", where=str(path))
        for key in ("critique", "revision"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise StudioError(f"principle {index}: `{key}` must be non-empty text.", where=str(path))
        item.setdefault("name", f"principle-{index}")
        item.setdefault("judge", f"Which response better follows this principle: {item['revision']}")
    return principles
