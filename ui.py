"""Shared UI helpers for the pages: settings in session state, the process-wide job runner, progress panels.

Pages stay thin: they call these helpers for the config, the dataset, jobs and cached results, then
draw figures from kd_core.charts. torch is imported only inside functions that need a model or data,
so the first screen paints before it loads.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

import streamlit as st

from kd_core import url_settings
from kd_core.config import RunConfig, preset
from kd_core.data import DATASETS, DatasetError, availability

TINY_ENV = "KD_LAB_TINY"  # set to 1 (tests, quick demos): every run shrinks to a few seconds
TINY_CHANGES = {"teacher_train_limit": 300, "student_train_limit": 100, "teacher_epochs": 1,
                "student_epochs": 2, "batch_size": 50}
POLL_SECONDS = 1.0
SETTINGS = ("temperature", "alpha", "student_epochs", "seeds", "t_squared")  # widgets on the pages
PRESET_LABELS = {
    "classroom": "Classroom demo: fast; the students see only 400 labelled images",
    "keras": "Keras example: its alpha=0.1 = our alpha 0.9 (T=10, 10 epochs, every image: slow on CPU)",
}
DATASET_LABELS = {"mnist-sample": "MNIST sample (bundled)", "mnist": "MNIST (full)", "fashion-mnist": "Fashion-MNIST"}
ROLE_TITLES = {"teacher": "teacher", "distilled": "distilled student", "scratch": "scratch student",
               "distilled_all": "distilled student (every class)"}


@st.cache_resource(show_spinner=False)
def configure_logging() -> None:
    """Once per server: kd_core's INFO lines (each job's start and end, cache problems) go to the server's stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    engine_log = logging.getLogger("kd_core")
    engine_log.addHandler(handler)
    engine_log.setLevel(logging.INFO)
    engine_log.propagate = False


