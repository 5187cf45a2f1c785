"""ui.shared_figure: one build per server for a figure many sessions draw, the same figure, a private copy each."""

from __future__ import annotations

import json

import numpy as np
import plotly.io as pio

import ui
from kd_core import charts
from kd_core.charts import temperature

LOGITS = np.random.default_rng(0).normal(size=(50, 10)).astype(np.float32)
LABELS = np.arange(50) % 10
CLASSES = [str(c) for c in range(10)]


def spec(fig) -> dict:
    return json.loads(pio.to_json(fig, validate=False))


def test_a_shared_figure_is_the_builders_figure_built_once(monkeypatch):
    built = []
    original = temperature.similarity_slider

    def counting(*args, **kwargs):
        built.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(temperature, "similarity_slider", counting)
    first = ui.shared_figure(temperature.similarity_slider, LOGITS, LABELS, CLASSES, 6.0, hide_diagonal=True)
    again = ui.shared_figure(temperature.similarity_slider, LOGITS, LABELS, CLASSES, 6.0, hide_diagonal=True)
    assert spec(first) == spec(again) == spec(original(LOGITS, LABELS, CLASSES, 6.0, hide_diagonal=True))
    assert len(built) == 1                                   # the second session got the first one's figure
    ui.shared_figure(temperature.similarity_slider, LOGITS, LABELS, CLASSES, 6.0, hide_diagonal=False)
    ui.shared_figure(temperature.similarity_slider, LOGITS + 1.0, LABELS, CLASSES, 6.0, hide_diagonal=True)
    assert len(built) == 3                                   # other arguments, other figures


def test_each_caller_gets_its_own_copy():
    first = ui.shared_figure(charts.softmax_slider, LOGITS[0], CLASSES, 4.0)
    first.update_layout(title_text="changed by one page")
    first.data[0].y = [0.0] * 10
    again = ui.shared_figure(charts.softmax_slider, LOGITS[0], CLASSES, 4.0)
    assert spec(again) == spec(charts.softmax_slider(LOGITS[0], CLASSES, 4.0))
