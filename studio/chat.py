"""Chat sides for the Chat tab and `python -m studio chat`: which model answers on each side (a run's
tuned model, or a base model with its adapters off), from one copy of the base weights per model.

Generation itself is studio.engine (the one engine: continuous batching, base and tuned rows of every
session in one forward through PEFT's mixed-adapter batches); import its names from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from . import engine, models
from .engine import POOL, GenerationSettings, ModelPool, Side
from .errors import StudioError


class ChatEngine:
    """Answers from a run's base model (adapter off) and its tuned model (adapter on)."""

    def __init__(self, base: Side, tuned: Side):
        self.base_side = base
        self.tuned_side = tuned

    @classmethod
    def for_run(cls, record, pool: ModelPool = POOL) -> "ChatEngine":
        adapter_dir = Path(record.run_dir) / "adapter"
        model_dir = Path(record.run_dir) / "model"
        base = pool.base(run_base_source(record))
        if adapter_dir.is_dir():
            base.ensure_adapter(record.id, adapter_dir)
            tuned = Side(base, record.id, f"tuned ({record.name})")
        elif model_dir.is_dir():
            tuned = Side(pool.base(str(model_dir)), None, f"tuned ({record.name})")
        else:
            raise StudioError(f"run {record.id} has no trained weights yet (status: {record.status}).", hint="Wait for it to finish, or pick a completed run.")
        return cls(Side(base, None, f"base ({base.resolved.display_name})"), tuned)

    @classmethod
    def base_only(cls, source: str = models.EMBEDDED, pool: ModelPool = POOL) -> "ChatEngine":
        base = pool.base(source)
        side = Side(base, None, f"base ({base.resolved.display_name})")
        return cls(side, side)

    @classmethod
    def for_choices(cls, left: str, right: str, pool: ModelPool = POOL) -> "ChatEngine":
        """Any two sides: each a run id (its tuned model) or `base:SOURCE` (a base model, adapters off)."""
        return cls(side_for(left, pool), side_for(right, pool))

    def stream_pair(self, messages: list[dict], settings: GenerationSettings) -> Iterator[tuple[str, str]]:
        """Yield (base_text, tuned_text) after every token of either side."""
        return self.stream_pair_histories(messages, messages, settings)

    def stream_pair_histories(self, base_messages: list[dict], tuned_messages: list[dict], settings: GenerationSettings) -> Iterator[tuple[str, str]]:
        """Like stream_pair, but each side continues its own conversation (they diverge after turn 1).
        Both answers decode in the same batched forward passes (studio.engine)."""
        for base_text, tuned_text in engine.stream([(self.base_side, base_messages), (self.tuned_side, tuned_messages)], settings):
            yield base_text, tuned_text

    def answer(self, messages: list[dict], *, tuned: bool = True, settings: GenerationSettings | None = None) -> str:
        return engine.answer(self.tuned_side if tuned else self.base_side, messages, settings)


BASE_PREFIX = "base:"


def _run_record(run_id: str):
    from .jobs import registry

    record = registry.get(run_id)
    if record is None:
        raise StudioError(f"no run with id {run_id}.", hint="See `python -m studio runs list`, or refresh the run list.")
    return record


def run_base_source(record) -> str:
    """The model a run started from, as written in its config.yaml."""
    from .config import RunConfig

    cfg = RunConfig.of_run(record.run_dir)
    return str((cfg.model if cfg else "") or record.model or models.EMBEDDED)


def side_for(choice: str, pool: ModelPool = POOL) -> Side:
    """A chat side from a choice value: a run id (its tuned weights) or `base:SOURCE`."""
    choice = (choice or "").strip()
    if not choice:
        raise StudioError("pick what answers on each side (a run or a base model).")
    if choice.startswith(BASE_PREFIX):
        base = pool.base(choice[len(BASE_PREFIX):] or models.EMBEDDED)
        return Side(base, None, f"base ({base.resolved.display_name})")
    return ChatEngine.for_run(_run_record(choice), pool).tuned_side


def has_weights(record) -> bool:
    return (Path(record.run_dir) / "adapter").is_dir() or (Path(record.run_dir) / "model").is_dir()


def side_choices(records=None) -> list[tuple[str, str]]:
    """(label, value) pairs for every trained run and every base model those runs started from."""
    from .jobs import registry

    records = [r for r in (registry.list_runs() if records is None else records) if has_weights(r)]
    bases = {models.EMBEDDED: f"base · {models.EMBEDDED_NAME} (embedded)"}
    for record in records:
        source = run_base_source(record)
        bases.setdefault(source, f"base · {source}")
    choices = [(f"tuned · {r.name} · {r.id}", r.id) for r in records]
    return choices + [(label, BASE_PREFIX + source) for source, label in bases.items()]


def choice_label(choice: str, records=None) -> str:
    for label, value in side_choices(records):
        if value == choice:
            return label
    return choice
