"""Chart builders as plain functions: figure type, traces, titles and axis titles; soft targets at T."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import ui
from kd_core import charts
from kd_core.losses import soften
from kd_core.tasks import Event
from kd_core.train import Progress

LOGITS = np.array([9.0, 1.0, 4.0, 0.5, -2.0, 3.0, 0.0, 6.0, 2.0, -1.0], dtype=np.float32)
CLASSES = [str(d) for d in range(10)]


def fake_result(distilled=(0.80, 0.82, 0.81), scratch=(0.70, 0.71, 0.72)) -> dict:
    """A result dict shaped like run_experiment's, without training."""
    def model(accs):
        runs = [{"seed": i, "accuracy": a, "per_class": [a] * 10, "agreement_with_teacher": a + 0.05,
                 "initial_first_layer_norm": 1.5, "history": {"step": [1, 2], "loss": [2.0, 1.0], "hard": [2.0, 1.0],
                                                              "soft": [3.0, 1.5], "train_acc": [0.1, 0.5],
                                                              "test_acc": [None, a]}} for i, a in enumerate(accs)]
        return {"accuracies": list(accs), "accuracy_mean": float(np.mean(accs)),
                "accuracy_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                "params": 20_490, "flops": 1_000_000, "seconds": 1.0, "runs": runs}
    teacher = {"accuracies": [0.95], "accuracy_mean": 0.95, "accuracy_std": 0.0, "params": 421_642,
               "flops": 8_000_000, "seconds": 2.0}
    return {"classes": CLASSES, "models": {"teacher": teacher, "distilled": model(distilled),
                                           "scratch": model(scratch)}}


def titles(fig: go.Figure) -> tuple[str, str, str]:
    """(figure title, x-axis title, y-axis title)."""
    return fig.layout.title.text, fig.layout.xaxis.title.text, fig.layout.yaxis.title.text


def assert_labelled(fig: go.Figure) -> None:
    assert isinstance(fig, go.Figure)
    assert all(titles(fig)), f"missing title or axis title: {titles(fig)}"


def test_softened_matches_soften_sums_to_one_and_flattens_as_t_grows():
    previous_max, previous_entropy = 2.0, -1.0
    for t in (0.5, 1, 2, 5, 10, 50):
        p = charts.softened(LOGITS, t)
        assert p.sum() == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose(p, soften(torch.tensor(LOGITS), t).numpy())
        entropy = -float(np.sum(p * np.log(p)))
        assert p.max() < previous_max and entropy > previous_entropy
        previous_max, previous_entropy = p.max(), entropy
    assert int(np.argmax(charts.softened(LOGITS, 10))) == int(np.argmax(LOGITS))  # ranking is kept


def test_effective_classes_goes_from_one_to_all_classes():
    assert charts.effective_classes(LOGITS * 100, 1.0) == pytest.approx(1.0, abs=1e-3)
    assert charts.effective_classes(LOGITS, 1e4) == pytest.approx(10.0, abs=1e-2)


def test_average_soft_targets_rows_sum_to_one():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(50, 10)).astype(np.float32), np.arange(50) % 10
    average = charts.average_soft_targets(logits, labels, 2.0, 10)
    np.testing.assert_allclose(average.sum(axis=1), 1.0, atol=1e-5)


def test_accuracy_comparison_three_bars_with_std_error_bars():
    result = fake_result()
    fig = charts.accuracy_comparison(result)
    assert_labelled(fig)
    bar = fig.data[0]
    assert isinstance(bar, go.Bar) and list(bar.x) == ["teacher", "distilled student", "scratch student"]
    assert bar.y[1] == pytest.approx(81.0)
    assert bar.error_y.array[1] == pytest.approx(100 * result["models"]["distilled"]["accuracy_std"])
    assert "3 seeds" in fig.layout.title.text


