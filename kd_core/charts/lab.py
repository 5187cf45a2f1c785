"""Charts of the Experiments page (kd_core.lab results); each also takes the partial rows of a running job."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go

from kd_core.charts.common import _layout, _log_ticks, _subtitled
from kd_core.roles import COLORS, OMITTED_CLASS_NAMES, ROLE_COLORS, ROLE_NAMES, STUDENTS

NOISE_COLOR = "rgba(150,150,150,0.25)"  # the band where a gain is within noise
BEST_COLOR = "#E45756"                  # the ring round the sweep's best cell


def budget_accuracy(rows: Sequence[dict[str, Any]], seeds: int) -> go.Figure:
    """Distilled and scratch test accuracy (mean ± std over seeds) against labelled images, log x."""
    rows = sorted(rows, key=lambda r: r["images"])
    x = [r["images"] for r in rows]
    fig = go.Figure()
    for role in STUDENTS:
        fig.add_trace(go.Scatter(
            x=x, y=[100 * r[f"{role}_mean"] for r in rows], mode="lines+markers", name=ROLE_NAMES[role],
            line={"color": COLORS[role]}, marker={"size": 9},
            error_y={"type": "data", "array": [100 * r[f"{role}_std"] for r in rows], "visible": seeds > 1},
            hovertemplate="%{x} labelled images: %{y:.1f}%<extra>" + ROLE_NAMES[role] + "</extra>"))
    if x:
        _log_ticks(fig, x, fmt="{:,}")
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "1 seed, no spread"
    return _subtitled(fig, "Test accuracy vs labelled images the students see", spread,
                      "labelled training images (log scale)", "test accuracy (%)")


def budget_gain(rows: Sequence[dict[str, Any]], seeds: int) -> go.Figure:
    """Distilled − scratch accuracy per budget (± std over seeds) in a noise band; hollow points are within noise."""
    rows = sorted(rows, key=lambda r: r["images"])
    x = [r["images"] for r in rows]
    noise = [100 * r["noise"] for r in rows]
    fig = go.Figure([
        go.Scatter(x=x, y=noise, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"),
        go.Scatter(x=x, y=[-n for n in noise], mode="lines", line={"width": 0}, fill="tonexty",
                   fillcolor=NOISE_COLOR, name="noise band: a gain inside it is within noise",
                   hoverinfo="skip"),
    ])
    within = [bool(r["within_noise"]) for r in rows]
    fig.add_trace(go.Scatter(
        x=x, y=[100 * r["gain"] for r in rows], mode="lines+markers", name="gain (distilled − scratch)",
        line={"color": COLORS["distilled"]},
        marker={"size": 11, "color": ["white" if w else COLORS["distilled"] for w in within],
                "line": {"width": 2, "color": COLORS["distilled"]}},
        error_y={"type": "data", "array": [100 * r["gain_std"] for r in rows], "visible": seeds > 1},
        customdata=[[100 * n, "within noise" if w else "beyond noise"] for n, w in zip(noise, within)],
        hovertemplate="%{x} images: %{y:+.1f} points (noise ±%{customdata[0]:.1f}: %{customdata[1]})<extra></extra>"))
    fig.add_hline(y=0, line_color="#666666", line_width=1)
    if x:
        _log_ticks(fig, x, fmt="{:,}")
    spread = f"error bars: ± std over {seeds} seeds" if seeds > 1 else "1 seed"
    return _subtitled(fig, "Gain from distillation vs labelled images", f"{spread}; hollow point = within noise",
                      "labelled training images (log scale)", "distilled − scratch (percentage points)")


def omitted_class_accuracy(result: dict[str, Any]) -> go.Figure:
    """Accuracy on the omitted class, on the other classes and overall, per student (mean ± std over seeds)."""
    name = result["class_name"]
    groups = [("label_accuracy", f"test images of {name}"), ("other_accuracy", "the other classes"),
              ("accuracy", "all test images")]
    models = result["models"]
    fig = go.Figure()
    for role in ("scratch", "distilled", "distilled_corrected", "distilled_all"):
        m = models[role]
        means = [100 * m[f"{metric}_mean"] for metric, _ in groups]
        fig.add_trace(go.Bar(
            x=[label for _, label in groups], y=means, name=OMITTED_CLASS_NAMES[role].replace("it)", f"a {name})"),
            marker_color=ROLE_COLORS[role], text=[f"{v:.1f}%" for v in means],
            textposition="outside",
            error_y={"type": "data", "array": [100 * m[f"{metric}_std"] for metric, _ in groups],
                     "visible": result["seeds"] > 1}))
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 112])
    seeds = result["seeds"]
    return _subtitled(fig, f"Students whose training set had no {name}: test accuracy",
                      f"mean ± std over {seeds} seeds" if seeds > 1 else "1 seed",
                      "test images", "test accuracy (%)", height=440)


def bias_curve(curve: Sequence[dict[str, float]], chosen: float, class_name: str) -> go.Figure:
    """Held-out accuracy (overall, and on the omitted class) against the bias added to its logit; chosen bias marked."""
    # Two y axes: the overall accuracy (which the bias is chosen to maximise) moves over a few points only.
    from plotly.subplots import make_subplots

    x = [c["bias"] for c in curve]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=x, y=[100 * c["heldout_accuracy"] for c in curve], mode="lines",
                             name="all held-out images (left axis; maximised)", line={"color": COLORS["teacher"]}),
                  secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=[100 * c["heldout_label_accuracy"] for c in curve], mode="lines",
                             name=f"held-out images of {class_name} (right axis)",
                             line={"color": COLORS["soft"], "dash": "dash"}), secondary_y=True)
    fig.add_vline(x=chosen, line_dash="dot", line_color="#333333",
                  annotation_text=f"chosen bias +{chosen:g}", annotation_position="bottom right")
    fig = _subtitled(fig, f"Choosing the bias for class {class_name}",
                     "on held-out TRAINING images, never test images (seed 0)",
                     f"bias added to the {class_name} output (logit units)", "held-out accuracy, all images (%)",
                     height=430)
    fig.update_yaxes(title_text=f"held-out {class_name}s recognised (%)", range=[0, 105], showgrid=False,
                     tickvals=[0, 20, 40, 60, 80, 100], secondary_y=True)
    return fig


def soft_output_bars(probabilities: Sequence[float], classes: Sequence[str], highlight: int,
                     title: str) -> go.Figure:
    """One image's output probabilities (T = 1) as bars, the class `highlight` in red; a small figure."""
    colors = [COLORS["soft"] if i == highlight else COLORS["T=1"] for i in range(len(classes))]
    fig = go.Figure(go.Bar(x=list(classes), y=list(probabilities), marker_color=colors, name="probability",
                           hovertemplate="class %{x}: %{y:.3f}<extra></extra>"))
    fig.update_xaxes(type="category", tickfont={"size": 10})
    fig.update_yaxes(range=[0, 1.02], tickvals=[0, 0.5, 1])
    fig = _layout(fig, title, "class", "probability", height=210)
    fig.update_layout(margin={"l": 45, "r": 5, "t": 35, "b": 40}, showlegend=False, title_font_size=13)
    return fig


