"""Where the studio keeps its state. Everything lives under $STUDIO_HOME."""

from __future__ import annotations

import os
from pathlib import Path


def studio_home() -> Path:
    """The state folder: $STUDIO_HOME, or ~/.fine-tuning-studio."""
    home = Path(os.environ.get("STUDIO_HOME") or Path.home() / ".fine-tuning-studio")
    home.mkdir(parents=True, exist_ok=True)
    return home


def models_dir() -> Path:
    """Converted model caches. $STUDIO_MODELS_DIR lets tests share one cache across homes."""
    override = os.environ.get("STUDIO_MODELS_DIR")
    if override:
        Path(override).mkdir(parents=True, exist_ok=True)
        return Path(override)
    return _sub("models")


def datasets_dir() -> Path:
    return _sub("datasets")


def runs_dir() -> Path:
    return _sub("runs")


def registry_path() -> Path:
    return studio_home() / "registry.sqlite"


def _sub(name: str) -> Path:
    path = studio_home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
