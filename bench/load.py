"""Load test: N real Chromium browser contexts drive one `streamlit run` server at the same time. Prints JSON.

Run `.venv/bin/python bench/load.py [--sessions 30] [--full] [--out PATH]`. The script starts its own server on
127.0.0.1 exactly as `make run` does (tests/appserver.py: the same command line and the shipped
.streamlit/config.toml; a free port, a fresh temporary KD_LAB_CACHE_DIR so every result is really computed,
KD_LAB_TINY=1 unless --full), waits for /_stcore/health, then drives the sessions with Playwright's async API in
one headless Chromium (Debian's, the flags of tests/test_browser.py), one isolated browser context per session:

1. open Home; every `--variant-every`-th session first moves T on the Distill page (+0.5 or +1.0), so a few
   distinct configs are requested next to the shared default one;
2. all sessions wait at a barrier until every one shows the run button, then all click "Run the classroom demo"
   at once and wait for the comparison chart (time to result = click -> chart drawn);
3. Temperature: T moved up and back (the softmax chart must follow); Distill: T moved up and back (the result
   must show again); then the other pages by their sidebar links. Every page is checked for Streamlit's
   exception element and for st.error alerts (the router's "Something went wrong" message is one).

Meanwhile /proc is sampled every 0.5 s: the server's resident memory (with any child processes), its threads
in state R, and its threads that used at least half a core since the last sample ("busy"). The server's
stderr carries kd_core.jobs' "job started:" / "job done:" lines: they count the training jobs actually run,
which must equal the number of distinct configs requested. Every wait has a timeout; the whole run stops
after --timeout seconds (a watchdog ends the process if even that hangs). Exit status 0 when the bar is met
(no errors, no lost results, one job per distinct config, no failed job, no traceback in the server log).
The browsers, Playwright's driver and the server share this machine's cores: read the numbers with that.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.appserver import free_port, start_app, wait_healthy  # noqa: E402  (the server as `make run` starts it)
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, EXCEPTION  # noqa: E402  (one set of flags)

ERROR_ALERT = '[data-testid="stAlertContentError"]'
DONE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
COMPARISON = "Test accuracy of the three models"          # title of the Home page's comparison chart
DISTILL_RESULT = "Test accuracy after each epoch"          # title of the Distill page's result chart
SOFTMAX = "Teacher's probabilities"                         # title of the Temperature page's softmax chart
H1 = {"Home": "Knowledge distillation", "Data": "Data", "Teacher": "Teacher", "Temperature": "Temperature:",
      "Distill": "Distill:", "Compare": "Compare:", "Efficiency": "Efficiency:", "Experiments": "Experiments:",
      "Language models": "Language models:"}
WALK = ["Data", "Teacher", "Compare", "Efficiency", "Experiments", "Language models", "Home"]
SAMPLE_SECONDS = 0.5
NAV_TIMEOUT_MS = 180_000


@dataclass
class Session:
    """What one browser session did and saw."""

    id: int
    t_steps: int = 0                      # T slider steps (0.5 each) taken on Distill before running
    config_t: float | None = None         # the T the Home page said it would run with
    ready_s: float | None = None          # navigation -> run button shown
    clicked: bool = False
    result_s: float | None = None         # click -> comparison chart drawn
    result_seen: bool = False
    page_s: dict[str, float] = field(default_factory=dict)  # sidebar click -> page drawn
    errors: list[str] = field(default_factory=list)
    js_errors: int = 0
    completed: bool = False
    step: str = "waiting to start"        # what it was doing last (named when it times out)


# ------------------------------------------------------------------------------------------------------------
# The server and what /proc says about it

def start_server(port: int, cache: Path, log_path: Path, full: bool) -> subprocess.Popen:
    """The app's server as `make run` starts it (tests/appserver.py), on `port` with a private cache."""
    with open(log_path, "w") as log:  # the child keeps its own copy of the descriptor
        return start_app(port, {"KD_LAB_CACHE_DIR": str(cache), "KD_LAB_TINY": "0" if full else "1"}, log)


def _read(path: str) -> str:
    """A /proc file's text, or '' when the process or thread has gone."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    """pid and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read(f"/proc/{entry}/stat")
            if stat:
                children.setdefault(int(stat[stat.rfind(")") + 2:].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


class Sampler(threading.Thread):
    """Samples the server's memory and threads every SAMPLE_SECONDS until stop() is called."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.rss_mb: list[float] = []
        self.times: list[float] = []           # seconds since start() of each sample
        self.threads: list[int] = []
        self.running: list[int] = []
        self.busy: list[int] = []
        self.cores_used: list[float] = []
        self.busy_names: dict[str, int] = {}   # thread name -> samples in which it was busy
        self._stop_event = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Ask the sampling loop to end."""
        self._stop_event.set()

    def run(self) -> None:
        """Sample until stopped; the first sample only primes the CPU counters."""
        last: dict[tuple[int, int], int] = {}
        last_time = began = time.monotonic()
        while not self._stop_event.wait(SAMPLE_SECONDS):
            now, cpu, rss, threads, running = time.monotonic(), {}, 0.0, 0, 0
            names: dict[tuple[int, int], str] = {}
            for pid in descendants(self.pid):
                status = _read(f"/proc/{pid}/status")
                found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
                rss += int(found.group(1)) / 1024 if found else 0.0
                try:
                    tids = os.listdir(f"/proc/{pid}/task")
                except OSError:
                    continue
                for tid in tids:
                    stat = _read(f"/proc/{pid}/task/{tid}/stat")
                    if not stat:
                        continue
                    fields = stat[stat.rfind(")") + 2:].split()
                    threads += 1
                    running += fields[0] == "R"
                    cpu[(pid, int(tid))] = int(fields[11]) + int(fields[12])
                    names[(pid, int(tid))] = stat[stat.find("(") + 1:stat.rfind(")")]
            if not threads:
                continue
            interval, busy, used = now - last_time, 0, 0.0
            for task, ticks in cpu.items():
                share = (ticks - last.get(task, ticks)) / self._tick / interval
                used += share
                if share >= 0.5:
                    busy += 1
                    self.busy_names[names[task]] = self.busy_names.get(names[task], 0) + 1
            if last:
                self.busy.append(busy)
                self.cores_used.append(used)
            last, last_time = cpu, now
            self.rss_mb.append(rss)
            self.times.append(now - began)
            self.threads.append(threads)
            self.running.append(running)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile q (0-100) of values, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 100)) - 1))]


def spread(values: list[float], digits: int = 2) -> dict[str, float | None]:
    """p50, p95 and max of values, rounded."""
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, digits)

    return {"p50": r(percentile(values, 50)), "p95": r(percentile(values, 95)), "max": r(max(values, default=None))}


def job_lines(log_text: str) -> dict[str, Any]:
    """What kd_core.jobs logged: jobs started by the sessions (by key prefix), how each ended, and their durations.

    The server's own warm-up job (the default teacher, ui.warm, key "teacher-…", started before any session
    asks) is counted apart as "warm_up"; the sessions' runs find that teacher trained or join it.
    """
    every = re.findall(r"kd_core\.jobs INFO: job started: (\S+)", log_text)
    started = [key for key in every if not key.startswith("teacher-")]
    ended = [(status, key, t) for status, key, t in
             re.findall(r"kd_core\.jobs INFO: job (done|failed|cancelled): (\S+) after ([\d.]+) s", log_text)
             if not key.startswith("teacher-")]
    kinds: dict[str, int] = {}
    for key in started:
        kinds[key.split("-")[0]] = kinds.get(key.split("-")[0], 0) + 1
    return {"started": len(started), "warm_up": len(every) - len(started), "started_by_kind": kinds,
            "distinct_keys": len(set(started)),
            "done": sum(s == "done" for s, _, _ in ended), "failed": sum(s == "failed" for s, _, _ in ended),
            "cancelled": sum(s == "cancelled" for s, _, _ in ended),
            "seconds": [float(t) for _, _, t in ended]}


# ------------------------------------------------------------------------------------------------------------
# One browser session

async def settle(page) -> None:
    """Wait until the script has finished (no running indicator), then a moment for charts to draw."""
    await page.wait_for_selector(DONE, timeout=NAV_TIMEOUT_MS)
    await page.wait_for_timeout(300)


async def check_page(page, s: Session, where: str) -> None:
    """Record Streamlit exceptions and st.error alerts shown now."""
    if await page.locator(EXCEPTION).count():
        text = await page.locator(EXCEPTION).first.inner_text(timeout=10_000)
        s.errors.append(f"{where}: exception element: {text[:300]}")
    alerts = page.locator(ERROR_ALERT)
    for i in range(await alerts.count()):
        s.errors.append(f"{where}: error alert: {(await alerts.nth(i).inner_text(timeout=10_000))[:300]}")


