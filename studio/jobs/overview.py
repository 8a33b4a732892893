"""What the studio is doing right now, cheaply enough to poll every few seconds: the hardware
(GPU name and memory from nvidia-smi, or the CPU), the active run with its progress, and the queue.

No torch import: the UI process must not load CUDA just to show a status line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import registry
from .progress import Progress, progress_from

TAIL_BYTES = 64 * 1024  # enough rows for the step, the loss and the recent pace


@dataclass
class Hardware:
    label: str  # "NVIDIA H200 · 1.2/139.8 GiB" or "CPU · 8 cores"
    gpu: bool


def _gib(mib: str) -> float:
    return float(mib) / 1024


def hardware() -> Hardware:
    """One nvidia-smi query (about 30 ms) where it exists; else the CPU's core count."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,memory.used,memory.total", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=5)
            gpus = [[part.strip() for part in line.split(",")] for line in out.stdout.strip().splitlines() if line.count(",") == 2]
            if out.returncode == 0 and gpus:
                name, used, total = gpus[0]
                label = f"{name} · {_gib(used):.1f}/{_gib(total):.0f} GiB"
                if len(gpus) > 1:
                    used_all = sum(_gib(g[1]) for g in gpus)
                    total_all = sum(_gib(g[2]) for g in gpus)
                    label = f"{len(gpus)}× {name} · {used_all:.1f}/{total_all:.0f} GiB"
                return Hardware(label, True)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return Hardware(f"CPU · {cores} cores", False)


def tail_metrics(path: Path, max_bytes: int = TAIL_BYTES) -> list[dict]:
    """The complete rows in the last `max_bytes` of metrics.jsonl (a long run's file is not re-read whole)."""
    import json

    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return []
    lines = data.split(b"\n")
    if size > max_bytes:
        lines = lines[1:]  # the first line is cut
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


@dataclass
class ActiveRun:
    id: str
    name: str
    status: str
    progress: Progress

    def describe(self) -> str:
        if self.status == "queued":
            return f"{self.name} · queued"
        p = self.progress
        if not p.step:
            return f"{self.name} · starting"
        parts = [self.name, f"step {p.step}" + (f"/{p.max_steps}" if p.max_steps else "")]
        if p.headline(3):
            parts.append(p.headline(3))
        if p.eta_text:
            parts.append(p.eta_text)
        return " · ".join(parts)


@dataclass
class Overview:
    hardware: Hardware
    active: ActiveRun | None
    queued: int  # runs waiting for the GPU (the active run is not counted)
    evals: list["EvalJob"] = field(default_factory=list)  # evaluations running or queued (studio.jobs.evaljob)


def overview() -> Overview:
    runs = registry.list_runs()
    running = [r for r in runs if r.status == "running"]
    queued = [r for r in runs if r.status == "queued"]
    record = (running or queued or [None])[0]
    active = None
    if record is not None:
        rows = tail_metrics(record.run_dir / "metrics.jsonl")
        active = ActiveRun(record.id, record.name, record.status, progress_from(rows, record.started, time.time()))
    waiting = len(queued) - (1 if record is not None and record.status == "queued" else 0)
    return Overview(hardware(), active, waiting, [job for job in eval_jobs() if job.live])


# ----- Evaluation jobs (registry kind `eval`, studio.jobs.evaljob): here, torch-free, for the status bar and the Runs tab

EVAL_KIND = "eval"
EVAL_PROGRESS_FILE = "progress.json"  # written by the job after every batch: {done, total, phase, elapsed, eta, updated}


def read_eval_progress(job_dir: Path) -> dict | None:
    import json

    try:
        state = json.loads((Path(job_dir) / EVAL_PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and {"done", "total"} <= set(state) else None


def eval_progress_text(state: dict) -> str:
    """'k/N examples · ETA 1m05s · answers (tuned)': one line for stderr, the Evaluate tab, the Runs tab and the status bar."""
    from .progress import format_seconds

    text = f"{state['done']}/{state['total']} examples"
    if state.get("eta") is not None:
        text += f" · ETA {format_seconds(state['eta'])}"
    elif state["done"] < state["total"]:
        text += " · ETA …"
    return text + (f" · {state['phase']}" if state.get("phase") else "")


@dataclass
class EvalJob:
    id: str
    run_id: str  # the evaluated run
    run_name: str
    status: str
    created: float
    folder: Path
    message: str | None
    summary: dict  # the registry's final metrics: {name: {base, tuned, delta, ci, verdict}}
    progress: dict | None  # progress.json of a running job

    @property
    def live(self) -> bool:
        return self.status in ("queued", "running")

    @property
    def report(self) -> Path | None:
        """Its self-contained report.html, once written."""
        path = self.folder / "report.html"
        return path if path.is_file() else None

    def progress_text(self) -> str:
        """'k/N examples · ETA …' while it runs; its outcome once finished."""
        if self.status == "queued":
            return "queued"
        if self.status == "running":
            return eval_progress_text(self.progress) if self.progress else "starting: loading the model…"
        if self.status == "completed":
            loss = self.summary.get("eval_loss")
            if isinstance(loss, dict) and isinstance(loss.get("base"), (int, float)) and isinstance(loss.get("tuned"), (int, float)):
                return f"eval loss {loss['base']:.3f} → {loss['tuned']:.3f} ({loss.get('verdict', '?')})"
            return "completed"
        return f"{self.status}" + (f": {self.message}" if self.message else "")

    def describe(self) -> str:
        """The status bar's item: 'Evaluating NAME · 12/64 examples · ETA 40s · answers (base)'."""
        return f"Evaluating {self.run_name} · {self.progress_text()}"


def eval_jobs(limit: int = 50) -> list[EvalJob]:
    """Evaluation jobs, newest first, with the progress of the running ones (registry rows are reconciled
    with their processes, so a killed evaluation reads `interrupted`, never running forever)."""
    jobs = []
    for job in registry.list_runs(limit=limit, kind=EVAL_KIND):
        name = job.name[len("eval of "):] if job.name.startswith("eval of ") else job.name
        progress = read_eval_progress(job.run_dir) if job.status == "running" else None
        jobs.append(EvalJob(job.id, job.dataset, name, job.status, job.created, Path(job.run_dir), job.message, job.final_metrics or {}, progress))
    return jobs
