"""Charts of efficiency and compression (kd_core.compress rows): accuracy against cost, recovery from pruning."""

from __future__ import annotations

import math
from typing import Any, Sequence

import plotly.graph_objects as go

from kd_core.charts.common import _layout
from kd_core.roles import COMPRESS_COLORS, ROLE_NAMES

PARETO_AXES = {  # axis name -> (axis title with unit, value of a compress row)
    "latency": ("CPU latency per image at batch 1 (ms, median; log scale)", lambda r: r["latency_ms"]["median_ms"]),
    "size": ("size on disk (KB, log scale)", lambda r: r["size_bytes"] / 1024),
}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both cost (x, lower is better) and accuracy (y, higher)."""
    front = []
    for i, (x, y) in enumerate(points):
        beaten = any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i)
        if not beaten:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def efficiency_pareto(rows: Sequence[dict[str, Any]], axis: str = "latency") -> go.Figure:
    """Test accuracy against latency or size on disk: one point per model or compression stage."""
    # The dashed line joins the Pareto front (nothing is both cheaper and more accurate than a point on it);
    # arrows follow the distil -> prune -> quantize pipeline.
    title_x, value = PARETO_AXES[axis]
    xs = [float(value(r)) for r in rows]
    ys = [100 * r["accuracy"] for r in rows]
    fig = go.Figure()
    for r, x, y in zip(rows, xs, ys):
        lat = r["latency_ms"]
        fig.add_trace(go.Scatter(
            x=[x], y=[y], mode="markers", name=r["name"],
            marker={"size": 14 if r.get("pipeline") else 10, "color": COMPRESS_COLORS.get(r["id"], "#888888"),
                    "symbol": "diamond" if r["precision"] == "int8" else "circle",
                    "line": {"width": 1, "color": "#333333"}},
            hovertemplate=(f"<b>{r['name']}</b><br>accuracy {y:.1f}%<br>latency {lat['median_ms']:.3f} ms "
                           f"(min {lat['min_ms']:.3f}, max {lat['max_ms']:.3f})<br>size {r['size_bytes'] / 1024:.1f} KB"
                           "<extra></extra>")))
    front = pareto_front(list(zip(xs, ys)))
    fig.add_trace(go.Scatter(x=[xs[i] for i in front], y=[ys[i] for i in front], mode="lines", name="Pareto front",
                             line={"dash": "dash", "color": "#999999", "width": 1}, hoverinfo="skip"))
    by_id = {r["id"]: i for i, r in enumerate(rows)}
    chain = [by_id[k] for k in ("distilled", "pruned-kd", "pruned-kd-int8") if k in by_id]
    for a, b in zip(chain, chain[1:]):
        fig.add_annotation(x=math.log10(xs[b]), y=ys[b], ax=math.log10(xs[a]), ay=ys[a], xref="x", yref="y",
                           axref="x", ayref="y", showarrow=True, arrowhead=3, arrowsize=1.2, arrowwidth=1.5,
                           arrowcolor="#555555", text="")
    fig.update_xaxes(type="log")
    low, high = min(ys), max(ys)
    fig.update_yaxes(range=[max(0.0, low - 0.1 * max(high - low, 5)), min(100.0, high + 0.1 * max(high - low, 5))])
    what = "latency" if axis == "latency" else "size on disk"
    return _layout(fig, f"Accuracy vs {what} (one point per model; up-left is better)",
                   title_x, "test accuracy (%)", height=460)


def finetune_recovery(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Accuracy of the unpruned distilled student, the pruned one, and the pruned one after a CE or a KD epoch."""
    by_id = {r["id"]: r for r in rows}
    ids = [k for k in ("distilled", "pruned", "pruned-ce", "pruned-kd") if k in by_id]
    labels = {"distilled": "unpruned", "pruned": "pruned,<br>no fine-tune", "pruned-ce": "pruned +<br>CE epoch (labels)",
              "pruned-kd": "pruned +<br>KD epoch (teacher)"}
    values = [100 * by_id[k]["accuracy"] for k in ids]
    fig = go.Figure(go.Bar(x=[labels[k] for k in ids], y=values, marker_color=[COMPRESS_COLORS[k] for k in ids],
                           text=[f"{v:.1f}%" for v in values], textposition="outside", name="test accuracy"))
    if "distilled" in by_id:
        base = values[0]
        fig.add_hline(y=base - 1, line={"dash": "dot", "color": "#777777"},
                      annotation_text="1 point below unpruned", annotation_position="bottom right")
    low = max(0.0, min(values) - 10)
    fig.update_yaxes(range=[low, min(100.0, max(values) + 6)])
    sparsity = by_id["pruned"]["sparsity"] if "pruned" in by_id else 0.0
    return _layout(fig, f"Recovering from pruning ({sparsity:.0%} of the weights zero): KD vs CE fine-tuning",
                   ROLE_NAMES["distilled"], "test accuracy (%)")