def sweep_heatmap(temperatures: Sequence[float], alphas: Sequence[float], cells: Sequence[dict[str, Any]],
                  scratch: float | None = None) -> go.Figure:
    """Mean distilled accuracy over T (x) × alpha (y); unfinished cells blank, the best starred, near-best ringed."""
    xs, ys = [f"{t:g}" for t in temperatures], [f"{a:g}" for a in alphas]
    z = np.full((len(alphas), len(temperatures)), np.nan)
    for c in cells:
        if c["temperature"] in temperatures and c["alpha"] in alphas:
            z[list(alphas).index(c["alpha"]), list(temperatures).index(c["temperature"])] = 100 * c["mean"]
    text = [["" if math.isnan(v) else f"{v:.1f}" for v in row] for row in z]
    for c in cells:
        if c.get("best") and c["temperature"] in temperatures and c["alpha"] in alphas:
            i, j = list(alphas).index(c["alpha"]), list(temperatures).index(c["temperature"])
            text[i][j] = f"★ {text[i][j]}"
    fig = go.Figure(go.Heatmap(z=z, x=xs, y=ys, colorscale="YlGnBu", text=text, texttemplate="%{text}",
                               colorbar={"title": {"text": "accuracy (%)"}}, xgap=2, ygap=2,
                               hovertemplate="T = %{x}, alpha = %{y}: %{z:.1f}%<extra></extra>"))
    near = [c for c in cells if c.get("within_noise") and not c.get("best")]
    if near:
        fig.add_trace(go.Scatter(x=[f"{c['temperature']:g}" for c in near], y=[f"{c['alpha']:g}" for c in near],
                                 mode="markers", name="within noise of the best",
                                 marker={"symbol": "circle-open", "size": 44, "color": "#333333",
                                         "line": {"width": 2}}, hoverinfo="skip"))
    best = [c for c in cells if c.get("best")]
    if best:
        fig.add_trace(go.Scatter(x=[f"{best[0]['temperature']:g}"], y=[f"{best[0]['alpha']:g}"], mode="markers",
                                 name="best cell (★)", marker={"symbol": "circle-open", "size": 48,
                                                               "color": BEST_COLOR, "line": {"width": 4}},
                                 hoverinfo="skip"))
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=xs)
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=ys)
    ref = "" if scratch is None else f" ({ROLE_NAMES['scratch']}: {100 * scratch:.1f}%)"
    return _layout(fig, f"Distilled test accuracy (%) over T × alpha{ref}", "temperature T",
                   "alpha (weight of the soft term)", height=460)