def test_per_class_agreement_confusion_counts_and_curves_are_labelled():
    result = fake_result()
    per_class = charts.per_class_accuracy(result)
    assert [t.name for t in per_class.data] == ["distilled student", "scratch student"]
    agreement = charts.agreement_with_teacher(result)
    assert agreement.data[0].y[0] == pytest.approx(86.0)
    matrix = [[5 if i == j else 1 for j in range(10)] for i in range(10)]
    history = result["models"]["distilled"]["runs"][0]["history"]
    figures = [per_class, agreement, charts.confusion(matrix, CLASSES),
               charts.class_counts([400] * 10, [100] * 10, CLASSES),
               charts.training_curves({"distilled": history, "scratch": history}, "test_acc"),
               charts.training_curves({"teacher": history}, "loss"),
               charts.loss_parts(history, 8.0, 0.9)]
    for fig in figures:
        assert_labelled(fig)
    curves = figures[4]
    assert len(curves.data) == 2 and list(curves.data[0].y) == [pytest.approx(80.0)]  # None points dropped, in %
    assert "T²·KL" in figures[6].data[1].name and "0.90" in figures[6].data[1].name


def test_events_to_histories_groups_by_phase_and_seed():
    def event(phase, seed, step):
        p = Progress(step, 4, step / 2, 2, 1.0 / step, 0.5, 0.5, 0.5, 0.9 if step % 2 == 0 else None, 0.1)
        return Event(phase, seed, p, step / 12)
    events = [event("teacher", 0, s) for s in (1, 2)] + [event(r, sd, s) for r in ("distilled", "scratch")
                                                       for sd in (0, 1) for s in (1, 2, 3, 4)]
    histories = charts.events_to_histories(events)
    assert list(histories) == ["teacher", "distilled", "scratch"]
    assert histories["distilled"]["step"] == [1, 2, 3, 4] and histories["distilled"]["epoch"] == [0.5, 1, 1.5, 2]
    fig = charts.training_curves(histories, "test_acc")
    assert len(fig.data) == 3 and list(fig.data[1].x) == [1, 2]


def test_flow_diagram_and_formula_show_t_and_alpha():
    dot = charts.kd_flow_dot(5.0, 0.7)
    assert dot.startswith("digraph") and "T = 5" in dot and "0.70" in dot and "0.30" in dot
    latex = charts.loss_formula_latex(5.0, 0.7)
    assert "0.30" in latex and "0.70" in latex and "5^2" in latex
    assert "T^2" not in charts.loss_formula_latex(5.0, 0.7, t_squared=False)


def test_noise_verdict():
    kind, text = ui.noise_verdict(fake_result())
    assert kind == "success" and "+10.0 points" in text
    kind, text = ui.noise_verdict(fake_result(distilled=(0.70, 0.80, 0.75), scratch=(0.74, 0.72, 0.76)))
    assert kind == "warning" and text.startswith("Within noise")
    kind, text = ui.noise_verdict(fake_result(distilled=(0.8,), scratch=(0.7,)))
    assert kind == "info" and "one seed" in text
    assert math.isfinite(fake_result()["models"]["distilled"]["accuracy_std"])


def test_one_seed_verdict_names_where_to_add_seeds():
    one_seed = fake_result(distilled=(0.8,), scratch=(0.7,))
    assert "on the Distill page" in ui.noise_verdict(one_seed)[1]
    on_distill = ui.noise_verdict(one_seed, on_distill=True)[1]
    assert "Seeds above" in on_distill and "Distill page" not in on_distill


def test_accuracy_bars_start_at_zero_with_labels_at_the_base_clear_of_error_bars():
    result = fake_result()
    figures = [charts.accuracy_comparison(result), charts.per_class_accuracy(result),
               charts.agreement_with_teacher(result)]
    for fig in figures:
        assert fig.layout.yaxis.range[0] == 0, fig.layout.title.text
    for fig in (figures[0], figures[2]):
        bar = fig.data[0]
        assert bar.textposition == "inside" and bar.insidetextanchor == "start"  # not where an error bar ends


