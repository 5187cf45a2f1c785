"""Settings in session state: presets, tiny mode, the shareable link, the page widgets and the config they make."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

import streamlit as st

from kd_core import url_settings
from kd_core.config import RunConfig, native_bf16, preset, resolved_precision
from kd_core.roles import ARCHITECTURE_NAMES

TINY_ENV = "KD_LAB_TINY"  # set to 1 (tests, quick demos): every run shrinks to a few seconds

TINY_CHANGES = {"teacher_train_limit": 300, "student_train_limit": 100, "teacher_epochs": 1,
                "student_epochs": 2, "batch_size": 50}

SETTINGS = ("temperature", "alpha", "student_epochs", "seeds", "t_squared")  # widgets on the pages

PRESET_LABELS = {
    "classroom": "Classroom demo: fast; the students see only 400 labelled images",
    "keras": "Keras example: its alpha=0.1 = our alpha 0.9 (T=10, 10 epochs, every image: slow on CPU)",
}


# bench/precision.py, the project's 2-core AMD EPYC (Zen 4) with AVX-512 BF16, 2026-12-02
PRECISION_HELP = ("How training and inference compute. bf16 (bfloat16 autocast: float32 weights and updates, bf16 "
                  "matrix products) is fast only on CPUs with native bf16 (AVX-512 BF16 or AMX): auto picks it there, "
                  "fp32 elsewhere. Measured with bench/precision.py on a 2-core AMD EPYC with AVX-512 BF16, 3 teacher "
                  "seeds × 3 student seeds, bf16 vs fp32: classroom teacher 97.2 vs 96.4 % (seed spread 1.9), Keras "
                  "teacher on 6,000 Fashion-MNIST images 81.5 vs 81.6 % (spread 1.7), students within 0.1 point: "
                  "equal within seed noise. The Keras teacher trains 1.7× faster in bf16, the classroom teacher "
                  "1.4×; the small students gain nothing (0.9-1.1×). Each precision keeps its own cached results.")


def precision_label(precision: str) -> str:
    """The sidebar's words for a precision choice, saying what "auto" means on this CPU."""
    if precision == "auto":
        return f"auto ({resolved_precision('auto')} on this CPU)"
    if precision == "bf16":
        return "bf16" + ("" if native_bf16() else " (no native bf16 here: emulated, slow)")
    return "fp32"


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
    state["precision"] = "auto"
    reset_settings()
    state["settings"].update(from_link["settings"])


def sync_link() -> None:
    """Write the current settings into the page's URL (so the address bar is a shareable link to this experiment)."""
    state = st.session_state
    st.query_params.from_dict(url_settings.encode(state["dataset"], state["preset"], state["settings"]))


LOOPBACK = {"localhost", "127.0.0.1", "::1"}  # host names that mean "this computer" to whichever computer reads them


def lan_address() -> str | None:
    """This computer's IPv4 address on its network (the interface traffic would leave by), or None offline."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:  # connecting a UDP socket sends nothing: it only chooses the outgoing interface (192.0.2.1: TEST-NET-1)
            probe.connect(("192.0.2.1", 9))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def reachable(url: str, address: str | None) -> str:
    """`url` with a host that means "this computer" (127.0.0.1, localhost) replaced by `address` (a network
    address of the same computer), so that other computers can open it; other URLs, or no address: unchanged."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK or not address:
        return url
    return parts._replace(netloc=address + (f":{parts.port}" if parts.port else "")).geturl()


def share_link() -> str:
    """The full link to this app with the current settings, for other computers to open: the address bar's,
    written out for copying, with the server's network address where the teacher browses on the server itself."""
    from urllib.parse import urlencode, urlsplit

    state = st.session_state
    base = urlsplit(reachable(st.context.url or "http://localhost:8501/", lan_address()))
    query = urlencode(url_settings.encode(state["dataset"], state["preset"], state["settings"]))
    return f"{base.scheme}://{base.netloc}{base.path}?{query}"


def share_note() -> str:
    """What the share popover must say about who can open share_link(), in markdown ("" when the link is the
    address bar's and the server listens on the network)."""
    from urllib.parse import urlsplit

    listening = str(st.get_option("server.address") or "")
    if listening in LOOPBACK:
        return (f"**Only this computer can open the app now**: the server listens on `{listening}`. To let a class "
                "open this link, stop it and start it again with `make run ADDRESS=0.0.0.0` (or `streamlit run "
                "app.py --server.address 0.0.0.0`): anyone on this network can then use it.")
    if urlsplit(st.context.url or "").hostname not in LOOPBACK:
        return ""
    address = lan_address()
    if address is None:
        return ("This computer has no network address now, so other computers cannot reach it: connect it to the "
                "classroom's network, then open this again.")
    return (f"Other computers cannot open 127.0.0.1 or localhost (to them it means themselves), so this link uses "
            f"this computer's network address, {address}.")


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
    return cfg.replace(**_sidebar_choices(cfg), **state.get("settings", {}))


