"""Cleaning with a preview: empty rows, exact and near duplicates, token length, PII scrubbing.

`plan_clean` decides, without changing anything, which examples go and why; `CleanPlan.apply()`
returns the cleaned examples. Near duplicates use MinHash + LSH from `datasketch`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field

from .formats import prompt_and_reply

# Hand-written patterns: the maintained PII libraries (presidio, scrubadub) need spaCy models we
# cannot download offline; these cover the common cases the issue names (emails, phones, keys).
PII_PATTERNS = {
    "email": (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), "[EMAIL]"),
    "key": (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
            r"|\b(?:sk-(?:proj-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}"
            r"|AIza[0-9A-Za-z_-]{35}|hf_[A-Za-z0-9]{30,})\b"
        ),
        "[KEY]",
    ),
    "phone": (re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]?\d{3,4}(?![\w-])"), "[PHONE]"),
}


@dataclass
class CleanOptions:
    drop_empty: bool = True
    exact_dedup: bool = True
    near_dup_threshold: float | None = None  # Jaccard similarity, e.g. 0.85; None disables
    min_tokens: int | None = None  # total tokens through the model's chat template
    max_tokens: int | None = None
    scrub_pii: bool = False

    def describe(self) -> list[dict]:
        """The filters, as recorded in a version's manifest."""
        steps = []
        if self.drop_empty:
            steps.append({"filter": "drop_empty"})
        if self.exact_dedup:
            steps.append({"filter": "exact_dedup"})
        if self.near_dup_threshold:
            steps.append({"filter": "near_dedup", "library": "datasketch MinHashLSH", "threshold": self.near_dup_threshold})
        if self.min_tokens or self.max_tokens:
            steps.append({"filter": "token_length", "min_tokens": self.min_tokens, "max_tokens": self.max_tokens})
        if self.scrub_pii:
            steps.append({"filter": "scrub_pii", "kinds": list(PII_PATTERNS)})
        return steps


@dataclass
class CleanPlan:
    examples: list[dict]
    options: CleanOptions
    removed: dict[int, tuple[str, str]] = field(default_factory=dict)  # index -> (reason, detail)
    scrubbed: dict[int, dict] = field(default_factory=dict)  # index -> the example after scrubbing
    pii_found: Counter = field(default_factory=Counter)

    @property
    def kept(self) -> list[int]:
        return [i for i in range(len(self.examples)) if i not in self.removed]

    def apply(self) -> list[dict]:
        return [self.scrubbed.get(i, self.examples[i]) for i in self.kept]

    @property
    def removed_by_reason(self) -> dict[str, int]:
        return dict(Counter(reason for reason, _ in self.removed.values()).most_common())

    def counts(self) -> dict:
        return {
            "before": len(self.examples),
            "after": len(self.examples) - len(self.removed),
            "removed_by_reason": self.removed_by_reason,
            "pii_scrubbed": dict(self.pii_found),
            "rows_scrubbed": len(self.scrubbed),
        }

    def preview(self, limit: int = 200, row_numbers: list[int] | None = None) -> list[dict]:
        """What would change: removed rows with the reason, then scrubbed rows before -> after."""
        out = []
        for index, (reason, detail) in sorted(self.removed.items())[:limit]:
            number = row_numbers[index] if row_numbers else index + 1
            out.append({"row": number, "action": "remove", "reason": reason, "detail": detail, "example": snippet(self.examples[index])})
        for index, after in sorted(self.scrubbed.items())[: max(0, limit - len(out))]:
            number = row_numbers[index] if row_numbers else index + 1
            out.append({"row": number, "action": "scrub PII", "reason": "pii", "detail": snippet(self.examples[index]), "example": snippet(after)})
        return out

    def summary(self) -> str:
        counts = self.counts()
        text = f"{counts['before']} examples -> {counts['after']} kept"
        if self.removed:
            text += " (removed: " + ", ".join(f"{n} {r}" for r, n in counts["removed_by_reason"].items()) + ")"
        if self.scrubbed:
            text += f"; PII scrubbed in {len(self.scrubbed)} rows (" + ", ".join(f"{n} {k}" for k, n in self.pii_found.items()) + ")"
        return text


def example_text(example: dict) -> str:
    if "text" in example:
        return example["text"]
    parts = [m["content"] for m in example["messages"]]
    if "rejected" in example:
        parts += [m["content"] for m in example["rejected"]]
    return "\n".join(parts)


def example_key(example: dict) -> str:
    """Exact-duplicate key of an example (cleaning's exact dedup and the split's contamination check)."""
    return hashlib.sha1(json.dumps(example, sort_keys=True).encode()).hexdigest()


