"""One module per technique. Each exposes `run(cfg, ctx) -> dict` (final metrics)."""

from __future__ import annotations

import importlib

from .registry import SPECS, names, spec

# method name -> module under studio.methods (from the registry)
MODULES = {s.name: s.module for s in SPECS}


def _one_of(methods) -> str:
    return ", ".join(methods[:-1]) + " or " + methods[-1] if len(methods) > 1 else methods[0]


# Data the SFT methods refuse, and the methods that take it.
SFT_FORMATS_REFUSED = {"preference": _one_of(names(data="preference")),
                       "prompt_only": _one_of([s.name for s in SPECS if s.data in ("rl", "prompts", "grpo")])}


def runner_for(method: str):
    return importlib.import_module(f"studio.methods.{spec(method).module}").run


def check_data(cfg) -> None:
    """Up-front check that the data fits the method (no weights loaded); raises a StudioError that
    names the format the method needs."""
    from ..data import load_dataset_file
    from ..errors import StudioError
    from .common import PREFERENCE_HINT, file_format, read_preference, read_prompts

    method = cfg.method
    data = spec(method).data
    if data in ("preference", "kto"):
        read_preference(cfg.data, method, data)
    elif data == "rl":
        if "sft_data" in spec(method).knobs:  # a chain that starts with SFT
            check_data(type(cfg)(**{**cfg.to_dict(), "method": "lora", "data": cfg.sft_data}))
        if not cfg.reward_model and file_format(cfg.data) != "preference":
            raise StudioError(
                f"method `{method}` without `reward_model:` trains a reward model first, so `data` must be preference pairs.",
                where=str(cfg.data),
                hint="Set reward_model: to a reward run's id or folder, or " + PREFERENCE_HINT,
            )
        read_prompts(cfg.data)
    elif data == "grpo":
        from .grpo import check_rewards, read_rows

        check_rewards(cfg, read_rows(cfg.data))
    elif data == "prompts":
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
