"""`python -m studio data inspect|render|prepare|versions ...` (and the short form `data PATH` = inspect)."""

from __future__ import annotations

import argparse
import json

from ..errors import StudioError
from .formats import FORMATS

ACTIONS = ("inspect", "render", "prepare", "split", "versions")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files (JSON, JSONL, CSV, TSV, Parquet, text) or saved dataset folders")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, help="override the detected format")
    parser.add_argument("--map", dest="mapping", default="", help="column mapping, e.g. 'question=instruction,answer=output'")
    parser.add_argument("--model", default="embedded", help="tokenizer for token counts (default: embedded)")


def _loss_options(parser: argparse.ArgumentParser) -> None:
    from .render import LOSS_ON, TRUNCATION_SIDES

    parser.add_argument("--loss-on", choices=tuple(LOSS_ON), default="all_assistant", help="which tokens train: " + "; ".join(f"{k}: {v}" for k, v in LOSS_ON.items()))
    parser.add_argument("--truncation-side", choices=TRUNCATION_SIDES, default="right", help="right: cut the end past max_length; left: cut the start (the prompt) instead")


def render_row(path: str, row: int, *, fmt: str | None = None, mapping: str | None = None, model: str = "embedded", max_length: int | None = None, loss_on: str = "all_assistant", truncation_side: str = "right") -> dict:
    """The `data render --json` object for one row id (0-based)."""
    from .loader import load_dataset_file
    from .profile import tokenizer_for
    from .render import describe, render

    loaded = load_dataset_file(path, fmt, mapping=mapping or None)
    if not 0 <= row < len(loaded.rows):
        raise StudioError(f"--row {row} is out of range: the dataset has rows 0..{len(loaded.rows) - 1} (0-based row ids).", where=str(path))
    by_id = dict(zip(loaded.kept, loaded.conversations))
    by_id.update(zip(getattr(loaded, "eval_kept", []), loaded.eval_conversations))
    if row not in by_id:
        origin = loaded.origins[row]
        problem = next((p for p in loaded.problems if p.row == origin[1] and p.file == origin[0] and p.severity == "error"), None)
        raise StudioError(f"row {row} is not usable" + (f": {problem}" if problem else "") + ".", where=str(path), hint="Fix the row, or pick another one (`data inspect` lists the problems).")
    example = by_id[row]
    rendered = render(example, tokenizer_for(model), loss_on="all" if "text" in example else loss_on, max_length=max_length, truncation_side=truncation_side)
    origin = loaded.origins[row]
    return {**describe(rendered), "row": row, "file_row": origin[1], "line": origin[2], "format": loaded.format, "max_length": max_length, "loss_on": loss_on}


