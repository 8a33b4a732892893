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
from typing import Callable, Iterator

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


# ----- Blind A/B ---------------------------------------------------------------------------------

VOTES = ("left", "right", "tie")
VOTE_SCHEMA = """
CREATE TABLE IF NOT EXISTS ab_votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    pair_key TEXT NOT NULL,
    left_choice TEXT NOT NULL,
    right_choice TEXT NOT NULL,
    vote TEXT NOT NULL,
    winner TEXT,
    prompt TEXT,
    left_answer TEXT,
    right_answer TEXT
);
CREATE INDEX IF NOT EXISTS ab_votes_pair ON ab_votes(pair_key);
"""
VOTE_MIGRATIONS = {"left_answer": "ALTER TABLE ab_votes ADD COLUMN left_answer TEXT", "right_answer": "ALTER TABLE ab_votes ADD COLUMN right_answer TEXT"}


@dataclass(frozen=True)
class BlindRound:
    """Which choice sits on which unlabelled side. Lives in the viewer's session only."""

    left: str
    right: str

    @classmethod
    def shuffled(cls, first: str, second: str, rng=None) -> "BlindRound":
        import random

        if not first or not second:
            raise StudioError("pick two different sides to compare blind.")
        if first == second:
            raise StudioError("a blind comparison needs two different sides.", hint="Pick another run or base model for B.")
        pair = [first, second]
        (rng or random.SystemRandom()).shuffle(pair)
        return cls(pair[0], pair[1])

    def winner(self, vote: str) -> str | None:
        if vote not in VOTES:
            raise StudioError(f"a vote is one of {', '.join(VOTES)}, got {vote!r}.")
        return {"left": self.left, "right": self.right, "tie": None}[vote]


def pair_key(first: str, second: str) -> str:
    return "\x1f".join(sorted((first, second)))


def votes_path() -> Path:
    from .paths import studio_home

    return studio_home() / "ab_votes.sqlite"


def _votes_db():
    import sqlite3

    conn = sqlite3.connect(votes_path(), timeout=30)
    conn.executescript(VOTE_SCHEMA)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(ab_votes)")}
    for column, statement in VOTE_MIGRATIONS.items():  # votes saved before answers were kept
        if column not in columns:
            conn.execute(statement)
    return conn


def record_vote(round_: BlindRound, vote: str, prompt: str = "", left_answer: str = "", right_answer: str = "") -> dict:
    """Save one vote for the pair, with both answers as the voter saw them, and return the pair's tally."""
    import time
    from contextlib import closing

    winner = round_.winner(vote)
    with closing(_votes_db()) as conn, conn:
        conn.execute(
            "INSERT INTO ab_votes (created, pair_key, left_choice, right_choice, vote, winner, prompt, left_answer, right_answer) VALUES (?,?,?,?,?,?,?,?,?)",
            (time.time(), pair_key(round_.left, round_.right), round_.left, round_.right, vote, winner, prompt,
             without_cut_marker(left_answer), without_cut_marker(right_answer)),
        )
    return tally(round_.left, round_.right)


def default_blind_pair(records=None) -> tuple[str | None, str | None]:
    """Blind A/B's default: the base model against the latest completed tuned run (its own base)."""
    from .jobs import registry

    records = registry.list_runs() if records is None else records
    latest = next((r for r in records if r.status == "completed" and has_weights(r)), None)  # newest first
    if latest is None:
        return None, None
    return BASE_PREFIX + run_base_source(latest), latest.id


def preference_pairs(first: str, second: str) -> list[dict]:
    """Every decided vote of the pair as a preference example: the prompt, chosen = the voted answer,
    rejected = the other (ties and votes without saved answers carry no preference)."""
    from contextlib import closing

    with closing(_votes_db()) as conn:
        rows = conn.execute(
            "SELECT prompt, left_choice, winner, left_answer, right_answer FROM ab_votes WHERE pair_key=? AND winner IS NOT NULL ORDER BY id",
            (pair_key(first, second),),
        ).fetchall()
    pairs = []
    for prompt, left, winner, left_answer, right_answer in rows:
        if not (prompt or "").strip() or not left_answer or not right_answer or left_answer == right_answer:
            continue
        chosen, rejected = (left_answer, right_answer) if winner == left else (right_answer, left_answer)
        user = [{"role": "user", "content": prompt}]
        chosen_turn, rejected_turn = [{"role": "assistant", "content": chosen}], [{"role": "assistant", "content": rejected}]
        pairs.append({"messages": user + chosen_turn, "prompt": user, "chosen": chosen_turn, "rejected": rejected_turn})
    return pairs


def export_votes(first: str, second: str, name: str) -> Path:
    """Save the pair's votes as the next version of dataset `name` (format preference): a DPO set."""
    from .data.versions import save_version

    pairs = preference_pairs(first, second)
    if not pairs:
        raise StudioError("no decided votes with saved answers for this pair yet (ties carry no preference).",
                          hint="Vote left or right on a few prompts, then export.")
    counts = tally(first, second)
    return save_version(name, pairs, [], "preference", sources=[votes_path()], filters=[],
                        counts={"votes": counts["total"], "ties_skipped": counts["tie"], "pairs": len(pairs)},
                        extra={"from_blind_ab": {"sides": sorted((first, second))}})


def tally(first: str, second: str) -> dict:
    """Wins per side and ties, over every vote ever cast for this pair (in either seat order)."""
    from contextlib import closing

    counts = {first: 0, second: 0, "tie": 0}
    with closing(_votes_db()) as conn:
        rows = conn.execute("SELECT winner, COUNT(*) FROM ab_votes WHERE pair_key=? GROUP BY winner", (pair_key(first, second),)).fetchall()
    for winner, count in rows:
        counts["tie" if winner is None else winner] = count
    counts["total"] = counts[first] + counts[second] + counts["tie"]
    return counts


def reveal_text(round_: BlindRound | None, first: str, second: str, label: Callable[[str], str] = lambda c: c) -> str:
    """What the reveal shows: who sat where this round, and the pair's tally with Wilson intervals."""
    from . import stats

    counts = tally(first, second)
    rates = stats.win_rates(counts[first], counts[second], counts["tie"])
    lines = []
    if round_ is not None:
        lines.append(f"Left was {label(round_.left)}; right was {label(round_.right)}.")

    def share(key: str, name: str) -> str:
        part = rates[key]
        return f"{name} {part['k']} ({100 * part['rate']:.0f}%, 95% CI {100 * part['ci'][0]:.0f}–{100 * part['ci'][1]:.0f}%)"

    lines.append(f"Votes so far (n={counts['total']}): " + " · ".join([share("a", label(first)), share("b", label(second)), share("ties", "tie")]))
    if counts["total"]:
        leader = {"a": label(first), "b": label(second)}.get(rates["preferred"])
        lines.append(f"Preferred: {leader} (sign test p={rates['p_value']:.3f})." if leader
                     else f"No clear preference yet (sign test on the decided votes p={rates['p_value']:.3f}).")
    return "\n".join(lines)


# ----- Prompt suites -----------------------------------------------------------------------------

SUITE_SUFFIXES = (".csv", ".json", ".jsonl")
PROMPT_KEYS = ("prompt", "instruction", "question", "input")
REFERENCE_KEYS = ("reference", "expected", "answer", "output")


@dataclass
class SuitePrompt:
    prompt: str
    reference: str | None = None


def load_prompt_suite(path: str | Path) -> list[SuitePrompt]:
    """Prompts from CSV (a `prompt` column, optional `reference`), JSON (a list of strings or
    objects) or JSONL. Every bad row is reported with its row and line."""
    import csv
    import io
    import json

    path = Path(path)
    if path.suffix.lower() not in SUITE_SUFFIXES:
        raise StudioError(f"a prompt suite is a .csv, .json or .jsonl file, got {path.name}.", where=str(path))
    if not path.is_file():
        raise StudioError(f"prompt suite not found: {path}.", hint="Check the path.")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise StudioError("the file is not valid UTF-8.", where=f"{path} byte {err.start}", hint="Re-save it as UTF-8.") from None
    items: list[tuple[str, object]] = []  # (where, raw item)
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if not any(k in header for k in PROMPT_KEYS):
            raise StudioError(f"the CSV needs a `prompt` column (found: {', '.join(header) or 'no header'}).", where=f"{path} line 1")
        for number, row in enumerate(reader, start=1):
            items.append((f"{path} row {number} (line {reader.line_num})", {(k or "").strip().lower(): v for k, v in row.items()}))
    elif path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    items.append((f"{path} line {number}", json.loads(line)))
                except json.JSONDecodeError as err:
                    raise StudioError(f"not valid JSON ({err.msg}).", where=f"{path} line {number}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise StudioError(f"not valid JSON ({err.msg}).", where=f"{path} line {err.lineno}") from None
        if isinstance(data, dict):
            data = data.get("prompts", data.get("probes"))
        if not isinstance(data, list):
            raise StudioError("expected a list of prompts (or {\"prompts\": [...]}).", where=str(path))
        items = [(f"{path} item {number}", item) for number, item in enumerate(data, start=1)]
    prompts = [_suite_prompt(where, item) for where, item in items]
    if not prompts:
        raise StudioError("the prompt suite has no prompts.", where=str(path), hint="Add at least one row.")
    return prompts


def _suite_prompt(where: str, item) -> SuitePrompt:
    if isinstance(item, str):
        item = {"prompt": item}
    if not isinstance(item, dict):
        raise StudioError(f"expected a prompt string or an object, got {type(item).__name__}.", where=where)
    prompt = next((item[k] for k in PROMPT_KEYS if isinstance(item.get(k), str) and item[k].strip()), None)
    if prompt is None:
        raise StudioError("field 'prompt' is missing or empty.", where=where, hint="Give every row a non-empty prompt.")
    reference = next((str(item[k]) for k in REFERENCE_KEYS if item.get(k) not in (None, "")), None)
    return SuitePrompt(prompt.strip(), reference)


def suites_dir() -> Path:
    from .paths import studio_home

    folder = studio_home() / "suites"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_prompt_suite(name: str, prompts: list[SuitePrompt]) -> Path:
    """Keep a suite under $STUDIO_HOME/suites/NAME.json so it can be run again later."""
    import json

    from .paths import safe_name

    path = suites_dir() / f"{safe_name(name, what='prompt suite')}.json"
    path.write_text(json.dumps({"prompts": [p.__dict__ for p in prompts]}, indent=2, ensure_ascii=False))
    return path


def saved_suites() -> list[Path]:
    return sorted(suites_dir().glob("*.json"))


@dataclass
class SuiteResult:
    left_label: str
    right_label: str
    rows: list[dict]  # prompt, reference, left, right, left_match, right_match
    settings: GenerationSettings


def run_prompt_suite(engine: ChatEngine, prompts: list[SuitePrompt], settings: GenerationSettings, progress: Callable[[int, int], None] | None = None, batch_size: int = 8) -> SuiteResult:
    """Run every prompt on both sides (batched per side) and pair the answers up."""
    conversations = [[{"role": "user", "content": p.prompt}] for p in prompts]
    left: list[str] = []
    right: list[str] = []
    total = 2 * len(conversations)
    for start in range(0, len(conversations), batch_size):
        chunk = conversations[start : start + batch_size]
        left += generate_batch(engine.base_side, chunk, settings, batch_size, show_cut=True)
        right += generate_batch(engine.tuned_side, chunk, settings, batch_size, show_cut=True)
        if progress:
            progress(len(left) + len(right), total)
    rows = []
    for prompt, left_answer, right_answer in zip(prompts, left, right):
        row = {"prompt": prompt.prompt, "reference": prompt.reference, "left": left_answer, "right": right_answer}
        if prompt.reference is not None:
            row["left_match"] = normalize_answer(without_cut_marker(left_answer)) == normalize_answer(prompt.reference)
            row["right_match"] = normalize_answer(without_cut_marker(right_answer)) == normalize_answer(prompt.reference)
        rows.append(row)
    return SuiteResult(engine.base_side.label, engine.tuned_side.label, rows, settings)


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation for exact match: case, punctuation, articles and spacing."""
    import re
    import string

    text = (text or "").lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def suite_scores(result: SuiteResult) -> str | None:
    """Exact match per side with Wilson intervals, and a sign test on the prompts where only one side
    matched (the paired comparison); None when no prompt has a reference."""
    from . import stats

    scored = [r for r in result.rows if r["reference"] is not None]
    if not scored:
        return None
    n = len(scored)
    parts = []
    for side, label in (("left", result.left_label), ("right", result.right_label)):
        k = sum(r[f"{side}_match"] for r in scored)
        low, high = stats.wilson(k, n)
        parts.append(f"{label} {k}/{n} ({100 * k / n:.0f}%, 95% CI {100 * low:.0f}–{100 * high:.0f}%)")
    left_only = sum(r["left_match"] and not r["right_match"] for r in scored)
    right_only = sum(r["right_match"] and not r["left_match"] for r in scored)
    p_value = stats.sign_test(left_only, left_only + right_only)
    verdict = "a clear difference" if p_value < stats.ALPHA else "no clear difference"
    return (f"Exact match: {' · '.join(parts)}. Only left matched: {left_only}, only right: {right_only}; "
            f"sign test p={p_value:.3f}: {verdict}.")


def suite_markdown(result: SuiteResult, title: str = "Prompt suite") -> str:
    def cell(text) -> str:
        return str(text if text is not None else "").replace("|", "\\|").replace("\n", "<br>")

    has_refs = any(r["reference"] is not None for r in result.rows)
    header = ["#", "Prompt"] + (["Reference"] if has_refs else []) + [result.left_label, result.right_label]
    lines = [f"# {title}", "", f"Left: **{result.left_label}** · Right: **{result.right_label}** · "
             f"temperature {result.settings.temperature}, max {result.settings.max_new_tokens} new tokens, seed {result.settings.seed}", ""]
    if has_refs:
        lines += [suite_scores(result), ""]
    lines += ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    for number, row in enumerate(result.rows, start=1):
        values = [number, row["prompt"]] + ([row["reference"]] if has_refs else []) + [row["left"], row["right"]]
        lines.append("| " + " | ".join(cell(v) for v in values) + " |")
    return "\n".join(lines) + "\n"


def suite_html(result: SuiteResult, title: str = "Prompt suite") -> str:
    """A self-contained page (jinja2 template: inline CSS, no scripts, no external links) for stakeholders."""
    from .resources import render_template

    has_refs = any(r["reference"] is not None for r in result.rows)
    return render_template("suite_report.html.j2", result=result, title=title, has_refs=has_refs, scores=suite_scores(result) if has_refs else "")


def write_suite_report(result: SuiteResult, folder: Path, title: str = "Prompt suite") -> tuple[Path, Path]:
    """Write report.html and report.md into folder; returns both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    html_path, md_path = folder / "report.html", folder / "report.md"
    html_path.write_text(suite_html(result, title), encoding="utf-8")
    md_path.write_text(suite_markdown(result, title), encoding="utf-8")
    return html_path, md_path
