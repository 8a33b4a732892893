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
    ("Rewards: chosen vs rejected", ["rewards/chosen", "rewards/rejected", "eval_rewards/chosen", "eval_rewards/rejected"]),  # DPO, KTO
    ("KL to the reference", ["kl", "eval_kl"]),  # KTO's batch KL estimate; GRPO's KL (when kl_coef > 0)
    ("Reward-model accuracy", ["accuracy", "eval_accuracy"]),
    ("PPO reward", ["objective/rlhf_reward", "objective/scores"]),
    ("PPO KL", ["objective/kl"]),
    ("PPO entropy", ["objective/entropy"]),
    ("PPO value loss", ["loss/value_avg"]),
    ("GRPO reward per function (mean)", ["rewards/*/mean"]),  # one series per reward function (a glob)
    ("GRPO total reward (weighted)", ["reward", "eval_reward"]),
    ("Completion length (tokens)", ["completions/mean_length", "completions/max_length"]),
]

LAYOUT = dict(template="plotly_white", margin=dict(l=50, r=20, t=50, b=40), legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))


def _series(rows: list[dict], key: str) -> tuple[list, list]:
    points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return [p[0] for p in points], [p[1] for p in points]


def _fast_figure(traces: list[dict], layout: dict) -> go.Figure:
    """A figure built without plotly's per-property validation (~0.2 s -> ~1 ms): the live loss
    plot is rebuilt on every new row, and that time is most of the write-to-browser lag."""
    return go.Figure(data=traces, layout={**_template(), **layout}, _validate=False)


_TEMPLATE: dict = {}


def _template() -> dict:
    """plotly_white, expanded once (an unvalidated figure does not resolve template names)."""
    if not _TEMPLATE:
        import plotly.io as pio

        _TEMPLATE["template"] = pio.templates["plotly_white"].to_plotly_json()
    return _TEMPLATE


def loss_figure(rows: list[dict], *, title: str = "Training loss", log_scale: bool = False) -> go.Figure:
    """Raw loss (faint), exponentially smoothed loss, and eval loss when present; a dotted line
    marks an overfitting warning."""
    steps, losses = _series(rows, "loss")
    eval_steps, eval_losses = _series(rows, "eval_loss")
    traces = [dict(type="scatter", x=steps, y=losses, mode="lines+markers", name="loss", line=dict(color="rgba(99,110,250,0.35)"), marker=dict(size=4))]
    if len(losses) > 2:
        traces.append(dict(type="scatter", x=steps, y=smooth(losses), mode="lines", name="smoothed", line=dict(color="rgb(99,110,250)", width=3)))
    if eval_losses:
        traces.append(dict(type="scatter", x=eval_steps, y=eval_losses, mode="lines+markers", name="eval loss", line=dict(color="rgb(239,85,59)", width=2)))
    warnings = [r["step"] for r in rows if r.get("warning") and not r.get("kind")]  # overfitting; a reward error has a kind
    shapes = [dict(type="line", xref="x", yref="paper", x0=step, x1=step, y0=0, y1=1, line=dict(color="rgb(255,161,90)", dash="dot")) for step in warnings]
    annotations = [dict(x=step, xref="x", y=1, yref="paper", text="overfitting?", showarrow=False, xanchor="left") for step in warnings]
    return _fast_figure(traces, dict(
        title=dict(text=title), xaxis=dict(title=dict(text="step")), yaxis=dict(title=dict(text="loss"), type="log" if log_scale else "linear"),
        height=360, shapes=shapes, annotations=annotations, margin=LAYOUT["margin"], legend=LAYOUT["legend"],
    ))


def present_panels(rows: list[dict]) -> list[tuple[str, list[str]]]:
    keys = {k for r in rows for k, v in r.items() if isinstance(v, (int, float))}
    panels = [(title, _present(panel_keys, keys)) for title, panel_keys in PANELS]
    return [(title, found) for title, found in panels if found]


def _present(panel_keys: list[str], keys: set[str]) -> list[str]:
    """The logged keys of one panel; a key with `*` matches every logged key of that shape."""
    from fnmatch import fnmatchcase

    found = []
    for key in panel_keys:
        found += sorted(k for k in keys if fnmatchcase(k, key)) if "*" in key else ([key] if key in keys else [])
    return found


def _grid(n_panels: int, columns: int, titles: list[str]) -> dict:
    """Axis domains and titles of a subplot grid (what make_subplots computes, without validation)."""
    n_rows = math.ceil(n_panels / columns)
    h_gap, v_gap = 0.08, min(0.12, 0.5 / n_rows)
    width, height = (1 - h_gap * (columns - 1)) / columns, (1 - v_gap * (n_rows - 1)) / n_rows
    layout: dict = {"annotations": []}
    for index in range(n_panels):
        row, col = divmod(index, columns)
        suffix = "" if index == 0 else str(index + 1)
        x0, y1 = col * (width + h_gap), 1 - row * (height + v_gap)
        layout[f"xaxis{suffix}"] = dict(domain=[round(max(0.0, x0), 4), round(min(1.0, x0 + width), 4)], anchor=f"y{suffix}")
        layout[f"yaxis{suffix}"] = dict(domain=[round(max(0.0, y1 - height), 4), round(min(1.0, y1), 4)], anchor=f"x{suffix}", exponentformat="e")
        layout["annotations"].append(dict(text=titles[index], x=x0 + width / 2, y=y1, xref="paper", yref="paper", xanchor="center", yanchor="bottom", showarrow=False))
    return layout


def metrics_figure(rows: list[dict], *, columns: int = 2) -> go.Figure:
    """Every logged metric besides loss, one small panel each (learning rate, grad norm, tokens/s,
    memory, and the method-specific panels)."""
    panels = present_panels(rows)
    if not panels:
        return _fast_figure([], dict(title=dict(text="Metrics appear after the first logged step"), height=200, margin=LAYOUT["margin"]))
    traces = []
    for index, (title, keys) in enumerate(panels):
        suffix = "" if index == 0 else str(index + 1)
        for color, key in zip(COLORS, keys):
            steps, values = _series(rows, key)
            traces.append(dict(type="scatter", x=steps, y=values, mode="lines+markers", name=key, marker=dict(size=3), line=dict(color=color),
                               showlegend=len(keys) > 1, xaxis=f"x{suffix}", yaxis=f"y{suffix}"))
    n_rows = math.ceil(len(panels) / columns)
    layout = _grid(len(panels), columns, [title for title, _ in panels])
    return _fast_figure(traces, dict(height=220 * n_rows + 60, margin=dict(l=50, r=20, t=40, b=30), legend=LAYOUT["legend"], **layout))


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


def completions_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """GRPO's sampled completions (studio.runfiles.read_completions rows) as (header, rows): step,
    prompt, completion, whether it was cut at response_length (no EOS; blank for runs that did not record
    it), each reward function's score, the weighted total and the advantage."""
    names: list[str] = []
    for row in rows:
        names += [n for n in row.get("rewards", {}) if n not in names]
    header = ["step", "prompt", "completion", "cut", *names, "total", "advantage"]
    cut = {True: "yes", False: "no"}
    table = [[r.get("step"), r.get("prompt", ""), r.get("completion", ""), cut.get(r.get("cut"), ""), *[r.get("rewards", {}).get(n) for n in names],
              r.get("total"), r.get("advantage")] for r in rows]
    return header, table


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
