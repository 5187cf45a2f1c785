"""Charts of the run history (kd_core.history records): several finished runs side by side."""

from __future__ import annotations

import math
from typing import Any, Sequence

import plotly.graph_objects as go

from kd_core.charts.common import ACCURACY_RANGE, BAR_LABELS, _subtitled
from kd_core.roles import COLORS, ROLE_NAMES, ROLES

RUN_COLORS = ["#4C78A8", "#E45756", "#72B7B2", "#B279A2", "#9D755D", "#F58518", "#54A24B", "#EECA3B", "#FF9DA6",
              "#BAB0AC"]  # one colour per run; the role is told by the line's dash
HISTORY_METRICS = {  # metric -> (title, y axis title, value scale)
    "test_acc": ("Test accuracy after each epoch, run by run", "test accuracy (%)", 100.0),
    "hard": ("Training loss against the labels, run by run", "CE with labels (nats, mean per batch)", 1.0),
}


def history_curves(runs: Sequence[dict[str, Any]], metric: str = "test_acc") -> go.Figure:
    """Per-epoch curves (mean over seeds) of the distilled (solid) and scratch (dashed) students of several runs."""
    # runs: kd_core.history records ("label", "curves"); metric: "test_acc" (test accuracy at each epoch's end)
    # or "hard" (the epoch's mean cross-entropy with the labels, the term both students share)
    title, y_title, scale = HISTORY_METRICS[metric]
    fig = go.Figure()
    for i, run in enumerate(runs):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        for role, dash in (("distilled", "solid"), ("scratch", "dash")):
            curve = run["curves"].get(role)
            if curve is None:
                continue
            fig.add_trace(go.Scatter(
                x=curve["epoch"], y=[scale * v for v in curve[metric]], mode="lines+markers",
                name=f"{run['label']} · {role}", legendgroup=run["label"], line={"color": color, "dash": dash},
                marker={"symbol": "circle" if role == "distilled" else "circle-open", "size": 6},
                hovertemplate=f"{run['label']} · {role}<br>epoch %{{x}}: %{{y:.3g}}<extra></extra>"))
    epochs = max((len(c["epoch"]) for run in runs for c in run["curves"].values()), default=1)
    fig.update_xaxes(tick0=1, dtick=max(1, math.ceil(epochs / 10)))  # whole epochs only
    if metric == "test_acc":
        fig.update_yaxes(range=ACCURACY_RANGE)
    detail = f"solid: {ROLE_NAMES['distilled']} · dashed: {ROLE_NAMES['scratch']} · mean over seeds"
    return _subtitled(fig, title, detail, "epoch", y_title, height=460)


def history_accuracies(runs: Sequence[dict[str, Any]]) -> go.Figure:
    """Teacher, distilled and scratch test accuracy of several runs as grouped bars, ± std over seeds."""
    labels = [run["label"] for run in runs]
    fig = go.Figure()
    for role in ROLES:
        models = [run["models"][role] for run in runs]
        means = [100 * m["mean"] for m in models]
        fig.add_trace(go.Bar(
            x=labels, y=means, name=ROLE_NAMES[role], marker_color=COLORS[role],
            error_y={"type": "data", "array": [100 * m["std"] for m in models], "visible": True},
            text=[f"{v:.1f}" for v in means], **BAR_LABELS,
            customdata=[len(m["accuracies"]) for m in models],
            hovertemplate=f"%{{x}} · {ROLE_NAMES[role]}: %{{y:.1f}}% (%{{customdata}} seed(s))<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category")
    fig.update_yaxes(range=ACCURACY_RANGE)
    return _subtitled(fig, "Test accuracy of the chosen runs", "mean over seeds ± one std (none with 1 seed)",
                      "run (its settings)", "test accuracy (%)", height=460)
