"""Inspect a dataset with bounded memory: one streaming pass counts rows, validates every row,
keeps the first problems (counting the rest) and a seeded reservoir sample for token statistics.

Memory: the duplicate index (8-byte hashes), a capped problem list and the sample; never the rows.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from ..errors import StudioError
from .formats import USED_COLUMNS, detect_format, row_placeholders
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
    loss_on: str = "all_assistant",
    truncation_side: str = "right",
) -> dict:
    """The `data inspect --json` report. Raises StudioError when no row is usable.

    Besides validity: unresolved placeholders (counted over every usable row), KTO labels, rows
    with tools, the columns the format does not use ("not used"), and, with a model, token stats
    and the rows whose trained part `max_length` cuts off entirely ("answer cut off") or partly
    ("answer partly cut"), by `studio.data.render` (the function training uses).
    """
    rng = random.Random(seed)
    sample: list[dict] = []
    seen = 0
    placeholders: Counter = Counter()
    placeholder_rows: list[dict] = []
    labels: Counter = Counter()
    tool_rows = 0

    def reservoir(index, record, example, origin) -> None:  # Algorithm R: a uniform sample in O(k) memory
        nonlocal seen, tool_rows
        if example is None:
            return
        row_format = fmt if fmt not in (None, "", "auto") else (detect_format(record.data) or "")
        for where, counts in row_placeholders(record.data, row_format).items():
            placeholders.update(counts)
            if len(placeholder_rows) < PROBLEM_LIMIT:
                placeholder_rows.append({"row": origin[1], "line": origin[2], "field": where, "file": origin[0], "counts": counts})
        if "label" in example:
            labels["desirable" if example["label"] else "undesirable"] += 1
        tool_rows += bool(example.get("tools")) or any(m.get("tool_calls") for m in example["messages"])
        if not model:
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
        "not_used": [c for c in result.columns if c not in USED_COLUMNS.get(result.format, ()) and c != "split"],
        "placeholders": dict(placeholders.most_common()),
        "token_stats": None,
    }
    if labels:
        report["kto_labels"] = {"desirable": labels["desirable"], "undesirable": labels["undesirable"]}
    if tool_rows:
        report["tool_rows"] = tool_rows
    if placeholder_rows:
        report["warnings_by_reason"]["unresolved placeholder"] = len({(p["file"], p["row"]) for p in placeholder_rows})
        for item in placeholder_rows[: max(0, PROBLEM_LIMIT - len(report["problems"]))]:
            found = ", ".join(f"{name} x{n}" if n > 1 else name for name, n in item["counts"].items())
            message = f"unresolved placeholder {found}; fill it (Data tab, or `data prepare --fill name=value`) or the model learns the literal text"
            report["problems"].append({"row": item["row"], "line": item["line"], "field": item["field"], "message": message, "kind": "unresolved placeholder", "severity": "warning", "file": item["file"]})
            report["problem_count"] += 1
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
                message = f"{total} tokens > max_length {max_length}; the {'end' if truncation_side == 'right' else 'start'} will be cut"
                report["problems"].append({"row": row, "line": line, "field": "(row)", "message": message, "kind": kind, "severity": "warning", "file": file})
            report["problem_count"] += len(over)
        report.update(_cut_and_tools(sample, tokenizer_for(model), max_length, loss_on, truncation_side, report))
    return report


def _cut_and_tools(sample: list, tokenizer, max_length: int | None, loss_on: str, side: str, report: dict) -> dict:
    """Render the sample as training does: answers cut by max_length, tools written by the fallback."""
    from .render import render

    cut = {"entire": [], "partial": []}
    fallback = 0
    for (file, row, line), example in sample:
        rendered = render(example, tokenizer, loss_on="all" if "text" in example else loss_on, max_length=max_length, truncation_side=side)
        fallback += rendered.tools_fallback
        if rendered.cut in cut:
            cut[rendered.cut].append((file, row, line, rendered))
    for key, kind in (("entire", "answer cut off"), ("partial", "answer partly cut")):
        if not max_length:
            break
        report["warnings_by_reason"][kind] = len(cut[key])
        for file, row, line, rendered in cut[key][: max(0, PROBLEM_LIMIT - len(report["problems"]))]:
            if key == "entire":
                message = f"all {rendered.trained_total} trained tokens lie past max_length {max_length} ({len(rendered.input_ids)} tokens, truncation_side {side}); training drops this row. Raise max_length or set truncation_side: left"
            else:
                message = f"{rendered.trained_total - rendered.trained_kept} of {rendered.trained_total} trained tokens lie past max_length {max_length} and are cut"
            report["problems"].append({"row": row, "line": line, "field": "(row)", "message": message, "kind": kind, "severity": "warning", "file": file})
        report["problem_count"] += len(cut[key])
    if fallback:
        report["warnings_by_reason"]["tools in fallback block"] = fallback
    extra = {"cut": {"max_length": max_length, "truncation_side": side, "loss_on": loss_on, "entirely": len(cut["entire"]), "partly": len(cut["partial"]), "rows_rendered": len(sample)}}
    if fallback:
        extra["tools_fallback"] = (
            f"{fallback} row(s) have tools or tool calls, and this model's chat template has no tool support: the studio "
            "writes the tools schema as a system block and each call as <tool_call> JSON (studio/data/render.py)."
        )
    return extra


def render_text(report: dict, limit: int = 50) -> str:
    lines = [
        f"{report['rows']} rows, format '{report['format']}', {report['valid_rows']} usable"
        + (f", {report['dropped']} dropped (" + ", ".join(f"{n} {k}" for k, n in report["dropped_by_reason"].items()) + ")" if report["dropped"] else "")
    ]
    warnings = {k: n for k, n in report["warnings_by_reason"].items() if n}
    if warnings:
        lines.append("kept with warnings: " + ", ".join(f"{n} {k}" for k, n in warnings.items()))
    if report.get("kto_labels"):
        labels = report["kto_labels"]
        lines.append(f"KTO labels: {labels['desirable']} desirable, {labels['undesirable']} undesirable (SFT methods train on the desirable rows only)")
    if report.get("placeholders"):
        lines.append("unresolved placeholders: " + ", ".join(f"{name} x{n}" for name, n in report["placeholders"].items()))
    if report.get("tools_fallback"):
        lines.append("tools: " + report["tools_fallback"])
    if report.get("not_used"):
        lines.append("not used: " + ", ".join(report["not_used"]) + " (columns the studio ignores for this format)")
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
