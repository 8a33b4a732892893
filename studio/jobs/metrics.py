"""metrics.jsonl: the trainer appends one JSON object per logged step; the UI polls the file."""

from __future__ import annotations

import json
from pathlib import Path

CANCEL_FILE = "CANCEL"  # touched by the canceller: stop at the end of the current step
STOPPING_FILE = "STOPPING"  # touched by the trainer: stop seen, checkpoint being written
OUTCOME_FILE = "outcome.json"  # written by rank 0 of a multi-GPU run for the launching process


def truncate_after(path: Path, step: int) -> None:
    """Keep only rows with step <= `step`, so a resumed run never duplicates steps."""
    if not path.exists():
        return
    kept = [row for row in read_metrics(path) if row.get("step", 0) <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    tmp.replace(path)


def read_metrics(path: Path) -> list[dict]:
    """All complete rows; a half-written last line (the trainer is mid-write) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with open(path) as handle:
        for line in handle:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows
