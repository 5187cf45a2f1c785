"""Plotly figure builders for the app: plain functions of plain data, each figure titled with labelled axes.

Nothing here trains or loads a model; pages pass in results, histories, logits or counts. Softened
probabilities always come from `kd_core.losses.soften` (the formula lives there only).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
import pandas  # noqa: F401  (imported whole before any figure: Plotly reads a half-imported pandas from another thread)
import plotly.graph_objects as go

COLORS = {"teacher": "#4C78A8", "distilled": "#F58518", "scratch": "#54A24B",
          "hard": "#B279A2", "soft": "#E45756", "T=1": "#9D9D9D"}
ROLE_NAMES = {"teacher": "teacher", "distilled": "distilled student", "scratch": "scratch student"}
TEMPERATURE_RANGE = (0.5, 30.0)  # x range of the entropy-vs-T curve


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = 380) -> go.Figure:
    """Apply the common look: a title, axis titles (with units), a compact margin, the legend under the plot."""
    fig.update_layout(title={"text": title, "x": 0.0, "xanchor": "left"}, height=height,
                      margin={"l": 60, "r": 20, "t": 50, "b": 50},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0})
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y)
    return fig


def softened(logits: Sequence[float] | np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) as a numpy array, computed by kd_core.losses.soften."""
    import torch

    from kd_core.losses import soften

    return soften(torch.as_tensor(np.asarray(logits, dtype=np.float32)), float(temperature)).numpy()


def kd_flow_dot(temperature: float, alpha: float, t_squared: bool = True) -> str:
    """Graphviz DOT source of the distillation flow: teacher -> soft targets -> student; labels -> hard loss."""
    t2 = "T² x " if t_squared else ""
    return f"""digraph KD {{
  rankdir=LR; bgcolor="transparent"; nodesep=0.25; ranksep=0.35;
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
  {{rank=same; image; label}}
}}"""


def loss_formula_latex(temperature: float, alpha: float, t_squared: bool = True) -> str:
    """The KD loss in LaTeX with this T and alpha filled in (alpha weights the soft, teacher term)."""
    t2 = r"T^2\," if t_squared else ""
    filled_t2 = rf"{temperature:g}^2\," if t_squared else ""
    return (rf"L = (1-\alpha)\,\mathrm{{CE}}(y, s) + \alpha\,{t2}\mathrm{{KL}}\!\left(p_T^{{teacher}} \,\|\, "
            rf"p_T^{{student}}\right) = {1 - alpha:.2f}\,\mathrm{{CE}} + {alpha:.2f}\cdot {filled_t2}\mathrm{{KL}}"
            rf",\quad p_T = \mathrm{{softmax}}(z / T),\; T = {temperature:g}")


def events_to_histories(events: Iterable[Any], seed: int = 0) -> dict[str, dict[str, list]]:
    """Group experiment Events (phase, seed, progress) into one History-like dict per phase for `seed`."""
    histories: dict[str, dict[str, list]] = {}
    for event in events:
        if event.phase != "teacher" and event.seed != seed:
            continue
        h = histories.setdefault(event.phase, {k: [] for k in ("step", "epoch", "loss", "hard", "soft",
                                                               "train_acc", "test_acc")})
        p = event.progress
        for name in ("step", "epoch", "loss", "hard", "soft", "train_acc", "test_acc"):
            h[name].append(getattr(p, name))
    return histories


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
    """One line per model (teacher / distilled / scratch) of `metric` against epochs.

    metric: "loss" (training loss, mean per batch), "test_acc" (test accuracy at epoch ends, %) or
    "train_acc" (training-batch accuracy, %).
    """
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
             "test_acc": ("Test accuracy after each epoch", "test accuracy (%)"),
             "train_acc": ("Training accuracy", "training-batch accuracy (%)")}
    default_title, y_title = names.get(metric, (metric, metric))
    return _layout(fig, title or default_title, "epoch", y_title)


def loss_parts(history: dict[str, list], temperature: float, alpha: float, t_squared: bool = True) -> go.Figure:
    """The distilled student's two loss parts against epochs: hard CE with the labels and (T²·)KL to the teacher."""
    x = _epochs_axis(history)
    soft_name = "soft: T²·KL to teacher" if t_squared else "soft: KL to teacher (no T²)"
    fig = go.Figure([
        go.Scatter(x=x, y=history.get("hard", []), name=f"hard: CE with labels (weight {1 - alpha:.2f})",
                   line={"color": COLORS["hard"]}),
        go.Scatter(x=x, y=history.get("soft", []), name=f"{soft_name} (weight {alpha:.2f})",
                   line={"color": COLORS["soft"]}),
    ])
    return _layout(fig, f"Distilled student's loss parts (T = {temperature:g})", "epoch", "loss (nats, mean per batch)")


def softmax_at_t(logits: Sequence[float] | np.ndarray, temperature: float, classes: Sequence[str]) -> go.Figure:
    """The teacher's output for one image as probabilities at T = 1 and at T, side by side per class."""
    fig = go.Figure([
        go.Bar(x=list(classes), y=softened(logits, 1.0), name="T = 1 (ordinary softmax)",
               marker_color=COLORS["T=1"]),
        go.Bar(x=list(classes), y=softened(logits, temperature), name=f"T = {temperature:g} (soft targets)",
               marker_color=COLORS["teacher"]),
    ])
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_xaxes(type="category")
    return _layout(fig, f"Teacher's probabilities for this image: T = 1 vs T = {temperature:g}",
                   "class", "probability (0-1)")


def effective_classes(logits: Sequence[float] | np.ndarray, temperature: float) -> float:
    """exp(entropy) of softmax(logits / T): 1 for a one-hot output, the number of classes for a uniform one."""
    p = softened(logits, temperature).astype(np.float64)
    entropy = -float(np.sum(p * np.log(np.clip(p, 1e-12, None))))
    return math.exp(entropy)


def effective_classes_vs_t(logits: Sequence[float] | np.ndarray, temperature: float,
                           t_range: tuple[float, float] = TEMPERATURE_RANGE, points: int = 60) -> go.Figure:
    """Effective number of classes (exp of the entropy) of the softened output against T, current T marked."""
    ts = np.geomspace(t_range[0], t_range[1], points)
    ys = [effective_classes(logits, t) for t in ts]
    fig = go.Figure([go.Scatter(x=ts, y=ys, mode="lines", name="effective classes", line={"color": COLORS["teacher"]}),
                     go.Scatter(x=[temperature], y=[effective_classes(logits, temperature)], mode="markers",
                                marker={"size": 12, "color": COLORS["soft"]}, name=f"current T = {temperature:g}")])
    fig.add_vline(x=temperature, line_dash="dot", line_color=COLORS["soft"])
    fig.update_xaxes(type="log", tickvals=[0.5, 1, 2, 5, 10, 20, 30], ticktext=["0.5", "1", "2", "5", "10", "20", "30"])
    fig.update_yaxes(range=[0.8, len(np.asarray(logits)) + 0.2])
    return _layout(fig, "How many classes the soft target spreads over, as T grows",
                   "temperature T (log scale)", "effective number of classes (e^entropy)")


def average_soft_targets(logits: np.ndarray, labels: np.ndarray, temperature: float, classes: int) -> np.ndarray:
    """(classes, classes): row c is the mean of softmax(logits / T) over the images whose true class is c."""
    probs = softened(logits, temperature)
    labels = np.asarray(labels)
    rows = [probs[labels == c].mean(axis=0) if np.any(labels == c) else np.zeros(classes) for c in range(classes)]
    return np.stack(rows)


