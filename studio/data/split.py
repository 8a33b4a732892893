"""The one train/eval split. Every trainer, `evaluate`, the advisor and saved versions use it.

Row ids
    A row id is the 0-based position of a row in the dataset as loaded (`Loaded.rows`): every row
    the reader yielded, in file order, bad rows included. For a single JSONL/JSON/CSV file, row id
    = the 1-based row number shown in problem reports, minus one; a dropped bad row keeps its id,
    so the ids of the rows after it do not shift. For a saved version the rows are those of its
    data.parquet. `Loaded.kept[i]` is the row id of `Loaded.conversations[i]`, and
    `Loaded.eval_kept[i]` that of `Loaded.eval_conversations[i]` (a saved version's eval rows).

The rules (`make_split`)
    1. A saved version's own eval split wins: its train rows train, its eval rows are held out,
       whatever `eval_fraction` says.
    2. Otherwise, with `eval_fraction` > 0 and at least two usable rows: a shuffle of the usable row
       ids seeded with `seed`; round(n x eval_fraction) of them (at least one, never all) are eval.
    3. Otherwise every usable row trains and nothing is held out.
    The unit is a dataset row, so both halves of a preference pair (and a KTO row made from it)
    always land on the same side.

A run writes `split.json` in its folder: {"source": the data path, "train": [row ids], "eval":
[row ids], ...}; `eval_rows(run_dir)` reads it back for evaluation.

Contamination: `contamination(loaded, split)` finds train rows that are exact or near copies
(MinHash, studio.data.clean) of an eval row; `drop_contaminated` removes them from train. The same
pairs (`copy_pairs`) check a separate eval file against a run's train rows (`overlap_with_training`:
"N of M eval rows are in (or near copies of) this run's training rows"); evaluation drops them by default.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..errors import StudioError
from .clean import example_key, near_duplicate_clusters
from .loader import Loaded, load_dataset_file

SPLIT_FILE = "split.json"
NEAR_THRESHOLD = 0.85  # Jaccard similarity of word 3-grams above which two rows count as near copies


@dataclass
class Split:
    source: str  # the data path the run was given (the user's file or a saved version)
    train: list[int]  # row ids (see the module docstring)
    eval: list[int]
    origin: str = "none"  # "saved version" | "eval_fraction" | "none"
    eval_fraction: float = 0.0
    seed: int = 42
    dropped: list[int] = field(default_factory=list)  # train rows dropped as copies of eval rows

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict) -> "Split":
        known = {k: raw[k] for k in ("source", "train", "eval", "origin", "eval_fraction", "seed", "dropped") if k in raw}
        return cls(**known)

    def describe(self) -> str:
        if not self.eval:
            return f"{len(self.train)} rows train, none held out"
        how = "the saved version's eval split" if self.origin == "saved version" else f"eval_fraction {self.eval_fraction}, seed {self.seed}"
        return f"{len(self.train)} rows train, {len(self.eval)} held out ({how})"


# ---------------------------------------------------------------- the split


def split_positions(n: int, eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Positions 0..n-1 cut into (train, eval), both sorted: the seeded shuffle of rule 2."""
    if not 0 <= eval_fraction < 1:
        raise StudioError(f"eval fraction must be between 0 and 1, got {eval_fraction}.")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_eval = round(n * eval_fraction)
    if eval_fraction > 0 and n > 1:
        n_eval = min(max(n_eval, 1), n - 1)
    return sorted(order[n_eval:]), sorted(order[:n_eval])


def usable_ids(loaded: Loaded) -> list[int]:
    """Row ids of every usable row (train and a saved version's eval), ascending."""
    return sorted(list(loaded.kept) + list(getattr(loaded, "eval_kept", []) or []))


def examples_by_id(loaded: Loaded) -> dict[int, dict]:
    """Row id -> the row's internal example."""
    pairs = list(zip(loaded.kept, loaded.conversations)) + list(zip(getattr(loaded, "eval_kept", []) or [], loaded.eval_conversations))
    return dict(pairs)


def make_split(loaded: Loaded, eval_fraction: float = 0.0, seed: int = 42, *, source: str | Path | None = None) -> Split:
    """The split of one loaded dataset, by the rules in the module docstring."""
    source = str(source if source is not None else loaded.path)
    eval_kept = list(getattr(loaded, "eval_kept", []) or [])
    if eval_kept:
        return Split(source, sorted(loaded.kept), sorted(eval_kept), "saved version", eval_fraction, seed)
    ids = usable_ids(loaded)
    if eval_fraction <= 0 or len(ids) < 2:
        return Split(source, ids, [], "none", eval_fraction, seed)
    train, evaluation = split_positions(len(ids), eval_fraction, seed)
    return Split(source, [ids[i] for i in train], [ids[i] for i in evaluation], "eval_fraction", eval_fraction, seed)