def snippet(example: dict, width: int = 160) -> str:
    text = " | ".join(m["content"] for m in example["messages"]) if "messages" in example else example_text(example)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def is_empty(example: dict) -> bool:
    """Whitespace-only content anywhere in what the model reads or learns."""
    prompt, reply = prompt_and_reply(example)
    contents = [m["content"] or ("(tool call)" if m.get("tool_calls") else "") for m in example["messages"] if m["role"] != "system"]
    return not contents or any(not c.strip() for c in contents) or (not reply and "prompt" not in example)


def shingles(text: str, size: int = 3) -> set[bytes]:
    words = re.findall(r"\w+", text.lower())
    if len(words) < size:
        return {" ".join(words).encode()} if words else {b""}
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


def near_duplicate_clusters(examples: list[dict], threshold: float = 0.85, *, num_perm: int = 64, indices: list[int] | None = None) -> list[list[int]]:
    """Groups of near-identical examples (MinHash LSH), largest first; each group lists indices.

    LSH at `threshold` itself misses about half the pairs just above it (64 permutations band as
    4 x 15: a pair at Jaccard 0.89 collides with p = 0.53), so the index is queried at a looser
    threshold and each candidate is kept only when its estimated Jaccard reaches `threshold`."""
    from datasketch import MinHash, MinHashLSH

    indices = list(range(len(examples))) if indices is None else indices
    if len(indices) < 2:
        return []
    lsh = MinHashLSH(threshold=max(0.3, threshold - 0.2), num_perm=num_perm)
    hashes = MinHash.bulk([shingles(example_text(examples[i])) for i in indices], num_perm=num_perm)
    parent = {i: i for i in indices}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_index = dict(zip(indices, hashes))
    for index, minhash in zip(indices, hashes):
        for other in lsh.query(minhash):
            if minhash.jaccard(by_index[other]) >= threshold:
                parent[root(index)] = root(other)
        lsh.insert(index, minhash)
    groups: dict[int, list[int]] = {}
    for index in indices:
        groups.setdefault(root(index), []).append(index)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


def scrub(value, found: Counter):
    """Replace PII in every string of an example (nested lists/dicts); counts what was found."""
    if isinstance(value, str):
        for kind, (pattern, replacement) in PII_PATTERNS.items():
            value, count = pattern.subn(replacement, value)
            if count:
                found[kind] += count
        return value
    if isinstance(value, list):
        return [scrub(v, found) for v in value]
    if isinstance(value, dict):
        return {k: (scrub(v, found) if k not in ("role", "label") else v) for k, v in value.items()}
    return value


def plan_clean(examples: list[dict], options: CleanOptions, *, total_tokens: list[int] | None = None) -> CleanPlan:
    """Decide what each filter removes, in order: empty, exact dup, near dup, token length.

    `total_tokens` (one count per example, from `profile.token_lengths` with the chosen model's
    tokenizer) is needed for the token-length filter.
    """
    plan = CleanPlan(examples, options)
    if options.drop_empty:
        for index, example in enumerate(examples):
            if is_empty(example):
                plan.removed[index] = ("empty", "whitespace-only content")
    if options.exact_dedup:
        first: dict[str, int] = {}
        for index, example in enumerate(examples):
            if index in plan.removed:
                continue
            key = example_key(example)
            if key in first:
                plan.removed[index] = ("duplicate", f"same as row {first[key] + 1}")
            else:
                first[key] = index
    if options.near_dup_threshold:
        remaining = [i for i in range(len(examples)) if i not in plan.removed]
        for group in near_duplicate_clusters(examples, options.near_dup_threshold, indices=remaining):
            for index in group[1:]:
                plan.removed[index] = ("near duplicate", f"similar to row {group[0] + 1} (Jaccard ≥ {options.near_dup_threshold})")
    if options.min_tokens or options.max_tokens:
        if total_tokens is None or len(total_tokens) != len(examples):
            raise ValueError("the token-length filter needs one token count per example")
        for index, count in enumerate(total_tokens):
            if index in plan.removed:
                continue
            if options.max_tokens and count > options.max_tokens:
                plan.removed[index] = ("too long", f"{count} tokens > {options.max_tokens}")
            elif options.min_tokens and count < options.min_tokens:
                plan.removed[index] = ("too short", f"{count} tokens < {options.min_tokens}")
    if options.scrub_pii:
        for index in plan.kept:
            found: Counter = Counter()
            after = scrub(examples[index], found)
            if found:
                plan.scrubbed[index] = after
                plan.pii_found.update(found)
    return plan
