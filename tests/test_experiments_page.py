"""The Experiments page: its chart builders (plain functions), the lab cache lookup, and AppTest on tiny configs.

Each experiment's run goes through the app's background JobRunner; the test waits for the job, re-runs the
script, checks the charts, then opens the page in a fresh "server" (no jobs in memory) to see the stored
result at once.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
import pytest
import streamlit as st

import ui
from apptest import assert_clean, open_page, plotly_titles
from kd_core import charts, lab
from kd_core.data import load_dataset

PAGE = "app_pages/experiments.py"
CLASSES = [str(d) for d in range(10)]


pytestmark = pytest.mark.usefixtures("fresh_app")  # tests/conftest.py


def titles(fig: go.Figure) -> tuple[str, str, str]:
    return fig.layout.title.text, fig.layout.xaxis.title.text, fig.layout.yaxis.title.text


# ----------------------------------------------------------------------------------------------------
# Chart builders


def budget_rows() -> list[dict]:
    return [{"images": n, "distilled_mean": d, "distilled_std": 0.01, "scratch_mean": s, "scratch_std": 0.02,
             "gain": d - s, "gain_std": 0.01, "noise": 0.02, "within_noise": abs(d - s) < 0.02}
            for n, d, s in ((40, 0.70, 0.50), (400, 0.88, 0.80), (4000, 0.95, 0.945))]


def test_budget_charts_have_log_x_error_bars_and_mark_gains_within_noise():
    fig = charts.budget_accuracy(list(reversed(budget_rows())), seeds=3)
    title, x, y = titles(fig)
    assert "labelled images" in title and "3 seeds" in title
    assert x == "labelled training images (log scale)" and y == "test accuracy (%)"
    assert fig.layout.xaxis.type == "log"
    assert [t.name for t in fig.data] == ["distilled student", "scratch student"]
    assert list(fig.data[0].x) == [40, 400, 4000] and fig.data[0].y[0] == pytest.approx(70.0)
    assert fig.data[0].error_y.visible and fig.data[1].error_y.array[0] == pytest.approx(2.0)

    gain = charts.budget_gain(budget_rows(), seeds=3)
    title, x, y = titles(gain)
    assert title.startswith("Gain from distillation") and "within noise" in title
    assert y == "distilled − scratch (percentage points)" and gain.layout.xaxis.type == "log"
    band_top, band_bottom, points = gain.data
    assert list(band_top.y) == pytest.approx([2.0] * 3) and band_bottom.fill == "tonexty"
    assert list(points.y) == pytest.approx([20.0, 8.0, 0.5])
    assert list(points.marker.color)[-1] == "white"  # the within-noise gain is hollow
    assert list(points.error_y.array) == pytest.approx([1.0] * 3)


def omitted_result(seeds: int = 2) -> dict:
    def model(acc, label, other):
        return {"accuracy_mean": acc, "accuracy_std": 0.01, "label_accuracy_mean": label, "label_accuracy_std": 0.02,
                "other_accuracy_mean": other, "other_accuracy_std": 0.01}
    return {"class_name": "3", "seeds": seeds,
            "models": {"scratch": model(0.80, 0.0, 0.89), "distilled": model(0.86, 0.7, 0.88),
                       "distilled_corrected": model(0.88, 0.92, 0.875), "distilled_all": model(0.89, 0.9, 0.89)}}


def test_omitted_class_charts():
    fig = charts.omitted_class_accuracy(omitted_result())
    title, x, y = titles(fig)
    assert "no 3" in title and "2 seeds" in title and y == "test accuracy (%)" and x == "test images"
    assert len(fig.data) == 4 and all(len(t.y) == 3 for t in fig.data)
    assert fig.data[0].y[0] == 0.0 and fig.data[2].y[0] == pytest.approx(92.0)
    assert "bias" in fig.data[2].name and "every class" in fig.data[3].name

    curve = [{"bias": b, "heldout_accuracy": 0.8 + 0.01 * b, "heldout_label_accuracy": min(1.0, 0.3 * b)}
             for b in (0.0, 1.0, 2.0, 3.0)]
    fig = charts.bias_curve(curve, 3.0, "3")
    title, x, y = titles(fig)
    assert "held-out TRAINING images" in title and x.startswith("bias added") and "(logit units)" in x
    assert y == "held-out accuracy, all images (%)" and "(%)" in fig.layout.yaxis2.title.text
    assert len(fig.data) == 2 and fig.data[0].y[-1] == pytest.approx(83.0)
    assert any("chosen bias +3" in a.text for a in fig.layout.annotations)

    bars = charts.soft_output_bars([0.05] * 9 + [0.55], CLASSES, 3, "says 9")
    assert titles(bars) == ("says 9", "class", "probability")
    assert list(bars.data[0].marker.color).count(charts.COLORS["soft"]) == 1


def test_sweep_heatmap_marks_best_and_within_noise_and_leaves_unfinished_cells_blank():
    cells = [{"temperature": 2.0, "alpha": 0.5, "mean": 0.80}, {"temperature": 8.0, "alpha": 0.5, "mean": 0.85}]
    partial = charts.sweep_heatmap([2.0, 8.0], [0.5, 0.9], cells)
    title, x, y = titles(partial)
    assert title.startswith("Distilled test accuracy") and x == "temperature T" and y.startswith("alpha")
    z = partial.data[0].z
    assert z[0][1] == pytest.approx(85.0) and math.isnan(z[1][0]) and len(partial.data) == 1

    done = [{**c, "best": c["mean"] == 0.85, "within_noise": True} for c in cells]
    fig = charts.sweep_heatmap([2.0, 8.0], [0.5, 0.9], done, scratch=0.7)
    assert "scratch student: 70.0%" in fig.layout.title.text
    names = [t.name for t in fig.data[1:]]
    assert names == ["within noise of the best", "best cell (★)"]
    assert list(fig.data[2].x) == ["8"] and list(fig.data[1].x) == ["2"]
    assert fig.data[0].text[0][1] == "★ 85.0" and fig.data[0].text[0][0] == "80.0"


def t2_rows() -> list[dict]:
    def run(grad, acc):
        return {"soft_grad_params": grad, "hard_grad_params": 1.0, "accuracy_mean": acc, "accuracy_std": 0.01}
    return [{"temperature": t, "with_t2": run(1.0, 0.85), "without_t2": run(1.0 / t ** 2, 0.85 - 0.01 * t)}
            for t in (1.0, 4.0, 16.0)]


def test_t_squared_charts_are_log_scaled_and_show_the_collapse():
    fig = charts.t2_gradients(t2_rows())
    title, x, y = titles(fig)
    assert "with and without T²" in title and x == "temperature T (log scale)" and y == "gradient norm (log scale)"
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert [t.name for t in fig.data][:2] == ["soft term × T² (as in the loss)", "soft term without T²"]
    assert fig.data[1].y[-1] == pytest.approx(1 / 256)

    acc = charts.t2_accuracy(t2_rows(), scratch=0.8, seeds=3)
    title, x, y = titles(acc)
    assert "3 seeds" in title and y == "test accuracy (%)" and len(acc.data) == 2
    assert any("scratch 80.0%" in a.text for a in acc.layout.annotations)


# ----------------------------------------------------------------------------------------------------
# The cache lookup agrees with the lab


def test_lab_key_and_cached_lookup_match_the_lab_functions(tiny_config):
    dataset = load_dataset("mnist-sample")
    cfg = tiny_config.replace(seeds=1)
    runs = {"data-budget": {"budgets": (20, 40), "equal_steps": True},
            "omitted-class": {"label": 3, "heldout_fraction": 0.2, "bias_grid": (0.0, 1.0, 2.0)},
            "t-squared": {"temperatures": (4.0, 2.0), "grad_batches": 2},
            "sweep": {"temperatures": (2.0,), "alphas": (0.5,)}}
    for name, params in runs.items():
        assert lab.task(name, cfg, dataset, params).cached() is None  # nothing stored yet, nothing trained
        result = lab.FUNCTIONS[name](cfg, **params, dataset=dataset)
        if "key" in result:
            assert lab.key(name, cfg, dataset, params) == result["key"]
        found = lab.task(name, cfg, dataset, params).cached()
        assert found is not None and found["cached"], name
        assert found["experiment"] == name
    assert lab.task("sweep", cfg, dataset, {"temperatures": (2.0, 4.0), "alphas": (0.5,)}).cached() is None


# ----------------------------------------------------------------------------------------------------
# AppTest


def test_page_loads_with_four_experiments_and_their_run_buttons():
    at = open_page(PAGE)
    assert at.title[0].value.startswith("Experiments")
    assert [t.label for t in at.tabs] == ["Data budget", "The missing class", "T × alpha map", "Why T²"]
    assert [b.key for b in at.button] == ["budget-run", "missing-run", "sweep-run", "t2-run"]
    assert at.selectbox(key="omit-label").value == 3
    assert "never on the test images" in " ".join(m.value for m in at.markdown)
    assert not plotly_titles(at)  # nothing has run yet


EXPERIMENTS = {  # button key, job key prefix, chart titles expected once done
    "budget-run": ("lab-data-budget-", ["Test accuracy vs labelled images", "Gain from distillation"]),
    "missing-run": ("lab-omitted-class-", ["Students whose training set had no 3", "Choosing the bias for class 3",
                                           "Test confusion matrix"]),
    "sweep-run": ("lab-sweep-", ["Distilled test accuracy (%) over T × alpha"]),
    "t2-run": ("lab-t-squared-", ["Soft-term gradient size vs T", "Final test accuracy vs T"]),
}


@pytest.mark.parametrize("button", list(EXPERIMENTS))
def test_each_experiment_runs_in_the_background_then_shows_at_once_from_the_cache(button):
    prefix, expected = EXPERIMENTS[button]
    at = open_page(PAGE)
    at.button(key=button).click().run()
    assert_clean(at)
    jobs = [job for key, job in ui.get_runner().jobs().items() if key.startswith(prefix)]
    assert len(jobs) == 1, list(ui.get_runner().jobs())
    assert jobs[0].wait(240), "the experiment did not finish"
    assert jobs[0].status == "done", jobs[0].error
    assert any(e.phase == "part" for e in jobs[0].events)  # partial results were reported
    at.run()
    assert_clean(at)
    shown = plotly_titles(at)
    for title in expected:
        assert any(t.startswith(title) for t in shown), (title, shown)
    assert button not in [b.key for b in at.button]
    assert any(c.value.startswith("Notice:") for c in at.caption)

    st.cache_resource.clear()  # a restarted server: no jobs in memory, the result on disk
    again = open_page(PAGE)
    assert not ui.get_runner().jobs()
    assert any(t.startswith(expected[0]) for t in plotly_titles(again))
    assert any(c.value.startswith("From the cache") for c in again.caption)
    assert button not in [b.key for b in again.button]


def test_a_second_session_joins_the_running_job_and_sees_its_progress():
    first, second = open_page(PAGE), open_page(PAGE)
    first.button(key="budget-run").click().run()
    second.run()
    assert_clean(second)
    assert "budget-run" not in [b.key for b in second.button]  # it joined the job, no second run offered
    assert len([k for k in ui.get_runner().jobs() if k.startswith("lab-data-budget-")]) == 1
    next(j for k, j in ui.get_runner().jobs().items() if k.startswith("lab-data-budget-")).wait(240)
    second.run()
    assert any(t.startswith("Gain from distillation") for t in plotly_titles(second))


def test_missing_class_label_choice_changes_the_experiment():
    at = open_page(PAGE)
    at.selectbox(key="omit-label").set_value(5).run()
    assert_clean(at)
    assert "without 5" in at.button(key="missing-run").label


def test_experiments_say_which_t_and_alpha_they_use_and_can_use_the_users():
    at = open_page()
    at.session_state["settings"] = {**at.session_state["settings"], "temperature": 6.0, "alpha": 0.7}
    at.switch_page(PAGE).run()
    assert_clean(at)
    infos = [i.value for i in at.info]
    assert any("not at your T = 6, alpha = 0.7" in i for i in infos), infos          # data budget, missing class
    assert any("ignores your T and alpha on purpose" in i for i in infos), infos     # the sweep
    at.toggle(key="budget-mine").set_value(True).run()
    assert_clean(at)
    assert any("runs at **T = 6, alpha = 0.7**" in i and "the same as your settings" in i
               for i in (i.value for i in at.info))
    at.button(key="budget-run").click().run()
    job = next(j for k, j in ui.get_runner().jobs().items() if k.startswith("lab-data-budget-"))
    assert job.wait(240) and job.status == "done", job.error
    assert (job.result["config"]["temperature"], job.result["config"]["alpha"]) == (6.0, 0.7)
