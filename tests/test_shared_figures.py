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


def test_every_session_draws_the_one_frozen_figure_and_streamlit_gets_its_dict_unchanged():
    first = ui.shared_figure(charts.softmax_slider, LOGITS[0], CLASSES, 4.0)
    again = ui.shared_figure(charts.softmax_slider, LOGITS[0].copy(), list(CLASSES), 4.0)  # equal, not identical
    assert again is first                                    # no copy: the second session draws the same object
    expected = charts.softmax_slider(LOGITS[0], CLASSES, 4.0).to_dict()
    assert first.to_dict() == expected and first.to_dict() is first.to_dict()
    spec(first)                                              # what st.plotly_chart does with it (to_json) ...
    assert first.to_dict() == expected                       # ... leaves the shared dict as it was
    assert ui.shared_figure(charts.softmax_slider, LOGITS[0], CLASSES, 4.5) is not first


def test_arguments_pickle_cannot_take_build_an_unshared_figure():
    built = []

    def builder(value):
        built.append(value)
        return charts.softmax_slider(LOGITS[0], CLASSES, 4.0)

    unpicklable = lambda: None  # noqa: E731
    ui.shared_figure(builder, unpicklable)
    ui.shared_figure(builder, unpicklable)
    assert len(built) == 2


def test_every_shared_figure_goes_straight_to_chart():
    """Shared figures are read-only: every call site hands the figure to chart() without keeping it."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    calls = 0
    for path in [*root.glob("app_pages/*.py"), *root.glob("ui/*.py"), root / "app.py"]:
        tree = ast.parse(path.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "shared_figure":
                calls += 1
                parent = parents[node]
                name = getattr(getattr(parent, "func", None), "attr", getattr(getattr(parent, "func", None), "id", ""))
                assert isinstance(parent, ast.Call) and name == "chart" and parent.args[:1] == [node], \
                    f"{path.name}:{node.lineno}: a shared figure must be passed straight to chart()"
    assert calls >= 15


def test_a_dataset_image_is_the_png_of_its_pixels_encoded_once():
    import base64
    import io

    from PIL import Image

    from kd_core.data import load_dataset

    dataset = load_dataset("mnist-sample")
    url = ui.widgets._png_data_url(dataset.fingerprint, "test", 7, _dataset=dataset)
    assert url.startswith("data:image/png;base64,")
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert np.array_equal(pixels, dataset.test_x[7].numpy())
    assert ui.widgets._png_data_url(dataset.fingerprint, "test", 7, _dataset=dataset) is url   # once per server
    assert ui.widgets._png_data_url(dataset.fingerprint, "train", 7, _dataset=dataset) != url
