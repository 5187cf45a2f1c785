"""The real server SIGKILLed while a browser session's run trains, then restarted on the same cache.

The server starts as `make run` starts it (tests/appserver.py: the shipped .streamlit/config.toml, no extra flags;
only a private cache folder and the tiny mode differ) and Chromium presses the Home page's run button. Round 1 runs
the classroom demo at its real size, whose teacher trains for a minute: once the page shows the demo's job and the
server's log says a job started (the demo's, or the server's own warm-up of the same teacher), the server is killed
with no teacher saved yet. Round 2 (tiny mode, 60 student epochs from the link's settings) is killed while the page
shows the distilled student's progress, after the teacher's checkpoint was saved. After each restart the page
offers the run again: no result without a finished run, no temp file renamed into place. Round 2's rerun completes
and shows the chart, and every file that was complete at a kill is byte-identical at the end (a student
saved in the last second before the kill is trained again by the rerun and replaced).
"""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.appserver import serving
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, EXCEPTION

RUN = "Run the classroom demo"
COMPARISON = "Test accuracy of the three models"    # the Home page's chart of a finished run
JOB_STARTED = "kd_core.jobs INFO: job started: "   # kd_core.jobs' log line
STUDENT_TRAINS = re.compile(r"Now: distilled student \(seed 0\), step \d+/\d+")
LONG_STUDENTS = "/?epochs=60"                         # a link's settings: students that train for seconds
WAIT_MS = 120_000                                     # a page on a busy machine; every wait has a limit
RESULT_MS = 300_000                                   # the rerun's students, on a machine shared with others


def digests(cache: Path) -> dict[str, str]:
    """SHA-256 of every complete file in the cache (relative path -> digest); temp files left out."""
    return {str(p.relative_to(cache)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(cache.rglob("*"))
            if p.is_file() and not p.name.endswith(".tmp")}


def temps(cache: Path) -> list[Path]:
    """Temp files a killed writer left."""
    return sorted(cache.rglob(".*.tmp"))


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the server and wait until it is gone."""
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL


def open_home(browser, url: str):
    """A fresh browser session on Home at `url`, once its run button shows; no result is shown there yet."""
    page = browser.new_context(viewport={"width": 1280, "height": 1400}).new_page()
    page.goto(url, timeout=WAIT_MS)
    page.get_by_role("button", name=RUN).wait_for(timeout=WAIT_MS)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=WAIT_MS)
    assert page.locator(EXCEPTION).count() == 0
    return page


def assert_no_result(page) -> None:
    """The page offers the run and shows no result of it (nothing a killed run left is served as finished)."""
    assert page.locator('[data-testid="stProgress"]').count() == 0        # no run going either
    assert page.get_by_text("Done:").count() == 0
    assert page.locator(".js-plotly-plot", has_text=COMPARISON).count() == 0


def press_run(page) -> None:
    """Press the demo's run button and wait until the page shows its job (queued or running)."""
    page.get_by_role("button", name=RUN).click()
    page.locator('[data-testid="stProgress"]').first.wait_for(timeout=WAIT_MS)


def wait_for_log(log: Path, text: str) -> None:
    """Wait until the server's log holds `text`."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {text!r} in the server's log:\n{log.read_text(errors='replace')}"
        time.sleep(0.05)


def test_server_killed_mid_teacher_and_mid_student_serves_nothing_partial_and_reruns(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is missing at {CHROMIUM} (`make browser` installs it)")
    from playwright.sync_api import sync_playwright

    cache = tmp_path / "cache"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # round 1: the real classroom demo, killed while its teacher trains (it is not saved until it is done)
            with serving({"KD_LAB_CACHE_DIR": str(cache), "KD_LAB_TINY": "0"}, tmp_path / "server-1.log") as (url, proc):
                page = open_home(browser, url)
                press_run(page)
                wait_for_log(tmp_path / "server-1.log", JOB_STARTED)    # the teacher trains, for a minute
                assert not list(cache.glob("teachers/*"))
                kill(proc)
                page.context.close()
            at_kill = digests(cache)
            assert not temps(cache) and not [n for n in at_kill if not n.startswith("datasets/")]  # only the data
            assert at_kill                                            # (the dataset's cache file: hashed to the end)
            with serving({"KD_LAB_CACHE_DIR": str(cache), "KD_LAB_TINY": "0"}, tmp_path / "server-2.log") as (url, proc):
                assert_no_result(open_home(browser, url))
            assert digests(cache) == at_kill and not temps(cache)     # the restart wrote and renamed nothing

            # round 2: killed while the distilled student trains: the teacher was saved, no result yet (the real
            # preset: tiny students at 60 epochs end within the page's second of progress lag on a fast machine)
            with serving({"KD_LAB_CACHE_DIR": str(cache), "KD_LAB_TINY": "0"}, tmp_path / "server-3.log") as (url, proc):
                page = open_home(browser, url + LONG_STUDENTS)
                press_run(page)
                page.locator('[data-testid="stProgress"]', has_text=STUDENT_TRAINS).first.wait_for(timeout=WAIT_MS)
                kill(proc)
                page.context.close()
            at_kill = digests(cache)
            assert not temps(cache)
            kinds = [n.split("/")[0] for n in at_kill if not n.startswith("datasets/")]
            # the teacher was saved; no result yet. A student whose last step came before the kill (the page's
            # progress is a second behind the server) may be saved too: complete files, which must then stay
            assert "teachers" in kinds and set(kinds) <= {"teachers", "students"}, kinds
            students_at_kill = kinds.count("students")
            with serving({"KD_LAB_CACHE_DIR": str(cache), "KD_LAB_TINY": "0"}, tmp_path / "server-4.log") as (url, proc):
                page = open_home(browser, url + LONG_STUDENTS)
                assert_no_result(page)
                assert digests(cache) == at_kill
                page.get_by_role("button", name=RUN).click()            # the rerun: teacher from the cache
                page.locator(".js-plotly-plot", has_text=COMPARISON).wait_for(timeout=RESULT_MS)
                done = page.get_by_text("Done:").first.inner_text(timeout=WAIT_MS)
                assert "From the cache" not in done and page.locator(EXCEPTION).count() == 0
            final = digests(cache)
            kept = {name: digest for name, digest in at_kill.items() if not name.startswith("students/")}
            assert {name: final[name] for name in kept} == kept   # complete before the kill: byte-identical (a
            #                                                       student saved then is trained again and replaced)
            assert sorted(n.split("/")[0] for n in set(final) - set(at_kill)) == ["results"] + ["students"] * (
                2 - students_at_kill)
            assert not temps(cache)
        finally:
            browser.close()
