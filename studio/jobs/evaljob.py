"""Evaluation as a job, like training: its own process, a registry row of kind `eval`, progress,
cancel and reattach.

- `start(run_id, options)` (the UI, `eval --background`): a registry row whose folder is
  RUN/eval/<timestamp>, and `python -m studio eval RUN --job-id JOB ...` in its own process group.
- `execute(...)` runs inside that process (or in the terminal for a plain `eval`): it writes
  progress.json (k/N examples, ETA) after every batch and a line on stderr, checks the cancel file
  between batches, and records the outcome in the registry.
- `runner.cancel(job_id)` stops it: the cancel file first (seen within one batch), then SIGTERM,
  which this process turns into a clean `cancelled`; SIGKILL last. Within 10 s in every case.
- `active_for(run_id)` / `read_progress(job)`: what a reloaded page reattaches to.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from ..errors import StudioError
from . import registry
from .metrics import CANCEL_FILE
from .overview import EVAL_KIND as KIND
from .overview import EVAL_PROGRESS_FILE as PROGRESS_FILE
from .overview import read_eval_progress


def option_args(options) -> list[str]:
    """The CLI flags that reproduce these EvalOptions (one place for the UI and the job launcher)."""
    from ..evaluate import EvalOptions

    args = ["--max-examples", str(options.max_examples), "--max-new-tokens", str(options.max_new_tokens),
            "--batch-size", str(options.batch_size)]
    if options.data:
        args += ["--data", str(options.data)]
    if not options.drop_overlap:
        args.append("--no-drop-overlap")
    if not options.probes:
        args.append("--no-probes")
    elif str(options.probe_file) != str(EvalOptions().probe_file):
        args += ["--probe-file", str(options.probe_file)]
    if options.judge:
        args += ["--judge", options.judge]
    return args


def create(record, options) -> registry.RunRecord:
    """A registry row for an evaluation of `record`, with its folder RUN/eval/<timestamp>."""
    from ..evaluate import new_eval_dir

    folder = new_eval_dir(record)
    job_id = f"eval-{folder.name}-{record.id}"
    return registry.create(job_id, name=f"eval of {record.name}", method=KIND, model=record.model, dataset=record.id,
                           kind=KIND, run_dir=folder)


def start(run_id: str, options) -> registry.RunRecord:
    """Start an evaluation in the background; returns the job's registry record at once."""
    from .runner import _reap_in_background, training_env

    record = registry.get(run_id)
    if record is None:
        raise StudioError(f"no run with id {run_id}.", hint="See `python -m studio runs list`.")
    running = active_for(run_id)
    if running is not None:
        raise StudioError(f"run {run_id} is already being evaluated (job {running.id}).", hint="Wait for it, or cancel it first.")
    job = create(record, options)
    with open(job.run_dir / "log.txt", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "studio", "eval", run_id, "--job-id", job.id, "--json", *option_args(options)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # closing the UI never kills the evaluation
            env=training_env(),
        )
    registry.mark_launched(job.id, process.pid)
    _reap_in_background(process)
    return registry.get(job.id)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def _write_progress(folder: Path, state: dict) -> None:
    """Atomic: a reader never sees half a file."""
    temporary = folder / (PROGRESS_FILE + ".tmp")
    temporary.write_text(json.dumps(state))
    os.replace(temporary, folder / PROGRESS_FILE)


def execute(record, options, *, job_id: str | None = None, echo: Callable[[str], None] | None = None) -> dict:
    """Evaluate `record` as the job `job_id` (created here when None); returns the results.
    Raises StudioError for a failed or cancelled evaluation (the registry has the outcome)."""
    from .. import evaluate

    job = registry.get(job_id, reconcile=False) if job_id else create(record, options)
    if job is None:
        raise StudioError(f"no evaluation job with id {job_id}.")
    folder = Path(job.run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CANCEL_FILE).unlink(missing_ok=True)
    registry.mark_running(job.id, os.getpid())
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    last_line = [0.0]

    def progress(state: dict) -> None:
        _write_progress(folder, {**state, "job_id": job.id, "run_id": record.id})
        now = time.time()
        if echo and (now - last_line[0] > 1 or state["done"] in (0, state["total"])):
            echo(evaluate.describe_progress(state))
            last_line[0] = now

    try:
        results = evaluate.evaluate_run(record, options, progress, out_dir=folder, should_stop=lambda: (folder / CANCEL_FILE).exists())
    except (evaluate.EvalCancelled, KeyboardInterrupt):
        registry.finish(job.id, "cancelled", "Evaluation cancelled by the user.")
        raise StudioError("the evaluation was cancelled.", where=job.id) from None
    except StudioError as err:
        registry.finish(job.id, "failed", str(err))
        raise
    except Exception as err:  # noqa: BLE001 - the user gets one line; the traceback goes to the job's log
        import traceback

        (folder / "traceback.txt").write_text(traceback.format_exc())
        registry.finish(job.id, "failed", f"{type(err).__name__}: {err}")
        raise StudioError(f"the evaluation failed ({type(err).__name__}: {err}); see {folder / 'traceback.txt'}.") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    summary = {name: {k: m[k] for k in ("base", "tuned", "delta", "ci", "verdict")} for name, m in results["metrics"].items()}
    registry.finish(job.id, "completed", None, summary)
    results["job_id"] = job.id
    return results


def jobs_for(run_id: str) -> list[registry.RunRecord]:
    return [j for j in registry.list_runs(kind=KIND) if j.dataset == run_id]


def active_for(run_id: str) -> registry.RunRecord | None:
    """The evaluation of this run that is still going (what a reloaded page reattaches to)."""
    return next((j for j in jobs_for(run_id) if j.status in ("queued", "running")), None)


def read_progress(job: registry.RunRecord) -> dict | None:
    return read_eval_progress(job.run_dir)


def cancel(job_id: str) -> str:
    """Stop an evaluation: it sees the cancel file within one batch; SIGTERM, then SIGKILL, by ~7 s."""
    from .runner import cancel as cancel_job

    return cancel_job(job_id)
