"""The files of a run folder that the trainer (studio.methods) and the run machinery (studio.jobs)
both use: the stop/outcome marker files, metrics.jsonl, and which checkpoint a resume starts from.
It lives outside both packages so that studio.methods never imports studio.jobs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

CANCEL_FILE = "CANCEL"  # touched by the canceller: stop at the end of the current step
STOPPING_FILE = "STOPPING"  # touched by the trainer: stop seen, checkpoint being written
OUTCOME_FILE = "outcome.json"  # written by rank 0 of a multi-GPU run for the launching process
COMPLETIONS_FILE = "completions.jsonl"  # GRPO: sampled completions of each logged step with their rewards


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


def latest_checkpoint(run_dir: Path) -> str | None:
    """The newest complete checkpoint (trainer_state.json is written last, so a checkpoint cut off
    mid-save by a kill is skipped)."""
    checkpoints = sorted(
        (p for p in (run_dir / "checkpoints").glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    for checkpoint in reversed(checkpoints):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return str(checkpoint)
        logging.getLogger("studio.run").warning(f"skipping {checkpoint.name}: {problem}; falling back to an earlier checkpoint")
    return None


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why a checkpoint cannot be resumed from (partial or corrupt), or None when it looks whole."""
    from safetensors import safe_open

    state = checkpoint / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json (the save was cut off)"
    try:
        json.loads(state.read_text())
    except (OSError, json.JSONDecodeError):
        return "trainer_state.json is corrupt"
    for weights in checkpoint.glob("*.safetensors"):
        try:
            with safe_open(str(weights), framework="pt") as handle:
                handle.keys()
        except Exception:  # any header failure means a truncated or corrupt file
            return f"{weights.name} is corrupt"
    for name in ("optimizer.pt", "scheduler.pt"):
        if (checkpoint / name).exists() and (checkpoint / name).stat().st_size == 0:
            return f"{name} is empty"
    return None


def read_completions(run_dir: Path, last_steps: int = 3) -> list[dict]:
    """GRPO's sampled-completions rows of the last `last_steps` logged steps (newest step first)."""
    rows = read_metrics(Path(run_dir) / COMPLETIONS_FILE)
    steps = sorted({r.get("step", 0) for r in rows}, reverse=True)[:last_steps]
    return [r for step in steps for r in rows if r.get("step", 0) == step]
