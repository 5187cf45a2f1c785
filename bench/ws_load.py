"""Protocol-level load: N sessions speak Streamlit's websocket protocol to one server; one Chromium measures. JSON.

Run `.venv/bin/python bench/ws_load.py [--sessions 100] [--duration 120] [--out PATH]`. The server starts exactly as
`make run` starts it (tests/appserver.py: the shipped .streamlit/config.toml; a free port, a fresh temporary
KD_LAB_CACHE_DIR so every run is really computed, KD_LAB_TINY=1 unless --full). The sessions are not browsers: each is one
websocket to /_stcore/stream (subprotocol "streamlit") in one asyncio loop, speaking what Streamlit's frontend
speaks, so the server does all the work a browser would cause and the client almost none:

- the client sends BackMsg.rerun_script (a ClientState: query_string, page_script_hash, page_name, widget_states,
  context_info.url); the server answers with ForwardMsgs: new_session (a run starts; metadata.run.fragment_ids is
  empty for a full run), navigation (st.navigation's pages: name, page_script_hash, url_pathname), page_info_changed
  (the query string the app set), delta (elements: a widget's id is "$$ID-<hash>-<key>"), auto_rerun /
  stop_auto_rerun (a fragment with run_every: the client must rerun it itself, with fragment_id and
  is_auto_rerun, every interval, until a full run starts or the server says stop), script_finished (0: a full run
  ended, 2: stopped early for a rerun, 3: a fragment run ended);
- a page is opened by its page_script_hash; a slider moves by sending its id with double_array_value; a button is
  pressed by sending its id with trigger_value once (widgets not sent keep their values on the server);
- an error is an exception element, an st.error alert, a compile error, page_not_found, a lost connection, or a
  full run that does not finish within --rerun-timeout.

Each session opens Home, then walks --walk (Temperature: T up and back; Distill: T up and back) with a think time
between actions, until --duration ends. Every tenth session (--runners) is a student who starts a run: it goes to
Distill first, sets its own T (so each runner's run is its own job), presses the run button and stays there (auto
reruns drawing the progress) until the result shows; a result never shown by the end is a lost result. Before the
sessions arrive, one session runs the demo on Home (the teacher's demo before the class joins: Temperature's T
slider needs a trained teacher). Meanwhile one real Chromium session (Playwright, its own thread) sits on the
Temperature page and measures interaction latency: ArrowRight/ArrowLeft on the T slider -> the rerun it causes has
finished (the page's script state left notRunning and came back to it); a press after which neither a rerun came
nor the slider's value changed within 10 s never reached the slider and is counted as "presses_lost", not timed.
Samples taken while a runner waits for its run are "while jobs train". The server's memory and cores are sampled
from /proc (bench/load.py's Sampler), its CPU seconds read at the end; the machine's load average is printed with them.
Exit status 0 when every session was served, with no errors, no lost results and no Chromium interaction timed out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load import Sampler, emit, job_lines, spread  # noqa: E402  (one /proc sampler for both load benchmarks)
from tests.appserver import cpu_seconds, free_port, start_app, wait_healthy  # noqa: E402
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (one set of flags)

WALK = ["Temperature", "Distill", "Compare", "Data", "Teacher", "Run history", "Home"]
DEFAULT_T, T_STEP = 8.0, 0.5           # the classroom preset's T and its slider's step
FULL_RUN_DONE, COMPILE_ERROR = 0, 1    # ForwardMsg.ScriptFinishedStatus values
MAX_T = 20.0                           # the T slider's top: runner i runs T = DEFAULT_T + T_STEP * (i + 1)
ERROR_ALERT = 1                        # Alert.Format.ERROR
SOFTMAX = "Teacher's probabilities"    # the Temperature page's chart (there once the teacher is trained)
SAMPLE_TIMEOUT_S = 120                 # one Chromium interaction longer than this is counted as timed out
LOST_PRESS_S = 10                      # no rerun this long after a key press and the slider's value unchanged: the
                                       # press never reached the slider (counted apart, not a latency sample)
# Installed before each key press: window.kdRun.done turns true once the script state has left notRunning (the rerun
# the press asked for) and come back to it (that rerun finished), however short the run was.
WATCH_RUN = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (window.kdRun) window.kdRun.observer.disconnect();
  const run = {ran: false, done: false};
  run.observer = new MutationObserver(() => {
    const running = app.getAttribute('data-test-script-state') !== 'notRunning';
    if (running) run.ran = true; else if (run.ran) run.done = true;
  });
  run.observer.observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  window.kdRun = run;
}"""


