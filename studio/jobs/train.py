"""The body of `python -m studio train`: validate, register, train, record the outcome.

This runs inside the training subprocess. The UI never calls it in its own process.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from pathlib import Path

from ..config import RunConfig
from ..errors import StudioError
from . import registry
from .metrics import CANCEL_FILE

OOM_ADVICE = (
    "Out of GPU memory. Try, in order: a smaller per_device_train_batch_size (raise "
    "gradient_accumulation_steps to keep the effective batch), a shorter max_length, "
    "gradient_checkpointing: true, or method: qlora."
)


def preflight(cfg: RunConfig) -> None:
    """Checks that load no weights: the model source must exist, the data must have usable rows."""
    from ..data import load_dataset_file
    from ..models import precheck

    precheck(cfg.model)
    load_dataset_file(cfg.data)


def latest_checkpoint(run_dir: Path) -> str | None:
    checkpoints = sorted(
        (p for p in (run_dir / "checkpoints").glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    return str(checkpoints[-1]) if checkpoints else None


def setup_logging(run_dir: Path) -> None:
    handler = logging.FileHandler(run_dir / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("studio")
    root.handlers[:] = [handler, stream]
    root.setLevel(logging.INFO)


def execute(config_path: str | Path, *, run_id: str | None = None, resume: bool = False) -> Path:
    """Train one run to completion. Returns the run folder; raises StudioError on user errors."""
    cfg = RunConfig.from_yaml(config_path)
    if not resume:
        preflight(cfg)
    if run_id is None:
        run_id = registry.new_run_id(cfg.name or f"{cfg.method}-{Path(cfg.data).stem}")
    record = registry.get(run_id, reconcile=False) or registry.create(
        run_id,
        name=cfg.name or f"{cfg.method} on {Path(cfg.data).name}",
        method=cfg.method,
        model=cfg.model,
        dataset=str(cfg.data),
    )
    run_dir = record.run_dir
    cfg.save(run_dir / "config.yaml")
    (run_dir / "command.txt").write_text(cfg.cli_command(run_dir / "config.yaml") + "\n")
    (run_dir / CANCEL_FILE).unlink(missing_ok=True)
    setup_logging(run_dir)
    log = logging.getLogger("studio.run")
    registry.mark_running(run_id, os.getpid())
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)

    from ..methods import runner_for
    from ..methods.context import RunContext

    ctx = RunContext(run_dir, resume_from=latest_checkpoint(run_dir) if resume else None)
    log.info(f"run {run_id}: {cfg.method} on {cfg.data} (model {cfg.model})" + (f", resuming from {ctx.resume_from}" if ctx.resume_from else ""))
    try:
        final = runner_for(cfg.method)(cfg, ctx)
    except StudioError as err:
        log.error(str(err))
        registry.finish(run_id, "failed", str(err))
        raise
    except KeyboardInterrupt:
        registry.finish(run_id, "cancelled", "Stopped by signal.")
        raise StudioError("the run was stopped.", where=run_id) from None
    except Exception as err:  # the user sees a message; the traceback goes to log.txt
        log.error(traceback.format_exc())
        message = OOM_ADVICE if _is_oom(err) else f"{type(err).__name__}: {err}. See log.txt in the run folder."
        registry.finish(run_id, "failed", message)
        _release_gpu()
        raise StudioError(message, where=run_id) from None
    if ctx.metrics.nonfinite_loss:
        message = "The loss became NaN/inf, so training stopped. Lower the learning rate or check the data."
        registry.finish(run_id, "failed", message, final)
        raise StudioError(message, where=run_id)
    if ctx.metrics.cancelled:
        registry.finish(run_id, "cancelled", f"Cancelled at step {final.get('global_step')}; a checkpoint was saved.", final)
    else:
        registry.finish(run_id, "completed", None, final)
    log.info(f"run {run_id} finished: {final}")
    return run_dir


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def _is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def _release_gpu() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
