"""The one generation engine: every answer the studio generates (Chat, blind A/B, prompt suites, the
RAG comparison, Evaluate, Constitutional AI) is decoded here.

`ModelPool` keeps one base model per weights folder (`LoadedBase`); each run's LoRA adapter is loaded
into it under the run id. A `Side` is that base with one adapter on (a tuned model) or none (the base
model). Each LoadedBase has one scheduler thread (started on first use, gone when idle) doing
continuous batching:

- a request (prompt token ids, adapter or None, temperature/top_p/seed/max_new_tokens, its own RNG)
  waits in a queue and joins the running batch as soon as a row is free (at most `MAX_ROWS` rows);
- joiners are prefilled together (up to `PREFILL_TOKENS` padded tokens per step; left padding,
  attention mask, per-row position ids as `generate()` builds them) and their KV cache is merged
  into the batch's `DynamicCache`;
- every decoding step is ONE forward over all active rows, base and tuned rows mixed through PEFT's
  mixed-adapter batches (`adapter_names=[...]`, "__base__" for adapter-off rows), so base and tuned
  answers, and every browser session's answers, share a forward instead of taking turns;
- a finished or cancelled row leaves the batch (its cache rows and all-padding columns are dropped).

Why hand-written rather than `model.generate()` or transformers' continuous batching
(`ContinuousBatchingManager.add_request`): generate() decodes one fixed batch to its end (nobody
joins while it runs, so a second browser session would wait for the first one's whole answer), and
transformers' continuous batching takes no per-request PEFT adapter and no per-request seed. What is
not hand-written: the forward, the KV cache (`DynamicCache`), the adapters (PEFT) and sampling
(transformers' temperature/top-p logits processors, as in generate()).

A DoRA adapter cannot share a mixed batch (PEFT refuses `adapter_names` with DoRA): its rows form a
batch of their own on the same scheduler, one more forward per step. A full-weights tuned run is a
different LoadedBase, so it runs on its own scheduler.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import torch

from . import models
from .errors import StudioError

# Rows decoded together per loaded base; further requests queue until a row finishes. 10 browser
# sessions x 2 sides must fit: a request left in the queue waits for a whole answer of another row
# (bench/results/chat_engine.json: with 16 rows, 10 sessions' first-token p95 barely moved).
MAX_ROWS = 32
# Padded prompt tokens prefilled per step: more joiners wait for the next step, so that rows already
# decoding stall for one bounded prefill at a time (at least one request is always admitted).
PREFILL_TOKENS = 1024
IDLE_SECONDS = 60.0  # a scheduler thread with nothing to do for this long exits (restarted on demand)
CUT_MARKER = "… (cut at {n} tokens)"


def mark_cut(text: str, max_new_tokens: int) -> str:
    """An answer stopped by the max-new-tokens limit (not by the model) says so, visibly."""
    return text.rstrip() + " " + CUT_MARKER.format(n=max_new_tokens)


def without_cut_marker(text: str) -> str:
    """The answer as the model wrote it (for the next turn's history, scoring and exports)."""
    return re.sub(r"\s*… \(cut at \d+ tokens\)$", "", text or "")


@dataclass
class GenerationSettings:
    system_prompt: str = ""
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 256
    seed: int = 0


def chat_messages(messages: list[dict], system_prompt: str = "") -> list[dict]:
    return ([{"role": "system", "content": system_prompt}] if system_prompt.strip() else []) + list(messages)


_UNKNOWN = object()
MIXED = object()  # adapter state: adapter layers on, each row's adapter named in the forward call (adapter_names)


class LoadedBase:
    """One base model (plus any adapters loaded into it), the lock that serialises its use, and the
    scheduler that batches its generation."""

    def __init__(self, resolved: models.ResolvedModel, tokenizer=None):
        self.resolved = resolved
        self.tokenizer = tokenizer or models.load_tokenizer(resolved)
        self.model = models.load_causal_lm(resolved)
        self.model.eval()
        self.adapters: set[str] = set()
        self.lock = threading.Lock()
        # the Rust tokenizer refuses an encode beside another encode or decode ("Already borrowed",
        # huggingface/tokenizers#537): sessions encode prompts and decode answers under this lock
        self.tokenizer_lock = threading.Lock()
        self._state: object = _UNKNOWN  # the adapter now switched on (None: off); switched only on change
        self.stop_ids = _stop_ids(self.tokenizer, self.model)
        self.scheduler = Scheduler(self)

    def switch_to(self, adapter) -> None:
        """Put the model in this adapter state (a name, None for off, or MIXED); the caller holds `lock`.
        Switching costs PEFT a walk over every LoRA layer, so it happens only when the state changes."""
        if self._state == adapter or not hasattr(self.model, "peft_config"):
            return
        if adapter is MIXED and self._state not in (None, _UNKNOWN):
            return  # a named adapter's state already has the adapter layers on
        if adapter is None:
            self.model.base_model.disable_adapter_layers()
        else:
            self.model.base_model.enable_adapter_layers()
            if adapter is not MIXED:
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

    def mixes(self, adapter: str | None) -> bool:
        """Whether rows of this adapter can share a mixed batch (PEFT refuses `adapter_names` with DoRA)."""
        config = getattr(self.model, "peft_config", {}).get(adapter) if adapter else None
        return not getattr(config, "use_dora", False)

    def prompt_ids(self, messages: list[dict], system_prompt: str = "", tools: list[dict] | None = None) -> list[int]:
        """The conversation through the chat template with the generation prompt, rendered as training
        renders it (`studio.data.render.texts`: tools through the template or the studio's fallback)."""
        from .data.render import texts

        prompt, _ = texts({"messages": chat_messages(messages, system_prompt), "tools": tools}, self.tokenizer)
        if not prompt:
            raise StudioError("there is nothing to answer: the conversation has no user message.")
        with self.tokenizer_lock:
            return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def close(self) -> None:
        """Stop the scheduler thread (waiting requests end with an error) so the weights can be freed."""
        self.scheduler.close()


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
        """The model with this side's adapter state, held under the base's lock (for forward passes
        that are not generation: losses, a judge's logits)."""
        with self.base.lock:
            self.base.switch_to(self.adapter)
            yield self.base.model

    def request(self, messages: list[dict], settings: GenerationSettings, *, tools=None, seed: int | None = None, listener=None) -> "Request":
        ids = self.base.prompt_ids(messages, settings.system_prompt, tools)
        return Request(self.base, ids, self.adapter, settings, settings.seed if seed is None else seed, listener)


def _stop_ids(tokenizer, model) -> set[int]:
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    for token in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            ids.add(token_id)
    return ids


# ----- Requests and the scheduler ----------------------------------------------------------------

class Request:
    """One answer being generated: prompt, adapter, sampling state, the tokens so far. The scheduler
    thread appends tokens; the caller reads `text()` and may `cancel()`."""

    def __init__(self, base: LoadedBase, prompt_ids: list[int], adapter: str | None, settings: GenerationSettings, seed: int, listener: queue.Queue | None = None):
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        self.base = base
        self.prompt_ids = list(prompt_ids)
        self.adapter = adapter
        self.max_new_tokens = settings.max_new_tokens
        self.sample = settings.temperature > 0
        self.sampling = (settings.temperature, settings.top_p)  # rows with equal settings are warped together
        self.warpers = (TemperatureLogitsWarper(settings.temperature), TopPLogitsWarper(settings.top_p)) if self.sample else ()
        self.seed = seed
        self._rng: torch.Generator | None = None  # made on the device the logits live on, at the first draw
        self.generated: list[int] = []
        self.cut = False  # stopped by max_new_tokens, not by a stop token
        self.cancelled = False
        self.error: BaseException | None = None
        self.listener = listener  # gets this request after every new token and when it is done
        self.done = self.max_new_tokens <= 0

    def text(self, *, show_cut: bool = True) -> str:
        with self.base.tokenizer_lock:
            text = self.base.tokenizer.decode(list(self.generated), skip_special_tokens=True)
        return mark_cut(text, self.max_new_tokens) if show_cut and self.cut else text

    def rng(self, device: torch.device) -> torch.Generator:
        """This answer's own seeded generator, on the device its draws happen on."""
        if self._rng is None or self._rng.device != device:
            self._rng = torch.Generator(device=device).manual_seed(self.seed)
        return self._rng

    def cancel(self) -> None:
        self.cancelled = True  # the scheduler drops the row before its next step

    def _notify(self) -> None:
        if self.listener is not None:
            self.listener.put(self)

    def _accept(self, token: int) -> None:
        if token in self.base.stop_ids:
            self.done = True
        else:
            self.generated.append(token)
            self.done = self.cut = len(self.generated) >= self.max_new_tokens
        self._notify()

    def _fail(self, error: BaseException) -> None:
        self.error, self.done = error, True
        self._notify()


class _Batch:
    """Rows decoding together: their requests, the batched KV cache and its attention mask (left padded)."""

    def __init__(self, rows: list[Request], cache, mask: torch.Tensor):
        self.rows, self.cache, self.mask = rows, cache, mask

    def merge(self, rows: list[Request], cache, mask: torch.Tensor) -> None:
        """Add prefilled rows: both caches are left-padded to the longer one and stacked on the batch axis."""
        from transformers.cache_utils import DynamicLayer

        pad = torch.nn.functional.pad
        mine, theirs = self.mask.shape[1], mask.shape[1]
        width = max(mine, theirs)
        for old, new in zip(self.cache.layers, cache.layers, strict=True):
            if type(old) is not DynamicLayer or type(new) is not DynamicLayer:
                raise StudioError(f"this model's cache ({type(old).__name__}) cannot be batched by the studio's engine.")
            old.keys = torch.cat([pad(old.keys, (0, 0, width - mine, 0)), pad(new.keys, (0, 0, width - theirs, 0))])
            old.values = torch.cat([pad(old.values, (0, 0, width - mine, 0)), pad(new.values, (0, 0, width - theirs, 0))])
        self.mask = torch.cat([pad(self.mask, (width - mine, 0)), pad(mask, (width - theirs, 0))])
        self.rows = self.rows + rows

    def keep(self, indices: list[int]) -> None:
        """Keep these rows only, then drop the columns that are padding in every remaining row."""
        self.cache.batch_select_indices(torch.tensor(indices, device=self.mask.device))
        self.mask = self.mask[indices]
        self.rows = [self.rows[i] for i in indices]
        first = int(self.mask.any(dim=0).int().argmax())
        if first:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[..., first:, :], layer.values[..., first:, :]
            self.mask = self.mask[:, first:]


class Scheduler:
    """Continuous batching for one LoadedBase (see the module docstring); one daemon thread."""

    def __init__(self, base: LoadedBase, max_rows: int = MAX_ROWS):
        self.base = base
        self.max_rows = max_rows
        self._pending: collections.deque[Request] = collections.deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._batches: dict[object, _Batch] = {}  # MIXED, or a DoRA adapter's name (a batch of its own)

    def submit(self, requests: Sequence[Request]) -> None:
        """Queue requests; those submitted in one call are prefilled together when rows are free."""
        with self._wake:
            if self._closed:
                raise StudioError("this model was unloaded; start the chat again.")
            for request in requests:
                if request.done:
                    request._notify()
                else:
                    self._pending.append(request)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"studio-engine:{self.base.resolved.display_name}", daemon=True)
                self._thread.start()
            self._wake.notify()

    def alive(self) -> bool:
        with self._wake:
            return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            thread = self._thread
            self._wake.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _active(self) -> int:
        return sum(len(b.rows) for b in self._batches.values())

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._batches and not self._closed:
                    if not self._wake.wait(IDLE_SECONDS) and not self._pending:
                        self._thread = None  # idle: let the thread (and its reference to the weights) go
                        return
                if self._closed:
                    self._thread = None
                    for request in [*self._pending, *(r for b in self._batches.values() for r in b.rows)]:
                        request._fail(StudioError("this model was unloaded before the answer finished."))
                    self._pending.clear()
                    self._batches.clear()
                    return
                joiners: list[Request] = []
                while self._pending and self._active() + len(joiners) < self.max_rows:
                    width = max([len(r.prompt_ids) for r in joiners] + [len(self._pending[0].prompt_ids)])
                    if joiners and (len(joiners) + 1) * width > PREFILL_TOKENS:
                        break
                    request = self._pending.popleft()
                    if request.cancelled:
                        request.done = True
                        request._notify()
                    else:
                        joiners.append(request)
            try:
                with torch.inference_mode():
                    if joiners:
                        self._prefill(joiners)
                        self._retire()
                    for key, batch in list(self._batches.items()):
                        self._decode(key, batch)
                    self._retire()
            except Exception as err:  # noqa: BLE001 - every waiting caller gets the error; the thread goes on
                for request in [*joiners, *(r for b in self._batches.values() for r in b.rows)]:
                    if not request.done:
                        request._fail(err)
                self._batches.clear()

    def _prefill(self, joiners: list[Request]) -> None:
        from transformers import DynamicCache

        groups: dict[object, list[Request]] = {}
        for request in joiners:
            groups.setdefault(MIXED if self.base.mixes(request.adapter) else request.adapter, []).append(request)
        pad_id = self.base.tokenizer.pad_token_id if self.base.tokenizer.pad_token_id is not None else 0
        for key, rows in groups.items():
            width = max(len(r.prompt_ids) for r in rows)
            ids = torch.tensor([[pad_id] * (width - len(r.prompt_ids)) + r.prompt_ids for r in rows])
            mask = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in rows])
            positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)  # as generate() builds them
            cache = DynamicCache()  # plain layers, so that batches can be merged and trimmed
            logits, device = self._forward(key, rows, ids, mask, positions, cache)
            mask = mask.to(device)
            if key in self._batches:
                self._batches[key].merge(rows, cache, mask)
            else:
                self._batches[key] = _Batch(rows, cache, mask)
            self._pick(rows, logits)

    def _decode(self, key, batch: _Batch) -> None:
        ids = torch.tensor([[r.generated[-1]] for r in batch.rows])
        positions = torch.tensor([[len(r.prompt_ids) + len(r.generated) - 1] for r in batch.rows])
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch.rows), 1))], dim=1)
        logits, _ = self._forward(key, batch.rows, ids, batch.mask, positions, batch.cache)
        self._pick(batch.rows, logits)

    def _forward(self, key, rows: list[Request], ids, mask, positions, cache):
        """One forward over these rows (under the base's lock); the last position's logits."""
        base = self.base
        with base.lock:
            model = base.model
            extra = {}
            adapters = {r.adapter for r in rows}
            if key is not MIXED:
                base.switch_to(key)  # a DoRA adapter's own batch
            elif len(adapters) == 1:
                base.switch_to(adapters.pop())  # one adapter state for every row: no per-layer routing needed
            else:
                base.switch_to(MIXED)
                extra["adapter_names"] = [r.adapter or "__base__" for r in rows]
            device = model.device
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                        past_key_values=cache, use_cache=True, logits_to_keep=1, **extra)
        return out.logits[:, -1, :].float(), device

    def _pick(self, rows: list[Request], logits: torch.Tensor) -> None:
        """The next token of every row: the argmax, or a draw with the row's own seeded generator after
        temperature/top-p. Rows with equal settings are warped in one batched pass on the logits' own
        device: a pass per row on the CPU (a copy off the GPU and a sort of the whole vocabulary, once a
        row) was most of a step with 10 sessions (bench/results/chat_engine_gpu.json)."""
        chosen = logits.argmax(dim=-1)
        groups: dict[tuple, list[int]] = {}
        for index, request in enumerate(rows):
            if request.sample and not request.done:
                groups.setdefault(request.sampling, []).append(index)
        if groups:
            order, draws = [], []
            for indices in groups.values():
                scores = logits[indices]
                for warper in rows[indices[0]].warpers:  # temperature and top-p read no token history
                    scores = warper(None, scores)
                probs = torch.softmax(scores, dim=-1)
                for j, index in enumerate(indices):
                    draws.append(torch.multinomial(probs[j], 1, generator=rows[index].rng(probs.device)))
                    order.append(index)
            chosen[torch.tensor(order, device=chosen.device)] = torch.cat(draws)
        tokens = chosen.tolist()  # one copy off the device per step
        for index, request in enumerate(rows):
            if not request.done:
                request._accept(tokens[index])

    def _retire(self) -> None:
        for key, batch in list(self._batches.items()):
            for request in batch.rows:
                if request.cancelled and not request.done:
                    request.done = True
                    request._notify()
            keep = [i for i, r in enumerate(batch.rows) if not r.done]
            if not keep:
                del self._batches[key]
            elif len(keep) < len(batch.rows):
                batch.keep(keep)


