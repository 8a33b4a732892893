"""Plotly figures for runs. Pure functions of metrics rows, so the UI only has to display them."""

from __future__ import annotations

import plotly.graph_objects as go

from .jobs.progress import smooth


def loss_figure(rows: list[dict], *, title: str = "Training loss", log_scale: bool = False) -> go.Figure:
    """Raw loss (faint), exponentially smoothed loss, and eval loss when present."""
    train = [r for r in rows if r.get("loss") is not None]
    evals = [r for r in rows if r.get("eval_loss") is not None]
    steps = [r["step"] for r in train]
    losses = [r["loss"] for r in train]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=steps, y=losses, mode="lines+markers", name="loss", line=dict(color="rgba(99,110,250,0.35)"), marker=dict(size=4)))
    if len(losses) > 2:
        fig.add_trace(go.Scatter(x=steps, y=smooth(losses), mode="lines", name="smoothed", line=dict(color="rgb(99,110,250)", width=3)))
    if evals:
        fig.add_trace(go.Scatter(x=[r["step"] for r in evals], y=[r["eval_loss"] for r in evals], mode="lines+markers", name="eval loss", line=dict(color="rgb(239,85,59)", width=2)))
    fig.update_layout(
        title=title,
        xaxis_title="step",
        yaxis_title="loss",
        yaxis_type="log" if log_scale else "linear",
        template="plotly_white",
        height=360,
        margin=dict(l=50, r=20, t=50, b=40),
        legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"),
    )
    return fig
