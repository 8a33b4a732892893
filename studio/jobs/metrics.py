"""metrics.jsonl: the trainer appends one JSON object per logged step; the UI polls the file.
The names live in studio.runfiles (shared with studio.methods, which never imports studio.jobs)."""

from __future__ import annotations

from ..runfiles import CANCEL_FILE, OUTCOME_FILE, STOPPING_FILE, read_metrics, truncate_after  # noqa: F401