def widget_key(widget_id: str) -> str:
    """The user key of a widget id "$$ID-<hash>-<key>" (the id itself for a widget without a key)."""
    return widget_id.split("-", 2)[2] if widget_id.startswith("$$ID-") and widget_id.count("-") >= 2 else widget_id


@dataclass
class Stats:
    """What one protocol session did and saw."""

    id: int
    runner: bool
    connected: bool = False
    full_runs: int = 0                  # script_finished with FINISHED_SUCCESSFULLY
    script_finished: int = 0            # every script_finished (full, early for rerun, fragment)
    rerun_s: list[float] = field(default_factory=list)   # rerun_script sent -> the full run finished
    clicked_run: bool = False
    result_seen: bool = False
    errors: list[str] = field(default_factory=list)


class ProtocolSession:
    """One browser-less session: a websocket, the frontend's bookkeeping, and the actions of a visitor."""

    def __init__(self, stats: Stats, url: str, rerun_timeout: float) -> None:
        self.stats, self.url, self.rerun_timeout = stats, url, rerun_timeout
        self.ws: Any = None
        self.reader: asyncio.Task | None = None
        self.query_string = ""
        self.page_hash, self.page_path = "", ""
        self.pages: dict[str, tuple[str, str]] = {}   # page title -> (page_script_hash, url_pathname)
        self.widgets: dict[str, str] = {}            # key -> widget id, in the current full run
        self.sliders: dict[str, float] = {}          # key -> value, in the current full run
        self.values: dict[str, float] = {}           # widget id -> the value this visitor set
        self.auto: dict[str, asyncio.Task] = {}      # fragment id -> its auto-rerun loop
        self.done = asyncio.Condition()
        self.closing = False

    async def open(self) -> None:
        """Connect to /_stcore/stream and start reading."""
        from websockets.asyncio.client import connect

        self.ws = await connect(self.url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                                max_size=None, open_timeout=120, ping_interval=None)
        self.stats.connected = True
        self.reader = asyncio.create_task(self.read())

    async def close(self) -> None:
        """Stop the auto reruns and close the websocket."""
        self.closing = True
        for task in self.auto.values():
            task.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await self.reader

    def error(self, what: str) -> None:
        """Record an error this session saw."""
        self.stats.errors.append(what[:300])

    async def send_rerun(self, triggers: tuple[str, ...] = (), fragment_id: str = "") -> None:
        """A rerun_script BackMsg for the current page: the values this visitor set, `triggers` pressed once."""
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        state = msg.rerun_script
        state.query_string, state.page_script_hash, state.page_name = self.query_string, self.page_hash, self.page_path
        state.context_info.url = f"{self.url}/{self.page_path}" + (f"?{self.query_string}" if self.query_string else "")
        for widget_id, value in self.values.items():
            if widget_id in self.widgets.values():
                widget = state.widget_states.widgets.add()
                widget.id = widget_id
                widget.double_array_value.data.append(value)
        for widget_id in triggers:
            widget = state.widget_states.widgets.add()
            widget.id, widget.trigger_value = widget_id, True
        if fragment_id:
            state.fragment_id, state.is_auto_rerun = fragment_id, True
        await self.ws.send(msg.SerializeToString())

    async def rerun(self, triggers: tuple[str, ...] = ()) -> bool:
        """Send a rerun and wait until a full run has finished after it; False (an error) past the timeout."""
        async with self.done:
            before = self.stats.full_runs
        start = time.monotonic()
        await self.send_rerun(triggers)
        try:
            async with self.done:
                await asyncio.wait_for(self.done.wait_for(lambda: self.stats.full_runs > before), self.rerun_timeout)
        except asyncio.TimeoutError:
            self.error(f"no finished run within {self.rerun_timeout:.0f} s of a rerun on {self.page_path or 'Home'}")
            return False
        self.stats.rerun_s.append(time.monotonic() - start)
        return True

    async def open_page(self, title: str) -> bool:
        """Switch to the page `title` (by its page_script_hash, as the sidebar link does)."""
        self.page_hash, self.page_path = self.pages[title]
        return await self.rerun()

    async def set_slider(self, key: str, value: float) -> bool:
        """Move the slider with user key `key` to `value`; False if the page has no such slider."""
        if key not in self.widgets:
            self.error(f"no slider {key!r} on {self.page_path or 'Home'}")
            return False
        self.values[self.widgets[key]] = value
        return await self.rerun()

    async def press(self, key: str) -> bool:
        """Press the button with user key `key`; False if the page has no such button."""
        if key not in self.widgets:
            self.error(f"no button {key!r} on {self.page_path or 'Home'}")
            return False
        return await self.rerun((self.widgets[key],))

    async def shows(self, key: str, timeout: float) -> bool:
        """Stay on the page (auto reruns drawing any progress) until a full run shows widget `key`, or `timeout`."""
        deadline = time.monotonic() + timeout
        while key not in self.widgets and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        return key in self.widgets

    async def auto_rerun(self, fragment_id: str, interval: float) -> None:
        """Rerun the fragment `fragment_id` every `interval` seconds, as the frontend's timer does."""
        from websockets.exceptions import ConnectionClosed

        while True:
            await asyncio.sleep(interval)
            try:
                await self.send_rerun(fragment_id=fragment_id)
            except ConnectionClosed:
                return  # the reader records a lost connection

    async def read(self) -> None:
        """Read ForwardMsgs until the socket closes: keep the frontend's state, count runs, record errors."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        from websockets.exceptions import ConnectionClosed

        try:
            async for data in self.ws:
                msg = ForwardMsg()
                msg.ParseFromString(data)
                await self.handle(msg)
        except ConnectionClosed as exc:
            if not self.closing:
                self.error(f"connection lost: {exc}")

    async def handle(self, msg: Any) -> None:
        """One ForwardMsg."""
        kind = msg.WhichOneof("type")
        if kind == "new_session" and not msg.metadata.run.fragment_ids:   # a full run starts: a fresh page
            self.widgets, self.sliders = {}, {}
            for task in self.auto.values():
                task.cancel()
            self.auto = {}
        elif kind == "navigation":
            self.pages = {p.page_name: (p.page_script_hash, p.url_pathname) for p in msg.navigation.app_pages}
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "auto_rerun" and msg.auto_rerun.fragment_id not in self.auto:
            self.auto[msg.auto_rerun.fragment_id] = asyncio.create_task(
                self.auto_rerun(msg.auto_rerun.fragment_id, msg.auto_rerun.interval))
        elif kind == "stop_auto_rerun":
            for fragment_id in msg.stop_auto_rerun.fragment_ids:
                if (task := self.auto.pop(fragment_id, None)) is not None:
                    task.cancel()
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            self.element(msg.delta.new_element)
        elif kind == "script_finished":
            self.stats.script_finished += 1
            if msg.script_finished == COMPILE_ERROR:
                self.error("the script did not compile")
            if msg.script_finished == FULL_RUN_DONE:
                async with self.done:
                    self.stats.full_runs += 1
                    self.done.notify_all()
        elif kind == "session_event" and msg.session_event.HasField("script_compilation_exception"):
            self.error(f"compile error: {msg.session_event.script_compilation_exception.message}")
        elif kind == "page_not_found":
            self.error(f"page not found: {msg.page_not_found.page_name}")
        elif kind == "ref_hash":
            self.error("a cached-message reference, though this client announced no cached messages")

    def element(self, element: Any) -> None:
        """A new element: remember widgets by key; an exception or an st.error is an error."""
        kind = element.WhichOneof("type")
        if kind in ("slider", "button", "checkbox"):
            widget = getattr(element, kind)
            self.widgets[widget_key(widget.id)] = widget.id
            if kind == "slider":
                self.sliders[widget_key(widget.id)] = (widget.value if widget.set_value else widget.default)[0]
        elif kind == "exception":
            self.error(f"{self.page_path or 'Home'}: exception {element.exception.type}: {element.exception.message}")
        elif kind == "alert" and element.alert.format == ERROR_ALERT:
            self.error(f"{self.page_path or 'Home'}: error alert: {element.alert.body}")


async def visit(s: ProtocolSession, runner_index: int, walk: list[str], until: float, think: tuple[float, float],
                result_timeout: float) -> None:
    """One visitor: Home, then the walk (and, for a runner, one run of its own on Distill) until `until`."""
    pause = random.Random(s.stats.id)
    try:
        await s.open()
        if not await s.rerun():
            return
        step = walk.index("Distill") if s.stats.runner and "Distill" in walk else 0   # a runner goes to run first
        while time.monotonic() < until:
            await asyncio.sleep(pause.uniform(*think))
            title = walk[step % len(walk)]
            step += 1
            if not await s.open_page(title):
                return
            if title in ("Temperature", "Distill") and not (s.stats.runner and title == "Distill"):
                t = s.sliders.get("w_temperature", DEFAULT_T)
                for value in (t + T_STEP, t):
                    await asyncio.sleep(pause.uniform(*think) / 2)
                    if not await s.set_slider("w_temperature", value):
                        return
            elif title == "Distill" and not s.stats.clicked_run:
                if not (await s.set_slider("w_temperature", DEFAULT_T + T_STEP * (1 + runner_index))
                        and await s.press("distill-run")):
                    return
                s.stats.clicked_run = True
                s.stats.result_seen = await s.shows("distill-again", result_timeout)  # the result's own button
    except Exception as exc:  # noqa: BLE001  (any failure is this session's error, never the whole run's)
        s.error(f"{type(exc).__name__}: {exc}")
    finally:
        await s.close()


def measure_chromium(url: str, ready: threading.Event, stop: threading.Event, training: Any,
                     out: dict[str, Any]) -> None:
    """In its own thread: one Chromium on Temperature; T up/down -> its rerun finished; samples into `out`.

    `ready` is set once the page is there to measure (or measuring failed). An interaction that takes over
    SAMPLE_TIMEOUT_S is counted in out["timeouts"] and the next one goes on.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    samples, errors = out.setdefault("samples", []), out.setdefault("errors", [])
    out["timeouts"] = out["presses_lost"] = 0
    idle = '[data-testid="stApp"][data-test-script-state="notRunning"]'
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1400})
                page.set_default_timeout(180_000)
                page.goto(url)
                page.locator('[data-testid="stSidebarNavLink"]', has_text="Temperature").first.click()
                page.locator(".js-plotly-plot", has_text=SOFTMAX).first.wait_for()
                page.wait_for_selector(idle)
                thumb = page.get_by_role("slider", name="Temperature T")
                thumb.wait_for()
                ready.set()
                up, began = True, time.monotonic()
                while not stop.is_set():
                    busy = training()
                    page.evaluate(WATCH_RUN)
                    before = thumb.get_attribute("aria-valuenow")
                    start = time.monotonic()
                    thumb.press("ArrowRight" if up else "ArrowLeft")
                    try:
                        try:
                            page.wait_for_function("() => window.kdRun.done", timeout=LOST_PRESS_S * 1000)
                        except PlaywrightTimeout:
                            if thumb.get_attribute("aria-valuenow") == before:  # the key never reached the slider
                                out["presses_lost"] += 1
                                continue
                            page.wait_for_function("() => window.kdRun.done",
                                                   timeout=(SAMPLE_TIMEOUT_S - LOST_PRESS_S) * 1000)
                        samples.append({"s": time.monotonic() - start, "training": busy and training(),
                                        "at": start - began})
                    except PlaywrightTimeout:
                        out["timeouts"] += 1
                    up = not up
                    stop.wait(1.0)
            finally:
                browser.close()
    except Exception as exc:  # noqa: BLE001  (reported in the JSON, never a crash of the whole benchmark)
        errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
    finally:
        ready.set()