# ----- The calls ---------------------------------------------------------------------------------

def _wait(updates: queue.Queue, requests: Sequence[Request]) -> list[Request]:
    """Block until some request has news; every request that has news (drained)."""
    while True:
        try:
            news = [updates.get(timeout=5.0)]
            break
        except queue.Empty:
            if not all(r.done for r in requests) and not all(r.base.scheduler.alive() for r in requests if not r.done):
                raise StudioError("the generation thread stopped unexpectedly; try again.") from None
    while True:
        try:
            news.append(updates.get_nowait())
        except queue.Empty:
            return news


def _raise_failed(requests: Sequence[Request]) -> None:
    for request in requests:
        if request.error is not None:
            error = request.error
            if isinstance(error, StudioError):
                raise error
            raise StudioError(f"generation failed: {type(error).__name__}: {error}") from error


def _submit(requests: Sequence[Request]) -> None:
    by_base: dict[int, list[Request]] = {}
    for request in requests:
        by_base.setdefault(id(request.base), []).append(request)
    for group in by_base.values():
        group[0].base.scheduler.submit(group)


def stream(items: Sequence[tuple[Side, list[dict]]], settings: GenerationSettings, *, tools: list[dict] | None = None) -> Iterator[list[str]]:
    """Answer each (side, conversation) together; yield all texts whenever any answer grew. An answer
    the limit stopped ends with "… (cut at N tokens)". Closing the iterator cancels what is unfinished."""
    updates: queue.Queue = queue.Queue()
    requests = [side.request(messages, settings, tools=tools, listener=updates) for side, messages in items]
    _submit(requests)
    try:
        last = None
        while True:
            _wait(updates, requests)
            _raise_failed(requests)
            texts = [r.text() for r in requests]
            finished = all(r.done for r in requests)
            if texts != last or finished and last is None:
                yield texts
                last = texts
            if finished:
                return
    finally:
        for request in requests:
            request.cancel()