def select(loaded: Loaded, ids: list[int]) -> Loaded:
    """A Loaded holding only the given rows (as `conversations`), so `to_trl` works on one side of a split."""
    by_id = examples_by_id(loaded)
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise StudioError(
            f"row id {missing[0]} is not a usable row of {loaded.path} (the file changed since the split was made?).",
            where=str(loaded.path),
            hint="Start a new run on the current file, or restore the file the run was trained on.",
        )
    return replace(loaded, conversations=[by_id[i] for i in ids], kept=list(ids), eval_conversations=[], eval_kept=[])


def examples(loaded: Loaded, ids: list[int]) -> list[dict]:
    return select(loaded, ids).conversations


# ---------------------------------------------------------------- contamination


@dataclass
class Contamination:
    """Train rows that copy an eval row: row id of the train row -> row id of an eval row it copies."""

    exact: dict[int, int] = field(default_factory=dict)
    near: dict[int, int] = field(default_factory=dict)
    eval_rows: int = 0
    threshold: float = NEAR_THRESHOLD

    @property
    def train_ids(self) -> list[int]:
        return sorted(set(self.exact) | set(self.near))

    @property
    def eval_ids_copied(self) -> list[int]:
        return sorted(set(self.exact.values()) | set(self.near.values()))

    def counts(self) -> dict:
        return {"exact": len(self.exact), "near": len(self.near), "train_rows": len(self.train_ids),
                "eval_rows_copied": len(self.eval_ids_copied), "eval_rows": self.eval_rows, "threshold": self.threshold}

    def to_json(self) -> dict:
        return {**self.counts(), "exact_pairs": [[t, e] for t, e in sorted(self.exact.items())], "near_pairs": [[t, e] for t, e in sorted(self.near.items())]}

    def summary(self) -> str:
        if not self.train_ids:
            return f"no train row copies any of the {self.eval_rows} eval rows"
        return (f"{len(self.train_ids)} train rows copy {len(self.eval_ids_copied)} of the {self.eval_rows} eval rows "
                f"({len(self.exact)} exact, {len(self.near)} near duplicates, Jaccard ≥ {self.threshold}): "
                "the eval figures would be measured partly on trained data")


def contamination(loaded: Loaded, split: Split, threshold: float | None = NEAR_THRESHOLD) -> Contamination:
    """Exact (same example) and near (MinHash LSH, `threshold`) copies of eval rows among train rows.

    Uses studio.data.clean's example key and near-duplicate clusters, the same as the cleaning step.
    `threshold=None` checks exact copies only."""
    result = Contamination(eval_rows=len(split.eval), threshold=threshold or 0.0)
    exact, near = copy_pairs(examples_by_id(loaded), split.train, split.eval, threshold)
    for train_row, eval_row in exact:
        result.exact.setdefault(train_row, eval_row)
    for train_row, eval_row in near:
        result.near.setdefault(train_row, eval_row)
    return result


def copy_pairs(by_id: dict, train: list, evaluation: list, threshold: float | None = NEAR_THRESHOLD) -> tuple[list[tuple], list[tuple]]:
    """(exact, near): every (train row, eval row) pair where the train row is the same example as the
    eval row, or (not exact) in one MinHash near-duplicate cluster with it (Jaccard >= threshold),
    in eval-row order. `by_id` maps both sides' ids to internal examples (the ids must not collide)."""
    if not evaluation or not train:
        return [], []
    eval_by_key: dict[str, list] = {}
    for row in evaluation:
        eval_by_key.setdefault(example_key(by_id[row]), []).append(row)
    exact = [(row, match) for row in train for match in eval_by_key.get(example_key(by_id[row]), [])]
    near = []
    if threshold:
        eval_set, matched = set(evaluation), {t for t, _ in exact}
        ids = [i for i in train if i not in matched] + list(evaluation)
        for group in near_duplicate_clusters(by_id, threshold, indices=ids):
            evals = [i for i in group if i in eval_set]
            near += [(row, e) for row in group if row not in eval_set for e in evals]
    return exact, near


