"""The one process environment of every training process, set before torch is imported.

Every training path goes through `python -m studio train` (the CLI, the UI's subprocess launcher in
studio.jobs.runner, and `accelerate launch ... -m studio train --worker`), and `studio.__main__`
calls `apply()` before anything imports torch. The settings are read when torch loads its OpenMP
runtime and first touches CUDA, so setting them later does nothing. The user's own values win.

- `PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True`: the allocator grows one mapping instead of
  leaving freed blocks of the wrong size; long contexts otherwise fail on fragmentation (an 8B
  QLoRA run at 65,536 tokens ran out of memory without it and peaked at 22.50 GiB with it).
- `OMP_WAIT_POLICY=PASSIVE`: the trainer shares the CPU cores with the app's chat, and busy-waiting
  OpenMP threads starve the other process (20 chat answers beside a training run: 167 s busy-wait
  vs 16 s).
- `TORCHINDUCTOR_CACHE_DIR`, `TRITON_CACHE_DIR` under $STUDIO_HOME/cache: compiled GPU kernels
  (flex attention, Liger's Triton kernels) survive a reboot; torch's defaults live in /tmp.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

ALLOC_VARIABLES = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")  # torch >= 2.9 reads either


def cache_dir(home: str | Path | None = None) -> Path:
    """$STUDIO_HOME/cache (the same home as studio.paths.studio_home, without creating it)."""
    return Path(home or os.environ.get("STUDIO_HOME") or Path.home() / ".fine-tuning-studio") / "cache"


def defaults(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The variables a training process gets, given its environment (pure: no side effects)."""
    environ = os.environ if environ is None else environ
    cache = cache_dir(environ.get("STUDIO_HOME"))
    out = {
        "OMP_WAIT_POLICY": "PASSIVE",
        "TORCHINDUCTOR_CACHE_DIR": str(cache / "torchinductor"),
        "TRITON_CACHE_DIR": str(cache / "triton"),
    }
    if not any(environ.get(name) for name in ALLOC_VARIABLES):
        out["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"
    return out


def environment(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `environ` with the defaults filled in where the user set nothing (for a child process)."""
    environ = dict(os.environ if environ is None else environ)
    return {**defaults(environ), **environ}


def apply(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Fill in this process's environment; returns what it set. Call it before torch is imported."""
    environ = os.environ if environ is None else environ
    added = {name: value for name, value in defaults(environ).items() if not environ.get(name)}
    environ.update(added)
    return added
