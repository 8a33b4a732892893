"""One module per technique. Each exposes `run(cfg, ctx) -> dict` (final metrics)."""

from __future__ import annotations

import importlib

# method name -> module under studio.methods
MODULES = {"lora": "sft", "qlora": "sft", "full": "sft", "instruction": "sft"}


def runner_for(method: str):
    return importlib.import_module(f"studio.methods.{MODULES[method]}").run
