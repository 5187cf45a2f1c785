"""The one job lifecycle of every page that runs work: result, else cache, else live progress, else a button.

Pages build a kd_core.tasks.Task (the engine owns its key) and call task_section; they keep no job
bookkeeping of their own. The job runner is one per server process, shared by every browser session.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import streamlit as st

from ui.widgets import ROLE_TITLES, plain

POLL_SECONDS = 1.0
COMPILE_ATTEMPTS = 5  # compile_page's tries when CPython 3.11's AST race hits a page's first compile
AGAIN_HELP = ("Trains both students again from the same settings and shows it live (the teacher is reused from the "
              "cache); the cache keeps the newest run.")
UNSAVED_NOTE = ("Part of this run could not be saved to the cache ({reason}): its results are shown here, but "
                "what was not saved is computed again next time.")
RUNNING_NOTE = ("Running in the background: {label}. Switching pages or moving sliders does not stop it; anyone "
                "else who opens the same settings sees the same run.")


@st.cache_resource(show_spinner=False)
def get_runner():
    """The one background JobRunner of this server process, shared by every browser session.

    Its work runs in a child process (training off the server's GIL), on a thread of the server only where
    kd_core.jobs.IN_PROCESS_ENV is "1": tests that patch the engine in this process to inject faults. A served app
    starts that process at once (its first teacher is on its way); AppTest's sessions, which have no browser
    address, only when a job comes.
    """
    import os

    from kd_core.jobs import IN_PROCESS_ENV, JobRunner

    return JobRunner(workers=1, reserved_cores=1,  # the pages' torch keeps to one core; a child trains on all
                     isolated=os.environ.get(IN_PROCESS_ENV) != "1", start_now=st.context.url is not None)


def find_job(key: str):
    """The runner's job under `key`, or None."""
    return get_runner().get(key)


def session_id() -> str:
    """This browser session's id in the job runner (who asked for a job, and so who may stop it)."""
    import uuid

    return st.session_state.setdefault("session_id", uuid.uuid4().hex)


def submit(task) -> Any:
    """Start (or join) `task` in the background for this session; it becomes this session's latest job.

    Returns the job, or None (with a warning on the page) when this session already has its share of runs.
    """
    from kd_core.jobs import SessionBusy

    try:
        job = get_runner().submit_task(task, owner=session_id())
    except SessionBusy as exc:
        st.session_state["busy"] = str(exc)  # shown after the rerun that follows every submit
        return None
    st.session_state["last_job"] = task.key
    return job


def task_section(task, draw: Callable[[Any], None] | None, button_label: str, button_key: str, *,
                 running: str = RUNNING_NOTE, offer: str = "", follow_other: bool = False) -> dict[str, Any] | None:
    """`task`'s result for this page: run by this server, else from the cache; else its live progress, else a button.

    A rerun asked for with again_button replaces the task here until it ends. `running` is the caption over
    live progress ({label} is filled in); `offer` is said above the button when there is nothing to show;
    with `follow_other`, the live progress of a run this session started with other settings is shown too
    (for a page with one section: two sections would draw the same panel twice).
    """
    key = st.session_state.get("again", {}).get(task.key, task.key)
    job = find_job(key)
    show_unsaved(job)
    if job is not None and job.status == "done" and job.result is not None:
        return job.result  # run by this server: says how long it took, not "from the cache"
    if job is not None and not job.finished:
        st.caption(running.format(label=job.label))
        job_progress(key, draw)
        return None
    show_job_ending(job)
    result = task.cached()
    if result is not None:
        return result
    other = find_job(st.session_state.get("last_job", ""))
    if follow_other and other is not None and not other.finished and other.key != key:
        st.info(f"A run you started with other settings is still going ({other.label}).")
        job_progress(other.key, draw)
    if offer:
        st.info(offer)
    if busy := st.session_state.pop("busy", None):
        st.warning(busy)
    if st.button(button_label, type="primary", key=button_key):
        submit(task)
        st.rerun()
    return None


def again_button(task, label: str, key: str, help: str | None = None) -> None:
    """A button that computes `task` afresh (its cached result replaced) and shows that run in its section."""
    if busy := st.session_state.pop("busy", None):
        st.warning(busy)
    if st.button(label, key=key, help=help):
        rerun = task.again()
        if submit(rerun) is not None:
            st.session_state.setdefault("again", {})[task.key] = rerun.key
        st.rerun()


def show_unsaved(job) -> None:
    """Once, to each session that asked for the finished `job`: say that some of its cache writes failed."""
    if job is None or not job.finished or not job.unsaved or session_id() not in job.owners:
        return
    told = st.session_state.setdefault("told_unsaved", set())
    if job.key not in told:
        told.add(job.key)
        st.warning(UNSAVED_NOTE.format(reason=plain(job.unsaved)))


def show_job_ending(job) -> None:
    """A message for a job that failed or was stopped (nothing for none, running or done)."""
    if job is None:
        return
    if job.status == "failed":
        st.error(f"The last run failed: {plain(job.error)}. Change the settings or try again.")
    elif job.status == "cancelled":
        st.warning("Stopped. Models that had finished stay cached; press the button to start again.")


def parts(job) -> list[dict[str, Any]]:
    """The finished parts (budget rows, seeds, sweep cells, temperatures) a running job has reported so far."""
    return [e.partial for e in list(job.events) if e.phase == "part" and e.partial is not None]


def _eta_text(job, overall: float) -> str:
    """Remaining time from the pace since this session's first look at the running job once its work had begun
    (joins mid-way work too): kd_core.estimate.eta_seconds."""
    from kd_core.estimate import about, eta_seconds

    now = time.time()
    marks = st.session_state.setdefault("_eta_marks", {})
    if overall <= 0:  # loading data, preparing: a pace measured over it would overstate what is left
        return "estimating time left..."
    left = eta_seconds(marks.setdefault(job.key, (now, overall)), now, overall)
    return "estimating time left..." if left is None else f"{about(left)} left"


def progress_text(event) -> str:
    """What a progress event says runs now, in words: a stage's text, or the model, seed, part, step and epoch."""
    if event.text:
        return event.text
    p, part = event.progress, event.step
    teacher = event.phase == "teacher"
    epochs = f", epoch {p.epoch:.1f} of {p.epochs:g}" if p.epochs >= 1 else ""  # an LM's 0.71 passes: steps say it
    return (f"{ROLE_TITLES.get(event.phase, event.phase)}{'' if teacher else f' (seed {event.seed})'}"
            f"{f', {part}' if part and not teacher else ''}, step {p.step}/{p.steps}{epochs}")


def job_progress(key: str, draw: Callable[[Any], None] | None = None) -> None:
    """A self-refreshing panel for the job under `key`: progress bar, steps, ETA, Stop, and `draw(job)` curves."""

    @st.fragment(run_every=POLL_SECONDS)
    def panel() -> None:
        job = find_job(key)
        if job is None:
            return
        if job.finished:
            st.rerun()  # the whole page redraws with the result
        # the latest event that says what runs now (a finished part has neither a snapshot nor words)
        event = next((e for e in reversed(list(job.events)) if e.progress is not None or e.text), None)
        if job.status == "queued" or event is None:
            ahead = get_runner().position(key) if job.status == "queued" else 0
            st.progress(0.0, text=(f"Waiting in the queue: {ahead} run{'s' if ahead != 1 else ''} ahead of this one "
                                   "(one run trains at a time on this server)" if ahead
                                   else "Starting (loading data, preparing the teacher's outputs)..."))
        else:
            overall = job.latest.overall
            st.progress(min(1.0, overall), text=f"{overall:.0%} overall. Now: {progress_text(event)}. "
                                                f"{_eta_text(job, overall)}")
        if session_id() in job.owners:
            if st.button("Stop", key=f"stop-{key}", help="Stops the training at its next step, unless another "
                                                           "session that asked for the same run still wants it."):
                stopped = get_runner().release(key, session_id())
                st.toast("Stopping..." if stopped else "Stopped for you; another session still wants this run, "
                                                        "so it goes on.")
        else:
            st.caption("Started by another session: only the sessions that asked for this run can stop it.")
        if draw is not None and job.events:
            draw(job)

    panel()


def compile_page(page) -> None:
    """Compile `page`'s script into Streamlit's script cache before it runs, retrying CPython 3.11's AST race: a job's
    ONNX export (onnxscript parses its sources) in another thread can make Streamlit's own ast.parse of the page
    fail with kd_core.pyast.RACE. Nothing of the page has run then, so trying again is safe."""
    from pathlib import Path

    from streamlit.runtime.scriptrunner import get_script_run_ctx

    from kd_core.pyast import retry_race

    ctx, script = get_script_run_ctx(), getattr(page, "_page", None)
    if ctx is None or not isinstance(script, Path):
        return
    retry_race(lambda: ctx.pages_manager.get_page_script_byte_code(str(script)), COMPILE_ATTEMPTS)
