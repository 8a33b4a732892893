"""Runs a method as one stage of a chain (RLHF: SFT -> reward -> PPO; CAI: generate -> SFT -> DPO).

Each stage trains in `stages/<name>/` with its own metrics.jsonl and checkpoints; its rows are also
appended, tagged with `stage`, to the run's metrics.jsonl so the Train tab shows every stage's curves
while it runs. A stage that finished writes `done.json`, so resuming a chain skips it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback

from ..config import RunConfig
from ..errors import StudioError
from ..runfiles import CANCEL_FILE
from .context import RunContext

DONE_FILE = "done.json"


class StageMirror(TrainerCallback):
    """Copies a stage's logged rows into the parent run's metrics.jsonl and passes a cancel down."""

    def __init__(self, parent: RunContext, stage: str):
        self.parent = parent
        self.stage = stage

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        row = {"stage": self.stage, "step": state.global_step, "time": time.time(), "max_steps": state.max_steps}
        row.update({k: v for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        with open(self.parent.run_dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")

    def on_step_end(self, args, state, control, **kwargs):
        if (self.parent.run_dir / CANCEL_FILE).exists():
            (Path(args.output_dir).parent / CANCEL_FILE).touch()  # the stage's own MetricsWriter saves and stops


def log_event(ctx: RunContext, stage: str, **values) -> None:
    """A progress row for work that is not a trainer (CAI generation), in the run's metrics.jsonl."""
    row = {"stage": stage, "step": 0, "time": time.time(), **values}  # readers expect a step on every row
    with open(ctx.run_dir / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps(row) + "\n")


def cancel_requested(ctx: RunContext) -> bool:
    return (ctx.run_dir / CANCEL_FILE).exists()


def run_stage(parent: RunContext, name: str, cfg: RunConfig, runner, *, resume: bool) -> tuple[Path, dict]:
    """Run `runner(cfg, stage_ctx)` in stages/<name>; returns (stage folder, final metrics)."""
    from ..runfiles import latest_checkpoint

    folder = parent.run_dir / "stages" / name
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / DONE_FILE
    if done.is_file():
        parent.log(f"stage {name}: already done, reusing {folder}")
        return folder, json.loads(done.read_text())
    (folder / CANCEL_FILE).unlink(missing_ok=True)
    ctx = RunContext(folder, resume_from=latest_checkpoint(folder) if resume else None, cfg=cfg)
    mirror = StageMirror(parent, name)
    ctx.callbacks = _with(ctx.callbacks, mirror)  # type: ignore[method-assign]
    parent.log(f"stage {name}: {cfg.method} on {cfg.data}" + (f" (resuming from {ctx.resume_from})" if ctx.resume_from else ""))
    log_event(parent, name, event="stage_start", method=cfg.method)
    final = runner(cfg, ctx)
    if ctx.metrics.cancelled or cancel_requested(parent):
        parent.metrics.cancelled = True
        raise StageCancelled(name, final)
    if ctx.metrics.nonfinite_loss:
        raise StudioError(f"stage {name}: the loss became NaN/inf. Lower the learning rate or check the data.")
    done.write_text(json.dumps(final))
    log_event(parent, name, event="stage_done", step=final.get("global_step", 0), **{k: v for k, v in final.items() if isinstance(v, (int, float)) and k not in ("step", "global_step")})
    return folder, final


class StageCancelled(Exception):
    def __init__(self, stage: str, final: dict):
        super().__init__(stage)
        self.stage = stage
        self.final = final


def _with(callbacks_fn, extra):
    def callbacks():
        return list(callbacks_fn()) + [extra]

    return callbacks