def tiny() -> bool:
    """Whether runs are shrunk to seconds ($KD_LAB_TINY=1)."""
    return os.environ.get(TINY_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def base_preset(name: str) -> RunConfig:
    """The named preset, shrunk when tiny() is on."""
    cfg = preset(name)
    return cfg.replace(**TINY_CHANGES) if tiny() else cfg


def reset_settings() -> None:
    """Set the page sliders' values to the chosen preset's (called when the preset changes)."""
    cfg = base_preset(st.session_state.get("preset", "classroom"))
    st.session_state["settings"] = {key: getattr(cfg, key) for key in SETTINGS}
    for key in SETTINGS:  # widgets are re-created from the new values
        st.session_state.pop(f"w_{key}", None)


def init_state() -> None:
    """Once per session: the shared settings from the page link (bad values reported, defaults kept), else defaults.

    Settings are kept apart from widget state, which Streamlit drops when a page without the widget runs.
    """
    state = st.session_state
    if "settings" in state:
        return
    from_link, state["link_problems"] = url_settings.parse(st.query_params.to_dict())
    state["dataset"] = from_link.get("dataset", "mnist-sample")
    state["preset"] = from_link.get("preset", "classroom")
    reset_settings()
    state["settings"].update(from_link["settings"])


def sync_link() -> None:
    """Write the current settings into the page's URL (so the address bar is a shareable link to this experiment)."""
    state = st.session_state
    st.query_params.from_dict(url_settings.encode(state["dataset"], state["preset"], state["settings"]))


def share_link() -> str:
    """The full link to this app with the current settings (the address bar's, written out for copying)."""
    from urllib.parse import urlencode, urlsplit

    state = st.session_state
    base = urlsplit(st.context.url or "http://localhost:8501/")
    query = urlencode(url_settings.encode(state["dataset"], state["preset"], state["settings"]))
    return f"{base.scheme}://{base.netloc}{base.path}?{query}"


def show_link_problems() -> None:
    """Once per session: say which values of the opening link were not usable (their defaults were used)."""
    problems = st.session_state.pop("link_problems", None)
    if problems:
        st.warning("Some settings in this link could not be used:\n\n" + "\n".join(f"- {p}" for p in problems))


def show_cache_problem() -> None:
    """Once per session: say so when the cache folder cannot be written (runs still work; nothing is kept)."""
    if st.session_state.get("cache_checked"):
        return
    st.session_state["cache_checked"] = True
    from kd_core import paths, store

    problem = store.check_writable()
    if problem:
        st.warning(f"The cache folder `{paths.cache_dir()}` is not writable ({problem}): runs work, but their "
                   "results and trained models are not kept.")


def setting_widget(widget: Callable[..., Any], label: str, name: str, **kwargs: Any) -> Any:
    """A page widget (st.slider, st.toggle, ...) bound to the shared setting `name`, on any page that shows it.

    A slider's range and step are those a shareable link may carry (kd_core.url_settings), unless given.
    """
    init_state()  # a page may run before the router has (e.g. AppTest on a page file)
    key = f"w_{name}"
    setting = url_settings.BY_FIELD.get(name)
    if setting is not None and setting.kind is not bool:
        kwargs = {"min_value": setting.kind(setting.low), "max_value": setting.kind(setting.high),
                  "step": setting.kind(setting.step), **kwargs}

    def sync() -> None:
        st.session_state["settings"][name] = st.session_state[key]

    return widget(label, value=st.session_state["settings"][name], key=key, on_change=sync, **kwargs)


def current_config() -> RunConfig:
    """The RunConfig described by the sidebar (dataset, preset) and the page sliders."""
    init_state()
    state = st.session_state
    cfg = base_preset(state.get("preset", "classroom"))
    return cfg.replace(dataset=state.get("dataset", cfg.dataset), **state.get("settings", {}))


@st.cache_data(ttl=30, show_spinner=False)
def dataset_status(name: str) -> tuple[bool, str]:
    """(available offline now, source or how to get it), re-checked at most every 30 seconds."""
    return availability(name)


def dataset_label(name: str) -> str:
    """Sidebar label of a dataset: its title, marked when it is not available here."""
    ok, _ = dataset_status(name)
    return DATASET_LABELS.get(name, name) + ("" if ok else " (not here)")


def require_dataset(name: str | None = None):
    """The loaded dataset, or a message saying how to get it (with a download button) and st.stop()."""
    from kd_core.data import load_dataset

    name = name or st.session_state.get("dataset", "mnist-sample")
    ok, where = dataset_status(name)
    if not ok:
        st.warning(f"**{DATASETS[name].title}** is not available on this machine yet.\n\n**How to get it:** {where}")
        if not st.button("Try to download it now (needs internet)", key="download-dataset"):
            st.info("Or choose the MNIST sample in the sidebar: it is bundled and always works.")
            st.stop()
    try:
        with st.spinner(f"Loading {DATASETS[name].title}..."):
            dataset = load_dataset(name)
    except DatasetError as exc:
        st.error(str(exc))
        st.stop()
    if not ok:
        dataset_status.clear()
    return dataset


@st.cache_resource(show_spinner=False)
def get_runner():
    """The one background JobRunner of this server process, shared by every browser session."""
    from kd_core.jobs import JobRunner

    return JobRunner(workers=1, reserved_cores=1)  # one core stays free for the server drawing pages


def experiment_key(cfg: RunConfig, dataset) -> str:
    """Job key of a whole experiment: equal configs on equal data share one job."""
    from kd_core.experiment import run_key

    return run_job_key(run_key(cfg, dataset))


def run_job_key(result_key: str) -> str:
    """The job key of the experiment whose stored result has key `result_key`."""
    return "run-" + result_key


def teacher_key(cfg: RunConfig, dataset) -> str:
    """Job key of the teacher alone (the same hash the engine caches it under)."""
    from kd_core import store

    return "teacher-" + store.config_key({**cfg.teacher_dict(), "data": dataset.fingerprint})


def submit_experiment(cfg: RunConfig, dataset):
    """Start (or join) the teacher -> distilled -> scratch experiment for `cfg` in the background."""
    from kd_core.experiment import run_experiment

    def work(report: Callable[[Any], None], should_stop: Callable[[], bool]) -> dict[str, Any]:
        return run_experiment(cfg, on_event=report, should_stop=should_stop)

    key = experiment_key(cfg, dataset)
    st.session_state["last_job"] = key
    return get_runner().submit(key, work, label=f"teacher, distilled and scratch students (T={cfg.temperature:g}, "
                                                f"alpha={cfg.alpha:g}, {cfg.seeds} seed(s))")


def submit_teacher(cfg: RunConfig, dataset):
    """Start (or join) training of the teacher alone; its result is the teacher's metadata."""
    from kd_core.experiment import Event, get_teacher

    def work(report: Callable[[Any], None], should_stop: Callable[[], bool]) -> dict[str, Any]:
        def on_progress(p) -> None:
            report(Event("teacher", cfg.teacher_seed, p, p.step / max(p.steps, 1)))

        return get_teacher(cfg, dataset, on_progress, should_stop)[1]

    key = teacher_key(cfg, dataset)
    st.session_state["last_job"] = key
    return get_runner().submit(key, work, label=f"teacher {cfg.teacher}")


def find_job(key: str):
    """The runner's job under `key`, or None."""
    return get_runner().get(key)


def cached_result(cfg: RunConfig, dataset) -> dict[str, Any] | None:
    """The stored comparison for exactly this config, or None."""
    from kd_core.experiment import cached_result as engine_cached_result

    found = engine_cached_result(cfg, dataset)
    return None if found is None else {**found, "cached": True}


def current_or_latest_result(cfg: RunConfig, dataset) -> tuple[dict[str, Any] | None, bool]:
    """(the stored comparison for these settings, True), else (the most recent run's, False), else (None, False)."""
    result = cached_result(cfg, dataset)
    return (result, True) if result is not None else (latest_result(), False)


def latest_result() -> dict[str, Any] | None:
    """The most recently written comparison in the cache (any config), or None."""
    from kd_core import store

    folder = store.cache_path("results")
    files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.is_dir() else []
    for path in files:
        result = store.load_json(path)
        if result is not None and "models" in result:
            return result
    return None


class _NoTeacher(Exception):
    """Raised inside the cached function so that "no teacher yet" is never cached."""


def teacher_outputs(key: str, cfg: RunConfig, dataset) -> dict[str, Any] | None:
    """The cached teacher's test logits (numpy), its size and metadata, computed once per teacher; None if untrained."""
    try:
        return _teacher_outputs(key, cfg, dataset)
    except _NoTeacher:
        return None


@st.cache_resource(show_spinner="Computing the teacher's outputs on the test images...", max_entries=4)
def _teacher_outputs(key: str, _cfg: RunConfig, _dataset) -> dict[str, Any]:
    """teacher_outputs, computed once per teacher key (shared by all sessions)."""
    from kd_core.evaluate import predict_logits
    from kd_core.experiment import cached_teacher
    from kd_core.models import count_params, flops_per_image, size_bytes

    found = cached_teacher(_cfg, _dataset)
    if found is None:
        raise _NoTeacher(key)
    model, meta = found
    return {"logits": predict_logits(model, _dataset.test_x).numpy(), "labels": _dataset.test_y.numpy(),
            "meta": meta, "params": count_params(model), "size_bytes": size_bytes(model),
            "flops": flops_per_image(model)}


def teacher_or_offer(cfg: RunConfig, dataset, why: str) -> dict[str, Any] | None:
    """The teacher's outputs, or a message with a "Train the teacher" button and live progress (returns None)."""
    key = teacher_key(cfg, dataset)
    outputs = teacher_outputs(key, cfg, dataset)
    if outputs is not None:
        return outputs
    job = find_job(key)
    if job is not None and not job.finished:
        st.info(f"The teacher is training now; {why} when it is done.")
        job_progress(key)
        return None
    show_job_ending(job)
    st.info(f"This page needs a trained teacher: {why}. Train it here (on this machine it takes "
            f"{'a few seconds' if tiny() else 'about half a minute'}).")
    if st.button("Train the teacher", type="primary", key="train-teacher-offer"):
        submit_teacher(cfg, dataset)
        st.rerun()
    return None


def show_job_ending(job) -> None:
    """A message for a job that failed or was stopped (nothing for none, running or done)."""
    if job is None:
        return
    if job.status == "failed":
        st.error(f"The last run failed: {job.error}. Change the settings or try again.")
    elif job.status == "cancelled":
        st.warning("Stopped. Models that had finished stay cached; press the button to start again.")


def _eta_text(job, overall: float) -> str:
    """Remaining time estimated from this session's first look at the running job (joins mid-way work too)."""
    now = time.time()
    marks = st.session_state.setdefault("_eta_marks", {})
    first = marks.setdefault(job.key, (now, overall))
    done = overall - first[1]
    if done <= 0.005:
        return "estimating time left..."
    left = (now - first[0]) / done * (1 - overall)
    return f"about {left:.0f} s left" if left < 120 else f"about {left / 60:.1f} min left"


def job_progress(key: str, draw: Callable[[Any], None] | None = None) -> None:
    """A self-refreshing panel for the job under `key`: progress bar, steps, ETA, Stop, and `draw(job)` curves."""

    @st.fragment(run_every=POLL_SECONDS)
    def panel() -> None:
        job = find_job(key)
        if job is None:
            return
        if job.finished:
            st.rerun()  # the whole page redraws with the result
        # Experiment Events and lab LabEvents alike; a LabEvent may be a finished part without a snapshot.
        event = next((e for e in reversed(job.events) if getattr(e, "progress", None) is not None), None)
        if job.status == "queued" or event is None:
            ahead = [j for j in get_runner().active() if j.key != key and j.status == "running"]
            st.progress(0.0, text=("Waiting for another training job to finish" if ahead
                                   else "Starting (loading data, preparing the teacher's outputs)..."))
        elif getattr(event, "text", None):  # events that say in words what runs now (kd_core.compress.StageEvent)
            overall = job.latest.overall
            st.progress(min(1.0, overall), text=f"{overall:.0%} overall. Now: {event.text}. {_eta_text(job, overall)}")
        else:
            p, overall, part = event.progress, job.latest.overall, getattr(event, "step", "")
            st.progress(min(1.0, overall),
                        text=f"{overall:.0%} overall. Now: {ROLE_TITLES.get(event.phase, event.phase)}"
                             f"{f' (seed {event.seed})' if event.phase != 'teacher' else ''}"
                             f"{f', {part}' if part and event.phase != 'teacher' else ''}, "
                             f"step {p.step}/{p.steps}, epoch {p.epoch:.1f}/{p.epochs}. {_eta_text(job, overall)}")
        if st.button("Stop", key=f"stop-{key}", help="Stops the training at its next step."):
            job.cancel()
            st.toast("Stopping...")
        if draw is not None and job.events:
            draw(job)

    panel()


def lesson_panel(page, pages: list) -> None:
    """Lesson mode's box on top of `page`: this step's what to do, what to notice, the question, and the way on.

    `pages` are the app's st.Page objects; lesson steps name their page by its title.
    """
    import lesson

    by_title = {p.title: p for p in pages}
    index = lesson.step_for(page.title)
    if index is None:
        first = lesson.STEPS[0]
        st.info("Lesson mode: this page is not a stop of the guided lesson.")
        st.page_link(by_title[first.page], label=f"Go to step 1: {first.title}", icon=":material/school:")
        return
    step, count = lesson.STEPS[index], len(lesson.STEPS)
    with st.container(border=True):
        st.markdown(f"**Lesson, step {index + 1} of {count}: {step.title}**")
        st.markdown(f"**Do:** {step.do}\n\n**Notice:** {step.notice}\n\n**Ask the class:** {step.question}")
        back, forward = st.columns(2)
        if index > 0:
            previous = lesson.STEPS[index - 1]
            back.page_link(by_title[previous.page], label=f"Back: step {index}, {previous.title}", icon=":material/arrow_back:")
        if index + 1 < count:
            following = lesson.STEPS[index + 1]
            forward.page_link(by_title[following.page], label=f"Next: step {index + 2}, {following.title}",
                              icon=":material/arrow_forward:")
        else:
            forward.markdown("End of the lesson. Open **Run history** to compare every run the class made.")


def chart_filename(fig) -> str:
    """A file name for a figure's PNG download, made from its title ("kd-lab-accuracy-of-the-three-models")."""
    import re

    title = re.sub(r"<[^>]*>", " ", fig.layout.title.text or "chart")  # drop <br>, <sup> etc. of Plotly titles
    return "kd-lab-" + (re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "chart")


def chart(fig, key: str, where: Any = None) -> None:
    """Draw a Plotly figure with its PNG download (Plotly's own export: the camera button, 2x scale for slides)."""
    config = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": chart_filename(fig),
                                                             "scale": 2}}
    (where or st).plotly_chart(fig, key=key, config=config)


