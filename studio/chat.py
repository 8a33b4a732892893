"""Generation for the Chat tab and `python -m studio chat`: base vs tuned from one copy of the weights.

`ModelPool` keeps one base model per weights folder; each run's LoRA adapter is loaded into it
under the run id and switched per decoding step. Two answers stream "at the same time" by
interleaving one token per side (as FastChat's arena interleaves two generators).

Why a hand-written decode step instead of `model.generate`: generate() runs a whole answer with
one adapter state, so two concurrent generate() calls on one PeftModel would race on which
adapter is active. Stepping each side with its own KV cache under a lock keeps a single copy of
the base weights and still streams both sides together. Sampling uses transformers' own logits
processors, so temperature/top-p behave exactly as in generate().
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from . import models
from .errors import StudioError


CUT_MARKER = "… (cut at {n} tokens)"


def mark_cut(text: str, max_new_tokens: int) -> str:
    """An answer stopped by the max-new-tokens limit (not by the model) says so, visibly."""
    return text.rstrip() + " " + CUT_MARKER.format(n=max_new_tokens)


def without_cut_marker(text: str) -> str:
    """The answer as the model wrote it (for the next turn's history, scoring and exports)."""
    import re

    return re.sub(r"\s*… \(cut at \d+ tokens\)$", "", text or "")


@dataclass
class GenerationSettings:
    system_prompt: str = ""
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 256
    seed: int = 0


_UNKNOWN = object()


class LoadedBase:
    """One base model (plus any adapters loaded into it) and the lock that serialises its use."""

    def __init__(self, resolved: models.ResolvedModel):
        self.resolved = resolved
        self.tokenizer = models.load_tokenizer(resolved)
        self.model = models.load_causal_lm(resolved)
        self.model.eval()
        self.adapters: set[str] = set()
        self.lock = threading.Lock()
        self._state: object = _UNKNOWN  # the adapter now switched on (None: off); switched only on change

    def switch_to(self, adapter: str | None) -> None:
        """Put the model in this adapter state; the caller holds `lock`. Switching costs PEFT a walk over
        every LoRA layer, so it happens only when the state changes, not on every decoded token."""
        if self._state == adapter or not hasattr(self.model, "peft_config"):
            return
        if adapter is None:
            self.model.base_model.disable_adapter_layers()
        else:
            self.model.base_model.enable_adapter_layers()
            self.model.set_adapter(adapter)
        self._state = adapter

    def ensure_adapter(self, name: str, folder: Path) -> None:
        from peft import PeftModel

        with self.lock:
            if name in self.adapters:
                return
            if not (folder / "adapter_model.safetensors").is_file():
                raise StudioError(f"the run has no adapter yet ({folder} is missing).", hint="Wait for the run to finish.")
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(folder), adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(folder), adapter_name=name)
                self.model.eval()
            self.adapters.add(name)
            self._state = _UNKNOWN  # loading may change which adapter is active


class ModelPool:
    """Loaded weights, shared by every chat session of this process (read-only use, under a lock)."""

    def __init__(self):
        self._bases: dict[str, LoadedBase] = {}
        self._guard = threading.Lock()

    def base(self, source: str) -> LoadedBase:
        resolved = models.resolve(source)
        key = str(resolved.path)
        with self._guard:
            if key not in self._bases:
                self._bases[key] = LoadedBase(resolved)
            return self._bases[key]


POOL = ModelPool()


@dataclass
class Side:
    """What answers on one side: a base model, with a named adapter switched on or off."""

    base: LoadedBase
    adapter: str | None  # None: adapter disabled (the base model)
    label: str

    @contextlib.contextmanager
    def active(self):
        """The model with this side's adapter state, held under the base's lock."""
        with self.base.lock:
            self.base.switch_to(self.adapter)
            yield self.base.model


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
        """Like stream_pair, but each side continues its own conversation (they diverge after turn 1)."""
        decoders = [_Decoder(self.base_side, base_messages, settings), _Decoder(self.tuned_side, tuned_messages, settings)]
        texts = ["", ""]
        while not all(d.done for d in decoders):
            for index, decoder in enumerate(decoders):
                if not decoder.done:
                    texts[index] = decoder.step()
            yield texts[0], texts[1]

    def answer(self, messages: list[dict], *, tuned: bool = True, settings: GenerationSettings | None = None) -> str:
        decoder = _Decoder(self.tuned_side if tuned else self.base_side, messages, settings or GenerationSettings())
        text = ""
        while not decoder.done:
            text = decoder.step()
        return text


