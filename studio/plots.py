"""Plotly figures for runs. Pure functions of metrics rows, so the UI only has to display them."""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .jobs.progress import smooth

COLORS = ["rgb(99,110,250)", "rgb(239,85,59)", "rgb(0,204,150)", "rgb(171,99,250)", "rgb(255,161,90)", "rgb(25,211,243)", "rgb(255,102,146)", "rgb(182,232,128)"]

# (panel title, metric keys drawn in it). A panel appears only when one of its keys was logged,
# so DPO / reward-model / PPO panels show up by themselves for those methods (TRL's log keys).
PANELS = [
    ("Learning rate", ["learning_rate"]),
    ("Grad norm", ["grad_norm"]),
    ("Tokens / s", ["tokens_per_second"]),
    ("Memory (GiB)", ["cpu_rss_gib", "gpu_mem_gib", "gpu_peak_gib"]),
    ("DPO reward margin", ["rewards/margins", "eval_rewards/margins"]),
    ("DPO accuracy", ["rewards/accuracies", "eval_rewards/accuracies"]),
    ("Reward-model accuracy", ["accuracy", "eval_accuracy"]),
    ("PPO reward", ["objective/rlhf_reward", "objective/scores"]),
    ("PPO KL", ["objective/kl"]),
    ("PPO entropy", ["objective/entropy"]),
    ("PPO value loss", ["loss/value_avg"]),
]

LAYOUT = dict(template="plotly_white", margin=dict(l=50, r=20, t=50, b=40), legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))


def _series(rows: list[dict], key: str) -> tuple[list, list]:
    points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return [p[0] for p in points], [p[1] for p in points]


def loss_figure(rows: list[dict], *, title: str = "Training loss", log_scale: bool = False) -> go.Figure:
    """Raw loss (faint), exponentially smoothed loss, and eval loss when present."""
    steps, losses = _series(rows, "loss")
    eval_steps, eval_losses = _series(rows, "eval_loss")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=steps, y=losses, mode="lines+markers", name="loss", line=dict(color="rgba(99,110,250,0.35)"), marker=dict(size=4)))
    if len(losses) > 2:
        fig.add_trace(go.Scatter(x=steps, y=smooth(losses), mode="lines", name="smoothed", line=dict(color="rgb(99,110,250)", width=3)))
    if eval_losses:
        fig.add_trace(go.Scatter(x=eval_steps, y=eval_losses, mode="lines+markers", name="eval loss", line=dict(color="rgb(239,85,59)", width=2)))
    for row in rows:
        if row.get("warning"):
            fig.add_vline(x=row["step"], line=dict(color="rgb(255,161,90)", dash="dot"), annotation_text="overfitting?", annotation_position="top left")
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss", yaxis_type="log" if log_scale else "linear", height=360, **LAYOUT)
    return fig


def present_panels(rows: list[dict]) -> list[tuple[str, list[str]]]:
    keys = {k for r in rows for k, v in r.items() if isinstance(v, (int, float))}
    return [(title, [k for k in panel_keys if k in keys]) for title, panel_keys in PANELS if any(k in keys for k in panel_keys)]


def metrics_figure(rows: list[dict], *, columns: int = 2) -> go.Figure:
    """Every logged metric besides loss, one small panel each (learning rate, grad norm, tokens/s,
    memory, and the method-specific panels)."""
    panels = present_panels(rows)
    if not panels:
        fig = go.Figure()
        fig.update_layout(title="Metrics appear after the first logged step", height=200, **LAYOUT)
        return fig
    n_rows = math.ceil(len(panels) / columns)
    fig = make_subplots(rows=n_rows, cols=columns, subplot_titles=[title for title, _ in panels], vertical_spacing=min(0.12, 0.5 / n_rows))
    for index, (title, keys) in enumerate(panels):
        for color, key in zip(COLORS, keys):
            steps, values = _series(rows, key)
            fig.add_trace(
                go.Scatter(x=steps, y=values, mode="lines+markers", name=key, marker=dict(size=3), line=dict(color=color), showlegend=len(keys) > 1),
                row=index // columns + 1, col=index % columns + 1,
            )
    fig.update_layout(height=220 * n_rows + 60, **{**LAYOUT, "margin": dict(l=50, r=20, t=40, b=30)})
    return fig


def compare_figure(runs: list[tuple[str, list[dict]]], *, log_scale: bool = False, smoothed: bool = True) -> go.Figure:
    """Several runs' training loss (smoothed) and eval loss overlaid, one colour per run."""
    has_eval = any(_series(rows, "eval_loss")[0] for _, rows in runs)
    fig = make_subplots(rows=1, cols=2 if has_eval else 1, subplot_titles=["Training loss"] + (["Eval loss"] if has_eval else []))
    for index, (label, rows) in enumerate(runs):
        color = COLORS[index % len(COLORS)]
        steps, losses = _series(rows, "loss")
        fig.add_trace(go.Scatter(x=steps, y=smooth(losses) if smoothed and losses else losses, mode="lines", name=label, line=dict(color=color, width=2), legendgroup=label), row=1, col=1)
        if has_eval:
            eval_steps, eval_losses = _series(rows, "eval_loss")
            fig.add_trace(go.Scatter(x=eval_steps, y=eval_losses, mode="lines+markers", name=label, line=dict(color=color), legendgroup=label, showlegend=False), row=1, col=2)
    fig.update_yaxes(type="log" if log_scale else "linear")
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=380, **LAYOUT)
    return fig


def config_diff(configs: dict[str, dict]) -> tuple[list[str], list[list]]:
    """The keys whose values differ between runs: (header, rows) for a table, one column per run."""
    labels = list(configs)
    keys = []
    for config in configs.values():
        keys += [k for k in config if k not in keys]
    rows = []
    for key in keys:
        values = [configs[label].get(key, "—") for label in labels]
        if len({repr(v) for v in values}) > 1:
            rows.append([key] + [str(v) for v in values])
    return ["setting"] + labels, rows
