"""Every page through streamlit.testing.v1.AppTest: loads without exception, main controls, main action (tiny config).

Training runs in the app's background JobRunner; tests poll it to completion by re-running the script, as
the page's progress fragment does in a browser. Each test gets its own empty cache folder.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import ui
from apptest import APP, assert_clean, open_page, plotly_titles

DEADLINE_S = 90


pytestmark = pytest.mark.usefixtures("fresh_app")  # tests/conftest.py


def poll(at: AppTest, done, what: str) -> AppTest:
    """Re-run until done(at) (the background job finished and the page shows it)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        at.run()
        assert_clean(at)
        if done(at):
            return at
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def has_text(elements, text: str) -> bool:
    return any(text in e.value for e in elements)


def run_tiny_experiment(**changes) -> dict:
    """Run the experiment the app would run for the tiny classroom preset, synchronously, into the cache."""
    from kd_core.experiment import run_experiment

    return run_experiment(ui.base_preset("classroom").replace(**changes))


def test_pages_folder_is_not_named_pages():
    """A folder named pages/ next to app.py switches Streamlit to its old file-based mode until the first
    st.navigation call of the process: a fresh server whose first visitor opens /distill directly would run
    that page without the router (no sidebar settings). The pages therefore live in app_pages/."""
    root = Path(APP).parent
    assert not (root / "pages").exists()
    registered = re.findall(r'st\.Page\("(app_pages/[a-z_]+\.py)"', (root / "app.py").read_text())
    assert sorted(f"app_pages/{p.name}" for p in (root / "app_pages").glob("*.py")) == sorted(registered)
    assert len(registered) >= 11


def test_home_explains_and_runs_the_demo_to_the_comparison():
    at = open_page()
    assert at.title[0].value.startswith("Knowledge distillation")
    assert at.get("graphviz_chart"), "flow diagram missing"
    assert "0.10" in at.latex[0].value and "8^2" in at.latex[0].value  # T and alpha filled in
    at.button(key="home-run").click().run()
    assert_clean(at)
    poll(at, lambda a: has_text(a.success, "Done"), "the demo")
    assert any(t.startswith("Test accuracy of the three models") for t in plotly_titles(at))
    assert at.info or at.success or at.warning  # the within-noise verdict


def test_the_sidebars_precision_choice_goes_into_the_run_and_its_done_line():
    """Auto is the default and says what it means here; bf16 chosen in the sidebar trains the demo in bf16."""
    from kd_core.config import resolved_precision

    at = open_page()
    box = at.selectbox(key="precision")
    assert box.value == "auto" and box.options[0] == f"auto ({resolved_precision('auto')} on this CPU)"
    box.set_value("bf16").run()
    at.button(key="home-run").click().run()
    assert_clean(at)
    poll(at, lambda a: has_text(a.success, "Done"), "the demo in bf16")
    done = next(e.value for e in at.success if "Done" in e.value)
    assert done.rstrip(".").endswith("bf16"), done  # config_summary names a precision other than plain fp32


def test_two_sessions_share_one_job_and_a_reopened_app_shows_the_result_at_once():
    first, second = open_page(), open_page()
    first.button(key="home-run").click().run()
    second.run()  # same config: joins the running job (or sees its result), never offers a second run
    assert not [b for b in second.button if b.key == "home-run"]
    poll(second, lambda a: has_text(a.success, "Done"), "the shared job")
    assert len([j for j in ui.get_runner().jobs() if j.startswith("run-")]) == 1
    st.cache_resource.clear()  # a restarted server: no jobs in memory, results on disk
    reopened = open_page()
    assert has_text(reopened.success, "Done") and has_text(reopened.success, "cache")


