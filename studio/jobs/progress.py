"""Progress, ETA and smoothing computed from metrics rows."""

from __future__ import annotations

import math
from dataclasses import dataclass

PACE_WINDOW = 10  # recent steps the ETA's pace comes from: a resumed run's downtime must not inflate it


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
    last_reward: float | None = None  # an RL run's (GRPO, RLOO: TRL's `reward`) mean reward at its last logged step

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.max_steps) if self.max_steps else 0.0

    @property
    def eta_text(self) -> str | None:
        """'ETA 1m05s'; 'ETA …' while steps remain but no step interval has been timed yet; None when
        there is nothing to estimate (no step count known, or every step done). One wording for the
        Train tab's status line and the status bar."""
        if not self.max_steps or self.step >= self.max_steps:
            return None
        return f"ETA {format_seconds(self.eta_s)}" if self.eta_s is not None else "ETA …"

    def headline(self, digits: int = 4) -> str | None:
        """The number that says how the run is doing: an RL run's mean reward (GRPO's loss stays near 0 by
        construction, its advantages being centred within each prompt's group), else the loss."""
        if self.last_reward is not None:
            return f"reward {self.last_reward:.{digits}f}"
        return f"loss {self.last_loss:.{digits}f}" if self.last_loss is not None else None

    def describe(self) -> str:
        if not self.step:
            return self.status or "starting: loading the model and data..."
        parts = [f"step {self.step}" + (f"/{self.max_steps} ({100 * self.fraction:.0f}%)" if self.max_steps else "")]
        if self.headline():
            parts.append(self.headline())
        if self.tokens_per_second:
            parts.append(f"{self.tokens_per_second:,.0f} tok/s")
        parts.append(f"elapsed {format_seconds(self.elapsed_s)}")
        if self.eta_text:
            parts.append(self.eta_text)
        return " · ".join(parts)


def seconds_per_step(train: list[dict]) -> float | None:
    """The recent pace, from the timed train rows of the current count: at least one interval between
    two logged steps with a positive duration, else None (unknown). A step count that goes back (the
    next stage of a chain starting at step 1) starts a new count, so stages never mix."""
    current: list[dict] = []
    for row in train:
        if not isinstance(row.get("time"), (int, float)):
            continue
        if current and row["step"] <= current[-1]["step"]:
            current = []
        current.append(row)
    recent = current[-PACE_WINDOW:]
    if len(recent) < 2:
        return None
    span, steps = recent[-1]["time"] - recent[0]["time"], recent[-1]["step"] - recent[0]["step"]
    return span / steps if span > 0 and steps > 0 else None


def eta_seconds(step: int, max_steps: int | None, per_step: float | None) -> float | None:
    """Whole seconds left; at least 1 while any step remains (a fast pace must not read 'ETA 0s'), 0 when done."""
    if not max_steps or per_step is None:
        return None
    remaining = max(0, max_steps - step)
    return float(math.ceil(remaining * per_step)) if remaining else 0.0


def progress_from(rows: list[dict], started: float | None, now: float) -> Progress:
    train = [r for r in rows if r.get("loss") is not None]
    step = train[-1]["step"] if train else 0
    max_steps = next((r["max_steps"] for r in reversed(train) if r.get("max_steps")), None)
    elapsed = max(0.0, now - started) if started else 0.0
    eta = eta_seconds(step, max_steps, seconds_per_step(train))
    status = next((r["status"] for r in reversed(rows) if r.get("status")), None)
    reward = train[-1].get("reward") if train else None
    return Progress(step, max_steps, elapsed, eta, train[-1]["loss"] if train else None, train[-1].get("tokens_per_second") if train else None, status,
                    reward if isinstance(reward, (int, float)) and math.isfinite(reward) else None)


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
