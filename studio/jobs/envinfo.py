"""The environment snapshot stored with every run (env.json): what it takes to reproduce it."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys

PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes", "tokenizers", "safetensors", "deepspeed", "liger-kernel")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def gpu_info() -> dict:
    """GPU names, memory and driver; empty lists on a CPU-only machine."""
    import torch

    info: dict = {"cuda_available": torch.cuda.is_available(), "cuda_version": torch.version.cuda, "gpus": [], "driver": None}
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            info["gpus"].append({"index": index, "name": props.name, "memory_gib": round(props.total_memory / 2**30, 1)})
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
            info["driver"] = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
        except (OSError, subprocess.TimeoutExpired):
            pass
    return info


def snapshot() -> dict:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": __import__("os").cpu_count(),
        "packages": package_versions(),
        **gpu_info(),
    }