def test_home_compares_both_students_on_the_loss_they_share_and_loss_parts_get_two_axes():
    history = fake_result()["models"]["distilled"]["runs"][0]["history"]
    curves = charts.training_curves({"distilled": history, "scratch": history}, "hard")
    assert_labelled(curves)
    assert "CE with labels" in curves.layout.yaxis.title.text and list(curves.data[0].y) == history["hard"]
    parts = charts.loss_parts(history, 8.0, 0.9)
    assert parts.data[0].yaxis in (None, "y") and parts.data[1].yaxis == "y2"  # the soft term on its own axis
    assert "CE" in parts.layout.yaxis.title.text and "KL" in parts.layout.yaxis2.title.text


def test_pareto_front_treats_latencies_within_their_spread_as_ties():
    points = [(1.00, 80.0), (1.05, 90.0), (3.0, 95.0)]
    assert charts.pareto_front(points) == [0, 1, 2]  # exact costs: the 0.05 ms faster point survives
    spreads = [(0.9, 1.2), (0.95, 1.3), (2.5, 3.5)]
    assert charts.pareto_front(points, spreads) == [1, 2]  # within noise as fast, and less accurate: beaten
    rows = [{"id": f"m{i}", "name": f"m{i}", "accuracy": y / 100, "precision": "float32", "size_bytes": 1024 * (i + 1),
             "latency_ms": {"min_ms": lo, "median_ms": x, "max_ms": hi}} for i, ((x, y), (lo, hi))
            in enumerate(zip(points, spreads))]
    fig = charts.efficiency_pareto(rows, "latency")
    front = fig.data[-1]
    assert front.name == "Pareto front" and list(front.x) == [1.05, 3.0]
    assert fig.data[0].error_x.arrayminus[0] == pytest.approx(0.1)  # the spread is drawn


def assert_log_ticks_span(axis, values, unit: str = "") -> None:
    """A log axis labelled only at explicit ticks that span `values`, each label a whole value (with `unit`)."""
    assert axis.type == "log" and axis.tickmode == "array" and len(axis.tickvals) >= 3
    ticks = list(axis.tickvals)
    assert ticks == sorted(ticks) and ticks[0] <= min(values) and ticks[-1] >= max(values)
    low, high = axis.range
    assert 10 ** low <= ticks[0] * (1 + 1e-9) and ticks[-1] <= 10 ** high * (1 + 1e-9)  # every tick is shown
    for value, text in zip(ticks, axis.ticktext, strict=True):
        number = text.removesuffix(f" {unit}") if unit else text
        # the whole value, not a bare mantissa like Plotly's minor "2" for 200
        assert (not unit or text.endswith(f" {unit}")) and float(number.replace(",", "")) == pytest.approx(value)


def test_efficiency_cost_axes_have_explicit_labelled_log_ticks_not_plotly_minor_digits():
    sizes = [24_000, 81_000, 330_000, 1_690_000]  # bytes: int8 student .. teacher, about two decades
    rows = [{"id": f"m{i}", "name": f"m{i}", "accuracy": 0.8 + 0.03 * i, "precision": "float32", "size_bytes": b,
             "latency_ms": {"min_ms": 0.04 * (i + 1), "median_ms": 0.05 * (i + 1) ** 2, "max_ms": 0.06 * (i + 1) ** 2}}
            for i, b in enumerate(sizes)]
    size = charts.efficiency_pareto(rows, "size")
    kb = [b / 1024 for b in sizes]
    assert_log_ticks_span(size.layout.xaxis, kb, "KB")
    assert "100 KB" in size.layout.xaxis.ticktext and "1,000 KB" in size.layout.xaxis.ticktext
    assert not {"2", "5", "2 KB", "5 KB"} & set(size.layout.xaxis.ticktext)
    latency = charts.efficiency_pareto(rows, "latency")
    assert_log_ticks_span(latency.layout.xaxis, [0.05 * (i + 1) ** 2 for i in range(4)], "ms")
    for fig, xs in ((size, kb), (latency, [0.05 * (i + 1) ** 2 for i in range(4)])):
        low, high = fig.layout.xaxis.range
        assert 10 ** low <= min(xs) / 1.5 * (1 + 1e-9) and 10 ** high >= max(xs) * 1.5 * (1 - 1e-9)  # padded


