"""Charts of the main comparison: the KD flow and formula, training curves, accuracy bars, confusion."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go

from kd_core.charts.common import ACCURACY_RANGE, BAR_LABELS, _layout, _subtitled
from kd_core.roles import COLORS, ROLE_NAMES, ROLES, STUDENTS

def kd_flow_dot(temperature: float, alpha: float, t_squared: bool = True, vertical: bool = False) -> str:
    """Graphviz DOT source of the distillation flow: teacher -> soft targets -> student; labels -> hard loss.

    Left to right for a wide screen; `vertical` (top to bottom) fits a phone's width.
    """
    t2 = "T² x " if t_squared else ""
    return f"""digraph KD {{
  rankdir={"TB" if vertical else "LR"}; bgcolor="transparent"; nodesep=0.25; ranksep=0.35;
  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=16, color="#555555", fillcolor="#F4F4F4",
        margin="0.15,0.08"];
  edge [fontname="Helvetica", fontsize=14, color="#666666"];
  image [label="image", shape=note, fillcolor="#FFFFFF"];
  label [label="true label", shape=note, fillcolor="#FFFFFF"];
  teacher [label="Teacher\n(big, frozen)", fillcolor="#DCE7F3"];
  student [label="Student\n(small, learning)", fillcolor="#FDE5CC"];
  soft_t [label="soft targets\nsoftmax(z_t / T)", fillcolor="#DCE7F3"];
  soft_s [label="softmax(z_s / T)", fillcolor="#FDE5CC"];
  probs [label="softmax(z_s)", fillcolor="#FDE5CC"];
  kl [label="soft loss\nKL", fillcolor="#F9D5D5"];
  ce [label="hard loss\nCE", fillcolor="#EADCEA"];
  total [label="total loss", style="rounded,filled,bold", fillcolor="#FFF3B0"];
  image -> teacher; image -> student;
  teacher -> soft_t [label="T = {temperature:g}"];
  student -> soft_s [label="T = {temperature:g}"];
  student -> probs [label="T = 1"];
  soft_t -> kl; soft_s -> kl;
  probs -> ce; label -> ce;
  kl -> total [label="x {t2}alpha ({alpha:.2f})"];
  ce -> total [label="x (1 - alpha) ({1 - alpha:.2f})"];
  {"" if vertical else "{rank=same; image; label}"}
}}"""


def loss_formula_latex(temperature: float, alpha: float, t_squared: bool = True, lines: bool = False) -> str:
    """The KD loss in LaTeX with this T and alpha filled in (alpha weights the soft, teacher term).

    One line for a wide screen; `lines` breaks it into four short aligned lines that fit a phone's width.
    """
    t2 = r"T^2\," if t_squared else ""
    filled_t2 = rf"{temperature:g}^2\," if t_squared else ""
    ce = r"(1-\alpha)\,\mathrm{CE}(y, s)"
    kl = rf"\alpha\,{t2}\mathrm{{KL}}\!\left(p_T^{{teacher}} \,\|\, p_T^{{student}}\right)"
    filled = rf"{1 - alpha:.2f}\,\mathrm{{CE}} + {alpha:.2f}\cdot {filled_t2}\mathrm{{KL}}"
    soft = rf"\mathrm{{softmax}}(z / T),\; T = {temperature:g}"
    if lines:
        return rf"\begin{{aligned}} L &= {ce} \\ &\quad + {kl} \\ &= {filled} \\ p_T &= {soft} \end{{aligned}}"
    return rf"L = {ce} + {kl} = {filled},\quad p_T = {soft}"


def _epochs_axis(history: dict[str, list]) -> list[float]:
    """x values in epochs: the stored epoch column, or steps scaled so the last snapshot is the last epoch."""
    if history.get("epoch"):
        return list(history["epoch"])
    steps = history.get("step", [])
    epoch_ends = [i for i, acc in enumerate(history.get("test_acc", [])) if acc is not None]
    if not steps or not epoch_ends:
        return list(range(len(steps)))
    per_epoch = steps[epoch_ends[0]] or 1
    return [s / per_epoch for s in steps]


def training_curves(histories: dict[str, dict[str, list]], metric: str = "loss",
                    title: str | None = None) -> go.Figure:
    """One line per model of `metric` against epochs: "loss" (mean per batch), "hard" (its CE with the labels, the
    one part every model has, so models trained on different losses compare fairly), "test_acc" or "train_acc" (%)."""
    fig = go.Figure()
    for role, history in histories.items():
        x, y = _epochs_axis(history), history.get(metric, [])
        points = [(a, b) for a, b in zip(x, y) if b is not None]
        if metric.endswith("acc"):
            points = [(a, 100 * b) for a, b in points]
        fig.add_trace(go.Scatter(x=[a for a, _ in points], y=[b for _, b in points],
                                 mode="lines+markers" if metric == "test_acc" else "lines",
                                 name=ROLE_NAMES.get(role, role), line={"color": COLORS.get(role)}))
    names = {"loss": ("Training loss", "loss (mean per batch)"),
             "hard": ("Cross-entropy with the labels while training", "CE with labels (nats, mean per batch)"),
             "test_acc": ("Test accuracy after each epoch", "test accuracy (%)"),
             "train_acc": ("Training accuracy", "training-batch accuracy (%)")}
    default_title, y_title = names.get(metric, (metric, metric))
    if metric.endswith("acc"):
        fig.update_yaxes(range=[0, 102])
    return _layout(fig, title or default_title, "epoch", y_title)


def loss_parts(history: dict[str, list], temperature: float, alpha: float, t_squared: bool = True) -> go.Figure:
    """The distilled student's two loss parts against epochs, each on its own y axis (the soft term is often ten
    times the CE): hard CE with the labels on the left, (T²·)KL to the teacher on the right."""
    x = _epochs_axis(history)
    soft_name = "soft: T²·KL to teacher" if t_squared else "soft: KL to teacher (no T²)"
    fig = go.Figure([
        go.Scatter(x=x, y=history.get("hard", []), name=f"hard: CE with labels (weight {1 - alpha:.2f}), left axis",
                   line={"color": COLORS["hard"]}),
        go.Scatter(x=x, y=history.get("soft", []), name=f"{soft_name} (weight {alpha:.2f}), right axis",
                   line={"color": COLORS["soft"], "dash": "dash"}, yaxis="y2"),
    ])
    fig = _layout(fig, f"Distilled student's loss parts (T = {temperature:g})", "epoch",
                  "hard: CE with labels (nats)")
    fig.update_layout(margin={"r": 60}, legend={"y": -0.25},
                      yaxis={"title": {"font": {"color": COLORS["hard"]}}, "rangemode": "tozero"},
                      yaxis2={"title": {"text": f"{soft_name.removeprefix('soft: ')} (nats)",
                                        "font": {"color": COLORS["soft"]}},
                              "overlaying": "y", "side": "right", "rangemode": "tozero", "showgrid": False})
    return fig


def _spread(model: dict[str, Any]) -> float:
    """The spread shown as an error bar: sample standard deviation over seeds (0 with one seed)."""
    return 100 * float(model.get("accuracy_std", 0.0))


def accuracy_comparison(result: dict[str, Any]) -> go.Figure:
    """Teacher, distilled and scratch test accuracy as bars: mean over seeds, error bars ± one standard deviation."""
    models = result["models"]
    roles = [r for r in ROLES if r in models]
    means = [100 * models[r]["accuracy_mean"] for r in roles]
    fig = go.Figure(go.Bar(
        x=[ROLE_NAMES[r] for r in roles], y=means, marker_color=[COLORS[r] for r in roles],
        error_y={"type": "data", "array": [_spread(models[r]) for r in roles], "visible": True},
        text=[f"{m:.1f}%" for m in means], name="test accuracy", **BAR_LABELS))
    seeds = len(models[roles[-1]]["accuracies"])
    fig.update_yaxes(range=ACCURACY_RANGE)
    spread = "mean ± std over " + (f"{seeds} seeds" if seeds > 1 else "1 seed (no spread)")
    return _subtitled(fig, "Test accuracy of the three models", spread, "model", "test accuracy (%)")


def per_class_accuracy(result: dict[str, Any]) -> go.Figure:
    """Per-class test accuracy of the distilled and the scratch student (seed means), grouped by class."""
    classes = result["classes"]
    fig = go.Figure()
    for role in STUDENTS:
        runs = result["models"][role]["runs"]
        mean = np.mean([r["per_class"] for r in runs], axis=0) * 100
        fig.add_trace(go.Bar(x=list(classes), y=mean, name=ROLE_NAMES[role], marker_color=COLORS[role]))
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category")
    fig.update_yaxes(range=ACCURACY_RANGE)
    return _subtitled(fig, "Per-class test accuracy", "distilled vs scratch student, mean over seeds", "true class",
                      "test accuracy (%)")


def agreement_with_teacher(result: dict[str, Any]) -> go.Figure:
    """How often each student predicts the same class as the teacher on the test set (seed mean)."""
    values = [100 * float(np.mean([r["agreement_with_teacher"] for r in result["models"][role]["runs"]]))
              for role in STUDENTS]
    fig = go.Figure(go.Bar(x=[ROLE_NAMES[r] for r in STUDENTS], y=values,
                           marker_color=[COLORS[r] for r in STUDENTS], text=[f"{v:.1f}%" for v in values],
                           name="agreement", **BAR_LABELS))
    fig.update_yaxes(range=ACCURACY_RANGE)
    return _subtitled(fig, "Agreement with the teacher", "same predicted class, on the test images", "student",
                   "same prediction as teacher (% of test images)")


def confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str = "Confusion matrix") -> go.Figure:
    """Counts of (true class, predicted class) on the test set as a heatmap; each cell can be clicked.

    Plotly selects points of scatter traces, not heatmap cells, so an invisible square marker sits on each
    cell (customdata: [true index, predicted index]); a selected cell gets an outline.
    """
    z = np.asarray(matrix)
    n = len(classes)
    cells = [(t, p) for t in range(n) for p in range(n)]
    fig = go.Figure([
        go.Heatmap(z=z, x=list(classes), y=list(classes), colorscale="Blues", text=z, texttemplate="%{text}",
                   colorbar={"title": {"text": "images"}}, hoverinfo="skip"),
        go.Scatter(x=[classes[p] for _, p in cells], y=[classes[t] for t, _ in cells], mode="markers",
                   customdata=cells, name="cells", showlegend=False,
                   marker={"symbol": "square", "size": 26, "color": "rgba(0,0,0,0)", "opacity": 0,
                           "line": {"width": 3, "color": COLORS["soft"]}},
                   selected={"marker": {"opacity": 1}}, unselected={"marker": {"opacity": 0}},
                   text=[str(z[t, p]) for t, p in cells],
                   hovertemplate="true %{y}, predicted %{x}: %{text} images<extra></extra>")])
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    return _layout(fig, title, "predicted class", "true class", height=430)


def cell_examples(images: Sequence[np.ndarray], probabilities: Sequence[dict[str, np.ndarray]],
                  classes: Sequence[str], temperature: float, title: str) -> go.Figure:
    """One row per test image: the image (28 × 28 grey levels) and each model's softened outputs beside it."""
    from plotly.subplots import make_subplots

    rows = max(len(images), 1)
    fig = make_subplots(rows=rows, cols=2, column_widths=[0.18, 0.82], horizontal_spacing=0.1,
                        vertical_spacing=0.25 / rows)
    for row, (image, probs) in enumerate(zip(images, probabilities), start=1):
        fig.add_trace(go.Heatmap(z=np.asarray(image), colorscale="gray", showscale=False, hoverinfo="skip"),
                      row=row, col=1)
        fig.update_xaxes(visible=False, row=row, col=1)
        fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{2 * row - 1}", row=row, col=1)
        for role, p in probs.items():
            fig.add_trace(go.Bar(x=list(classes), y=list(map(float, p)), name=ROLE_NAMES.get(role, role),
                                 marker_color=COLORS.get(role), legendgroup=role, showlegend=row == 1,
                                 hovertemplate=f"{ROLE_NAMES.get(role, role)}, class %{{x}}: %{{y:.3f}}"
                                               "<extra></extra>"),
                          row=row, col=2)
        fig.update_xaxes(type="category", row=row, col=2)
        fig.update_yaxes(range=[0, 1.02], title_text="prob.", row=row, col=2)
    height = 130 + 130 * rows
    fig.update_layout(barmode="group")
    fig = _subtitled(fig, title, f"each model's softmax(z / T) at T = {temperature:g}", "", "", height=height)
    fig.update_layout(legend={"y": -50 / (height - 122)})  # just under the plot, whatever its height
    fig.update_xaxes(title_text="class", row=rows, col=2)
    return fig


def class_counts(train_counts: Sequence[int], test_counts: Sequence[int], classes: Sequence[str]) -> go.Figure:
    """Images per class in the training and test splits."""
    fig = go.Figure([go.Bar(x=list(classes), y=list(train_counts), name="train", marker_color=COLORS["teacher"]),
                     go.Bar(x=list(classes), y=list(test_counts), name="test", marker_color=COLORS["distilled"])])
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category")
    return _layout(fig, "Images per class", "class", "images (count)")


def digit_outputs(probabilities: dict[str, Sequence[float] | np.ndarray], classes: Sequence[str],
                  temperature: float) -> go.Figure:
    """One image's softened outputs from each model ("teacher", "distilled", "scratch"), grouped per class."""
    fig = go.Figure([go.Bar(x=list(classes), y=list(map(float, p)), name=ROLE_NAMES.get(role, role),
                            marker_color=COLORS.get(role), hovertemplate="class %{x}: %{y:.3f}<extra></extra>")
                     for role, p in probabilities.items()])
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_xaxes(type="category")
    return _subtitled(fig, "Softened probabilities for your digit",
                      f"each model's softmax(z / T) at T = {temperature:g}", "class", "probability (0-1)")
