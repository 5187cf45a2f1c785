"""Charts of the forward-vs-reverse-KL toy (kd_core.modes): the fitted students, their loss landscapes, JSD's ends.

The JSD(beta) student and landscape move with a client-side beta slider over the toy's precomputed betas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kd_core.charts.common import _subtitled

if TYPE_CHECKING:  # kd_core.modes imports torch; the charts package must not (the first screen paints before it)
    from kd_core.modes import Fit, ModeToy

DIVERGENCE_COLORS = {"teacher": "#9D9D9D", "forward": "#F58518", "reverse": "#54A24B", "jsd": "#B279A2"}
LOG_RANGE = (-2.0, 2.0)  # the landscapes' one colour scale: log10 of the divergence, 0.01 to 100 nats


def beta_name(beta: float) -> str:
    """JSD(beta) in words, saying which pure KL the ends stand for (by convention)."""
    ends = {0.0: " = forward KL, by convention", 1.0: " = reverse KL, by convention"}
    return f"JSD(β = {beta:g}){ends.get(float(beta), '')}"


def _fit_label(name: str, fit: Fit) -> str:
    """A trace name (shown on hover): the divergence and its student's mean and width."""
    return f"{name}: mean {fit.mean:.1f}, width {fit.width:.2f}"


def _colored(text: str, key: str) -> str:
    """`text` in the colour of `key` (DIVERGENCE_COLORS), for a title that doubles as the legend."""
    return f"<span style='color:{DIVERGENCE_COLORS[key]}'>{text}</span>"


FITS_TITLE = "Which one-mode fit each divergence picks"


def _legend(beta: float) -> str:
    """The figure's subtitle, which is also its legend: each student's name in its line's colour."""
    ends = {0.0: "<br>β = 0 is the forward KL, by convention", 1.0: "<br>β = 1 is the reverse KL, by convention"}
    return (f"{_colored('forward KL', 'forward')}, {_colored('reverse KL', 'reverse')} and "
            f"{_colored(f'JSD(β = {beta:g})', 'jsd')} (dashed) students<br>on the {_colored('teacher', 'teacher')}"
            + ends.get(float(beta), ""))


def _log10(landscape: np.ndarray) -> list[list[float]]:
    """A landscape as log10 values (clipped to LOG_RANGE), rounded for a small page."""
    return np.round(np.clip(np.log10(np.maximum(landscape, 1e-12)), *LOG_RANGE), 3).tolist()


