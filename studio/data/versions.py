"""Saved, versioned datasets: `$STUDIO_HOME/datasets/<name>/<version>/{data.parquet, manifest.json}`.

The manifest records the source files with their sha256, the filters applied, counts before and
after (and what was dropped, why), the schema and the train/eval split. A version is never
overwritten: each save makes the next `vN`. Train on a version by giving its folder or its
data.parquet as `data:`; the run's config then names the exact version.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import StudioError
from .. import paths
from ..paths import datasets_dir
from ..resources import asset
from .clean import CleanOptions, plan_clean
from .formats import SFT_FORMATS, fill_placeholders, portable
from .loader import Loaded, load_dataset_file, load_dataset_files, to_trl
from .split import split_positions

GENERAL_SLICE = asset("demo/general_slice.jsonl")
MIN_EVAL = 20  # below this, the eval loss is too noisy to tell whether the tune helped
STORED_KIND = {"preference": "preference", "kto": "kto", "prompt_only": "prompt_only", "text": "text"}  # else "messages"


def sha256_of(path: Path) -> str:
    if path.is_dir():
        digest = hashlib.sha256()
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(item.relative_to(path).as_posix().encode())
            digest.update(sha256_of(item).encode())
        return digest.hexdigest()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def safe_name(name: str) -> str:
    return paths.safe_name(name, what="dataset")


def split_examples(examples: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict], list[str]]:
    """The one split (studio.data.split.split_positions), with warnings when the eval set is missing or too small."""
    train_positions, eval_positions = split_positions(len(examples), eval_fraction, seed)
    eval_set = [examples[i] for i in eval_positions]
    train = [examples[i] for i in train_positions]
    n_eval = len(eval_set)
    warnings = []
    if n_eval == 0:
        warnings.append("No eval set: without one you cannot tell whether the tune helped. Hold out 5-10% (eval fraction 0.05-0.1).")
    elif n_eval < MIN_EVAL:
        warnings.append(f"Only {n_eval} eval examples: the eval loss will be noisy. Aim for at least {MIN_EVAL} (raise the eval fraction or add data).")
    if not train:
        raise StudioError("the eval fraction leaves no training examples; lower it.")
    return train, eval_set, warnings


def general_slice() -> list[dict]:
    return [{"messages": row["messages"]} for row in map(json.loads, GENERAL_SLICE.read_text().splitlines()) if row]


def mix_general(train: list[dict], ratio: float, seed: int, fmt: str) -> tuple[list[dict], int]:
    """Add `ratio` x len(train) general-capability examples (sampled, seeded) against forgetting."""
    if not ratio:
        return train, 0
    if fmt not in SFT_FORMATS and fmt != "messages":
        raise StudioError(f"the general-capability slice is conversations; it cannot be mixed into '{fmt}' data.", hint="Set the mix ratio to 0.")
    if not 0 < ratio <= 1:
        raise StudioError(f"mix ratio must be between 0 and 1, got {ratio}.")
    pool = general_slice()
    wanted = max(1, round(len(train) * ratio))
    rng = random.Random(seed)
    picked = [pool[i % len(pool)] for i in rng.sample(range(max(wanted, len(pool))), wanted)] if wanted > len(pool) else rng.sample(pool, wanted)
    mixed = train + picked
    rng.shuffle(mixed)
    return mixed, wanted


def stored_rows(examples: list[dict], fmt: str, split: str) -> list[dict]:
    kind = STORED_KIND.get(fmt, "messages")
    holder = Loaded(Path("."), fmt, [], examples)
    return [{**portable(row), "split": split} for row in to_trl(holder, kind)]


def next_version(folder: Path) -> str:
    numbers = [int(p.name[1:]) for p in folder.glob("v*") if p.name[1:].isdigit()]
    return f"v{max(numbers, default=0) + 1}"


def save_version(
    name: str,
    train: list[dict],
    eval_set: list[dict],
    fmt: str,
    *,
    sources: list[Path],
    filters: list[dict],
    counts: dict,
    extra: dict | None = None,
) -> Path:
    """Write data.parquet + manifest.json as the next version of `name`; returns the version folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = datasets_dir() / safe_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    version = next_version(folder)
    target = folder / version
    staging = folder / f".{version}.partial"
    staging.mkdir(exist_ok=True)
    rows = stored_rows(train, fmt, "train") + stored_rows(eval_set, fmt, "eval")
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, staging / "data.parquet")
    stored_format = STORED_KIND.get(fmt, "messages")
    manifest = {
        "name": safe_name(name),
        "version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "format": stored_format,
        "source_format": fmt,
        "sources": [{"path": str(Path(p).resolve()), "sha256": sha256_of(Path(p))} for p in sources if Path(p).exists()],
        "filters": filters,
        "counts": {**counts, "train": len(train), "eval": len(eval_set)},
        "schema": {f.name: str(f.type) for f in table.schema},
        **(extra or {}),
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    staging.rename(target)  # a version appears whole or not at all
    return target


def list_versions(name: str | None = None) -> list[dict]:
    manifests = []
    for path in sorted(datasets_dir().glob("*/v*/manifest.json")):
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if name and manifest.get("name") != name:
            continue
        manifest["path"] = str(path.parent)
        manifests.append(manifest)
    return sorted(manifests, key=lambda m: (m.get("name", ""), int(str(m.get("version", "v0"))[1:] or 0)))


def apply_edits(loaded: Loaded, edits: dict[int, str], deleted: set[int], staging: Path) -> Path:
    """Write the dataset with the user's edits (row index -> new JSON text) and deletions to a new
    JSONL file under `staging`; the original file is never touched. Returns the new file."""
    lines = []
    for index in range(len(loaded.rows)):
        if index in deleted:
            continue
        text = edits.get(index, loaded.raw_text(index)).strip()
        if index in edits:
            try:
                json.loads(text)
            except json.JSONDecodeError as err:
                file, row, _ = loaded.origins[index] if loaded.origins else (None, index + 1, None)
                raise StudioError(f"your edit of row {row} is not valid JSON ({err.msg}, column {err.colno}).", hint="Fix it in the table and save again.") from None
        lines.append(" ".join(text.splitlines()))
    staging.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]
    target = staging / f"edited-{digest}.jsonl"
    target.write_text("\n".join(lines) + "\n")
    return target