class _Decoder:
    """Incremental decoding of one answer, with its own KV cache and random generator."""

    def __init__(self, side: Side, messages: list[dict], settings: GenerationSettings):
        from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

        self.side = side
        self.settings = settings
        tokenizer = side.base.tokenizer
        convo = ([{"role": "system", "content": settings.system_prompt}] if settings.system_prompt.strip() else []) + list(messages)
        encoded = tokenizer.apply_chat_template(convo, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        self.next_input = encoded["input_ids"]
        self.past = None
        self.generated: list[int] = []
        self.done = settings.max_new_tokens <= 0
        self.stop_ids = _stop_ids(side.base)
        self.sample = settings.temperature > 0
        self.processors = LogitsProcessorList(
            [TemperatureLogitsWarper(settings.temperature), TopPLogitsWarper(settings.top_p)] if self.sample else []
        )
        self.rng = torch.Generator().manual_seed(settings.seed)
        self.prompt_ids = self.next_input
        self.cut = False  # stopped by max_new_tokens, not by a stop token

    @torch.inference_mode()
    def step(self) -> str:
        base = self.side.base
        with self.side.active() as model:
            out = model(input_ids=self.next_input.to(model.device), past_key_values=self.past, use_cache=True)
        self.past = out.past_key_values
        logits = out.logits[:, -1, :].float().cpu()
        if self.sample:
            history = torch.cat([self.prompt_ids, torch.tensor([self.generated], dtype=torch.long)], dim=1)
            probs = torch.softmax(self.processors(history, logits), dim=-1)
            token = int(torch.multinomial(probs, 1, generator=self.rng))
        else:
            token = int(logits.argmax(dim=-1))
        if token in self.stop_ids:
            self.done = True
        else:
            self.generated.append(token)
            self.next_input = torch.tensor([[token]])
            self.done = self.cut = len(self.generated) >= self.settings.max_new_tokens
        text = base.tokenizer.decode(self.generated, skip_special_tokens=True)
        return mark_cut(text, self.settings.max_new_tokens) if self.cut else text


def _stop_ids(base: LoadedBase) -> set[int]:
    ids = set()
    tokenizer = base.tokenizer
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    eos = getattr(getattr(base.model, "generation_config", None), "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    for token in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            ids.add(token_id)
    return ids


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


def chat_messages(messages: list[dict], system_prompt: str = "") -> list[dict]:
    return ([{"role": "system", "content": system_prompt}] if system_prompt.strip() else []) + list(messages)


@torch.inference_mode()
def generate_batch(side: Side, conversations: list[list[dict]], settings: GenerationSettings, batch_size: int = 8, *, show_cut: bool = False) -> list[str]:
    """Answer many conversations with one side, in left-padded batches through `model.generate`.

    Each call holds the side's lock for one batch, so it never races with a streaming chat.
    `show_cut` appends "… (cut at N tokens)" to answers the limit stopped (for display, not scoring).
    """
    tokenizer = side.base.tokenizer
    stop_ids = sorted(_stop_ids(side.base))
    answers: list[str] = []
    for start in range(0, len(conversations), batch_size):
        chunk = conversations[start : start + batch_size]
        texts = [
            tokenizer.apply_chat_template(chat_messages(convo, settings.system_prompt), add_generation_prompt=True, tokenize=False)
            for convo in chunk
        ]
        # padding_side per call: the tokenizer is shared by every session, so it is never switched
        encoded = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        sample = settings.temperature > 0
        options = dict(max_new_tokens=max(1, settings.max_new_tokens), do_sample=sample, pad_token_id=tokenizer.pad_token_id, eos_token_id=stop_ids)
        if sample:
            options.update(temperature=settings.temperature, top_p=settings.top_p)
        else:
            options.update(temperature=None, top_p=None, top_k=None)
        with side.active() as model:
            if sample:
                torch.manual_seed(settings.seed + start)
            out = model.generate(**{k: v.to(model.device) for k, v in encoded.items()}, **options)
        new_tokens = out[:, encoded["input_ids"].shape[1] :]
        for row in new_tokens:
            text = tokenizer.decode(row, skip_special_tokens=True).strip()
            stopped = any(int(t) in stop_ids for t in row)
            answers.append(mark_cut(text, settings.max_new_tokens) if show_cut and not stopped and len(row) >= settings.max_new_tokens else text)
    return answers
