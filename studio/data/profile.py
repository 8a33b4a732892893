"""Dataset profile: token lengths through the chosen model's chat template, truncation against the
max length, turn counts and the largest near-duplicate clusters, with plotly figures."""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import dataclass, field

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .clean import near_duplicate_clusters, snippet


@functools.lru_cache(maxsize=2)
def tokenizer_for(model: str = "embedded"):
    """The model's tokenizer (read-only, cached per process: loading it takes seconds)."""
    from .. import models

    return models.load_tokenizer(models.resolve(model))


def token_lengths(examples: list[dict], tokenizer) -> list[tuple[int, int, int]]:
    """(prompt, response, total) tokens per example, rendered with the model's chat template.

    Texts are rendered first and tokenised in one batch (the Rust tokenizer is much faster batched).
    """
    from .render import texts

    prompts, totals = [], []
    for example in examples:  # the same rendering as training (tools schemas included)
        prompt_text, full = texts(example, tokenizer)
        prompts.append(prompt_text)
        totals.append(full)
    encode = lambda texts: [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []  # noqa: E731
    prompt_counts, total_counts = encode(prompts), encode(totals)
    return [(p, max(t - p, 0), t) for p, t in zip(prompt_counts, total_counts)]


def describe(values: list[int]) -> dict:
    if not values:
        return {"min": 0, "mean": 0.0, "p50": 0, "p95": 0, "max": 0}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]  # noqa: E731
    return {"min": ordered[0], "mean": round(sum(ordered) / len(ordered), 1), "p50": pick(0.5), "p95": pick(0.95), "max": ordered[-1]}


def token_stats(lengths: list[tuple[int, int, int]], max_length: int | None) -> dict:
    totals = [t for _, _, t in lengths]
    stats = {
        "examples": len(lengths),
        "prompt": describe([p for p, _, _ in lengths]),
        "response": describe([r for _, r, _ in lengths]),
        "total": describe(totals),
        "max_length": max_length,
    }
    if max_length:
        over = sum(1 for t in totals if t > max_length)
        stats["truncated"] = over
        stats["truncated_pct"] = round(100 * over / len(totals), 2) if totals else 0.0
    return stats


def turn_counts(examples: list[dict]) -> dict[int, int]:
    """How many examples have N user turns."""
    return dict(sorted(Counter(sum(1 for m in e["messages"] if m["role"] == "user") for e in examples).items()))


def length_figure(lengths: list[tuple[int, int, int]], max_length: int | None) -> go.Figure:
    """Histograms of prompt, response and total tokens, the max length drawn on the total."""
    stats = token_stats(lengths, max_length)
    titles = ["Prompt tokens", "Response tokens", "Total tokens"]
    if max_length:
        titles[2] += f" — {stats['truncated']} ({stats['truncated_pct']}%) over {max_length}"
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles)
    colours = ["rgb(99,110,250)", "rgb(0,204,150)", "rgb(171,99,250)"]
    for column, (values, colour) in enumerate(zip(zip(*lengths) if lengths else ([], [], []), colours), start=1):
        fig.add_trace(go.Histogram(x=list(values), marker_color=colour, nbinsx=40, showlegend=False), row=1, col=column)
    if max_length:
        fig.add_vline(x=max_length, line=dict(color="rgb(239,85,59)", width=2, dash="dash"), row=1, col=3)
        fig.add_annotation(x=max_length, y=1, yref="y3 domain", text=f"max_length {max_length}", showarrow=False, xanchor="left", font=dict(color="rgb(239,85,59)"), row=1, col=3)
    fig.update_layout(template="plotly_white", height=320, margin=dict(l=40, r=20, t=50, b=40), bargap=0.05)
    fig.update_yaxes(title_text="examples", row=1, col=1)
    return fig


def turns_figure(counts: dict[int, int]) -> go.Figure:
    fig = go.Figure(go.Bar(x=[str(k) for k in counts], y=list(counts.values()), marker_color="rgb(99,110,250)"))
    fig.update_layout(title="User turns per example", xaxis_title="user turns", yaxis_title="examples", template="plotly_white", height=280, margin=dict(l=40, r=20, t=50, b=40))
    return fig


@dataclass
class Profile:
    lengths: list[tuple[int, int, int]]
    stats: dict
    turns: dict[int, int]
    clusters: list[list[int]] = field(default_factory=list)

    def cluster_rows(self, examples: list[dict], row_numbers: list[int] | None = None, top: int = 10) -> list[dict]:
        rows = []
        for group in self.clusters[:top]:
            numbers = [row_numbers[i] if row_numbers else i + 1 for i in group]
            rows.append({"size": len(group), "rows": ", ".join(map(str, numbers[:12])) + ("…" if len(numbers) > 12 else ""), "example": snippet(examples[group[0]])})
        return rows


def profile(examples: list[dict], tokenizer, max_length: int | None, *, near_dup_threshold: float = 0.85) -> Profile:
    lengths = token_lengths(examples, tokenizer)
    clusters = near_duplicate_clusters(examples, near_dup_threshold) if near_dup_threshold else []
    return Profile(lengths, token_stats(lengths, max_length), turn_counts(examples), clusters)