@dataclass
class PrepareResult:
    path: Path
    manifest: dict
    warnings: list[str] = field(default_factory=list)


def prepare(
    paths: list[str | Path],
    name: str,
    *,
    fmt: str | None = None,
    mapping: dict | str | None = None,
    clean: CleanOptions | None = None,
    model: str = "embedded",
    eval_fraction: float = 0.1,
    seed: int = 42,
    mix_ratio: float = 0.0,
    loaded: Loaded | None = None,
    edited_from: Loaded | None = None,
    fill: dict[str, str] | None = None,
) -> PrepareResult:
    """The whole pipeline: load -> validate -> (fill placeholders) -> clean -> split -> mix -> save a version.

    `fill` maps placeholder names to values ({"name": "Ada"} fills {{name}}, {name} and <name>, by
    the rule of `formats.find_placeholders`)."""
    loaded = loaded or load_dataset_files(paths, fmt, mapping=mapping)
    clean = clean or CleanOptions()
    examples = loaded.conversations + loaded.eval_conversations
    if fill:
        examples = [fill_placeholders(example, fill) for example in examples]
    total_tokens = None
    if clean.min_tokens or clean.max_tokens:
        from .profile import token_lengths, tokenizer_for

        total_tokens = [t for _, _, t in token_lengths(examples, tokenizer_for(model))]
    plan = plan_clean(examples, clean, total_tokens=total_tokens)
    cleaned = plan.apply()
    if not cleaned:
        raise StudioError("cleaning removed every example; loosen the filters.", hint=plan.summary())
    train, eval_set, warnings = split_examples(cleaned, eval_fraction, seed)
    train, mixed = mix_general(train, mix_ratio, seed, loaded.format)
    source_paths = list(edited_from.paths if edited_from else []) + list(loaded.paths)
    counts = {
        "rows_read": len(loaded.rows),
        "valid": len(examples),
        "dropped_invalid": loaded.dropped,
        "dropped_by_reason": loaded.dropped_by_reason,
        "warnings_by_reason": loaded.warnings_by_reason,
        "before_cleaning": plan.counts()["before"],
        "after_cleaning": plan.counts()["after"],
        "removed_by_cleaning": plan.removed_by_reason,
        "pii_scrubbed": plan.counts()["pii_scrubbed"],
        "general_mixed_in": mixed,
    }
    extra = {
        "split": {"eval_fraction": eval_fraction, "seed": seed},
        "mix": {"general_slice": str(GENERAL_SLICE.name), "ratio": mix_ratio, "added": mixed} if mixed else None,
        "mapping": loaded.mapping or None,
        "tokenizer_model": model if total_tokens else None,
        "warnings": warnings,
        "placeholders_filled": dict(fill) if fill else None,
    }
    if edited_from is not None:
        extra["edited"] = True
    path = save_version(name, train, eval_set, loaded.format, sources=source_paths, filters=clean.describe(), counts=counts, extra=extra)
    return PrepareResult(path, json.loads((path / "manifest.json").read_text()), warnings)


def load_version(path: str | Path) -> Loaded:
    return load_dataset_file(path)
