"""Temperature charts that move with T in the browser: each figure carries its own Plotly slider over T_GRID.

Every T of the grid is precomputed into the slider's steps (Plotly "update" steps), so dragging the slider
redraws the chart on the client with no server round trip. The slider starts at the T it is given (the shared
setting). Probabilities come from kd_core.charts.common.softened (kd_core.losses.soften).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go

from kd_core.charts.common import _subtitled, softened
from kd_core.roles import COLORS

T_GRID = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0)  # the charts' own slider stops
SLIDER_MARGIN = 130  # room under the plot for the x-axis title and the T slider
TEMPERATURE_RANGE = (0.5, 30.0)  # x range of the entropy-vs-T curve


def effective_classes(logits: Sequence[float] | np.ndarray, temperature: float) -> float:
    """exp(entropy) of softmax(logits / T): 1 for a one-hot output, the number of classes for a uniform one."""
    p = softened(logits, temperature).astype(np.float64)
    entropy = -float(np.sum(p * np.log(np.clip(p, 1e-12, None))))
    return math.exp(entropy)


def average_soft_targets(logits: np.ndarray, labels: np.ndarray, temperature: float, classes: int) -> np.ndarray:
    """(classes, classes): row c is the mean of softmax(logits / T) over the images whose true class is c."""
    probs = softened(logits, temperature)
    labels = np.asarray(labels)
    rows = [probs[labels == c].mean(axis=0) if np.any(labels == c) else np.zeros(classes) for c in range(classes)]
    return np.stack(rows)


SIMILARITY_MAX = 0.25  # the heatmap's fixed colour range without the diagonal: the same scale at every T


def most_similar_pairs(avg_soft: np.ndarray, classes: Sequence[str], n: int = 3) -> list[tuple[str, str, float]]:
    """The `n` pairs of classes the teacher finds most alike: the largest (a→b + b→a) average soft targets."""
    z = np.array(avg_soft, dtype=float)
    both = z + z.T
    pairs = [(both[i, j], i, j) for i in range(len(z)) for j in range(i + 1, len(z))]
    return [(classes[i], classes[j], float(v)) for v, i, j in sorted(pairs, reverse=True)[:n]]


def t_grid(temperature: float) -> list[float]:
    """T_GRID with `temperature` added, ascending: the chart's slider stops (it starts at `temperature`)."""
    return sorted({*T_GRID, float(temperature)})


def _step_title(title: str, detail: str) -> str:
    """The two-line title (as _subtitled writes it) a slider step sets, bold as Streamlit draws a figure's own title
    (its theme wraps the title in <b>)."""
    return f"<b>{title}<br><sup>{detail}</sup></b>"


def _with_slider(fig: go.Figure, grid: Sequence[float], temperature: float, steps: Sequence[list[Any]]) -> go.Figure:
    """Add the T slider under the plot: one Plotly "update" step per T of `grid` (its args in `steps`), starting at
    `temperature`; no legend (the subtitle says what is drawn) and the toolbar upright, clear of the title."""
    slider = {"active": list(grid).index(float(temperature)), "x": 0.0, "len": 1.0, "y": 0.0, "yanchor": "top",
              "pad": {"t": 60, "b": 0}, "currentvalue": {"prefix": "T = ", "font": {"size": 14}},
              "steps": [{"label": f"{t:g}", "method": "update", "args": args} for t, args in zip(grid, steps)]}
    fig.update_layout(sliders=[slider], showlegend=False, modebar={"orientation": "v"},
                      margin={"b": SLIDER_MARGIN, "r": 30})
    return fig