async def warm_up(url: str, args: argparse.Namespace) -> Stats:
    """Before the class: one session runs the demo on Home, so the teacher exists (Temperature's T slider needs it)."""
    s = ProtocolSession(Stats(-1, runner=True), url, args.rerun_timeout)
    try:
        await s.open()
        if await s.rerun() and await s.press("home-run"):
            s.stats.clicked_run = True
            s.stats.result_seen = await s.shows("home-again", args.result_timeout)
    finally:
        await s.close()
    return s.stats


async def drive(url: str, args: argparse.Namespace, stats: list[Stats]) -> None:
    """Every protocol session of `stats` in this loop until the duration ends (and runners see their results)."""
    until = time.monotonic() + args.duration
    runners = [s.id for s in stats if s.runner]
    await asyncio.gather(*(_after(s.id * args.ramp / len(stats), visit(
        ProtocolSession(s, url, args.rerun_timeout), runners.index(s.id) if s.runner else -1, args.walk, until,
        (args.think_min, args.think_max), args.result_timeout)) for s in stats))


async def _after(delay: float, work: Any) -> None:
    """Start `work` after `delay` seconds (the sessions arrive over the ramp, not all in one instant)."""
    await asyncio.sleep(delay)
    await work


def report(args: argparse.Namespace, stats: list[Stats], chromium: dict[str, Any], sampler: Sampler, log_text: str,
           extra: dict[str, Any]) -> dict[str, Any]:
    """The JSON report; `passed` when every session was served with no error and no lost result."""
    errors = [f"session {s.id}: {e}" for s in stats for e in s.errors]
    samples = chromium.get("samples", [])
    training = [x["s"] for x in samples if x["training"]]
    out = {
        "mode": "protocol level: websocket sessions speaking Streamlit's BackMsg/ForwardMsg protobufs, "
                "plus one real Chromium session (Playwright) measuring interaction latency",
        "sessions": len(stats),
        "sessions_served": sum(s.full_runs > 0 for s in stats),
        "sessions_with_script_finished": sum(s.script_finished > 0 for s in stats),
        "full_runs": sum(s.full_runs for s in stats),
        "script_finished": sum(s.script_finished for s in stats),
        "protocol_rerun_s": spread([t for s in stats for t in s.rerun_s]),
        "errors": len(errors) + len(chromium.get("errors", [])),
        "error_samples": (errors + [f"chromium: {e}" for e in chromium.get("errors", [])])[:20],
        "runs_started": sum(s.clicked_run for s in stats),
        "results_seen": sum(s.result_seen for s in stats),
        "lost_results": sum(s.clicked_run and not s.result_seen for s in stats),
        "chromium_latency_s": {"while_jobs_train": {**spread(training), "samples": len(training)},
                               "all": {**spread([x["s"] for x in samples]), "samples": len(samples)},
                               f"over_{SAMPLE_TIMEOUT_S}_s": chromium.get("timeouts", 0),
                               "presses_lost": chromium.get("presses_lost", 0),
                               "slowest": [{k: round(v, 2) if isinstance(v, float) else v for k, v in x.items()}
                                           for x in sorted(samples, key=lambda x: -x["s"])[:5]]},
        "jobs": {k: v for k, v in job_lines(log_text).items() if k != "seconds"},
        "server": {"peak_rss_mb": round(max(sampler.rss_mb, default=0.0), 1),
                   "rss_mb_last_sample": round(sampler.rss_mb[-1], 1) if sampler.rss_mb else None,
                   "cores_used": spread(sampler.cores_used), "threads_max": max(sampler.threads, default=None),
                   "tracebacks_in_log": log_text.count("Traceback (most recent call last)"), **extra.pop("server")},
        "cores": len(os.sched_getaffinity(0)),
        **extra,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "server_log")},
    }
    warm = extra.get("warm_up", {})
    out["passed"] = (out["sessions_served"] == len(stats) and out["errors"] == 0 and out["lost_results"] == 0
                     and warm.get("result_seen", False) and not warm.get("errors")
                     and (args.no_chromium or (bool(samples) and not chromium.get("timeouts"))))
    return out


