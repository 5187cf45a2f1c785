"""Shareable links (settings in the URL: parsed strictly, round-trip, bad values reported) and lesson mode."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st_
from streamlit.testing.v1 import AppTest

import lesson
from kd_core import url_settings
from kd_core.config import PRESETS
from kd_core.data import DATASETS

APP = str(Path(__file__).resolve().parent.parent / "app.py")
NUMERIC = [name for name, s in url_settings.SETTINGS.items() if s.kind is not bool]


def valid_settings():
    """Strategy: a dict of link settings that are all within the sliders' ranges."""
    def value(setting):
        if setting.kind is bool:
            return st_.booleans()
        if setting.kind is int:
            return st_.integers(int(setting.low), int(setting.high))
        return st_.floats(setting.low, setting.high, allow_nan=False)

    return st_.fixed_dictionaries({s.field: value(s) for s in url_settings.SETTINGS.values()})


@given(st_.sampled_from(list(DATASETS)), st_.sampled_from(list(PRESETS)), valid_settings())
def test_encode_then_parse_gives_the_same_settings(dataset, preset, settings):
    found, problems = url_settings.parse(url_settings.encode(dataset, preset, settings))
    assert problems == []
    assert found == {"dataset": dataset, "preset": preset, "settings": settings}


@given(st_.dictionaries(st_.sampled_from(["dataset", "preset", *url_settings.SETTINGS, "other", "embed"]),
                        st_.text(max_size=200)))
def test_any_link_parses_to_allowed_values_or_a_problem_per_bad_value(params):
    found, problems = url_settings.parse(params)
    assert found.get("dataset", "mnist-sample") in DATASETS
    assert found.get("preset", "classroom") in PRESETS
    for field, value in found["settings"].items():
        setting = url_settings.BY_FIELD[field]
        assert isinstance(value, setting.kind)
        if setting.kind is not bool:
            assert math.isfinite(value) and setting.low <= value <= setting.high
    used = len(found["settings"]) + ("dataset" in found) + ("preset" in found)
    ours = [name for name in params if name in url_settings.SETTINGS or name in ("dataset", "preset")]
    assert used + len(problems) == len(ours)  # every value of ours is either used or reported, never dropped silently
    assert all(len(p) < 200 for p in problems)  # a hostile value is not echoed back whole


@pytest.mark.parametrize("name,text", [("T", "abc"), ("T", "0"), ("T", "nan"), ("T", "inf"), ("T", "1e400"),
                                       ("alpha", "-0.1"), ("alpha", "1.5"), ("epochs", "2.5"), ("epochs", "0"),
                                       ("seeds", "99"), ("t2", "maybe"), ("dataset", "../../etc/passwd"),
                                       ("preset", "<script>"), ("T", "9" * 500)])
def test_bad_link_values_are_reported_and_not_used(name, text):
    found, problems = url_settings.parse({name: text})
    assert found == {"settings": {}}
    assert len(problems) == 1 and problems[0].startswith(f"{name}=`") and "default" in problems[0]


def test_a_link_value_is_shown_as_code_so_no_markdown_link_renders():
    _, problems = url_settings.parse({"T": "[a](https://x.io) `x` **b**"})
    assert problems[0].startswith("T=`[a](https://x.io) ?x? **b**` is not a number")


def open_app(params: dict[str, str] | None = None, **state) -> AppTest:
    """The app's router (Home) opened with link `params` and session `state`."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


@pytest.mark.usefixtures("fresh_app")
def test_a_link_opens_the_app_with_its_settings_and_the_url_follows_changes():
    at = open_app({"dataset": "mnist-sample", "preset": "classroom", "T": "4.5", "alpha": "0.6", "epochs": "3",
                   "seeds": "2", "t2": "0"})
    assert not at.exception and not at.warning
    assert at.session_state["settings"] == {"temperature": 4.5, "alpha": 0.6, "student_epochs": 3, "seeds": 2,
                                            "t_squared": False}
    assert at.query_params["T"] == "4.5" and at.query_params["seeds"] == "2"
    code = at.sidebar.get("code")[0].value  # the share link written out for copying
    assert "T=4.5" in code and "alpha=0.6" in code and "t2=0" in code
    at.switch_page("app_pages/distill.py").run()
    at.slider(key="w_temperature").set_value(12.0).run()
    assert not at.exception
    assert at.query_params["T"] == "12" and at.query_params["alpha"] == "0.6"


@pytest.mark.usefixtures("fresh_app")
def test_invalid_link_values_are_reported_once_and_replaced_by_defaults():
    at = open_app({"T": "hot", "seeds": "1000", "alpha": "0.3", "dataset": "nope"})
    assert not at.exception
    warning = " ".join(w.value for w in at.warning)
    assert "T=`hot`" in warning and "seeds=`1000`" in warning and "dataset=`nope`" in warning
    assert at.session_state["settings"]["temperature"] == PRESETS["classroom"].temperature
    assert at.session_state["settings"]["alpha"] == 0.3
    assert at.session_state["dataset"] == "mnist-sample"
    assert at.query_params["T"] == "8"  # the URL now shows what is used
    at.run()
    assert not any("could not be used" in w.value for w in at.warning)  # said once


def page_titles() -> set[str]:
    """Titles of the pages app.py registers (read from its source: st.Page(..., title=...))."""
    tree = ast.parse(Path(APP).read_text())
    return {kw.value.value for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "Page" for kw in node.keywords if kw.arg == "title"}


def test_every_lesson_step_is_on_a_page_of_the_app():
    assert {step.page for step in lesson.STEPS} <= page_titles()
    assert all(step.do and step.notice and step.question for step in lesson.STEPS)


@pytest.mark.usefixtures("fresh_app")
@pytest.mark.parametrize("page,index", [(None, 0), ("app_pages/distill.py", lesson.step_for("Distill"))])
def test_lesson_mode_shows_the_step_of_the_page(page, index):
    at = open_app(lesson=True)
    if page:
        at.switch_page(page).run()
    assert not at.exception
    step = lesson.STEPS[index]
    text = " ".join(m.value for m in at.markdown)
    assert f"Lesson, step {index + 1} of {len(lesson.STEPS)}: {step.title}" in text
    assert step.question in text


@pytest.mark.usefixtures("fresh_app")
def test_lesson_mode_is_off_by_default():
    at = open_app()
    assert not any("Lesson, step" in m.value for m in at.markdown)


@pytest.mark.parametrize("url,address,expected", [
    ("http://127.0.0.1:8501/compare?T=4", "10.1.2.3", "http://10.1.2.3:8501/compare?T=4"),
    ("http://localhost/", "10.1.2.3", "http://10.1.2.3/"),
    ("http://kd.school.example:8501/", "10.1.2.3", "http://kd.school.example:8501/"),  # already reachable
    ("http://127.0.0.1:8501/", None, "http://127.0.0.1:8501/"),                        # offline: nothing better
])
def test_a_share_link_names_an_address_other_computers_can_open(url, address, expected):
    from ui.state import reachable

    assert reachable(url, address) == expected


def test_the_share_note_says_how_to_serve_a_class_when_only_this_computer_can_connect(monkeypatch):
    import streamlit

    from ui.state import share_note

    monkeypatch.setattr(streamlit, "get_option", lambda name: "127.0.0.1")
    note = share_note()
    assert "Only this computer" in note and "make run ADDRESS=0.0.0.0" in note
    monkeypatch.setattr(streamlit, "get_option", lambda name: "0.0.0.0")
    assert share_note() == ""  # listening on the network, and no browser on the server itself