def _sidebar_choices(cfg: RunConfig) -> dict[str, str]:
    """The sidebar's dataset and precision as RunConfig changes (`cfg`'s dataset until one is chosen)."""
    state = st.session_state
    return {"dataset": state.get("dataset", cfg.dataset), "precision": state.get("precision", "auto")}


def config_summary(cfg: dict[str, Any] | RunConfig) -> str:
    """One line naming the settings of a run, for markdown: its names are shown as plain text (a config can come
    from the cache, which is checked against kd_core.schema, but is escaped all the same)."""
    from ui.data import DATASET_LABELS
    from ui.widgets import plain

    c = cfg.as_dict() if isinstance(cfg, RunConfig) else cfg
    names = {"dataset": DATASET_LABELS, "teacher": ARCHITECTURE_NAMES, "student": ARCHITECTURE_NAMES}
    c = {**c, **{name: plain(words.get(c[name], c[name])) for name, words in names.items()}}
    limit = c["student_train_limit"]

    def epochs(n: int) -> str:
        return f"{n} epoch{'s' if n != 1 else ''}"

    return (f"{c['dataset']}, teacher: {c['teacher']} "
            f"({epochs(c['teacher_epochs'])}), students: {c['student']} "
            f"({epochs(c['student_epochs'])} on {'all' if limit is None else f'{limit:,}'} labelled images), "
            f"T = {c['temperature']:g}, alpha = {c['alpha']:g}{'' if c['t_squared'] else ' (no T²)'}, "
            f"{c['seeds']} seed{'s' if c['seeds'] != 1 else ''}" + (f", {c['precision']}" if "precision" in c else ""))


def run_button_label(cfg: RunConfig, dataset: Any, action: str | None = None) -> str:
    """The main action's label, naming what will train (or `action`) and about how long it takes here."""
    action = action or f"Run teacher → distilled → scratch ({cfg.seeds} seed{'s' if cfg.seeds > 1 else ''})"
    return f"{action}, {run_estimate(cfg, dataset)}"


def teacher_estimate(cfg: RunConfig, dataset: Any) -> str:
    """"Training it here takes about N s.": `cfg`'s teacher alone on this machine (kd_core.estimate.teacher_seconds)."""
    from kd_core.estimate import teacher_seconds

    return f"Training it here takes {_measured(teacher_seconds, cfg, dataset)}."


def run_estimate(cfg: RunConfig, dataset: Any) -> str:
    """How long `cfg`'s comparison takes on this machine, in words, from measured throughput (kd_core.estimate)."""
    from kd_core.estimate import estimate_seconds

    return _measured(estimate_seconds, cfg, dataset)


def _measured(seconds: Callable[[RunConfig, Any], float], cfg: RunConfig, dataset: Any) -> str:
    """seconds(cfg, dataset), a kd_core.estimate function of measured throughput, in words ("about 40 s")."""
    from kd_core.estimate import about
    from kd_core.threads import torch_threads
    from ui.lifecycle import get_runner

    with torch_threads(get_runner().threads_per_job):  # measured with the thread count the job will have
        return about(seconds(cfg, dataset))


LAB_TINY_PARAMS = {"data-budget": {"budgets": (20, 100)}, "omitted-class": {},
                   "sweep": {"temperatures": (2.0, 8.0), "alphas": (0.5, 0.9)}, "t-squared": {"temperatures": (2.0, 16.0)}}


def lab_settings(name: str, **params: Any) -> tuple[RunConfig, dict[str, Any]]:
    """(config, parameters) the Experiments page runs lab experiment `name` with.

    The lab's default config (shrunk when tiny(), with tiny budgets / a 2×2 grid / 2 temperatures) on the
    sidebar's dataset; every parameter of the experiment is filled in from its defaults, then `params`.
    """
    from kd_core import lab

    cfg = lab.default_config(name)
    if tiny():
        cfg = cfg.replace(**TINY_CHANGES, seeds=min(cfg.seeds, 2))
        params = {**LAB_TINY_PARAMS[name], **params}
    init_state()
    cfg = cfg.replace(**_sidebar_choices(cfg))
    return cfg, lab.parameters(name, **params)
