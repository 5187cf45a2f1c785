"""The look every chart shares (title, axis titles, legend, log ticks) and softened probabilities."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

ACCURACY_RANGE = [0, 102]  # every accuracy bar chart starts at 0, so a gap of a few points looks like one
BAR_LABELS = {"textposition": "inside", "insidetextanchor": "start", "textangle": 0,
              "textfont": {"color": "white"}}  # value labels at a bar's base: clear of error bars and lines


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = 380) -> go.Figure:
    """Apply the common look: a title, axis titles (with units), a compact margin, the legend under the plot."""
    fig.update_layout(title={"text": title, "x": 0.0, "xanchor": "left"}, height=height,
                      margin={"l": 60, "r": 20, "t": 50, "b": 50},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0})
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y)
    return fig


def _subtitled(fig: go.Figure, title: str, detail: str, x: str, y: str, height: int = 400) -> go.Figure:
    """_layout with a second, smaller title line (`detail`), so titles fit half-width columns."""
    fig = _layout(fig, f"{title}<br><sup>{detail}</sup>", x, y, height)
    fig.update_layout(margin={"t": 72})
    return fig


def _log_ticks(fig: go.Figure, values: Sequence[float], axis: str = "x", fmt: str = "{:g}") -> None:
    """Put ticks exactly at `values` on a log axis (the experiment's own budgets or temperatures)."""
    values = sorted(set(values))
    update = fig.update_xaxes if axis == "x" else fig.update_yaxes
    update(type="log", tickvals=values, ticktext=[fmt.format(v) for v in values])


def softened(logits: Sequence[float] | np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) as a numpy array, computed by kd_core.losses.soften."""
    import torch

    from kd_core.losses import soften

    return soften(torch.as_tensor(np.asarray(logits, dtype=np.float32)), float(temperature)).numpy()