@dataclass
class Overlap:
    """Rows of a separate eval file that are in (or near copies of) a run's training rows:
    eval row id -> the train row id it copies (ids of each file as loaded)."""

    rows: int  # eval rows checked
    train_source: str
    exact: dict[int, int] = field(default_factory=dict)
    near: dict[int, int] = field(default_factory=dict)
    threshold: float = NEAR_THRESHOLD

    @property
    def ids(self) -> list[int]:
        return sorted(set(self.exact) | set(self.near))

    def summary(self) -> str:
        return (f"{len(self.ids)} of {self.rows} eval rows are in (or near copies of) this run's training rows "
                f"({len(self.exact)} exact, {len(self.near)} near, Jaccard ≥ {self.threshold})")

    def to_json(self) -> dict:
        return {"checked": True, "rows": self.rows, "copies": len(self.ids), "exact": len(self.exact), "near": len(self.near),
                "threshold": self.threshold, "train_source": self.train_source, "row_ids": self.ids,
                "pairs": [[e, t] for e, t in sorted({**self.near, **self.exact}.items())], "summary": self.summary()}


def _signature(path: Path) -> tuple:
    try:
        stat = path.stat()
        return str(path), stat.st_mtime_ns, stat.st_size
    except OSError:
        return str(path), None, None


def _run_split_and_config(run_dir: str | Path):
    from ..config import RunConfig

    cfg = RunConfig.of_run(run_dir) or RunConfig()
    split = read(run_dir)
    return split, cfg, str(split.source if split else cfg.data)


def run_train_rows(run_dir: str | Path) -> tuple[Loaded, Split]:
    """The run's training data and split: RUN/split.json, or for a run older than split.json the same
    `make_split` from its config. StudioError when the training data is gone."""
    split, cfg, named = _run_split_and_config(run_dir)
    train_path = Path(named)
    if not named or not train_path.exists():
        raise StudioError(f"the run's training data {named or '(none recorded)'} is gone.", hint="Pass an eval file (--data FILE).")
    loaded = load_dataset_file(train_path)
    if split is None:  # a run from before split.json: the same rule, from its config
        split = make_split(loaded, cfg.eval_fraction, cfg.seed, source=train_path)
    return loaded, split


def overlap_with_training(run_dir: str | Path, loaded: Loaded, ids: list[int], threshold: float | None = NEAR_THRESHOLD) -> Overlap:
    """Which of the rows `ids` of a separate eval file (`loaded`) are exact or near copies of the run's
    train rows (split.json "train"): the contamination check of `copy_pairs`, across two files.
    Cached per (run, eval file, both files' mtimes): the Evaluate tab asks on every option change."""
    named = _run_split_and_config(run_dir)[2]
    key = (_signature(Path(run_dir) / SPLIT_FILE), _signature(Path(run_dir) / "config.yaml"), _signature(Path(named)),
           _signature(Path(loaded.path)), tuple(ids), threshold)
    if key not in _OVERLAPS:
        train_loaded, split = run_train_rows(run_dir)
        by_train = examples_by_id(train_loaded)
        by_eval = examples_by_id(loaded)
        # one id space for both files: train ids as they are, eval row i as -1 - i
        by_id = {**{i: by_train[i] for i in split.train if i in by_train}, **{-1 - i: by_eval[i] for i in ids if i in by_eval}}
        exact, near = copy_pairs(by_id, [i for i in split.train if i in by_train], [-1 - i for i in ids if i in by_eval], threshold)
        found = Overlap(len(ids), str(split.source), threshold=threshold or 0.0)
        for train_row, eval_key in exact:
            found.exact.setdefault(-1 - eval_key, train_row)
        for train_row, eval_key in near:
            if -1 - eval_key not in found.exact:
                found.near.setdefault(-1 - eval_key, train_row)
        if len(_OVERLAPS) > 16:
            _OVERLAPS.clear()
        _OVERLAPS[key] = found
    return _OVERLAPS[key]


_OVERLAPS: dict[tuple, Overlap] = {}


def drop_contaminated(split: Split, found: Contamination) -> Split:
    """The split with the contaminating train rows removed (recorded in `dropped`)."""
    gone = set(found.train_ids)
    return replace(split, train=[i for i in split.train if i not in gone], dropped=sorted(set(split.dropped) | gone))


def check(data: str | Path, eval_fraction: float = 0.0, seed: int = 42, threshold: float | None = NEAR_THRESHOLD) -> tuple[Loaded, Split, Contamination]:
    """What a run on `data` would hold out, and the train rows that copy an eval row (the Train tab's check)."""
    loaded = load_dataset_file(data)
    chosen = make_split(loaded, eval_fraction, seed, source=data)
    return loaded, chosen, contamination(loaded, chosen, threshold)