def main() -> int:
    """Start the server, hold the sessions, stop it, print the report; 0 when the bar is met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--runners", type=int, help="sessions that start a run of their own (default: a tenth)")
    parser.add_argument("--duration", type=float, default=120, help="seconds the sessions walk the pages")
    parser.add_argument("--ramp", type=float, default=20, help="seconds over which the sessions arrive")
    parser.add_argument("--think-min", type=float, default=3.0, help="shortest pause between actions (s)")
    parser.add_argument("--think-max", type=float, default=10.0, help="longest pause between actions (s)")
    parser.add_argument("--walk", type=lambda t: [p.strip() for p in t.split(",") if p.strip()], default=WALK,
                        help=f"pages each session visits in turn (default: {','.join(WALK)})")
    parser.add_argument("--rerun-timeout", type=float, default=180, help="seconds a full run may take")
    parser.add_argument("--result-timeout", type=float, default=600, help="seconds a runner waits for its result")
    parser.add_argument("--no-chromium", action="store_true", help="no Chromium session (protocol sessions only)")
    parser.add_argument("--full", action="store_true",
                        help="the real classroom preset instead of KD_LAB_TINY=1: runs train for seconds, not a moment")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument("--server-log", type=Path, help="copy the server's log here")
    args = parser.parse_args()
    args.runners = args.sessions // 10 if args.runners is None else min(args.runners, args.sessions)
    if DEFAULT_T + T_STEP * args.runners > MAX_T:
        parser.error(f"at most {int((MAX_T - DEFAULT_T) / T_STEP)} runners: each runs its own T, up to T = {MAX_T:g}")
    if not args.no_chromium and not Path(CHROMIUM).exists():
        parser.error(f"Chromium is missing at {CHROMIUM} (or pass --no-chromium)")

    wall = time.monotonic()
    extra: dict[str, Any] = {"load_average_before": list(os.getloadavg()), "server": {}}
    chromium: dict[str, Any] = {}
    every = args.sessions // args.runners if args.runners else 0       # runners spread evenly over the sessions
    stats = [Stats(i, bool(every) and i % every == 0 and i // every < args.runners) for i in range(args.sessions)]
    with tempfile.TemporaryDirectory(prefix="kd-lab-ws-load-") as tmp:
        port, log_path = free_port(), Path(tmp) / "server.log"
        with open(log_path, "w") as log:
            env = {"KD_LAB_CACHE_DIR": str(Path(tmp) / "cache"), "KD_LAB_TINY": "0" if args.full else "1"}
            proc = start_app(port, env, log)
        sampler = Sampler(proc.pid)
        ready, stop = threading.Event(), threading.Event()
        try:
            url = f"http://127.0.0.1:{port}"
            extra["server_start_s"] = round(wait_healthy(url, proc, 120), 2)
            sampler.start()
            started = time.monotonic()
            warm = asyncio.run(warm_up(url, args))
            extra["warm_up"] = {"s": round(time.monotonic() - started, 1), "result_seen": warm.result_seen,
                                "errors": warm.errors}
            measurer = threading.Thread(target=measure_chromium, daemon=True, args=(
                url, ready, stop, lambda: any(s.clicked_run and not s.result_seen for s in stats), chromium))
            if not args.no_chromium:  # the sessions arrive once Chromium measures: it sees all of their load
                measurer.start()
                ready.wait()
            asyncio.run(drive(url, args, stats))
            stop.set()
            if not args.no_chromium:
                measurer.join(180)
            extra["server"]["cpu_seconds"] = round(cpu_seconds(proc.pid), 1)
        finally:
            stop.set()
            sampler.stop()
            sampler.join(5)
            proc.kill()
            proc.wait(30)
        log_text = log_path.read_text(errors="replace")
        if args.server_log:
            args.server_log.write_text(log_text)
    extra["load_average_after"] = list(os.getloadavg())
    extra["wall_s"] = round(time.monotonic() - wall, 1)
    return emit(report(args, stats, chromium, sampler, log_text, extra), args.out)


if __name__ == "__main__":
    sys.exit(main())
