"""The body of `python -m studio train`: validate, register, queue, train, record the outcome.

This runs inside the training subprocess. The UI never calls it in its own process.

With more than one GPU the process that holds the queue slot launches `accelerate launch` (DDP for
LoRA/QLoRA, FSDP for full SFT) with `--worker`; the workers train, and rank 0 writes the outcome
to outcome.json for the launcher to record. With `accelerate launch` started by hand (multi-node),
global rank 0 registers and records the run itself; every rank needs the same `--run-id`.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig
from ..errors import StudioError
from ..paths import runs_dir
from ..resources import child_env
from . import registry
from ..runfiles import CANCEL_FILE, OUTCOME_FILE, STOPPING_FILE, checkpoint_problem, latest_checkpoint  # noqa: F401 (re-exported)

COMPILING = "starting: loading the model and data, then compiling GPU kernels (first run only)"



@dataclass
class Outcome:
    status: str  # completed / failed / cancelled
    message: str | None = None
    final: dict = field(default_factory=dict)


def preflight(cfg: RunConfig) -> None:
    """Checks that load no weights: the model source must exist, the data must have usable rows."""
    from ..methods import check_data
    from ..models import precheck

    precheck(cfg.model)
    check_data(cfg)  # the data must fit the method (e.g. DPO needs preference pairs)


def remove_partial_checkpoints(run_dir: Path) -> list[str]:
    """Delete checkpoints that can never be resumed (to free the space a failed save took)."""
    import shutil

    removed = []
    for checkpoint in (run_dir / "checkpoints").glob("checkpoint-*"):
        if not (checkpoint / "trainer_state.json").is_file():
            shutil.rmtree(checkpoint, ignore_errors=True)
            removed.append(checkpoint.name)
    return removed


def setup_logging(run_dir: Path) -> None:
    handler = logging.FileHandler(run_dir / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter("%(message)s"))
    stream.addFilter(lambda record: not getattr(record, "file_only", False))  # tracebacks go to log.txt only
    root = logging.getLogger("studio")
    root.handlers[:] = [handler, stream]
    root.setLevel(logging.INFO)


def global_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def accelerate_command(cfg: RunConfig, config_path: Path, run_id: str, num_gpus: int, *, resume: bool) -> list[str]:
    """`accelerate launch`: DDP for adapters, FSDP (full shard) when every parameter trains."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_gpus), "--num_machines", "1",
               "--mixed_precision", "bf16", "--dynamo_backend", "no", "--main_process_port", str(_free_port())]
    if cfg.uses_adapter:
        command += ["--multi_gpu"]
    else:
        command += ["--use_fsdp", "--fsdp_version", "2", "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
                    "--fsdp_state_dict_type", "FULL_STATE_DICT", "--fsdp_cpu_ram_efficient_loading", "true"]
    command += ["-m", "studio", "train", str(config_path), "--run-id", run_id, "--worker"]
    return command + (["--resume"] if resume else [])


def execute(config_path: str | Path, *, run_id: str | None = None, resume: bool = False, worker: bool = False) -> Path:
    """Train one run to completion. Returns the run folder; raises StudioError on user errors."""
    cfg = RunConfig.from_yaml(config_path)
    if worker or (is_distributed() and global_rank() != 0):
        return _execute_rank(cfg, run_id, resume=resume, write_outcome=worker)
    if not resume:
        preflight(cfg)
    if run_id is None:
        if is_distributed():
            raise StudioError("under `accelerate launch`, pass the same --run-id to every process.")
        run_id = registry.new_run_id(cfg.run_id_hint)
    record = registry.get(run_id, reconcile=False) or registry.create(
        run_id,
        name=cfg.default_name,
        method=cfg.method,
        model=cfg.model,
        dataset=str(cfg.data),
    )
    run_dir = record.run_dir
    config_file = run_dir / "config.yaml"
    cfg.save(config_file)
    (run_dir / "command.txt").write_text(cfg.cli_command(config_file) + "\n")
    for name in (CANCEL_FILE, STOPPING_FILE, OUTCOME_FILE):
        (run_dir / name).unlink(missing_ok=True)
    setup_logging(run_dir)
    log = logging.getLogger("studio.run")
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        gpus = [] if is_distributed() else _select_gpus(cfg)
    except StudioError as err:
        registry.finish(run_id, "failed", str(err))
        raise
    from .envinfo import snapshot
    from .queue import device_label, wait_for_gpu

    (run_dir / "env.json").write_text(json.dumps(snapshot(), indent=2) + "\n")
    device = f"accelerate x{os.environ['WORLD_SIZE']}" if is_distributed() else device_label(gpus)
    registry.mark_queued(run_id, os.getpid(), device)
    slot = None
    try:
        if gpus and not is_distributed():
            slot = wait_for_gpu(run_id, run_dir)
            if slot is None:
                registry.finish(run_id, "cancelled", "Cancelled while waiting for the GPU.")
                return run_dir
        registry.mark_running(run_id, os.getpid())
        log.info(f"run {run_id}: {cfg.method} on {cfg.data} (model {cfg.model}, device {device})" + (", resuming" if resume else ""))
        if len(gpus) > 1:
            outcome = _launch_distributed(cfg, config_file, run_id, len(gpus), resume=resume)
        else:
            outcome = train_in_process(cfg, run_dir, resume=resume)
    except KeyboardInterrupt:
        registry.finish(run_id, "cancelled", "Stopped by a signal; resume continues from the last saved checkpoint.")
        raise StudioError("the run was stopped.", where=run_id) from None
    finally:
        if slot is not None:
            slot.release()
    registry.finish(run_id, outcome.status, outcome.message, outcome.final)
    log.info(f"run {run_id} {outcome.status}: {outcome.message or outcome.final}")
    if outcome.status == "failed":
        raise StudioError(outcome.message, where=run_id)
    return run_dir