def clean_version_name(loaded: Loaded) -> str:
    """The name for a version saved without eval copies: the source version's name, or the file's stem."""
    base = (loaded.manifest or {}).get("name") or Path(loaded.path).stem
    return base if base.endswith("-no-eval-copies") else f"{base}-no-eval-copies"  # again: its next version


def save_without_contamination(loaded: Loaded, split: Split, found: Contamination, name: str | None = None) -> Path:
    """The "drop them" action: a new saved dataset version whose train rows are the split's train rows
    minus those that copy an eval row, and whose eval rows are the split's eval rows (so any run on
    it keeps exactly this held-out set). Returns the version folder."""
    from .versions import save_version

    if not split.eval:
        raise StudioError("this dataset has no eval rows, so no train row can copy one.", hint="Set an eval fraction (or save a version with an eval split) first.")
    clean = drop_contaminated(split, found)
    counts = {"rows_read": len(loaded.rows), "dropped_eval_copies": len(found.train_ids), **{f"eval_copies_{k}": v for k, v in found.counts().items() if k in ("exact", "near")}}
    return save_version(
        name or clean_version_name(loaded), examples(loaded, clean.train), examples(loaded, clean.eval), loaded.format,
        sources=list(loaded.paths) or [Path(loaded.path)],
        filters=[{"filter": "drop_eval_copies", "library": "datasketch MinHashLSH", "threshold": found.threshold, "dropped_rows": found.train_ids}],
        counts=counts,
        extra={"split": {"from": split.origin, "eval_fraction": split.eval_fraction, "seed": split.seed, "source": split.source}},
    )


# ---------------------------------------------------------------- runs


def write(run_dir: str | Path, split: Split, found: Contamination | None = None) -> Path:
    """Write RUN/split.json (atomically: several ranks of one run may write the same file)."""
    path = Path(run_dir) / SPLIT_FILE
    payload = split.to_json()
    if found is not None:
        payload["contamination"] = found.counts()
    staging = path.with_name(f".{SPLIT_FILE}.{os.getpid()}")
    staging.write_text(json.dumps(payload) + "\n")
    staging.replace(path)
    return path


def read(run_dir: str | Path) -> Split | None:
    path = Path(run_dir) / SPLIT_FILE
    try:
        return Split.from_json(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, TypeError):
        return None


def for_run(cfg, run_dir: str | Path | None, loaded: Loaded | None = None, log: Callable[[str], None] | None = None) -> tuple[Loaded, Split]:
    """The split a trainer uses: made from `cfg` (data, eval_fraction, seed), checked for
    contamination (dropped when `cfg.drop_contaminated`), logged and written to RUN/split.json."""
    log = log or (lambda message: None)
    loaded = loaded if loaded is not None else load_dataset_file(cfg.data)
    split = make_split(loaded, cfg.eval_fraction, cfg.seed, source=cfg.data)
    found = contamination(loaded, split)
    log(f"split: {split.describe()}")
    if found.train_ids:
        if getattr(cfg, "drop_contaminated", False):
            split = drop_contaminated(split, found)
            log(f"contamination: {found.summary()}; dropped those {len(found.train_ids)} train rows (drop_contaminated)")
        else:
            log(f"contamination: {found.summary()}. Set drop_contaminated: true (or press Drop them in the Train tab) to drop them.")
    elif split.eval:
        log(f"contamination: {found.summary()}")
    if not split.train:
        raise StudioError("no training rows are left after the split.", where=str(cfg.data), hint="Lower eval_fraction or add data.")
    if run_dir is not None:
        before = read(run_dir)
        if before is not None and (before.train, before.eval) != (split.train, split.eval):  # a resumed run whose data changed
            log(f"warning: {SPLIT_FILE} of this run held out other rows ({len(before.eval)} eval ids) than the data gives now "
                f"({len(split.eval)}): {cfg.data} changed since the run started, so earlier eval rows may have been trained on")
        write(run_dir, split, found)
    return loaded, split


