"""KD Lab: the router. Shared sidebar (dataset, preset), session defaults, then the chosen page.

The pages live in app_pages/, not pages/: a pages/ folder puts Streamlit in its old file-based mode until the
process first calls st.navigation, so a fresh server's first visitor opening e.g. /distill would bypass this
router.
"""

from __future__ import annotations

import logging

import streamlit as st

import ui
from kd_core.config import PRECISIONS, PRESETS
from kd_core.data import DATASETS

st.set_page_config(page_title="KD Lab", page_icon=":material/science:", layout="wide")
ui.configure_logging()
ui.init_state()
ui.warm_up()  # a served app's first run starts the default teacher in the background (the Temperature page's)

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/data.py", title="Data", icon=":material/image:"),
    st.Page("app_pages/teacher.py", title="Teacher", icon=":material/school:"),
    st.Page("app_pages/temperature.py", title="Temperature", icon=":material/thermostat:"),
    st.Page("app_pages/distill.py", title="Distill", icon=":material/science:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/bar_chart:"),
    st.Page("app_pages/your_digit.py", title="Your digit", icon=":material/draw:"),
    st.Page("app_pages/efficiency.py", title="Efficiency", icon=":material/speed:"),
    st.Page("app_pages/experiments.py", title="Experiments", icon=":material/experiment:"),
    st.Page("app_pages/history.py", title="Run history", icon=":material/history:"),
    st.Page("app_pages/language.py", title="Language models", icon=":material/text_fields:"),
]
page = st.navigation(PAGES)
ui.show_link_problems()
ui.show_cache_problem()

with st.sidebar:
    st.selectbox("Dataset", list(DATASETS), key="dataset", format_func=ui.dataset_label,
                 help="Where the images come from. The MNIST sample is bundled and always works offline.")
    available, where = ui.dataset_status(st.session_state["dataset"])
    st.caption(DATASETS[st.session_state["dataset"]].title)
    if not available:
        st.warning(f"Not available here yet. How to get it: {where}")
    st.radio("Preset", list(PRESETS), key="preset", format_func=ui.PRESET_LABELS.get,
                 on_change=ui.reset_settings,
                 help="Starting values for every setting; the Distill page's sliders change them further.")
    st.selectbox("Precision", PRECISIONS, key="precision", format_func=ui.precision_label, help=ui.PRECISION_HELP)
    cfg = ui.current_config()
    st.caption(f"T = {cfg.temperature:g}, alpha = {cfg.alpha:g} (alpha = weight of the teacher's soft targets), "
               f"{cfg.student_epochs} student epochs, {cfg.seeds} seed{'s' if cfg.seeds != 1 else ''}"
               + (". Tiny mode: every run is shrunk to seconds." if ui.tiny() else "."))
    ui.sync_link()
    with st.popover("Share these settings", icon=":material/link:"):
        st.caption("This link opens the app with the same dataset, preset, T, alpha, epochs and seeds "
                   "(and shows the run's result at once if it has finished on this server). The address bar holds it too.")
        if note := ui.state.share_note():
            st.markdown(note)
        st.code(ui.share_link(), language=None, wrap_lines=True)
    st.toggle("Lesson mode", key="lesson", help="A guided path through the pages for a teacher: what to click, "
                                                 "what to notice and a question for the class on each step.")

if st.session_state.get("lesson"):
    ui.lesson_panel(page, PAGES)

try:
    ui.lifecycle.compile_page(page)  # a job's ONNX export may race Streamlit's parse of the page: retried
    page.run()
except Exception as exc:  # last resort: a message, never a traceback (Streamlit's stop/rerun are BaseExceptions)
    logging.getLogger("kd_lab").exception("page %s failed", page.title)
    st.error(f"Something went wrong on this page: {type(exc).__name__}: {ui.plain(exc)}. The details are in the "
             "server log.")
