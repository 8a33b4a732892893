"""Progress, ETA and smoothing computed from metrics rows."""

from __future__ import annotations

from dataclasses import dataclass


def smooth(values: list[float], weight: float = 0.6) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard's smoothing)."""
    out, last, norm = [], 0.0, 0.0
    for value in values:
        last = weight * last + (1 - weight) * value
        norm = weight * norm + (1 - weight)
        out.append(last / norm)
    return out


@dataclass
class Progress:
    step: int
    max_steps: int | None
    elapsed_s: float
    eta_s: float | None
    last_loss: float | None
    tokens_per_second: float | None
    status: str | None = None  # before the first step, what the run is doing (e.g. compiling GPU kernels)

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.max_steps) if self.max_steps else 0.0

    def describe(self) -> str:
        if not self.step:
            return self.status or "starting: loading the model and data..."
        parts = [f"step {self.step}" + (f"/{self.max_steps} ({100 * self.fraction:.0f}%)" if self.max_steps else "")]
        if self.last_loss is not None:
            parts.append(f"loss {self.last_loss:.4f}")
        if self.tokens_per_second:
            parts.append(f"{self.tokens_per_second:,.0f} tok/s")
        parts.append(f"elapsed {format_seconds(self.elapsed_s)}")
        if self.eta_s is not None:
            parts.append(f"ETA {format_seconds(self.eta_s)}")
        return " · ".join(parts)


def progress_from(rows: list[dict], started: float | None, now: float) -> Progress:
    train = [r for r in rows if r.get("loss") is not None]
    step = train[-1]["step"] if train else 0
    max_steps = next((r["max_steps"] for r in reversed(train) if r.get("max_steps")), None)
    elapsed = max(0.0, now - started) if started else 0.0
    eta = None
    if len(train) >= 2 and max_steps:
        recent = train[-10:]  # recent pace only: a resumed run's downtime must not inflate the ETA
        span = recent[-1]["time"] - recent[0]["time"]
        per_step = span / max(1, recent[-1]["step"] - recent[0]["step"])
        eta = max(0.0, (max_steps - step) * per_step)
    status = next((r["status"] for r in reversed(rows) if r.get("status")), None)
    return Progress(step, max_steps, elapsed, eta, train[-1]["loss"] if train else None, train[-1].get("tokens_per_second") if train else None, status)


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
