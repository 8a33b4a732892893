"""Trainer callbacks shared by every method: metrics.jsonl, graceful cancel, and the guards
(NaN/inf stop, early stopping on eval loss, overfitting warning), plus optional TensorBoard."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from transformers import TrainerCallback

from ..runfiles import CANCEL_FILE, STOPPING_FILE, truncate_after

# Test hook: STUDIO_INJECT_FAULT=oom raises a CUDA-style OOM when training starts, so the OOM
# path (message, `failed` status, memory release) is tested without a GPU.
FAULT_ENV = "STUDIO_INJECT_FAULT"


def _memory_fields() -> dict:
    import psutil
    import torch

    fields = {"cpu_rss_gib": round(psutil.Process().memory_info().rss / 2**30, 3)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        fields["gpu_mem_gib"] = round(torch.cuda.memory_allocated() / 2**30, 3)
        fields["gpu_peak_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 3)
    return fields


def _on_any_rank(flag: bool) -> bool:
    """In a multi-GPU run every rank must stop at the same step, or the others hang in a collective."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


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
        self.stop_reason: str | None = None
        self.warnings: list[str] = []

    def append(self, row: dict) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps(row) + "\n")

    def warn(self, state, text: str) -> None:
        self.warnings.append(text)
        self.append({"step": state.global_step, "time": time.time(), "warning": text})

    def on_train_begin(self, args, state, control, **kwargs):
        self._last_time = time.time()
        self._last_tokens = None
        if os.environ.get(FAULT_ENV) == "oom":
            import torch

            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected by STUDIO_INJECT_FAULT)")
        if state.is_world_process_zero:
            truncate_after(self.path, state.global_step)  # on resume, drop steps the checkpoint doesn't have

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        loss = logs.get("loss")
        if isinstance(loss, (int, float)) and not math.isfinite(loss):  # the logged loss is gathered: every rank stops
            self.nonfinite_loss = True
            self.stop_reason = f"The loss became NaN/inf at step {state.global_step}, so training stopped. Lower the learning rate or check the data."
            control.should_training_stop = True
        if not state.is_world_process_zero:
            return
        now = time.time()
        row = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), "time": now}
        for key, value in logs.items():
            if isinstance(value, (int, float)):
                row[key] = value if math.isfinite(value) else None
        if "loss" in logs and logs["loss"] is None:  # no token trained since the last log (see sft.StudioSFTTrainer)
            row["loss"] = None
            self.warn(state, f"Step {state.global_step}: no token carried loss since the last log (every answer in these batches lies past max_length?), so its loss is not a number, not 0.0.")
        tokens = logs.get("num_tokens")
        if "loss" in logs:
            if tokens is not None and self._last_tokens is not None and now > (self._last_time or now):
                row["tokens_per_second"] = round((tokens - self._last_tokens) / (now - self._last_time), 2)
            if tokens is not None:
                self._last_tokens, self._last_time = tokens, now
            row["max_steps"] = state.max_steps
            row.update(_memory_fields())
        self.append(row)

    def on_step_end(self, args, state, control, **kwargs):
        if _on_any_rank((self.run_dir / CANCEL_FILE).exists()):
            if not self.cancelled:
                (self.run_dir / STOPPING_FILE).touch()  # tells the canceller a checkpoint is being written
            self.cancelled = True
            control.should_training_stop = True
            control.should_save = True  # graceful stop keeps a checkpoint to resume from


class EvalGuards(TrainerCallback):
    """Early stopping on eval loss and an overfitting warning when the train/eval gap widens.

    Hand-written because transformers' EarlyStoppingCallback requires load_best_model_at_end,
    which forces save and eval steps to coincide and changes which weights are exported.
    """

    def __init__(self, metrics: MetricsWriter, patience: int = 0, widening_evals: int = 2):
        self.metrics = metrics
        self.patience = patience
        self.widening_evals = widening_evals
        self.best: float | None = None
        self.since_best = 0
        self.gaps: list[float] = []
        self.recent_train: list[float] = []
        self.warned = False

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and isinstance(logs.get("loss"), (int, float)) and math.isfinite(logs["loss"]):
            self.recent_train = (self.recent_train + [logs["loss"]])[-5:]

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        eval_loss = (metrics or {}).get("eval_loss")
        if eval_loss is None or not math.isfinite(eval_loss):
            return
        if self.best is None or eval_loss < self.best:
            self.best, self.since_best = eval_loss, 0
        else:
            self.since_best += 1
        if self.recent_train:
            self.gaps.append(eval_loss - sum(self.recent_train) / len(self.recent_train))
        recent = self.gaps[-(self.widening_evals + 1):]
        widening = len(recent) == self.widening_evals + 1 and all(b > a for a, b in zip(recent, recent[1:]))
        if widening and self.since_best > 0 and not self.warned and state.is_world_process_zero:
            self.warned = True
            self.metrics.warn(
                state,
                f"Possible overfitting at step {state.global_step}: the eval-train loss gap widened over the last "
                f"{self.widening_evals} evaluations (now {recent[-1]:.3f}) and eval loss {eval_loss:.4f} is above its best "
                f"{self.best:.4f}. Consider fewer epochs, a lower learning rate, more data, or early_stopping_patience.",
            )
        if self.patience and self.since_best >= self.patience:
            self.metrics.stop_reason = f"Early stopping at step {state.global_step}: eval loss has not improved for {self.patience} evaluations (best {self.best:.4f})."
            control.should_training_stop = True
            control.should_save = True


def tensorboard_callback(run_dir: Path):
    """transformers' own TensorBoard logger, writing through tensorboardX (no TensorFlow needed)."""
    from tensorboardX import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(str(Path(run_dir) / "tensorboard")))


def standard_callbacks(run_dir: Path, metrics: MetricsWriter, cfg=None) -> list:
    callbacks = [metrics, EvalGuards(metrics, patience=getattr(cfg, "early_stopping_patience", 0) or 0)]
    if cfg is not None and getattr(cfg, "tensorboard", False):
        callbacks.append(tensorboard_callback(run_dir))
    return callbacks
