"""Concurrent-session load against a running studio: chat and plot polling from N browser sessions.

Used by bench/load_bench.py and tests/integration/test_load.py. Each session is its own
gradio_client.Client (its own session hash), so per-session state isolation is exercised too.
Traffic goes only to the loopback URL it is given.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SessionResult:
    index: int
    first_token_s: float | None = None
    total_s: float | None = None
    polls: int = 0
    errors: list[str] = field(default_factory=list)
    leaked: bool = False


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _text(content) -> str:
    """Gradio 6 sends chat content as a list of {"type": "text", "text": ...} parts."""
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    if isinstance(content, dict):
        return content.get("text", "")
    return content or ""


def _session(url: str, run_id: str, index: int, max_tokens: int, poll_seconds: float, result: SessionResult) -> None:
    from gradio_client import Client

    try:
        client = Client(url, verbose=False, download_files=False)
        prompt = f"Session {index}: what is {index} plus {index}?"
        started = time.time()
        job = client.submit(run_id, None, prompt, [], [], "", 0.0, 0.9, max_tokens, index, api_name="/respond")
        last = None
        for output in job:
            left, right = output[0], output[1]
            if result.first_token_s is None and left and (left[-1].get("content") or right[-1].get("content")):
                result.first_token_s = time.time() - started
            last = output
        result.total_s = time.time() - started
        final = job.outputs()[-1] if job.outputs() else last
        users = [_text(m.get("content")) for m in (final[0] or []) + (final[1] or []) if m.get("role") == "user"]
        result.leaked = any(u != prompt for u in users) or not users
        deadline = time.time() + poll_seconds
        while time.time() < deadline:
            client.predict(run_id, api_name="/refresh")
            result.polls += 1
    except Exception as err:  # noqa: BLE001 - every failure is counted, none hidden
        result.errors.append(f"{type(err).__name__}: {err}")


def run_load(url: str, run_id: str, *, sessions: int = 10, max_tokens: int = 16, poll_seconds: float = 5.0) -> dict:
    results = [SessionResult(i) for i in range(sessions)]
    threads = [threading.Thread(target=_session, args=(url, run_id, i, max_tokens, poll_seconds, results[i])) for i in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    firsts = sorted(r.first_token_s for r in results if r.first_token_s is not None)

    def pct(p: float) -> float | None:
        if not firsts:
            return None
        return round(firsts[min(len(firsts) - 1, int(round(p * (len(firsts) - 1))))], 2)

    return {
        "sessions": sessions,
        "max_new_tokens": max_tokens,
        "completed": sum(1 for r in results if r.total_s is not None and not r.errors),
        "errors": [e for r in results for e in r.errors],
        "leaks": sum(r.leaked for r in results),
        "polls": sum(r.polls for r in results),
        "first_token_p50_s": pct(0.5),
        "first_token_p95_s": pct(0.95),
        "first_token_mean_s": round(statistics.mean(firsts), 2) if firsts else None,
        "total_p95_s": round(sorted(r.total_s for r in results if r.total_s)[-1], 2) if any(r.total_s for r in results) else None,
    }