def download_buttons(name: str, rows: list[dict[str, Any]], document: dict[str, Any]) -> None:
    """Two buttons side by side: the rows as CSV and the whole result as JSON (kd-lab-<name>.csv / .json)."""
    from kd_core.export import to_csv, to_json

    with st.container(horizontal=True):
        st.download_button("Table (CSV)", to_csv(rows), file_name=f"kd-lab-{name}.csv", mime="text/csv",
                           key=f"dl-{name}-csv", on_click="ignore", icon=":material/download:",
                           help="One row per model and seed, numbers at full precision (accuracies as fractions).")
        st.download_button("Everything (JSON)", to_json(document), file_name=f"kd-lab-{name}.json",
                           mime="application/json", key=f"dl-{name}-json", on_click="ignore",
                           icon=":material/download:", help="The whole result: settings, every number, the curves.")


def noise_verdict(result: dict[str, Any]) -> tuple[str, str]:
    """("success" | "warning" | "info", sentence) on whether distilled beats scratch beyond the seed spread."""
    d, s = result["models"]["distilled"], result["models"]["scratch"]
    diff = 100 * (d["accuracy_mean"] - s["accuracy_mean"])
    seeds = len(d["accuracies"])
    if seeds < 2:
        return "info", (f"Distilled minus scratch: {diff:+.1f} points, from one seed. One seed cannot tell a real "
                        "gain from seed-to-seed noise: run 3 or more seeds on the Distill page.")
    spread = 100 * max(d["accuracy_std"], s["accuracy_std"])
    if abs(diff) <= spread:
        return "warning", (f"Within noise: distilled minus scratch is {diff:+.1f} points, smaller than the "
                           f"spread between seeds ({spread:.1f} points, {seeds} seeds).")
    word = "helped" if diff > 0 else "hurt"
    return ("success" if diff > 0 else "warning"), (
        f"Distillation {word}: distilled minus scratch is {diff:+.1f} points, larger than the spread between "
        f"seeds ({spread:.1f} points, {seeds} seeds).")