async def go_to(page, s: Session, title: str) -> None:
    """Click the sidebar link of page `title`, wait for its heading and the end of the run; check it."""
    s.step = f"opening {title}"
    start = time.monotonic()
    await page.locator('[data-testid="stSidebarNavLink"]', has_text=title).first.click()
    await page.locator("h1", has_text=re.compile("^" + re.escape(H1[title]))).first.wait_for(timeout=NAV_TIMEOUT_MS)
    await settle(page)
    s.page_s[title] = round(time.monotonic() - start, 2)
    await check_page(page, s, title)


class PageError(Exception):
    """The page shows an error where a chart was expected."""


async def wait_chart(page, text: str, timeout_ms: float = NAV_TIMEOUT_MS):
    """The Plotly chart whose text contains `text`, once drawn; PageError if an error shows up instead."""
    chart = page.locator(".js-plotly-plot", has_text=text).first
    await chart.or_(page.locator(f"{EXCEPTION}, {ERROR_ALERT}")).first.wait_for(timeout=timeout_ms)
    if not await chart.count():
        raise PageError(f"an error instead of the chart {text!r}")
    return chart


async def chart_title(page, text: str) -> str:
    """The title of the Plotly chart whose text contains `text`."""
    return await (await wait_chart(page, text)).locator(".gtitle").first.text_content() or ""


async def move_t(page, steps: int) -> None:
    """Press ArrowRight (steps > 0) or ArrowLeft on the "Temperature T" slider, one rerun per press."""
    thumb = page.get_by_role("slider", name="Temperature T")
    await thumb.focus()
    for _ in range(abs(steps)):
        await thumb.press("ArrowRight" if steps > 0 else "ArrowLeft")
        await page.wait_for_timeout(200)
    await page.wait_for_timeout(500)
    await settle(page)