def test_train_again_reruns_a_cached_demo_live_and_the_cache_keeps_the_newest():
    first = run_tiny_experiment()
    at = open_page()
    assert has_text(at.success, "From the cache")  # a rehearsed demo: shown at once ...
    at.button(key="home-again").click().run()       # ... and trained again in front of the class
    assert_clean(at)
    assert not has_text(at.success, "Done")         # the stored result gives way to the live run
    assert [e for e in at.get("progress")] or [b for b in at.button if b.key.startswith("stop-")]
    poll(at, lambda a: has_text(a.success, "Done"), "the rerun")
    assert not has_text(at.success, "From the cache")
    again = [job for key, job in ui.get_runner().jobs().items() if "-again-" in key]
    assert len(again) == 1 and again[0].status == "done" and not again[0].result["cached"]
    from kd_core.data import load_dataset
    from kd_core.experiment import comparison_task

    stored = comparison_task(ui.base_preset("classroom"), load_dataset("mnist-sample")).cached()
    assert stored["key"] == first["key"] and stored["total_seconds"] == again[0].result["total_seconds"]
    assert stored["total_seconds"] != first["total_seconds"]  # the newest run replaced the rehearsed one


def test_data_page_shows_samples_counts_and_how_to_get_missing_data():
    at = open_page("app_pages/data.py")
    assert at.table and len(at.get("image")) == 20
    assert plotly_titles(at) == ["Images per class"]
    at.button[0].click().run()  # other sample images
    assert_clean(at)
    missing = open_page("app_pages/data.py", dataset="mnist")
    assert has_text(missing.warning, "How to get it") and has_text(missing.warning, "KD_LAB_DATA_DIR")
    assert [b.label for b in missing.button] == ["Try to download it now (needs internet)"]


def test_teacher_page_trains_with_progress_then_shows_accuracy_and_confusion():
    at = open_page("app_pages/teacher.py")
    assert has_text(at.info, "No trained teacher") and has_text(at.info, "Training it here takes about ")
    at.button(key="teacher-train").click().run()
    assert_clean(at)
    poll(at, lambda a: len(a.metric) == 4, "the teacher")
    assert at.metric[0].label == "Test accuracy"
    assert "Teacher's confusion matrix on the test images" in plotly_titles(at)


def test_teacher_stop_button_cancels_training(monkeypatch):
    monkeypatch.setenv(ui.TINY_ENV, "0")  # the full classroom teacher: long enough to stop
    at = open_page("app_pages/teacher.py")
    at.button(key="teacher-train").click().run()
    poll(at, lambda a: any(b.label == "Stop" for b in a.button), "the Stop button")
    next(b for b in at.button if b.label == "Stop").click().run()
    poll(at, lambda a: has_text(a.warning, "Stopped"), "the job to stop")
    assert [b.key for b in at.button] == ["teacher-train"]


def test_temperature_page_offers_teacher_then_redraws_at_t():
    at = open_page("app_pages/temperature.py")
    assert has_text(at.info, "needs a trained teacher") and has_text(at.info, "Training it here takes about ")
    at.button(key="train-teacher-offer").click().run()
    poll(at, lambda a: len(a.slider) == 1, "the teacher")
    assert at.slider[0].label == "Temperature T" and at.slider[0].value == 8.0
    assert any("T = 1 vs T = 8" in t for t in plotly_titles(at))
    at.slider[0].set_value(12.5).run()
    assert_clean(at)
    titles = plotly_titles(at)
    assert any("T = 1 vs T = 12.5" in t for t in titles) and any("(T = 12.5" in t for t in titles)
    assert at.session_state["settings"]["temperature"] == 12.5  # shared with the Distill page
    gallery = [b for b in at.button if b.key and b.key.startswith("pick-") and b.key != "pick-random"]
    assert len(gallery) == 10
    gallery[3].click().run()
    assert at.session_state["temp_image"] == int(gallery[3].key.removeprefix("pick-"))
    at.button(key="pick-random").click().run()
    at.checkbox[0].uncheck().run()
    assert_clean(at)