def show_verdict(result: dict[str, Any]) -> None:
    """Write noise_verdict(result) in its colour."""
    kind, text = noise_verdict(result)
    getattr(st, kind)(text)


def config_summary(cfg: dict[str, Any] | RunConfig) -> str:
    """One line naming the settings of a run."""
    c = cfg.as_dict() if isinstance(cfg, RunConfig) else cfg
    limit = c["student_train_limit"]
    return (f"{c['dataset']}, teacher {c['teacher']} ({c['teacher_epochs']} epochs), students {c['student']} "
            f"({c['student_epochs']} epochs on {'all' if limit is None else limit} labelled images), "
            f"T = {c['temperature']:g}, alpha = {c['alpha']:g}{'' if c['t_squared'] else ' (no T²)'}, "
            f"{c['seeds']} seed(s)")


def run_button_label(cfg: RunConfig) -> str:
    """The main action's label, naming what will train."""
    return f"Run teacher → distilled → scratch ({cfg.seeds} seed{'s' if cfg.seeds > 1 else ''})"


def experiment_section(cfg: RunConfig, dataset, draw: Callable[[Any], None], button_label: str,
                       button_key: str) -> dict[str, Any] | None:
    """The shared flow of Home and Distill: the cached result, or live progress of its job, or a run button."""
    key = experiment_key(cfg, dataset)
    job = find_job(key)
    if job is not None and job.status == "done" and job.result is not None:
        return job.result  # trained by this server: not "from the cache", even though it is stored there too
    result = cached_result(cfg, dataset)
    if result is not None:
        return result
    if job is not None and not job.finished:
        st.caption(f"Training in the background: {job.label}. Switching pages or moving sliders does not stop it.")
        job_progress(key, draw)
        return None
    show_job_ending(job)
    other = find_job(st.session_state.get("last_job", ""))
    if other is not None and not other.finished and other.key != key:
        st.info(f"A run you started with other settings is still going ({other.label}).")
        job_progress(other.key, draw)
    if st.button(button_label, type="primary", key=button_key):
        submit_experiment(cfg, dataset)
        st.rerun()
    return None


