"""Trainer callbacks shared by every method: metrics.jsonl, graceful cancel, NaN guard."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from transformers import TrainerCallback

from ..jobs.metrics import CANCEL_FILE, truncate_after


class MetricsWriter(TrainerCallback):
    """Appends each `on_log` to metrics.jsonl and honours a graceful cancel request.

    tokens/s comes from TRL's running `num_tokens` count, differenced between logs.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "metrics.jsonl"
        self._last_time: float | None = None
        self._last_tokens: float | None = None
        self.cancelled = False
        self.nonfinite_loss = False

    def on_train_begin(self, args, state, control, **kwargs):
        self._last_time = time.time()
        self._last_tokens = None
        truncate_after(self.path, state.global_step)  # on resume, drop steps the checkpoint doesn't have

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        now = time.time()
        row = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), "time": now}
        for key, value in logs.items():
            if isinstance(value, (int, float)):
                row[key] = value if math.isfinite(value) else None
        tokens = logs.get("num_tokens")
        if "loss" in logs:
            if tokens is not None and self._last_tokens is not None and now > (self._last_time or now):
                row["tokens_per_second"] = round((tokens - self._last_tokens) / (now - self._last_time), 2)
            if tokens is not None:
                self._last_tokens, self._last_time = tokens, now
            row["max_steps"] = state.max_steps
            if row.get("loss") is None:
                self.nonfinite_loss = True
                control.should_training_stop = True
        with open(self.path, "a") as handle:
            handle.write(json.dumps(row) + "\n")

    def on_step_end(self, args, state, control, **kwargs):
        if (self.run_dir / CANCEL_FILE).exists():
            self.cancelled = True
            control.should_training_stop = True
            control.should_save = True  # graceful stop keeps a checkpoint to resume from