def softmax_slider(logits: Sequence[float] | np.ndarray, classes: Sequence[str], temperature: float,
                   title: str = "Teacher's probabilities for this image") -> go.Figure:
    """softmax(z) at T = 1 beside softmax(z / T) per class, with a client-side T slider starting at `temperature`."""
    grid = t_grid(temperature)
    probs = {t: softened(logits, t).tolist() for t in grid}

    def detail(t: float) -> str:
        return f"T = 1 vs T = {t:g}: grey, the ordinary softmax; blue, the soft targets"

    fig = go.Figure([
        go.Bar(x=list(classes), y=softened(logits, 1.0).tolist(), name="T = 1 (ordinary softmax)",
               marker_color=COLORS["T=1"], hovertemplate="%{x}: %{y:.3f} at T = 1<extra></extra>"),
        go.Bar(x=list(classes), y=probs[float(temperature)], name=f"T = {temperature:g} (soft targets)",
               marker_color=COLORS["teacher"], hovertemplate="%{x}: %{y:.3f}<extra>softened</extra>"),
    ])
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_xaxes(type="category", dtick=1)  # every class named, also after a step redraws the bars
    _subtitled(fig, title, detail(float(temperature)), "class", "probability (0-1)", height=440)
    steps = [[{"y": [probs[t]], "name": [f"T = {t:g} (soft targets)"]}, {"title.text": _step_title(title, detail(t))},
              [1]] for t in grid]
    return _with_slider(fig, grid, temperature, steps)


def effective_classes_slider(logits: Sequence[float] | np.ndarray, temperature: float) -> go.Figure:
    """Effective number of classes (e^entropy) against T, with a marker that a client-side T slider moves."""
    n = len(np.asarray(logits))
    ts = np.geomspace(TEMPERATURE_RANGE[0], TEMPERATURE_RANGE[1], 60)
    grid = t_grid(temperature)
    value = {t: effective_classes(logits, t) for t in grid}
    low, high = 0.8, n + 0.2
    title = "How many classes the soft target spreads over"

    def detail(t: float) -> str:
        return f"{value[t]:.1f} classes at T = {t:g} (the red dot); e^entropy of softmax(z / T)"

    fig = go.Figure([
        go.Scatter(x=ts, y=[effective_classes(logits, t) for t in ts], mode="lines", name="effective classes",
                   line={"color": COLORS["teacher"]}),
        go.Scatter(x=[temperature], y=[value[float(temperature)]], mode="markers", name="at the slider's T",
                   marker={"size": 13, "color": COLORS["soft"]}),
        go.Scatter(x=[temperature, temperature], y=[low, high], mode="lines", hoverinfo="skip",
                   line={"color": COLORS["soft"], "dash": "dot"}),
    ])
    ticks = [0.5, 1, 2, 5, 10, 20, 30]
    fig.update_xaxes(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    fig.update_yaxes(range=[low, high])
    _subtitled(fig, title, detail(float(temperature)), "temperature T (log scale)",
               "effective number of classes (e^entropy)", height=440)
    steps = [[{"x": [[t], [t, t]], "y": [[value[t]], [low, high]]}, {"title.text": _step_title(title, detail(t))},
              [1, 2]] for t in grid]
    return _with_slider(fig, grid, temperature, steps)


def similarity_slider(logits: np.ndarray, labels: np.ndarray, classes: Sequence[str], temperature: float,
                      hide_diagonal: bool = True) -> go.Figure:
    """Heatmap of the average soft target per true class, a client-side T slider, one colour scale at every T."""
    grid = t_grid(temperature)
    mask = np.eye(len(classes), dtype=bool) if hide_diagonal else np.zeros((len(classes),) * 2, dtype=bool)
    z = {t: np.where(mask, None, average_soft_targets(logits, labels, t, len(classes))).tolist() for t in grid}
    title = "Average soft target per true class"

    def detail(t: float) -> str:
        return f"(T = {t:g}{', diagonal hidden' if hide_diagonal else ''}); one colour scale at every T"

    fig = go.Figure(go.Heatmap(z=z[float(temperature)], x=list(classes), y=list(classes), colorscale="Blues",
                               zmin=0.0, zmax=SIMILARITY_MAX if hide_diagonal else 1.0, zauto=False,
                               colorbar={"title": {"text": "mean<br>prob."}, "thickness": 14},
                               hovertemplate="true %{y}, soft target for %{x}: %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    _subtitled(fig, title, detail(float(temperature)), "class the teacher gives probability to", "true class",
               height=500)
    steps = [[{"z": [z[t]]}, {"title.text": _step_title(title, detail(t))}, [0]] for t in grid]
    return _with_slider(fig, grid, temperature, steps)