def _result_models(result: dict[str, Any]) -> dict[str, Any] | None:
    """The three trained models of a result (teacher from its cache, seed-0 students), or None when missing."""
    from kd_core import store
    from kd_core.data import load_dataset
    from kd_core.experiment import cached_teacher, student_checkpoint_path
    from kd_core.models import create_model

    cfg = RunConfig(**result["config"])
    try:
        teacher = cached_teacher(cfg, load_dataset(cfg.dataset))
    except DatasetError:
        return None
    if teacher is None:
        return None
    models = {"teacher": teacher[0]}
    for role in ("distilled", "scratch"):
        loaded = store.load_checkpoint(student_checkpoint_path(result, role))
        if loaded is None:
            return None
        model = create_model(loaded[0])
        model.load_state_dict(loaded[1])
        models[role] = model.eval()
    return models


@st.cache_data(show_spinner="Measuring CPU latency...", max_entries=8)
def measure_latency(result_key: str, _result: dict[str, Any]) -> dict[str, dict[str, float]] | None:
    """Per-image CPU latency (kd_core.evaluate.latency) and weight size of each model of a result."""
    from kd_core.evaluate import latency
    from kd_core.models import size_bytes

    models = _result_models(_result)
    if models is None:
        return None
    return {role: {**latency(model), "size_bytes": size_bytes(model)} for role, model in models.items()}


