"""The run registry: one SQLite table, shared by the UI and CLI-started runs.

A row's status is only trusted for finished runs; `running` rows are checked against the live
process (pid plus its start time, so a recycled pid is not mistaken for the run) on every read.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from ..paths import registry_path, runs_dir, safe_name

STATUSES = ("queued", "running", "completed", "failed", "cancelled", "interrupted")
FINISHED = ("completed", "failed", "cancelled", "interrupted")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    method TEXT NOT NULL,
    model TEXT NOT NULL,
    dataset TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    pid INTEGER,
    pid_start TEXT,
    message TEXT,
    final_metrics TEXT,
    run_dir TEXT NOT NULL,
    device TEXT,
    kind TEXT
);
"""
# Columns added after the first release: older registries gain them on open.
MIGRATIONS = {"device": "ALTER TABLE runs ADD COLUMN device TEXT", "kind": "ALTER TABLE runs ADD COLUMN kind TEXT"}
KINDS = ("train", "eval")  # a job's kind; NULL in older registries means train. An eval job's run_dir is RUN/eval/<timestamp>


@dataclass
class RunRecord:
    id: str
    name: str
    method: str
    model: str
    dataset: str
    status: str
    created: float
    started: float | None
    finished: float | None
    pid: int | None
    pid_start: str | None
    message: str | None
    final_metrics: dict
    run_dir: Path
    device: str | None = None
    kind: str | None = None  # "eval" for an evaluation job (its `dataset` is the evaluated run's id); else training

    @property
    def alive(self) -> bool:
        return self.status in ("running", "queued") and is_alive(self.pid, self.pid_start)

    def to_json(self) -> dict:
        data = dict(self.__dict__)
        data["run_dir"] = str(self.run_dir)
        return data


def _connect() -> sqlite3.Connection:
    conn = sqlite3.connect(registry_path(), timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(SCHEMA)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    for column, statement in MIGRATIONS.items():
        if column not in columns:
            conn.execute(statement)
    return conn


def process_start_time(pid: int) -> str | None:
    """A pid's start time (psutil; with the pid it names one process, not a reused pid), or None if it is gone."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped
            return None
        return f"{process.create_time():.2f}"
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_alive(pid: int | None, pid_start: str | None) -> bool:
    if not pid:
        return False
    started = process_start_time(pid)
    return started is not None and (pid_start is None or started == pid_start)


def new_run_id(name_hint: str = "run") -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = safe_name(name_hint.lower().replace("_", "-"), limit=24, fallback="run")
    base = f"{stamp}-{safe}"
    run_id, n = base, 1
    while (runs_dir() / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def create(run_id: str, *, name: str, method: str, model: str, dataset: str, status: str = "queued",
           kind: str = "train", run_dir: Path | None = None) -> RunRecord:
    run_dir = Path(run_dir) if run_dir else runs_dir() / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    with closing(_connect()) as conn, conn:
        conn.execute(
            "INSERT OR IGNORE INTO runs (id, name, method, model, dataset, status, created, run_dir, kind) VALUES (?,?,?,?,?,?,?,?,?)",
            (run_id, name, method, model, dataset, status, time.time(), str(run_dir), kind),
        )
    return get(run_id)


def mark_running(run_id: str, pid: int) -> None:
    with closing(_connect()) as conn, conn:
        conn.execute(
            "UPDATE runs SET status='running', started=COALESCE(started, ?), pid=?, pid_start=?, message=NULL, finished=NULL WHERE id=?",
            (time.time(), pid, process_start_time(pid), run_id),
        )


def finish(run_id: str, status: str, message: str | None = None, final_metrics: dict | None = None) -> None:
    assert status in FINISHED, status
    try:
        with closing(_connect()) as conn, conn:
            conn.execute(
                "UPDATE runs SET status=?, finished=?, message=?, final_metrics=COALESCE(?, final_metrics) WHERE id=?",
                (status, time.time(), message, json.dumps(final_metrics) if final_metrics is not None else None, run_id),
            )
    except sqlite3.OperationalError as err:
        # A full disk must not turn the outcome into a traceback: once this process exits, readers
        # see a dead `running` row and mark it interrupted, which resumes the same way.
        import sys

        print(f"warning: could not record run {run_id} as {status} in the registry ({err}).", file=sys.stderr)


def mark_queued(run_id: str, pid: int, device: str) -> None:
    """The run's process is alive and waiting for its device (see studio.jobs.queue)."""
    with closing(_connect()) as conn, conn:
        conn.execute(
            "UPDATE runs SET status='queued', pid=?, pid_start=?, device=?, message=NULL, finished=NULL WHERE id=?",
            (pid, process_start_time(pid), device, run_id),
        )


def mark_launched(run_id: str, pid: int) -> None:
    """The launcher's view: the child exists; it marks itself queued/running as it gets there."""
    with closing(_connect()) as conn, conn:
        conn.execute(
            "UPDATE runs SET status=CASE WHEN status='running' THEN status ELSE 'queued' END, pid=?, pid_start=?, "
            "finished=NULL, message=NULL WHERE id=?",
            (pid, process_start_time(pid), run_id),
        )


def set_message(run_id: str, message: str | None) -> None:
    with closing(_connect()) as conn, conn:
        conn.execute("UPDATE runs SET message=? WHERE id=?", (message, run_id))


def set_pid(run_id: str, pid: int) -> None:
    """Record the launcher-side pid so a run that dies before it starts is still detected."""
    with closing(_connect()) as conn, conn:
        conn.execute("UPDATE runs SET pid=?, pid_start=? WHERE id=?", (pid, process_start_time(pid), run_id))


def _record(row: sqlite3.Row) -> RunRecord:
    data = dict(row)
    data["final_metrics"] = json.loads(data["final_metrics"]) if data["final_metrics"] else {}
    data["run_dir"] = Path(data["run_dir"])
    return RunRecord(**data)


def _reconcile(record: RunRecord) -> RunRecord:
    """A `running`/`queued` run whose process is gone was interrupted (killed, crashed, rebooted)."""
    if record.status in ("running", "queued") and record.pid and not is_alive(record.pid, record.pid_start):
        finish(record.id, "interrupted", "The evaluation process stopped unexpectedly; start it again." if record.kind == "eval"
               else "The training process stopped unexpectedly; resume it from its last checkpoint.")
        return get(record.id, reconcile=False)
    return record


def get(run_id: str, *, reconcile: bool = True) -> RunRecord | None:
    with closing(_connect()) as conn:
        row = conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
    if row is None:
        return None
    record = _record(row)
    return _reconcile(record) if reconcile else record


def list_runs(limit: int = 200, kind: str = "train") -> list[RunRecord]:
    """Jobs of one kind, newest first: training runs by default, `kind="eval"` for evaluation jobs."""
    with closing(_connect()) as conn:
        rows = conn.execute("SELECT * FROM runs WHERE COALESCE(kind, 'train')=? ORDER BY created DESC LIMIT ?", (kind, limit)).fetchall()
    return [_reconcile(_record(r)) for r in rows]
