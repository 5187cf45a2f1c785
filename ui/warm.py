"""Warm-up: the default settings' teacher starts training in the background when a served app first runs.

So the Temperature page has its teacher within seconds of `make run`. One job per server process, through the
shared job runner (anyone who asks for the same teacher joins it). Not under AppTest: its sessions have no
browser address (st.context.url is None), so page tests start no job they did not ask for.
"""

from __future__ import annotations

import logging
import threading

import streamlit as st

from ui.lifecycle import POLL_SECONDS, get_runner
from ui.state import base_preset

log = logging.getLogger("kd_lab")


def pending() -> bool:
    """True while a served app's warm-up is still loading the data and submitting its teacher (its first seconds)."""
    return st.context.url is not None and start_teacher().is_alive()


def wait_for_warm_up(note: str) -> bool:
    """While pending(): say `note` and redraw the page once the warm-up has submitted its teacher; True then.

    Without it, a page opened in the server's first seconds would offer to train a teacher that is about to start,
    and would not notice when it does.
    """
    if not pending():
        return False
    st.caption(note)

    @st.fragment(run_every=POLL_SECONDS)
    def poll() -> None:
        if not pending():
            st.rerun()

    poll()
    return True


def warm_up() -> None:
    """Called by app.py on every run: on a real server's first run, start the default teacher (start_teacher)."""
    if st.context.url is not None:
        start_teacher()


@st.cache_resource(show_spinner=False)
def start_teacher() -> threading.Thread:
    """Once per process: in a thread (the first paint does not wait for torch and the data), load the default
    dataset and submit the default preset's teacher (tiny when ui.tiny()) to the job runner, unless it is cached."""
    cfg, runner = base_preset("classroom"), get_runner()

    def submit() -> None:
        from kd_core.data import DatasetError, load_dataset
        from kd_core.experiment import teacher_task

        try:
            task = teacher_task(cfg, load_dataset(cfg.dataset))
        except DatasetError as exc:
            log.warning("warm-up: no teacher trained in the background (%s)", exc)
            return
        if task.cached() is None:
            runner.submit_task(task)

    thread = threading.Thread(target=submit, name="kd-warm-up", daemon=True)
    thread.start()
    return thread