async def run_session(s: Session, browser, url: str, delay: float, ready: asyncio.Queue, go: asyncio.Event,
                      result_timeout: float, walk: list[str], default_t: list[float]) -> None:
    """One student's visit: get ready, click run with everyone, see the result, then walk the pages."""
    await asyncio.sleep(delay)
    context = await browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(NAV_TIMEOUT_MS)
    page = await context.new_page()

    def on_page_error(_: Any) -> None:
        s.js_errors += 1

    page.on("pageerror", on_page_error)
    told = False
    try:
        start = time.monotonic()
        s.step = "opening Home"
        await page.goto(url, timeout=NAV_TIMEOUT_MS)
        await page.locator("h1", has_text=H1["Home"]).first.wait_for(timeout=NAV_TIMEOUT_MS)
        await settle(page)
        await check_page(page, s, "Home (first visit)")
        if s.t_steps:
            await go_to(page, s, "Distill")
            await move_t(page, s.t_steps)
            await go_to(page, s, "Home")
        settings = page.locator("p", has_text="One click trains the teacher").first
        found = re.search(r"T = ([\d.]+), alpha", await settings.inner_text())
        s.config_t = float(found.group(1)) if found else None
        s.step = "waiting for the run button"
        run = page.get_by_role("button", name="Run the classroom demo")
        await run.wait_for(timeout=NAV_TIMEOUT_MS)
        s.ready_s = round(time.monotonic() - start, 2)
        if s.config_t is not None and not s.t_steps:
            default_t.append(s.config_t)
        await ready.put(s.id)
        told = True
        s.step = "waiting for the other sessions to be ready"
        await go.wait()

        s.step = "waiting for the comparison after clicking run"
        start = time.monotonic()
        await run.click()
        s.clicked = True
        await wait_chart(page, COMPARISON, result_timeout * 1000)
        s.result_s = round(time.monotonic() - start, 2)
        s.result_seen = True
        await settle(page)
        await check_page(page, s, "Home (result)")

        await go_to(page, s, "Temperature")
        before = await chart_title(page, SOFTMAX)
        s.step = "moving T on Temperature"
        await move_t(page, 2)
        after, until = before, time.monotonic() + 120  # a loaded server may rerun the script late
        while after == before and time.monotonic() < until:
            await page.wait_for_timeout(500)
            await settle(page)
            after = await chart_title(page, SOFTMAX)
        if after == before:
            s.errors.append(f"Temperature: moving T did not change the softmax chart within 120 s ({before!r})")
        await move_t(page, -2)
        await check_page(page, s, "Temperature (after slider moves)")

        await go_to(page, s, "Distill")
        s.step = "moving T on Distill and waiting for the result again"
        await move_t(page, 1)
        await move_t(page, -1)
        try:
            await wait_chart(page, DISTILL_RESULT)
        except Exception:  # noqa: BLE001  (PageError or Playwright's TimeoutError)
            s.errors.append("Distill: the result was not shown again after T went back to its value")
        await check_page(page, s, "Distill (after slider moves)")

        for title in walk:
            await go_to(page, s, title)
        if "Home" in walk and not await page.locator(".js-plotly-plot", has_text=COMPARISON).count():
            s.errors.append("Home (end): the comparison chart is gone")
        s.completed = not s.errors
    except Exception as exc:  # noqa: BLE001  (any failure is this session's error, never the whole run's)
        s.errors.append(f"{s.step}: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
        try:  # what the page shows, when it shows an error
            await check_page(page, s, f"{s.step} (on failure)")
        except Exception:  # noqa: BLE001  (the page may be gone)
            pass
    finally:
        if not told:
            await ready.put(-s.id - 1)
        await context.close()


async def drive(url: str, args: argparse.Namespace, deadline: float) -> tuple[list[Session], dict[str, float]]:
    """Run every session in one Chromium; returns them and the phase timings."""
    from playwright.async_api import async_playwright

    sessions = [Session(i, t_steps=(1 + (i // args.variant_every) % 2) if args.variant_every
                        and i % args.variant_every == args.variant_every // 2 else 0) for i in range(args.sessions)]
    ready: asyncio.Queue = asyncio.Queue()
    go = asyncio.Event()
    default_t: list[float] = []
    phases: dict[str, float] = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            start = time.monotonic()
            tasks = [asyncio.create_task(run_session(s, browser, url, i * args.stagger, ready, go,
                                                     args.result_timeout, args.walk, default_t))
                     for i, s in enumerate(sessions)]
            told = 0
            barrier_end = min(deadline, time.monotonic() + args.ready_timeout)
            while told < len(sessions) and time.monotonic() < barrier_end:
                try:
                    await asyncio.wait_for(ready.get(), timeout=barrier_end - time.monotonic())
                    told += 1
                except asyncio.TimeoutError:
                    break
            phases["all_ready_s"] = round(time.monotonic() - start, 2)
            go.set()
            done, pending = await asyncio.wait(tasks, timeout=max(1.0, deadline - time.monotonic()))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for s in sessions:
                if not s.completed and not s.errors:
                    s.errors.append(f"not finished before the overall --timeout (was {s.step})")
            phases["sessions_s"] = round(time.monotonic() - start, 2)
        finally:
            await browser.close()
    phases["default_t"] = default_t[0] if default_t else None
    return sessions, phases


# ------------------------------------------------------------------------------------------------------------

def report(args: argparse.Namespace, sessions: list[Session], phases: dict[str, Any], sampler: Sampler,
           log_text: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The JSON report, with `passed` = the issue's bar."""
    default_t = phases.pop("default_t", None)
    configs: dict[str, int] = {}
    for s in sessions:
        t = s.config_t if s.config_t is not None else (None if default_t is None else default_t + 0.5 * s.t_steps)
        name = "unknown" if t is None else f"T={t:g}"
        configs[name] = configs.get(name, 0) + 1
    jobs = job_lines(log_text)
    errors = [f"session {s.id}: {e}" for s in sessions for e in s.errors]
    lost = sum(s.clicked and not s.result_seen for s in sessions)
    tracebacks = log_text.count("Traceback (most recent call last)")
    page_times = [t for s in sessions for t in s.page_s.values()]
    out = {
        "mode": "browser contexts: one headless Chromium (Playwright async API), one isolated context per session",
        "sessions": len(sessions),
        "completed": sum(s.completed for s in sessions),
        "errors": len(errors),
        "error_samples": errors[:20],
        "lost_results": lost,
        "clicked_run": sum(s.clicked for s in sessions),
        "time_to_result_s": spread([s.result_s for s in sessions if s.result_s is not None]),
        "ready_s": spread([s.ready_s for s in sessions if s.ready_s is not None]),
        "page_switch_s": spread(page_times),
        "js_page_errors": sum(s.js_errors for s in sessions),
        "configs_requested": configs,
        "distinct_configs_requested": len(configs),
        "training_jobs_started": jobs["started"],
        "jobs": jobs,
        "server": {
            "peak_rss_mb": round(max(sampler.rss_mb, default=0.0), 1),
            "peak_rss_at_s": round(sampler.times[sampler.rss_mb.index(max(sampler.rss_mb))], 1)
            if sampler.rss_mb else None,
            "rss_mb_first_sample": round(sampler.rss_mb[0], 1) if sampler.rss_mb else None,
            "rss_mb_last_sample": round(sampler.rss_mb[-1], 1) if sampler.rss_mb else None,
            "threads_max": max(sampler.threads, default=None),
            "running_threads": spread(sampler.running, 0),
            "busy_threads": spread(sampler.busy, 0),
            "busy_thread_samples_by_name": sampler.busy_names,
            "cores_used": spread(sampler.cores_used),
            "samples": len(sampler.rss_mb),
            "tracebacks_in_log": tracebacks,
            "stale_fragment_warnings": log_text.count("does not exist anymore"),  # Streamlit's, harmless
        },
        "cores": len(os.sched_getaffinity(0)),
        **extra,
        **phases,
        "settings": {"sessions": args.sessions, "full": args.full,
                     "stagger_s": args.stagger, "variant_every": args.variant_every, "walk": args.walk,
                     "timeout_s": args.timeout},
    }
    out["passed"] = (out["completed"] == len(sessions) and not errors and lost == 0 and jobs["failed"] == 0
                     and tracebacks == 0 and jobs["distinct_keys"] == jobs["started"]
                     and jobs["started"] == out["distinct_configs_requested"])
    return out


def main() -> int:
    """Start the server, drive the sessions, stop the server, print the report; 0 when the bar is met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--full", action="store_true", help="the real classroom preset instead of KD_LAB_TINY=1")
    parser.add_argument("--stagger", type=float, default=0.2, help="seconds between session starts")
    parser.add_argument("--variant-every", type=int, default=10,
                        help="every Nth session runs another T (0: all run the default config)")
    parser.add_argument("--walk", type=lambda t: [p.strip() for p in t.split(",") if p.strip()], default=WALK,
                        help=f"pages visited after Temperature and Distill (default: {','.join(WALK)})")
    parser.add_argument("--ready-timeout", type=float, default=420, help="seconds to wait for every run button")
    parser.add_argument("--result-timeout", type=float, default=600, help="seconds from click to result")
    parser.add_argument("--timeout", type=float, default=900, help="the whole run's limit in seconds")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument("--server-log", type=Path, help="copy the server's log here")
    args = parser.parse_args()
    unknown = [p for p in args.walk if p not in H1]
    if unknown:
        parser.error(f"unknown pages {unknown}; choose from {list(H1)}")
    if not Path(CHROMIUM).exists():
        parser.error(f"Chromium is missing at {CHROMIUM}")

    wall = time.monotonic()
    deadline = wall + args.timeout
    extra: dict[str, Any] = {"load_average_before": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="kd-lab-load-") as tmp:
        port, log_path = free_port(), Path(tmp) / "server.log"
        proc = start_server(port, Path(tmp) / "cache", log_path, args.full)

        def kill_everything() -> None:  # the watchdog: even a hung browser cannot keep this running
            proc.kill()
            print(json.dumps({"passed": False, "error": "watchdog: the run overran --timeout by 120 s"}), flush=True)
            os._exit(3)

        watchdog = threading.Timer(args.timeout + 120, kill_everything)
        watchdog.daemon = True
        watchdog.start()
        sampler = Sampler(proc.pid)
        try:
            url = f"http://127.0.0.1:{port}"
            extra["server_start_s"] = round(wait_healthy(url, proc, min(120.0, args.timeout)), 2)
            sampler.start()
            sessions, phases = asyncio.run(drive(url, args, deadline))
        finally:
            sampler.stop()
            sampler.join(5)
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log_text = log_path.read_text(errors="replace")
        if args.server_log:
            args.server_log.write_text(log_text)
        cache = Path(tmp) / "cache"
        extra["cache_files"] = {d.name: len(list(d.iterdir())) for d in sorted(cache.iterdir()) if d.is_dir()} \
            if cache.is_dir() else {}
    extra["load_average_after"] = list(os.getloadavg())
    extra["wall_s"] = round(time.monotonic() - wall, 1)
    out = report(args, sessions, phases, sampler, log_text, extra)
    if out["server"]["tracebacks_in_log"]:
        start = log_text.find("Traceback (most recent call last)")
        out["server"]["first_traceback"] = log_text[start:start + 3000]
    watchdog.cancel()
    return emit(out, args.out)


def emit(out: dict, path: Path | None) -> int:
    """Print a load report as JSON (and write it to `path` when given); exit status 0 when it passed."""
    text = json.dumps(out, indent=1)
    print(text)
    if path:
        path.write_text(text + "\n")
    return 0 if out["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