def train_in_process(cfg: RunConfig, run_dir: Path, *, resume: bool) -> Outcome:
    """Run the method here; every failure becomes an Outcome with a message the user can act on."""
    from .. import perf
    from ..methods import runner_for
    from ..methods.context import RunContext

    perf.LAST_RUN = None  # the fast path records this run's memory plan (the OOM advice reads it)
    log = logging.getLogger("studio.run")
    ctx = RunContext(run_dir, resume_from=latest_checkpoint(run_dir) if resume else None, cfg=cfg)
    if ctx.resume_from:
        log.info(f"resuming from {ctx.resume_from}")
    if perf.kernels_cold() and perf.enabled(cfg):  # the progress line says why the first step is slow
        ctx.metrics.append({"step": 0, "time": time.time(), "status": COMPILING})
    try:
        final = runner_for(cfg.method)(cfg, ctx)
    except StudioError as err:
        log.error(str(err))
        return Outcome("failed", str(err))
    except Exception as err:  # the user sees a message; the traceback goes to log.txt
        log.error(traceback.format_exc(), extra={"file_only": True})
        if _is_disk_full(err):
            removed = remove_partial_checkpoints(run_dir)
            kept = latest_checkpoint(run_dir)
            message = (
                f"The disk is full: saving failed ({err.strerror if isinstance(err, OSError) else err}). "
                + (f"Removed the partial {', '.join(removed)}. " if removed else "")
                + (f"{Path(kept).name} is intact; free some space (or move $STUDIO_HOME) and resume the run." if kept else "Free some space (or move $STUDIO_HOME) and start again.")
            )
        else:
            message = oom_advice(cfg) if _is_oom(err) else f"{type(err).__name__}: {err}. See log.txt in the run folder."
        err.__traceback__ = None  # drop the frames that hold the model, so its memory can be freed
        del err
        _release_gpu()
        return Outcome("failed", message)
    if global_rank() == 0:
        name_base_model(cfg, run_dir)
    metrics = ctx.metrics
    step = final.get("global_step")
    if metrics.nonfinite_loss:
        return Outcome("failed", metrics.stop_reason, final)
    if metrics.cancelled:
        return Outcome("cancelled", f"Cancelled at step {step}; a checkpoint was saved, so it can be resumed.", final)
    notes = [metrics.stop_reason] if metrics.stop_reason else []
    return Outcome("completed", " ".join(notes + metrics.warnings) or None, final)


def name_base_model(cfg: RunConfig, run_dir: Path) -> None:
    """The run's own adapters (adapter/, a reward run's reward_model/) name their base model by its public
    Hub id (`models.public_identity`: the embedded model is HuggingFaceTB/SmolLM2-135M-Instruct), as an
    export would; the local folder PEFT recorded goes to the run's log. A base without a Hub id keeps
    that folder. Stage adapters of a chain keep it too: a later stage reloads and re-saves them, and PEFT's
    save would then look the name up on the Hub."""
    from .. import models

    identity = models.public_identity(cfg.model)
    if not identity.on_hub:
        return
    for folder in (run_dir / "adapter", run_dir / "reward_model"):
        if (folder / "adapter_config.json").is_file():
            local = models.set_adapter_base(folder, identity.id)
            logging.getLogger("studio.run").info(
                f"{folder.name}/adapter_config.json names the base model {identity.id} (trained from {local or '?'}; the studio loads it from `model: {cfg.model}`)")


def _execute_rank(cfg: RunConfig, run_id: str | None, *, resume: bool, write_outcome: bool) -> Path:
    """One process of a multi-GPU run that is not the one recording it in the registry."""
    if not run_id:
        raise StudioError("every `accelerate launch` process needs the same --run-id.")
    run_dir = runs_dir() / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    if global_rank() == 0:
        setup_logging(run_dir)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    outcome = train_in_process(cfg, run_dir, resume=resume)
    if write_outcome and global_rank() == 0:
        (run_dir / OUTCOME_FILE).write_text(json.dumps(outcome.__dict__))
    return run_dir


def _launch_distributed(cfg: RunConfig, config_file: Path, run_id: str, num_gpus: int, *, resume: bool) -> Outcome:
    command = accelerate_command(cfg, config_file, run_id, num_gpus, resume=resume)
    logging.getLogger("studio.run").info("launching: " + " ".join(command))
    run_dir = config_file.parent
    code = subprocess.call(command, env=child_env({**os.environ, "PYTHONUNBUFFERED": "1"}))
    outcome_file = run_dir / OUTCOME_FILE
    if outcome_file.is_file():
        return Outcome(**json.loads(outcome_file.read_text()))
    return Outcome("failed", f"the multi-GPU launch exited with code {code} before training finished; see stdout.txt and log.txt in {run_dir}.")


def _select_gpus(cfg: RunConfig) -> list[int]:
    from .queue import select_gpus

    return select_gpus(cfg)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def _is_disk_full(err: BaseException) -> bool:
    import errno

    seen = set()
    while err is not None and id(err) not in seen:  # the OSError may be wrapped by torch/safetensors
        seen.add(id(err))
        if (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)) or "No space left on device" in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False


def oom_advice(cfg: RunConfig) -> str:
    """What to change, from the memory plan the fast path made for this run (studio.perf), else from the config."""
    from .. import perf

    return perf.oom_advice(method=cfg.method, batch_size=cfg.per_device_train_batch_size, gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                           max_length=cfg.max_length, gradient_checkpointing=cfg.gradient_checkpointing, planned=perf.LAST_RUN)


def _is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def _release_gpu() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