def t2_gradients(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Size of the soft term's gradient at initialisation against T, with and without T² (log-log); hard as reference."""
    rows = sorted(rows, key=lambda r: r["temperature"])
    x = [r["temperature"] for r in rows]
    fig = go.Figure([
        go.Scatter(x=x, y=[r["with_t2"]["soft_grad_params"] for r in rows], mode="lines+markers",
                   name="soft term × T² (as in the loss)", line={"color": COLORS["distilled"]}),
        go.Scatter(x=x, y=[r["without_t2"]["soft_grad_params"] for r in rows], mode="lines+markers",
                   name="soft term without T²", line={"color": COLORS["soft"], "dash": "dash"}),
        go.Scatter(x=x, y=[r["with_t2"]["hard_grad_params"] for r in rows], mode="lines",
                   name="hard term (labels), for reference", line={"color": COLORS["hard"], "dash": "dot"}),
    ])
    if x:
        _log_ticks(fig, x)
    fig.update_yaxes(type="log", dtick=1, exponentformat="power")
    return _subtitled(fig, "Soft-term gradient size vs T, with and without T²",
                      "L2 norm over all student weights, at their starting values", "temperature T (log scale)",
                      "gradient norm (log scale)")


def t2_accuracy(rows: Sequence[dict[str, Any]], scratch: float | None, seeds: int) -> go.Figure:
    """Final distilled test accuracy against T with and without T² (mean ± std over seeds), scratch as a line."""
    rows = sorted(rows, key=lambda r: r["temperature"])
    x = [r["temperature"] for r in rows]
    fig = go.Figure()
    for name, label, color, dash in (("with_t2", "distilled, with T²", COLORS["distilled"], "solid"),
                                     ("without_t2", "distilled, without T²", COLORS["soft"], "dash")):
        fig.add_trace(go.Scatter(
            x=x, y=[100 * r[name]["accuracy_mean"] for r in rows], mode="lines+markers", name=label,
            line={"color": color, "dash": dash},
            error_y={"type": "data", "array": [100 * r[name]["accuracy_std"] for r in rows], "visible": seeds > 1}))
    if scratch is not None:
        fig.add_hline(y=100 * scratch, line_color=COLORS["scratch"], line_dash="dot",
                      annotation_text=f"scratch {100 * scratch:.1f}%", annotation_position="bottom right")
    if x:
        _log_ticks(fig, x)
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "1 seed"
    return _subtitled(fig, "Final test accuracy vs T, with and without T²", spread, "temperature T (log scale)",
                      "test accuracy (%)")