def class_similarity(avg_soft: np.ndarray, classes: Sequence[str], temperature: float,
                     hide_diagonal: bool = True) -> go.Figure:
    """Heatmap of the teacher's average soft targets per true class (rows) over predicted classes (columns)."""
    z = np.array(avg_soft, dtype=float)
    if hide_diagonal:
        z = z.copy()
        np.fill_diagonal(z, np.nan)
    fig = go.Figure(go.Heatmap(z=z, x=list(classes), y=list(classes), colorscale="Blues",
                               colorbar={"title": {"text": "mean prob."}},
                               hovertemplate="true %{y}, soft target for %{x}: %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    note = ", diagonal hidden" if hide_diagonal else ""
    return _layout(fig, f"Average soft target per true class (T = {temperature:g}{note})",
                   "class the teacher gives probability to", "true class", height=430)


def _spread(model: dict[str, Any]) -> float:
    """The spread shown as an error bar: sample standard deviation over seeds (0 with one seed)."""
    return 100 * float(model.get("accuracy_std", 0.0))


def accuracy_comparison(result: dict[str, Any]) -> go.Figure:
    """Teacher, distilled and scratch test accuracy as bars: mean over seeds, error bars ± one standard deviation."""
    models = result["models"]
    roles = [r for r in ("teacher", "distilled", "scratch") if r in models]
    means = [100 * models[r]["accuracy_mean"] for r in roles]
    fig = go.Figure(go.Bar(
        x=[ROLE_NAMES[r] for r in roles], y=means, marker_color=[COLORS[r] for r in roles],
        error_y={"type": "data", "array": [_spread(models[r]) for r in roles], "visible": True},
        text=[f"{m:.1f}%" for m in means], textposition="outside", name="test accuracy"))
    seeds = len(models[roles[-1]]["accuracies"])
    low = max(0.0, min(means) - 15)
    fig.update_yaxes(range=[low, min(100.0, max(means) + 8)])
    spread = "mean ± std over " + (f"{seeds} seeds" if seeds > 1 else "1 seed (no spread)")
    return _layout(fig, f"Test accuracy of the three models ({spread})", "model", "test accuracy (%)")


def per_class_accuracy(result: dict[str, Any]) -> go.Figure:
    """Per-class test accuracy of the distilled and the scratch student (seed means), grouped by class."""
    classes = result["classes"]
    fig = go.Figure()
    for role in ("distilled", "scratch"):
        runs = result["models"][role]["runs"]
        mean = np.mean([r["per_class"] for r in runs], axis=0) * 100
        fig.add_trace(go.Bar(x=list(classes), y=mean, name=ROLE_NAMES[role], marker_color=COLORS[role]))
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category")
    return _layout(fig, "Per-class test accuracy: distilled vs scratch student", "true class", "test accuracy (%)")


def agreement_with_teacher(result: dict[str, Any]) -> go.Figure:
    """How often each student predicts the same class as the teacher on the test set (seed mean)."""
    roles = ("distilled", "scratch")
    values = [100 * float(np.mean([r["agreement_with_teacher"] for r in result["models"][role]["runs"]]))
              for role in roles]
    fig = go.Figure(go.Bar(x=[ROLE_NAMES[r] for r in roles], y=values, marker_color=[COLORS[r] for r in roles],
                           text=[f"{v:.1f}%" for v in values], textposition="outside", name="agreement"))
    fig.update_yaxes(range=[0, 105])
    return _layout(fig, "Agreement with the teacher's predictions", "student",
                   "same prediction as teacher (% of test images)")


def confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str = "Confusion matrix") -> go.Figure:
    """Counts of (true class, predicted class) on the test set as a heatmap."""
    z = np.asarray(matrix)
    fig = go.Figure(go.Heatmap(z=z, x=list(classes), y=list(classes), colorscale="Blues", text=z,
                               texttemplate="%{text}", colorbar={"title": {"text": "images"}},
                               hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    return _layout(fig, title, "predicted class", "true class", height=430)


def class_counts(train_counts: Sequence[int], test_counts: Sequence[int], classes: Sequence[str]) -> go.Figure:
    """Images per class in the training and test splits."""
    fig = go.Figure([go.Bar(x=list(classes), y=list(train_counts), name="train", marker_color=COLORS["teacher"]),
                     go.Bar(x=list(classes), y=list(test_counts), name="test", marker_color=COLORS["distilled"])])
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category")
    return _layout(fig, "Images per class", "class", "images (count)")


# ----------------------------------------------------------------------------------------------------
# The Experiments page (kd_core.lab results; each builder also takes the partial rows of a running job)

LAB_COLORS = {"distilled_corrected": "#B6530B", "distilled_all": "#4C78A8", "noise": "rgba(150,150,150,0.25)",
              "within": "#9D9D9D", "best": "#E45756"}
LAB_NAMES = {"scratch": "scratch (never saw it)", "distilled": "distilled (never saw it)",
             "distilled_corrected": "distilled + bias correction", "distilled_all": "distilled, saw every class"}


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


def budget_accuracy(rows: Sequence[dict[str, Any]], seeds: int) -> go.Figure:
    """Distilled and scratch test accuracy (mean ± std over seeds) against labelled images, log x."""
    rows = sorted(rows, key=lambda r: r["images"])
    x = [r["images"] for r in rows]
    fig = go.Figure()
    for role in ("distilled", "scratch"):
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
    """Distilled − scratch accuracy per budget (± its std over seeds), with the noise band around zero.

    Points inside the grey band (|gain| < the row's `noise`) are drawn hollow: there the gain is within noise.
    """
    rows = sorted(rows, key=lambda r: r["images"])
    x = [r["images"] for r in rows]
    noise = [100 * r["noise"] for r in rows]
    fig = go.Figure([
        go.Scatter(x=x, y=noise, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"),
        go.Scatter(x=x, y=[-n for n in noise], mode="lines", line={"width": 0}, fill="tonexty",
                   fillcolor=LAB_COLORS["noise"], name="noise band: a gain inside it is within noise",
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
            x=[label for _, label in groups], y=means, name=LAB_NAMES[role].replace("it)", f"a {name})"),
            marker_color=LAB_COLORS.get(role, COLORS.get(role)), text=[f"{v:.1f}%" for v in means],
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
    """Held-out accuracy (overall, and on the omitted class) against the bias added to its logit; chosen bias marked.

    Two y axes: the overall accuracy (which the bias is chosen to maximise) moves over a few points only.
    """
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
    """Mean distilled accuracy over T (x) × alpha (y); cells not finished yet are blank.

    When the cells carry "best" / "within_noise" (a finished sweep), the best cell gets a star and the cells
    within noise of it a ring.
    """
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
                                                               "color": LAB_COLORS["best"], "line": {"width": 4}},
                                 hoverinfo="skip"))
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=xs)
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=ys)
    ref = "" if scratch is None else f" (scratch student: {100 * scratch:.1f}%)"
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


# ------------------------------------------------------------------ language models (kd_core.lm)

def char_label(c: str) -> str:
    """A character as a readable bar label: space, newline and tab get visible names."""
    return {" ": "␣ (space)", "\n": "⏎ (newline)", "\t": "⇥ (tab)"}.get(c, c)


def next_char_bars(chars: str, teacher_logits: Sequence[float] | np.ndarray,
                   student_logits: Sequence[float] | np.ndarray, temperature: float, top: int = 12,
                   student_name: str = "distilled student") -> go.Figure:
    """Next-character probabilities for the `top` characters the teacher ranks highest at T = 1:
    the teacher at T = 1, the teacher at T and the student at T, side by side per character."""
    teacher_1 = softened(teacher_logits, 1.0)
    order = np.argsort(-teacher_1)[:top]
    labels = [char_label(chars[i]) for i in order]
    fig = go.Figure([
        go.Bar(x=labels, y=teacher_1[order], name="teacher, T = 1", marker_color=COLORS["T=1"]),
        go.Bar(x=labels, y=softened(teacher_logits, temperature)[order], name=f"teacher, T = {temperature:g}",
               marker_color=COLORS["teacher"]),
        go.Bar(x=labels, y=softened(student_logits, temperature)[order], name=f"{student_name}, T = {temperature:g}",
               marker_color=COLORS["distilled"]),
    ])
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_xaxes(type="category")
    return _layout(fig, f"Next character after your prompt: teacher at T = 1 and T = {temperature:g}, student beside it",
                   f"next character (the teacher's top {top} at T = 1)", "probability (0-1)")


def lm_training_curves(histories: dict[str, dict[str, list]], title: str = "Training loss") -> go.Figure:
    """Cross-entropy with the true next character (bits per character) against optimisation steps, per model."""
    fig = go.Figure()
    for role, history in histories.items():
        fig.add_trace(go.Scatter(x=history.get("step", []), y=[h / math.log(2) for h in history.get("hard", [])],
                                 mode="lines", name=ROLE_NAMES.get(role, role), line={"color": COLORS.get(role)}))
    return _layout(fig, title, "optimisation step", "CE with the true next char (bits/char)")


def lm_bpc_comparison(result: dict[str, Any]) -> go.Figure:
    """Validation bits per character of teacher, distilled and scratch students: mean bars, one dot per seed."""
    roles = ("teacher", "distilled", "scratch")
    names = [ROLE_NAMES[r] for r in roles]
    models = result["models"]
    fig = go.Figure(go.Bar(x=names, y=[models[r]["bpc_mean"] for r in roles],
                           marker_color=[COLORS[r] for r in roles], name="mean over seeds",
                           text=[f"{models[r]['bpc_mean']:.3f}" for r in roles], textposition="outside"))
    for r, name in zip(roles, names):
        fig.add_trace(go.Scatter(x=[name] * len(models[r]["val_bpc"]), y=models[r]["val_bpc"], mode="markers",
                                 marker={"color": "black", "size": 7}, name="one seed", showlegend=r == "distilled"))
    top = max(max(models[r]["val_bpc"]) for r in roles)
    fig.update_yaxes(range=[0, top * 1.15])
    seeds = len(models["distilled"]["val_bpc"])
    return _layout(fig, f"Validation bits per character (lower is better; {seeds} seed{'s' if seeds > 1 else ''})",
                   "model", "bits per character")


# --- Efficiency and compression (kd_core.compress rows) -------------------------------------------------------

COMPRESS_COLORS = {"teacher": COLORS["teacher"], "scratch": COLORS["scratch"], "distilled": COLORS["distilled"],
                   "distilled-int8": "#E45756", "pruned": "#BAB0AC", "pruned-ce": "#72B7B2", "pruned-kd": "#B279A2",
                   "pruned-kd-int8": "#9D755D"}
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
    """Test accuracy against latency or size on disk: one point per model or compression stage.

    The dashed line joins the Pareto front (nothing is both cheaper and more accurate than a point on it);
    arrows follow the distil -> prune -> quantize pipeline.
    """
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
                   "distilled student", "test accuracy (%)")


def digit_outputs(probabilities: dict[str, Sequence[float] | np.ndarray], classes: Sequence[str],
                  temperature: float) -> go.Figure:
    """One image's softened outputs from each model ("teacher", "distilled", "scratch"), grouped per class."""
    fig = go.Figure([go.Bar(x=list(classes), y=list(map(float, p)), name=ROLE_NAMES.get(role, role),
                            marker_color=COLORS.get(role), hovertemplate="class %{x}: %{y:.3f}<extra></extra>")
                     for role, p in probabilities.items()])
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_xaxes(type="category")
    return _layout(fig, f"Each model's probabilities for your digit at T = {temperature:g}", "class",
                   "probability (0-1)")


# --- Run history (kd_core.history records) ----------------------------------------------------------------------

RUN_COLORS = ["#4C78A8", "#E45756", "#72B7B2", "#B279A2", "#9D755D", "#F58518", "#54A24B", "#EECA3B", "#FF9DA6",
              "#BAB0AC"]  # one colour per run; the role is told by the line's dash
HISTORY_METRICS = {  # metric -> (title, y axis title, value scale)
    "test_acc": ("Test accuracy after each epoch, run by run", "test accuracy (%)", 100.0),
    "hard": ("Training loss against the labels, run by run", "CE with labels (nats, mean per batch)", 1.0),
}


def history_curves(runs: Sequence[dict[str, Any]], metric: str = "test_acc") -> go.Figure:
    """Per-epoch curves (mean over seeds) of the distilled (solid) and scratch (dashed) students of several runs.

    runs: kd_core.history records ("label", "curves"); metric: "test_acc" (test accuracy at each epoch's end)
    or "hard" (the epoch's mean cross-entropy with the labels, the term both students share).
    """
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
    return _subtitled(fig, title, "solid: distilled student · dashed: scratch student · mean over seeds",
                      "epoch", y_title, height=460)


def history_accuracies(runs: Sequence[dict[str, Any]]) -> go.Figure:
    """Teacher, distilled and scratch test accuracy of several runs as grouped bars, ± std over seeds."""
    labels, roles = [run["label"] for run in runs], ("teacher", "distilled", "scratch")
    fig = go.Figure()
    for role in roles:
        models = [run["models"][role] for run in runs]
        means = [100 * m["mean"] for m in models]
        fig.add_trace(go.Bar(
            x=labels, y=means, name=ROLE_NAMES[role], marker_color=COLORS[role],
            error_y={"type": "data", "array": [100 * m["std"] for m in models], "visible": True},
            text=[f"{v:.1f}" for v in means], textposition="outside",
            customdata=[len(m["accuracies"]) for m in models],
            hovertemplate=f"%{{x}} · {ROLE_NAMES[role]}: %{{y:.1f}}% (%{{customdata}} seed(s))<extra></extra>"))
    tops = [100 * (run["models"][r]["mean"] + run["models"][r]["std"]) for run in runs for r in roles]
    lows = [100 * run["models"][r]["mean"] for run in runs for r in roles]
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category")
    if runs:
        fig.update_yaxes(range=[max(0.0, min(lows) - 15), min(100.0, max(tops) + 8)])
    return _subtitled(fig, "Test accuracy of the chosen runs", "bars: mean over seeds · error bars: ± one standard "
                      "deviation (none with 1 seed)", "run (its settings)", "test accuracy (%)", height=460)
