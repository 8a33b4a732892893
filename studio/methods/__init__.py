"""One module per technique. Each exposes `run(cfg, ctx) -> dict` (final metrics)."""

from __future__ import annotations

import importlib

# method name -> module under studio.methods
MODULES = {
    "lora": "sft",
    "qlora": "sft",
    "full": "sft",
    "instruction": "sft",
    "dpo": "dpo",
    "kto": "kto",
    "reward": "reward",
    "ppo": "ppo",
    "rloo": "ppo",
    "rlhf": "ppo",
    "constitutional": "constitutional",
    "grpo": "grpo",
}
SFT_FORMATS_REFUSED = {"preference": "dpo or reward", "prompt_only": "grpo, ppo, rloo or constitutional"}


def runner_for(method: str):
    return importlib.import_module(f"studio.methods.{MODULES[method]}").run


def check_data(cfg) -> None:
    """Up-front check that the data fits the method (no weights loaded); raises a StudioError that
    names the format the method needs."""
    from ..data import load_dataset_file
    from ..errors import StudioError
    from .common import PREFERENCE_HINT, file_format, read_preference, read_prompts

    method = cfg.method
    if method in ("dpo", "reward", "kto"):
        read_preference(cfg.data, method, "kto" if method == "kto" else "preference")
    elif method in ("ppo", "rloo", "rlhf"):
        if method == "rlhf":
            check_data(type(cfg)(**{**cfg.to_dict(), "method": "lora", "data": cfg.sft_data}))
        if not cfg.reward_model and file_format(cfg.data) != "preference":
            raise StudioError(
                f"method `{method}` without `reward_model:` trains a reward model first, so `data` must be preference pairs.",
                where=str(cfg.data),
                hint="Set reward_model: to a reward run's id or folder, or " + PREFERENCE_HINT,
            )
        read_prompts(cfg.data)
    elif method == "grpo":
        from .grpo import check_references, read_rows

        check_references(cfg, read_rows(cfg.data))
    elif method == "constitutional":
        read_prompts(cfg.data)
        from .constitution import load_constitution

        load_constitution(cfg.constitution)
    else:
        loaded = load_dataset_file(cfg.data)
        if loaded.format == "kto":  # SFT keeps the desirable rows only (methods.sft.sft_rows says how many it dropped)
            if not any(e["label"] for e in loaded.conversations + loaded.eval_conversations):
                raise StudioError(
                    f"method `{method}` trains on the desirable rows of KTO data (label true), and this dataset has none.",
                    where=str(cfg.data),
                    hint="Use method kto, which learns from undesirable answers too, or add rows with label true.",
                )
        elif loaded.format in SFT_FORMATS_REFUSED:
            raise StudioError(
                f"method `{method}` needs instruction or chat data (alpaca, messages, sharegpt or prompt/completion), but this dataset's format is '{loaded.format}'.",
                where=str(cfg.data),
                hint=f"Use method {SFT_FORMATS_REFUSED[loaded.format]} for this data, or pick an instruction dataset.",
            )
