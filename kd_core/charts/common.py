"""The look every chart shares (title, axis titles, legend, log ticks) and softened probabilities."""

from __future__ import annotations

import math
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


LOG_STEPS = {"decades": (1,), "1-2-5": (1, 2, 5), "fine": (1, 1.5, 2, 3, 5, 7)}  # mantissas of log-axis ticks


def _tick_label(value: float, unit: str) -> str:
    """A log tick's whole value ("200 KB", "1,000 KB", "0.05 ms"), never a bare mantissa like Plotly's minor "2"."""
    value = float(f"{value:.6g}")
    text = f"{int(value):,}" if value >= 1 and value == int(value) else f"{value:g}"
    return f"{text} {unit}" if unit else text


def _log_tick_values(low: float, high: float, pad: float = 1.5, max_ticks: int = 8) -> tuple[list[float], float, float]:
    """(ticks, axis low, axis high) for a log axis over data in [low, high] > 0, padded by `pad` either side.

    Powers of ten when they give four ticks or more without stretching the axis past 2.5 x the data, else 1-2-5
    steps (powers of ten again if those would exceed `max_ticks`), else finer ones; the axis reaches the nearest
    tick below `low` and above `high`, so the ticks always span the data.
    """
    lo, hi = low / pad, high * pad
    first, last = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    options = {}
    for name, mantissas in LOG_STEPS.items():
        steps = sorted(float(f"{m * 10.0 ** k:.6g}") for k in range(first, last + 1) for m in mantissas)
        below, above = max(v for v in steps if v <= low), min(v for v in steps if v >= high)
        axis_low, axis_high = min(lo, below), max(hi, above)
        options[name] = ([v for v in steps if axis_low <= v <= axis_high], axis_low, axis_high)
    near = low / options["decades"][1] <= 2.5 and options["decades"][2] / high <= 2.5
    count = {name: len(ticks) for name, (ticks, _, _) in options.items()}
    if (near and count["decades"] >= 4) or count["1-2-5"] > max_ticks:
        return options["decades"]
    return options["1-2-5"] if count["1-2-5"] >= 3 else options["fine"]


def _log_axis(fig: go.Figure, values: Sequence[float], axis: str = "x", unit: str = "", pad: float = 1.5) -> None:
    """Make `axis` a log axis over positive `values`, labelled only at _log_tick_values' ticks with `unit`
    (Plotly's own log ticks add minor labels "2 5" between the decades, which read as values on a phone)."""
    ticks, low, high = _log_tick_values(min(values), max(values), pad)
    update = fig.update_xaxes if axis == "x" else fig.update_yaxes
    update(type="log", range=[math.log10(low), math.log10(high)], tickmode="array", tickvals=ticks,
           ticktext=[_tick_label(v, unit) for v in ticks])


def softened(logits: Sequence[float] | np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) as a numpy array, computed by kd_core.losses.soften."""
    import torch

    from kd_core.losses import soften

    return soften(torch.as_tensor(np.asarray(logits, dtype=np.float32)), float(temperature)).numpy()