def test_temperature_captions_say_what_the_shown_image_and_heatmap_show():
    from kd_core import charts
    from kd_core.data import load_dataset

    run_tiny_experiment()
    at = open_page("app_pages/temperature.py")
    from ui.models import teacher_outputs

    dataset = load_dataset("mnist-sample")
    outputs, classes = teacher_outputs(ui.base_preset("classroom"), dataset), dataset.classes
    for pick in (None, "most-ambiguous"):
        if pick:
            at.button(key=pick).click().run()
            assert_clean(at)
        index = at.session_state["temp_image"]
        probs = charts.softened(outputs["logits"][index], 1.0)
        top = int(probs.argmax())
        [caption] = [c.value for c in at.caption if c.value.startswith("Notice: at T = 1,")]
        assert caption.startswith(f"Notice: at T = 1, {probs[top]:.0%} of the probability sits on {classes[top]} ")
    average = charts.average_soft_targets(outputs["logits"], outputs["labels"], 8.0, len(classes))
    a, b, _ = charts.most_similar_pairs(average, classes)[0]
    assert any(c.value.startswith("Notice: dark cells") and f"{a}–{b}" in c.value for c in at.caption)


def test_distill_page_sliders_run_both_students_from_the_same_start():
    at = open_page("app_pages/distill.py")
    labels = [s.label for s in at.slider]
    assert labels == ["Temperature T", "alpha (weight of the teacher's soft targets)", "Student epochs", "Seeds"]
    assert at.toggle[0].value is True
    at.slider[0].set_value(4.0)
    at.slider[1].set_value(0.5)
    at.slider[3].set_value(2)
    at.run()
    assert "0.50" in at.latex[0].value and "4^2" in at.latex[0].value
    at.button(key="distill-run").click().run()
    assert_clean(at)
    poll(at, lambda a: len(a.metric) == 3, "both students")
    assert any("identical" in m.value for m in at.markdown if "Same start" in m.value)
    assert "(2 seeds)" in at.metric[1].label and "±" in at.metric[1].value
    titles = plotly_titles(at)
    assert "Test accuracy after each epoch (seed 0)" in titles and any("loss parts" in t for t in titles)


def test_compare_page_without_and_with_a_result():
    empty = open_page("app_pages/compare.py")
    assert has_text(empty.info, "Nothing to compare yet") and empty.button
    run_tiny_experiment()
    at = open_page("app_pages/compare.py")
    titles = plotly_titles(at)
    assert titles[0].startswith("Test accuracy of the three models")
    assert any(t.startswith("Per-class test accuracy<br>") for t in titles)
    assert any(t.startswith("Agreement with the teacher<br>") for t in titles)
    table = at.dataframe[0].value
    assert list(table["model"]) == ["teacher", "distilled student", "scratch student"]
    assert (table["CPU latency (ms/image)"] > 0).all() and table["parameters"][0] > table["parameters"][1]
    assert has_text(at.markdown, "fewer parameters")
    at.session_state["settings"] = {**at.session_state["settings"], "temperature": 3.0}
    at.run()  # other settings: the most recent result is shown, and said to be so
    assert has_text(at.info, "showing the most recent run")


def test_only_the_session_that_started_a_run_can_stop_it(monkeypatch):
    from kd_core import experiment
    from kd_core.train import TrainingCancelled

    def held_run(cfg, on_event=None, should_stop=None, use_cache=True):  # a run that lasts until it is stopped
        while not should_stop():
            time.sleep(0.05)
        raise TrainingCancelled()

    monkeypatch.setattr(experiment, "run_experiment", held_run)
    started = open_page()
    started.button(key="home-run").click().run()
    watcher = open_page()                                   # another student opens the same settings
    assert not [b for b in watcher.button if b.key.startswith("stop-")]
    assert has_text(watcher.caption, "Started by another session")
    [stop] = [b for b in started.button if b.key.startswith("stop-")]
    stop.click().run()
    poll(started, lambda a: has_text(a.warning, "Stopped"), "the stop")