def efficiency_rows(result: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Rows of the efficiency table: accuracy, parameters, size, CPU latency, FLOPs; None if models are gone."""
    measured = measure_latency(result["key"], result)
    if measured is None:
        return None
    rows = []
    for role in ("teacher", "distilled", "scratch"):
        m, lat = result["models"][role], measured[role]
        rows.append({"model": ROLE_TITLES[role],
                     "architecture": result["config"]["teacher" if role == "teacher" else "student"],
                     "accuracy (%)": round(100 * m["accuracy_mean"], 1),
                     "parameters": m["params"],
                     "size (KB)": round(lat["size_bytes"] / 1024, 1),
                     "CPU latency (ms/image)": round(lat["median_ms"], 3),
                     "MFLOPs/image": round(m["flops"] / 1e6, 2)})
    return rows


# ----------------------------------------------------------------------------------------------------
# The Experiments page: kd_core.lab experiments as shared background jobs, found in the lab's cache first

LAB_FUNCTIONS = {"data-budget": "data_budget", "omitted-class": "omitted_class", "sweep": "sweep",
                 "t-squared": "t_squared"}
LAB_TINY_PARAMS = {"data-budget": {"budgets": (20, 100)}, "omitted-class": {},
                   "sweep": {"temperatures": (2.0, 8.0), "alphas": (0.5, 0.9)}, "t-squared": {"temperatures": (2.0, 16.0)}}
_LAB_RUNTIME_ARGS = ("on_event", "should_stop", "use_cache", "dataset")


def lab_setup(name: str, **params: Any) -> tuple[RunConfig, dict[str, Any]]:
    """(config, parameters) the Experiments page runs lab experiment `name` with.

    The lab's default config (shrunk when tiny(), with tiny budgets / a 2×2 grid / 2 temperatures) on the
    sidebar's dataset; every parameter of the lab function is filled in from its defaults, then `params`.
    """
    import inspect

    from kd_core import lab

    cfg = lab.default_config(name)
    if tiny():
        cfg = cfg.replace(**TINY_CHANGES, seeds=min(cfg.seeds, 2))
        params = {**LAB_TINY_PARAMS[name], **params}
    init_state()
    cfg = cfg.replace(dataset=st.session_state.get("dataset", cfg.dataset))
    signature = inspect.signature(getattr(lab, LAB_FUNCTIONS[name]))
    defaults = {p.name: p.default for p in signature.parameters.values()
                if p.default is not inspect.Parameter.empty and p.name not in _LAB_RUNTIME_ARGS}
    return cfg, {**defaults, **params}


def lab_key(name: str, cfg: RunConfig, dataset, params: dict[str, Any]) -> str:
    """The key the lab caches experiment `name`'s result under (the sweep, cached per cell, gets a job key)."""
    from kd_core import lab, store

    cfg = cfg.validated()
    if name == "data-budget":
        key_params = {"counts": lab.resolve_budgets(params["budgets"], len(dataset.train_y)),
                      "equal_steps": params["equal_steps"]}
    elif name == "omitted-class":
        key_params = {"label": params["label"], "heldout_fraction": params["heldout_fraction"],
                      "bias_grid": [float(b) for b in params["bias_grid"]]}
    elif name == "t-squared":
        key_params = {"temperatures": sorted({float(t) for t in params["temperatures"]}),
                      "grad_batches": params["grad_batches"]}
    elif name == "sweep":
        return store.config_key({"experiment": "sweep", "lab": lab.LAB_VERSION, "config": cfg.as_dict(),
                                 "temperatures": [float(t) for t in params["temperatures"]],
                                 "alphas": [float(a) for a in params["alphas"]], "data": dataset.fingerprint})
    else:
        raise ValueError(f"unknown experiment {name!r}; choose from {list(LAB_FUNCTIONS)}")
    return lab._key(name, cfg, dataset, key_params)


def lab_cached(name: str, cfg: RunConfig, dataset, params: dict[str, Any]) -> dict[str, Any] | None:
    """The stored result of lab experiment `name` for exactly these settings, or None; never trains.

    The sweep has no whole-result file: it counts as stored when every cell is, and is then assembled
    from the cells (no training).
    """
    from kd_core import lab, store

    if name != "sweep":
        return lab._cached(name, lab_key(name, cfg, dataset, params))
    cfg = cfg.validated()
    plan = [("scratch", cfg)] + [("distilled", cfg.replace(temperature=float(t), alpha=float(a)))
                                 for t in params["temperatures"] for a in params["alphas"]]
    for role, c in plan:
        for seed in range(cfg.seeds):
            found = store.load_json(lab._cell_path(c, dataset, role, seed))
            if found is None or not isinstance(found.get("accuracy"), float):
                return None
    return lab.sweep(cfg, dataset=dataset, **params)


def submit_lab(name: str, cfg: RunConfig, dataset, params: dict[str, Any], label: str = ""):
    """Start (or join) lab experiment `name` in the background; equal settings on equal data share one job."""
    from kd_core import lab

    fn = getattr(lab, LAB_FUNCTIONS[name])

    def work(report: Callable[[Any], None], should_stop: Callable[[], bool]) -> dict[str, Any]:
        return fn(cfg, **params, on_event=report, should_stop=should_stop, dataset=dataset)

    key = f"lab-{name}-{lab_key(name, cfg, dataset, params)}"
    return get_runner().submit(key, work, label=label or name)


def job_section(key: str, cached: Callable[[], dict[str, Any] | None], submit: Callable[[], Any],
                draw: Callable[[Any], None] | None, button_label: str, button_key: str) -> dict[str, Any] | None:
    """Any background job's flow on a page: its stored result, or its live progress, or a button that starts it."""
    job = find_job(key)
    if job is not None and job.status == "done" and job.result is not None:
        return job.result  # run by this server: says how long it took, not "from the cache"
    result = cached()
    if result is not None:
        return result
    if job is not None and not job.finished:
        st.caption(f"Running in the background: {job.label}. Switching tabs or pages does not stop it; "
                   "anyone else who opens this experiment sees the same run.")
        job_progress(key, draw)
        return None
    show_job_ending(job)
    if st.button(button_label, type="primary", key=button_key):
        submit()
        st.rerun()
    return None


def lab_section(name: str, cfg: RunConfig, dataset, params: dict[str, Any], draw: Callable[[Any], None] | None,
                button_label: str, button_key: str, label: str = "") -> dict[str, Any] | None:
    """job_section for lab experiment `name`: the cached result, live progress with partial results, or a button."""
    key = f"lab-{name}-{lab_key(name, cfg, dataset, params)}"
    return job_section(key, lambda: lab_cached(name, cfg, dataset, params),
                       lambda: submit_lab(name, cfg, dataset, params, label), draw, button_label, button_key)


def lab_parts(job) -> list[dict[str, Any]]:
    """The finished parts (budget rows, seeds, sweep cells, temperatures) a running lab job has reported so far."""
    return [e.partial for e in list(job.events) if getattr(e, "phase", "") == "part" and e.partial is not None]