def parse_fill(text: str | dict | None) -> dict[str, str]:
    """'name=Ada, author=Acme' (or lines of name=value, or a mapping) -> {"name": "Ada", "author": "Acme"}."""
    from .formats import placeholder_name

    if isinstance(text, dict):
        pairs = text.items()
    else:
        pairs = []
        for part in str(text or "").replace("\n", ",").split(","):
            if not part.strip():
                continue
            name, sep, value = part.partition("=")
            if not sep or not placeholder_name(name):
                raise StudioError(f"placeholder fill '{part.strip()}' is not of the form name=value.", hint="Example: name=Ada, author=Acme Labs")
            pairs.append((name, value))
    return {placeholder_name(k): str(v).strip() for k, v in pairs if placeholder_name(k)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m studio data", description="Inspect, clean and version datasets.")
    sub = parser.add_subparsers(dest="action", required=True)
    inspect = sub.add_parser("inspect", help="format, usable rows, every problem (row, line, field), token stats")
    _common(inspect)
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    inspect.add_argument("--max-length", type=int, default=512, help="token cutoff to count truncation against")
    inspect.add_argument("--no-tokens", action="store_true", help="skip token statistics (no tokenizer load)")
    _loss_options(inspect)
    render = sub.add_parser("render", help="one row through the model's chat template: the text, the trained text, whether the tools are in it")
    render.add_argument("path", metavar="PATH", help="a dataset file or saved version")
    render.add_argument("--row", type=int, required=True, help="0-based row id (as in a run's split.json; `data inspect` reports it as row N+1)")
    render.add_argument("--format", dest="fmt", choices=FORMATS, help="override the detected format")
    render.add_argument("--map", dest="mapping", default="", help="column mapping, e.g. 'question=instruction,answer=output'")
    render.add_argument("--model", default="embedded", help="whose tokenizer and chat template (default: embedded)")
    render.add_argument("--max-length", type=int, default=None, help="token cutoff: tokens past it are not in trained_text")
    render.add_argument("--json", action="store_true", help='print {"text", "trained_text", "tools_included", ...} as JSON')
    _loss_options(render)
    prepare = sub.add_parser("prepare", help="validate, clean, split and save a dataset version")
    _common(prepare)
    prepare.add_argument("--name", required=True, help="dataset name; saved as datasets/NAME/vN")
    prepare.add_argument("--eval-fraction", type=float, default=0.1)
    prepare.add_argument("--seed", type=int, default=42)
    prepare.add_argument("--mix-general", type=float, default=0.0, help="add this ratio of general-capability examples to train")
    prepare.add_argument("--keep-duplicates", action="store_true", help="skip exact dedup")
    prepare.add_argument("--keep-empty", action="store_true", help="keep whitespace-only rows")
    prepare.add_argument("--near-dup", type=float, default=None, help="drop near duplicates at this Jaccard similarity (e.g. 0.85)")
    prepare.add_argument("--min-tokens", type=int, default=None)
    prepare.add_argument("--max-tokens", type=int, default=None, help="drop examples longer than this (model's tokenizer)")
    prepare.add_argument("--scrub-pii", action="store_true", help="replace emails, phone numbers and keys")
    prepare.add_argument("--fill", default="", help="fill placeholders before saving, e.g. 'name=Ada,author=Acme' ({{name}}, {name} and <name>; `data inspect` lists them)")
    prepare.add_argument("--json", action="store_true")
    split = sub.add_parser("split", help="the train/eval split a run makes (row ids, studio.data.split) and the train rows that copy an eval row")
    split.add_argument("path", metavar="PATH", help="a dataset file or saved version (a version's own eval split wins)")
    split.add_argument("--eval-fraction", type=float, default=0.0, help="as the run config's eval_fraction")
    split.add_argument("--seed", type=int, default=42)
    split.add_argument("--near", type=float, default=0.85, help="Jaccard similarity of a near copy (0 checks exact copies only)")
    split.add_argument("--drop", metavar="NAME", help="save a dataset version NAME without the train rows that copy an eval row")
    split.add_argument("--json", action="store_true")
    versions = sub.add_parser("versions", help="list saved dataset versions")
    versions.add_argument("name", nargs="?")
    versions.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str]) -> int:
    if argv and argv[0] not in ACTIONS and not argv[0].startswith("-"):
        argv = ["inspect", *argv]  # the short form: `data PATH`
    args = build_parser().parse_args(argv)
    if args.action == "inspect":
        from .inspect import inspect_paths, render_text

        report = inspect_paths(
            args.paths, args.fmt, mapping=args.mapping, model=None if args.no_tokens else args.model, max_length=args.max_length,
            loss_on=args.loss_on, truncation_side=args.truncation_side,
        )
        print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else render_text(report))
        return 0
    if args.action == "render":
        result = render_row(args.path, args.row, fmt=args.fmt, mapping=args.mapping, model=args.model, max_length=args.max_length, loss_on=args.loss_on, truncation_side=args.truncation_side)
        if args.json:
            print(json.dumps(result, indent=2, ensure_ascii=False))
        else:
            print(result["text"])
            print(f"--- trained ({result['trained_tokens']} of {result['tokens']} tokens, loss on {result['loss_on']}, cut: {result['cut']}) ---")
            print(result["trained_text"])
            if result["tools_fallback"]:
                print("note: this chat template has no tool support; the tools and calls are written by the studio's fallback (studio/data/render.py).")
        return 0
    if args.action == "split":
        from . import split as one_split

        loaded = one_split.load_dataset_file(args.path)
        chosen = one_split.make_split(loaded, args.eval_fraction, args.seed, source=args.path)
        found = one_split.contamination(loaded, chosen, threshold=args.near or None)
        report = {"split": chosen.to_json(), "contamination": found.to_json()}
        if args.drop:
            report["saved"] = str(one_split.save_without_contamination(loaded, chosen, found, args.drop))
        if args.json:
            print(json.dumps(report, ensure_ascii=False))
        else:
            print(f"split: {chosen.describe()}")
            print(f"contamination: {found.summary()}")
            if args.drop:
                print(f"saved without them: {report['saved']}")
        return 0
    if args.action == "prepare":
        from .clean import CleanOptions
        from .versions import prepare

        options = CleanOptions(
            drop_empty=not args.keep_empty,
            exact_dedup=not args.keep_duplicates,
            near_dup_threshold=args.near_dup,
            min_tokens=args.min_tokens,
            max_tokens=args.max_tokens,
            scrub_pii=args.scrub_pii,
        )
        if args.near_dup is not None and not 0 < args.near_dup <= 1:
            raise StudioError(f"--near-dup must be a similarity between 0 and 1, got {args.near_dup}.")
        fill = parse_fill(args.fill)
        result = prepare(args.paths, args.name, fmt=args.fmt, mapping=args.mapping, clean=options, model=args.model, eval_fraction=args.eval_fraction, seed=args.seed, mix_ratio=args.mix_general, fill=fill)
        if args.json:
            print(json.dumps({**result.manifest, "path": str(result.path)}, indent=2, ensure_ascii=False))
        else:
            counts = result.manifest["counts"]
            print(f"saved {result.manifest['name']} {result.manifest['version']}: {counts['train']} train, {counts['eval']} eval ({counts['rows_read']} rows read, {counts['dropped_invalid']} invalid, {counts['before_cleaning'] - counts['after_cleaning']} removed by cleaning)")
            for warning in result.warnings:
                print(f"warning: {warning}")
            print(result.path / "data.parquet")
        return 0
    from .versions import list_versions

    manifests = list_versions(args.name)
    if args.json:
        print(json.dumps(manifests, indent=2, ensure_ascii=False))
    else:
        for m in manifests:
            print(f"{m['name']:30s} {m['version']:5s} {m['format']:12s} {m['counts']['train']:>7} train {m['counts']['eval']:>6} eval  {m['created']}  {m['path']}")
    return 0
