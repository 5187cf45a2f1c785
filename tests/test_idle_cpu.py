"""A server started as `make run` starts it, with three browser tabs open and idle, leaves the CPU alone.

Streamlit's file watcher, on by default, polls the whole tree (the virtual environment included) and
once kept a full core busy for every idle server. The shipped .streamlit/config.toml turns it off; this
test measures the server process's own CPU time while the tabs sit on the Home page, once the server's
warm-up job (the default teacher, trained in the background at start: ui.warm) has finished.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.appserver import (app_command, cpu_seconds, free_port, make_run_arguments, start_app,
                             wait_healthy)
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, settle

TABS = 3
IDLE_SECONDS = 10.0
MAX_CORE_SHARE = 0.25  # generous (the bar is 2 % of a core); the file watcher alone used about 100 %


def test_make_run_is_the_command_the_tests_start():
    assert make_run_arguments() == ["run", "app.py", "--server.port", "$(PORT)"]
    assert app_command(8501)[-4:] == ["run", "app.py", "--server.port", "8501"]


def warmed_up(log: Path, timeout: float = 300) -> None:
    """Wait until the server's warm-up job (the default teacher, trained in the background at start) has ended."""
    deadline = time.monotonic() + timeout
    while not re.search(r"job (done|failed|cancelled): teacher-", log.read_text()):
        assert time.monotonic() < deadline, "the warm-up teacher did not finish"
        time.sleep(1)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process's CPU time from /proc")
def test_idle_tabs_leave_the_server_idle(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: install it (`make browser` or apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "server.log", "w") as log:
        proc = start_app(port, {"KD_LAB_CACHE_DIR": str(tmp_path / "cache")}, log)
    try:
        wait_healthy(url, proc)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                pages = [browser.new_page() for _ in range(TABS)]
                for page in pages:
                    page.goto(url)
                    page.get_by_text("Knowledge distillation: a small student").wait_for(timeout=120_000)
                    settle(page)
                warmed_up(tmp_path / "server.log")
                time.sleep(3)  # let the first paints' work (imports, charts) finish
                before, start = cpu_seconds(proc.pid), time.monotonic()
                time.sleep(IDLE_SECONDS)
                share = (cpu_seconds(proc.pid) - before) / (time.monotonic() - start)
            finally:
                browser.close()
        print(f"server CPU with {TABS} idle tabs: {100 * share:.1f} % of a core")
        assert share < MAX_CORE_SHARE, f"the idle server used {100 * share:.0f} % of a core"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_the_shipped_config_runs_no_full_garbage_collection_after_every_script_run():
    """Streamlit's runner.postScriptGC (on by default) runs gc.collect(2) after each script run: ~140 ms of the
    interpreter's lock with torch and plotly loaded, paid by every page view and every progress panel's
    once-a-second rerun. With it on, 40 protocol sessions waited p50 12.4 s for a rerun; off, 0.15 s
    (bench/ws_load.py --sessions 40 --duration 60 --no-chromium)."""
    import gc
    import tomllib

    config = tomllib.loads((Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
    assert gc.isenabled()  # Python's own generational collector still runs