def mode_fits(toy: ModeToy, beta: float = 0.5) -> go.Figure:
    """The teacher and the students fitted by forward KL, reverse KL and JSD(beta) above their loss landscapes.

    A client-side slider over toy.jsd's betas moves the JSD student and the JSD landscape with its minimum.
    """
    betas = list(toy.jsd)
    fig = make_subplots(rows=2, cols=3, specs=[[{"colspan": 3}, None, None], [{}, {}, {}]], row_heights=[0.45, 0.55],
                        vertical_spacing=0.2, horizontal_spacing=0.03, shared_yaxes=True,
                        subplot_titles=["", "forward KL", "reverse KL", f"JSD(β = {beta:g})"])
    _subtitled(fig, FITS_TITLE, _legend(beta), "", "", height=780)
    fig.add_trace(go.Scatter(x=toy.x, y=toy.teacher, mode="lines", fill="tozeroy", name="teacher (two modes)",
                             line={"color": DIVERGENCE_COLORS["teacher"]}), row=1, col=1)
    for key in ("forward", "reverse"):
        fig.add_trace(go.Scatter(x=toy.x, y=toy.student(toy.fits[key]), mode="lines",
                                 name=_fit_label(f"{key} KL", toy.fits[key]),
                                 line={"color": DIVERGENCE_COLORS[key], "width": 3}), row=1, col=1)
    jsd_fit = toy.jsd_fits[float(beta)]
    fig.add_trace(go.Scatter(x=toy.x, y=toy.student(jsd_fit), mode="lines", name=_fit_label(beta_name(beta), jsd_fit),
                             line={"color": DIVERGENCE_COLORS["jsd"], "width": 3, "dash": "dash"}), row=1, col=1)
    fig.update_xaxes(title_text="x (where the distributions live)", row=1, col=1)
    fig.update_yaxes(title_text="probability on the grid", row=1, col=1)
    landscapes = [toy.forward, toy.reverse, toy.jsd[float(beta)]]
    fits = [toy.fits["forward"], toy.fits["reverse"], jsd_fit]
    widths = [w for w in (0.3, 0.5, 1, 2, 4, 6) if toy.widths[0] <= w <= toy.widths[-1] * 1.001]
    for col, (z, fit, key) in enumerate(zip(landscapes, fits, ("forward", "reverse", "jsd")), start=1):
        fig.add_trace(go.Heatmap(x=toy.means, y=toy.widths, z=_log10(z), coloraxis="coloraxis",
                                 hovertemplate="mean %{x:.1f}, width %{y:.2f}: log10 D = %{z:.2f}<extra></extra>"),
                      row=2, col=col)
        fig.add_trace(go.Scatter(x=[fit.mean], y=[fit.width], mode="markers", name="minimum",
                                 marker={"symbol": "x", "size": 13, "color": DIVERGENCE_COLORS[key],
                                         "line": {"width": 2, "color": "white"}},
                                 hovertemplate="minimum: mean %{x:.1f}, width %{y:.2f}<extra></extra>"),
                      row=2, col=col)
        fig.update_xaxes(title_text="student mean" if col == 2 else None, row=2, col=col,
                         tickvals=[-4, 0, 4])  # few ticks: the three panels' edge labels do not run together
        fig.update_yaxes(type="log", tickvals=widths, ticktext=[f"{w:g}" for w in widths],
                         title_text="student width (log)" if col == 1 else None, row=2, col=col)
    ticks = np.arange(LOG_RANGE[0], LOG_RANGE[1] + 1)
    fig.update_layout(coloraxis={"colorscale": "Viridis", "cmin": LOG_RANGE[0], "cmax": LOG_RANGE[1],
                                 "colorbar": {"title": {"text": "nats"}, "tickvals": ticks, "thickness": 10,
                                              "ticktext": [f"{10 ** t:g}" for t in ticks], "len": 0.5, "y": 0.0,
                                              "yanchor": "bottom", "xpad": 4}},
                      showlegend=False, margin={"t": 110, "b": 130, "r": 30}, modebar={"orientation": "v"})
    slider: dict[str, Any] = {"active": betas.index(float(beta)), "x": 0.0, "len": 1.0, "y": 0.0, "yanchor": "top",
                              "pad": {"t": 60}, "currentvalue": {"prefix": "JSD β = ", "font": {"size": 14}},
                              "steps": [{"label": f"{b:g}", "method": "update", "args": _beta_step(toy, b)}
                                        for b in betas]}
    fig.update_layout(sliders=[slider])
    fig.update_annotations(font_size=13)  # the landscapes' titles fit a phone's third of the width
    return fig


def _beta_step(toy: ModeToy, beta: float) -> list[Any]:
    """Plotly "update" args for one beta: the JSD student (trace 3), its minimum (9), its landscape (8), the titles."""
    fit = toy.jsd_fits[beta]
    traces = {"x": [toy.x.tolist(), [fit.mean], toy.means.tolist()],
              "y": [toy.student(fit).tolist(), [fit.width], toy.widths.tolist()],
              "z": [None, None, _log10(toy.jsd[beta])],  # null: the two scatters have no z
              "name": [_fit_label(beta_name(beta), fit), "minimum", ""]}
    titles = {"title.text": f"<b>{FITS_TITLE}<br><sup>{_legend(beta)}</sup></b>",  # bold, as Streamlit draws the first
              "annotations[2].text": f"JSD(β = {beta:g})"}
    return [traces, titles, [3, 9, 8]]


def jsd_ends(toy: ModeToy) -> go.Figure:
    """JSD(beta) of one fixed student (the forward-KL fit) against beta: it vanishes at both ends, where the
    convention puts the two pure KLs instead (drawn as separate points)."""
    betas, values = np.array(toy.curve_betas), np.asarray(toy.jsd_curve)
    inner = (betas > 0) & (betas < 1)
    fig = go.Figure([
        go.Scatter(x=betas[inner], y=values[inner], mode="lines", name="JSD(β) itself (0 < β < 1)",
                   line={"color": DIVERGENCE_COLORS["jsd"], "width": 3}),
        go.Scatter(x=[0.0], y=values[betas == 0], mode="markers", name="β = 0: forward KL, by convention",
                   marker={"size": 13, "color": DIVERGENCE_COLORS["forward"]}),
        go.Scatter(x=[1.0], y=values[betas == 1], mode="markers", name="β = 1: reverse KL, by convention",
                   marker={"size": 13, "color": DIVERGENCE_COLORS["reverse"]}),
    ])
    fit = toy.fits["forward"]
    fig.update_xaxes(range=[-0.04, 1.04])
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(modebar={"orientation": "v"})
    return _subtitled(fig, "JSD(β) of one student against β",
                      f"the forward-KL fit (mean {fit.mean:.1f}, width {fit.width:.2f}); the ends are separate points",
                      "β (weight of the teacher in the mixture)", "divergence (nats)")
