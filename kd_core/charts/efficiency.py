"""Charts of efficiency and compression (kd_core.compress rows): accuracy against cost, recovery from pruning."""

from __future__ import annotations

import math
from typing import Any, Sequence

import plotly.graph_objects as go

from kd_core.charts.common import ACCURACY_RANGE, BAR_LABELS, _log_axis, _subtitled
from kd_core.roles import COMPRESS_COLORS, ROLE_NAMES

PARETO_AXES = {  # axis name -> (axis title with unit, (low, value, high) of a compress row: the cost and its noise)
    "latency": ("CPU latency at batch 1 (ms per image, log scale)",
                lambda r: (r["latency_ms"]["min_ms"], r["latency_ms"]["median_ms"], r["latency_ms"]["max_ms"])),
    "size": ("size on disk (KB, log scale)", lambda r: (r["size_bytes"] / 1024,) * 3),
}
PARETO_UNITS = {"latency": "ms", "size": "KB"}  # on every tick label of the (log) cost axis


def pareto_front(points: Sequence[tuple[float, float]],
                 spreads: Sequence[tuple[float, float]] | None = None) -> list[int]:
    """Indices of the points no other point beats on both cost (x, lower is better) and accuracy (y, higher).

    `spreads` (low, high) per point is the measured range of its cost: two points whose ranges overlap are
    equally cheap (a median ahead by timing noise beats nothing), so the more accurate one beats the other.
    Without spreads every cost is exact.
    """
    spreads = spreads or [(x, x) for x, _ in points]

    def beats(j: int, i: int) -> bool:
        (_, yj), (_, yi) = points[j], points[i]
        (low_j, high_j), (low_i, high_i) = spreads[j], spreads[i]
        cheaper, tied = high_j < low_i, high_j >= low_i and high_i >= low_j
        return (cheaper and yj >= yi) or (tied and yj > yi)

    front = [i for i in range(len(points)) if not any(beats(j, i) for j in range(len(points)) if j != i)]
    return sorted(front, key=lambda i: points[i][0])


def efficiency_pareto(rows: Sequence[dict[str, Any]], axis: str = "latency") -> go.Figure:
    """Test accuracy against latency or size on disk: one point per model or compression stage."""
    # The dashed line joins the Pareto front (nothing is both cheaper and more accurate than a point on it;
    # latencies whose min–max ranges overlap count as equal); arrows follow the distil -> prune -> quantize pipeline.
    title_x, value = PARETO_AXES[axis]
    costs = [tuple(map(float, value(r))) for r in rows]
    xs = [mid for _, mid, _ in costs]
    ys = [100 * r["accuracy"] for r in rows]
    fig = go.Figure()
    for r, (low, x, high), y in zip(rows, costs, ys):
        lat = r["latency_ms"]
        fig.add_trace(go.Scatter(
            x=[x], y=[y], mode="markers", name=r["name"],
            error_x={"type": "data", "symmetric": False, "array": [high - x], "arrayminus": [x - low],
                     "visible": high > low, "color": "#999999", "thickness": 1},
            marker={"size": 14 if r.get("pipeline") else 10, "color": COMPRESS_COLORS.get(r["id"], "#888888"),
                    "symbol": "diamond" if r["precision"] == "int8" else "circle",
                    "line": {"width": 1, "color": "#333333"}},
            hovertemplate=(f"<b>{r['name']}</b><br>accuracy {y:.1f}%<br>latency {lat['median_ms']:.3f} ms "
                           f"(min {lat['min_ms']:.3f}, max {lat['max_ms']:.3f})<br>size {r['size_bytes'] / 1024:.1f} KB"
                           "<extra></extra>")))
    front = pareto_front(list(zip(xs, ys)), [(low, high) for low, _, high in costs])
    fig.add_trace(go.Scatter(x=[xs[i] for i in front], y=[ys[i] for i in front], mode="lines", name="Pareto front",
                             line={"dash": "dash", "color": "#999999", "width": 1}, hoverinfo="skip"))
    by_id = {r["id"]: i for i, r in enumerate(rows)}
    chain = [by_id[k] for k in ("distilled", "pruned-kd", "pruned-kd-int8") if k in by_id]
    for a, b in zip(chain, chain[1:]):
        fig.add_annotation(x=math.log10(xs[b]), y=ys[b], ax=math.log10(xs[a]), ay=ys[a], xref="x", yref="y",
                           axref="x", ayref="y", showarrow=True, arrowhead=3, arrowsize=1.2, arrowwidth=1.5,
                           arrowcolor="#555555", text="")
    _log_axis(fig, xs, "x", PARETO_UNITS[axis])  # over the points, not the min–max bars: one slow call of thirty
    # would otherwise squeeze every point into a corner
    low, high = min(ys), max(ys)
    fig.update_yaxes(range=[max(0.0, low - 0.1 * max(high - low, 5)), min(100.0, high + 0.1 * max(high - low, 5))])
    what = "latency" if axis == "latency" else "size on disk"
    detail = ("median, bars min–max · dashed: Pareto front (overlapping bars tie)" if axis == "latency"
              else "dashed: Pareto front (nothing smaller is more accurate)")
    fig = _subtitled(fig, f"Accuracy vs {what} (up-left is better)", detail, title_x, "test accuracy (%)",
                     height=480)
    fig.update_layout(legend={"y": -0.3})  # under the x axis's title
    return fig


def finetune_recovery(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Accuracy of the unpruned distilled student, the pruned one, and the pruned one after a CE or a KD epoch."""
    by_id = {r["id"]: r for r in rows}
    ids = [k for k in ("distilled", "pruned", "pruned-ce", "pruned-kd") if k in by_id]
    labels = {"distilled": "unpruned", "pruned": "pruned,<br>no fine-tune", "pruned-ce": "pruned +<br>CE epoch (labels)",
              "pruned-kd": "pruned +<br>KD epoch (teacher)"}
    values = [100 * by_id[k]["accuracy"] for k in ids]
    fig = go.Figure(go.Bar(x=[labels[k] for k in ids], y=values, marker_color=[COMPRESS_COLORS[k] for k in ids],
                           text=[f"{v:.1f}%" for v in values], name="test accuracy", **BAR_LABELS))
    sparsity = by_id["pruned"]["sparsity"] if "pruned" in by_id else 0.0
    detail = f"{sparsity:.0%} of the weights zero"
    if "distilled" in by_id:
        fig.add_hline(y=values[0] - 1, line={"dash": "dot", "color": "#555555"})
        detail += " · dotted: 1 point below unpruned"
    fig.update_yaxes(range=ACCURACY_RANGE)
    return _subtitled(fig, "Recovering from pruning: KD vs CE fine-tuning", detail, ROLE_NAMES["distilled"],
                      "test accuracy (%)")
