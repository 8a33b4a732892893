"""Inspect a dataset with bounded memory: one streaming pass counts rows, validates every row,
keeps the first problems (counting the rest) and a seeded reservoir sample for token statistics.

Memory: the duplicate index (8-byte hashes), a capped problem list and the sample; never the rows.
"""

from __future__ import annotations

import random
from pathlib import Path

from ..errors import StudioError
from .loader import scan

PROBLEM_LIMIT = 1000
SAMPLE_SIZE = 2000


def inspect_paths(
    paths: list[str | Path],
    fmt: str | None = None,
    *,
    mapping: dict | str | None = None,
    model: str | None = "embedded",
    max_length: int | None = 512,
    sample_size: int = SAMPLE_SIZE,
    seed: int = 0,
) -> dict:
    """The `data inspect --json` report. Raises StudioError when no row is usable."""
    rng = random.Random(seed)
    sample: list[dict] = []
    seen = 0

    def reservoir(index, record, example, origin) -> None:  # Algorithm R: a uniform sample in O(k) memory
        nonlocal seen
        if example is None or not model:
            return
        seen += 1
        item = (origin, example)
        if len(sample) < sample_size:
            sample.append(item)
        else:
            slot = rng.randrange(seen)
            if slot < sample_size:
                sample[slot] = item

    result = scan(paths, fmt, mapping=mapping, on_record=reservoir, problem_limit=PROBLEM_LIMIT)
    report = {
        "paths": [str(p) for p in paths],
        "format": result.format,
        "rows": result.rows,
        "valid_rows": result.valid,
        "dropped": result.rows - result.valid,
        "dropped_by_reason": dict(result.dropped_by_reason.most_common()),
        "warnings_by_reason": dict(result.warnings_by_reason.most_common()),
        "problem_count": result.problem_count,
        "problems": [p.to_json() for p in result.problems],
        "problems_truncated": result.problem_count > len(result.problems),
        "columns": result.columns,
        "token_stats": None,
    }
    if result.valid == 0:
        first = result.problems[0] if result.problems else None
        raise StudioError(
            f"no usable rows ({result.rows} read)" + (f"; first problem: {first}" if first else "") + ".",
            where=str(paths[0]),
            hint="Fix the rows listed by `python -m studio data inspect PATH`, or map the columns / pick the format.",
        )
    if model:
        from .profile import token_lengths, token_stats, tokenizer_for

        lengths = token_lengths([example for _, example in sample], tokenizer_for(model))
        stats = token_stats(lengths, max_length)
        stats.update({"model": model, "sampled_rows": len(sample), "sampled": len(sample) < result.valid})
        report["token_stats"] = stats
        if max_length:
            kind = "over max length" + (" (in sample)" if stats["sampled"] else "")
            over = sorted((origin, total) for (origin, _), (_, _, total) in zip(sample, lengths) if total > max_length)
            report["warnings_by_reason"][kind] = len(over)
            for (file, row, line), total in over[: max(0, PROBLEM_LIMIT - len(report["problems"]))]:
                message = f"{total} tokens > max_length {max_length}; the end will be cut"
                report["problems"].append({"row": row, "line": line, "field": "(row)", "message": message, "kind": kind, "severity": "warning", "file": file})
            report["problem_count"] += len(over)
    return report


def render_text(report: dict, limit: int = 50) -> str:
    lines = [
        f"{report['rows']} rows, format '{report['format']}', {report['valid_rows']} usable"
        + (f", {report['dropped']} dropped (" + ", ".join(f"{n} {k}" for k, n in report["dropped_by_reason"].items()) + ")" if report["dropped"] else "")
    ]
    warnings = {k: n for k, n in report["warnings_by_reason"].items() if n}
    if warnings:
        lines.append("kept with warnings: " + ", ".join(f"{n} {k}" for k, n in warnings.items()))
    stats = report.get("token_stats")
    if stats:
        total = stats["total"]
        text = f"tokens ({stats['model']}{', sample of ' + str(stats['sampled_rows']) if stats['sampled'] else ''}): total mean {total['mean']}, p95 {total['p95']}, max {total['max']}"
        if stats.get("max_length"):
            text += f"; {stats['truncated']} ({stats['truncated_pct']}%) over max_length {stats['max_length']}"
        lines.append(text)
    for problem in report["problems"][:limit]:
        where = (f"{problem['file']} " if problem["file"] else "") + f"row {problem['row']}" + (f" (line {problem['line']})" if problem["line"] else "")
        lines.append(f"  {where}, field '{problem['field']}': {problem['message']}" + (" (kept)" if problem["severity"] == "warning" else ""))
    if report["problem_count"] > limit:
        lines.append(f"  … {report['problem_count'] - limit} more (use --json for up to {PROBLEM_LIMIT})")
    return "\n".join(lines)