def test_log_tick_values_pick_decades_1_2_5_or_finer_steps_from_the_data_range():
    from kd_core.charts.common import _log_tick_values

    assert _log_tick_values(1.2, 2400)[0] == [1, 10, 100, 1000, 10000]  # three decades and more: powers of ten
    assert _log_tick_values(20, 1700)[0] == [20, 50, 100, 200, 500, 1000, 2000]
    assert _log_tick_values(3, 4.5)[0] == [2, 3, 5]  # under a decade: finer steps
    for low, high in ((0.03, 0.9), (5, 5000), (1, 1e6), (0.9, 1.1)):
        ticks, axis_low, axis_high = _log_tick_values(low, high)
        assert ticks[0] <= low and ticks[-1] >= high and axis_low <= ticks[0] and ticks[-1] <= axis_high


def test_language_log_axes_have_explicit_ticks_too():
    view = {"temperature": 2.0, "curve": {"temperatures": [0.25, 0.5, 1, 2, 4, 8, 16],
                                          "effective_choices": [1.2, 2.5, 14.0, 180.0, 900.0, 2000.0, 2400.0]},
            "at_T": {"effective_choices": 180.0}}
    choices = charts.effective_choices_vs_t(view)
    assert_log_ticks_span(choices.layout.yaxis, view["curve"]["effective_choices"])
    methods = ["scratch", "token"]
    models = {"teacher": {"perplexity_mean": 21.0}, "scratch": {"perplexity_mean": 900.0, "perplexities": [800, 1000]},
              "token": {"perplexity_mean": 300.0, "perplexities": [280, 320]}}
    bars = charts.llm_perplexity_bars({"config": {"methods": methods}, "models": models})
    assert_log_ticks_span(bars.layout.yaxis, [21.0, 280, 1000])
    assert not {"2", "5"} & set(bars.layout.yaxis.ticktext)


def test_recovery_chart_names_its_line_in_the_subtitle_not_over_a_bar():
    rows = [{"id": k, "accuracy": a, "sparsity": 0.5} for k, a in
            (("distilled", 0.9), ("pruned", 0.7), ("pruned-ce", 0.8), ("pruned-kd", 0.85))]
    fig = charts.finetune_recovery(rows)
    assert not fig.layout.annotations  # no label that a bar could hide
    assert "1 point below unpruned" in fig.layout.title.text and fig.layout.yaxis.range[0] == 0


def test_confusion_cells_are_clickable_markers_and_examples_show_every_model():
    matrix = np.arange(100).reshape(10, 10)
    fig = charts.confusion(matrix, CLASSES)
    heatmap, cells = fig.data
    assert isinstance(cells, go.Scatter) and len(cells.x) == 100
    i = list(map(tuple, cells.customdata)).index((3, 7))  # true 3, predicted 7
    assert (cells.y[i], cells.x[i], cells.text[i]) == ("3", "7", str(matrix[3, 7]))
    images = [np.zeros((28, 28), dtype=np.uint8)] * 2
    probs = [{role: charts.softened(LOGITS, 4.0) for role in ("teacher", "distilled", "scratch")}] * 2
    examples = charts.cell_examples(images, probs, CLASSES, 4.0, "True 3, called 7")
    assert [type(t) for t in examples.data] == [go.Heatmap, go.Bar, go.Bar, go.Bar] * 2
    assert [t.name for t in examples.data if t.showlegend] == ["teacher", "distilled student", "scratch student"]
    assert "T = 4" in examples.layout.title.text


def test_phone_variants_of_the_formula_and_the_flow_diagram():
    lines = charts.loss_formula_latex(5.0, 0.7, lines=True)
    assert lines.count(r"\\") == 3 and "0.30" in lines and "5^2" in lines  # four short lines
    assert "rankdir=TB" in charts.kd_flow_dot(5.0, 0.7, vertical=True) and "rankdir=LR" in charts.kd_flow_dot(5.0, 0.7)
