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

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import yaml

from . import models
from .errors import StudioError


@dataclass
class GenerationSettings:
    system_prompt: str = ""
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 256
    seed: int = 0


class LoadedBase:
    """One base model (plus any adapters loaded into it) and the lock that serialises its use."""

    def __init__(self, resolved: models.ResolvedModel):
        self.resolved = resolved
        self.tokenizer = models.load_tokenizer(resolved)
        self.model = models.load_causal_lm(resolved)
        self.model.eval()
        self.adapters: set[str] = set()
        self.lock = threading.Lock()

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


class ChatEngine:
    """Answers from a run's base model (adapter off) and its tuned model (adapter on)."""

    def __init__(self, base: Side, tuned: Side):
        self.base_side = base
        self.tuned_side = tuned

    @classmethod
    def for_run(cls, record, pool: ModelPool = POOL) -> "ChatEngine":
        cfg = yaml.safe_load((Path(record.run_dir) / "config.yaml").read_text())
        adapter_dir = Path(record.run_dir) / "adapter"
        model_dir = Path(record.run_dir) / "model"
        base = pool.base(cfg.get("model", models.EMBEDDED))
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

    @torch.inference_mode()
    def step(self) -> str:
        base = self.side.base
        with base.lock:
            model = base.model
            if self.side.adapter is None and hasattr(model, "disable_adapter"):
                context = model.disable_adapter()
            else:
                if self.side.adapter is not None:
                    model.set_adapter(self.side.adapter)
                context = _null()
            with context:
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
            self.done = len(self.generated) >= self.settings.max_new_tokens
        return base.tokenizer.decode(self.generated, skip_special_tokens=True)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


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