def answer(side: Side, messages: list[dict], settings: GenerationSettings | None = None, *, tools: list[dict] | None = None) -> str:
    text = ""
    for (text,) in stream([(side, messages)], settings or GenerationSettings(), tools=tools):
        pass
    return text


def generate_batch(side: Side, conversations: list[list[dict]], settings: GenerationSettings, batch_size: int = 8, *,
                   show_cut: bool = False, tools: list | None = None) -> list[str]:
    """Answer many conversations with one side; at most `batch_size` of them decode at once (rows that
    finish make room for the next). Answer i samples with seed `settings.seed + i`, so answers do not
    depend on the batch size. `show_cut` appends "… (cut at N tokens)" to answers the limit stopped (for
    display, not scoring). `tools`: the tool schemas of every conversation (a list of dicts), or one
    entry per conversation (its list of schemas, or None). Other callers' rows share the forward passes."""
    settings = replace(settings, max_new_tokens=max(1, settings.max_new_tokens))
    per_row = tools is not None and len(tools) == len(conversations) and all(t is None or isinstance(t, list) for t in tools)
    row_tools = list(tools) if per_row else [tools] * len(conversations)
    updates: queue.Queue = queue.Queue()
    requests = [side.request(c, settings, tools=t, seed=settings.seed + i, listener=updates) for i, (c, t) in enumerate(zip(conversations, row_tools))]
    window = max(1, batch_size)
    side.base.scheduler.submit(requests[:window])
    queued, finished = window, set()
    try:
        while len(finished) < len(requests):
            for request in _wait(updates, requests):
                if request.done and id(request) not in finished:
                    finished.add(id(request))
                    if queued < len(requests):
                        side.base.scheduler.submit([requests[queued]])
                        queued += 1
            _raise_failed(requests)
    finally:
        for request in requests:
            request.cancel()
    texts = [r.text(show_cut=False).strip() for r in requests]
    return [mark_cut(text, r.max_new_tokens) if show_cut and r.cut else text for text, r in zip(texts, requests)]
