"""What a method gets besides its config: the run folder, logging, callbacks, resume point."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from .callbacks import MetricsWriter, standard_callbacks


@dataclass
class RunContext:
    run_dir: Path
    resume_from: str | None = None
    cfg: object | None = None  # the RunConfig, for the guards and TensorBoard options
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("studio.run"))

    def __post_init__(self):
        self.metrics = MetricsWriter(self.run_dir)

    @property
    def checkpoints_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def log(self, message: str) -> None:
        self.logger.info(message)

    def callbacks(self) -> list:
        return standard_callbacks(self.run_dir, self.metrics, self.cfg)