def _held_out_rows_copied(run_dir: Path) -> bool:
    """Whether the run's held-out rows may have copies among the rows it trained on: split.json counted
    such train rows and the run kept them, or the run predates split.json (unknown)."""
    try:
        raw = json.loads((run_dir / SPLIT_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return True
    counts = raw.get("contamination") if isinstance(raw, dict) else None
    if not isinstance(counts, dict):
        return True  # written before the contamination check: unknown
    return bool(counts.get("train_rows")) and not raw.get("dropped")


def eval_example(example: dict) -> dict:
    """What evaluation scores of an internal example: its conversation and, when it has them, its tools
    schemas (they reach the chat template exactly as in training, through studio.data.render)."""
    return {"messages": example["messages"], **({"tools": example["tools"]} if example.get("tools") else {})}


def eval_rows(run_dir: str | Path, *, data: str | Path | None = None, max_examples: int | None = 64,
              drop_overlap: bool = True) -> tuple[list[dict], dict]:
    """The examples to evaluate a run on ({"messages", "tools" when the row has them}; see
    `eval_example`), and where they came from (`source`).

    Order of preference: an explicit file `data` (all its usable rows); the run's held-out rows
    (split.json, or for a run older than split.json the same `make_split` from its config); a
    `<data stem>.heldout.jsonl` beside the training data; else the training rows themselves,
    labelled as such. `source["rows"]` lists the row ids evaluated, in order (ids of the file named
    in `source["path"]`); with a held-out split they are a subset of split.json's "eval".

    A separate eval file (explicit or the companion) is checked against the run's train rows with
    the split's contamination machinery (`overlap_with_training`): `source["overlap"]` says how many
    of its rows are exact or near copies, and with `drop_overlap` (the default: a base-vs-tuned figure
    is about new inputs) those rows are left out (`source["overlap"]["dropped"]`). The run's own
    held-out rows get the same check when split.json counted train rows copying them that the run
    did not drop (`drop_contaminated: false`), or when the run predates split.json.
    Only rows whose conversation ends with an assistant reply are evaluated, at most `max_examples`;
    KTO rows labelled undesirable are no reference answer and are skipped (`source["undesirable_skipped"]`).
    """
    run_dir = Path(run_dir)
    check = bool(data)  # rows that may copy the run's train rows: check them (overlap_with_training)
    if data:
        loaded = load_dataset_file(data)
        ids = usable_ids(loaded)
        source = {"kind": "file", "path": str(data)}
    else:
        try:
            loaded, split = run_train_rows(run_dir)
        except StudioError as err:
            raise StudioError(f"{err.message.rstrip('.')}, so there is nothing to evaluate on.", hint=err.hint) from None
        train_path = Path(split.source)
        companion = train_path.with_name(train_path.stem + ".heldout.jsonl")
        if split.eval:
            ids = split.eval
            source = {"kind": "held-out split", "path": str(train_path), "origin": split.origin, "fraction": split.eval_fraction}
            check = _held_out_rows_copied(run_dir)
        elif companion.is_file():
            loaded = load_dataset_file(companion)
            ids = usable_ids(loaded)
            source = {"kind": "held-out file", "path": str(companion)}
            check = True
        else:
            ids = split.train
            source = {"kind": "training data (not held out)", "path": str(train_path)}
    by_id = examples_by_id(loaded)
    usable = [i for i in ids if i in by_id and by_id[i]["messages"] and by_id[i]["messages"][-1]["role"] == "assistant"]
    undesirable = [i for i in usable if by_id[i].get("label") is False]
    if undesirable:
        usable = [i for i in usable if i not in set(undesirable)]
        source["undesirable_skipped"] = len(undesirable)
    if check:
        try:
            found = overlap_with_training(run_dir, loaded, usable)
        except StudioError as err:  # the training data is gone: say the check could not run
            source["overlap"] = {"checked": False, "reason": err.message}
        else:
            source["overlap"] = {**found.to_json(), "dropped": bool(drop_overlap and found.ids)}
            if drop_overlap and found.ids:
                gone = set(found.ids)
                if len(gone) == len(usable):
                    raise StudioError(
                        f"all {len(usable)} rows of {source['path']} are in (or near copies of) this run's training rows, so none is held out.",
                        where=source["path"],
                        hint=("Leave the eval file empty to use the run's held-out split, or " if data else "Pass a held-out eval file (--data FILE), or ")
                        + "evaluate them anyway (--no-drop-overlap; the Evaluate tab: untick 'Evaluate only rows not trained on'), labelled as trained-on rows.",
                    )
                usable = [i for i in usable if i not in gone]
    picked = usable[:max_examples] if max_examples is not None else usable
    if not picked:
        raise StudioError(f"no usable examples to evaluate on in {source['path']}.", hint="Each example needs an assistant reply.")
    source["rows"] = picked
    source["examples"] = len(picked)
    if source.get("overlap", {}).get("checked"):
        source["overlap"]["evaluated"] = len(set(picked) & set(source["overlap"]["row_ids"]))  # copies among the rows scored
        if source["overlap"]["evaluated"] == len(picked):
            source["held_out"] = False  # every row scored was trained on
    return [eval_example(by_id[i]) for i in picked], source
