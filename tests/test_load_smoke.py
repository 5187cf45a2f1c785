"""The load benchmarks, small: bench/load.py with two real browser sessions on the same config (both see the result,
one job runs), and bench/ws_load.py's protocol-level sessions for a few seconds (every one served, no error)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_two_sessions_share_one_job(tmp_path):
    from tests.test_browser import CHROMIUM

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: install it (`make browser` or apt-get install chromium)")
    out = tmp_path / "load.json"
    proc = subprocess.run([sys.executable, "bench/load.py", "--sessions", "2", "--variant-every", "0",
                           "--walk", "Home", "--timeout", "400", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    report = json.loads(out.read_text())
    assert report["error_samples"] == [], proc.stdout[-3000:]
    assert report["completed"] == 2 and report["lost_results"] == 0
    assert report["clicked_run"] == 2
    assert report["distinct_configs_requested"] == 1
    assert report["jobs"]["started"] == 1 and report["jobs"]["done"] == 1  # two clicks, one training job
    assert report["server"]["tracebacks_in_log"] == 0
    assert report["server"]["peak_rss_mb"] > 0
    assert report["passed"] and proc.returncode == 0


def test_protocol_sessions_are_all_served_and_the_runner_sees_its_result(tmp_path):
    out = tmp_path / "ws-load.json"
    proc = subprocess.run([sys.executable, "bench/ws_load.py", "--sessions", "3", "--runners", "1", "--duration", "8",
                           "--ramp", "1", "--think-min", "0.2", "--think-max", "0.5", "--no-chromium", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    report = json.loads(out.read_text())
    assert report["errors"] == 0, report["error_samples"]
    assert report["sessions_with_script_finished"] == 3 and report["sessions_served"] == 3
    assert report["full_runs"] >= 3 * 3    # each: Home, then a page and a slider moved on it
    assert report["warm_up"]["result_seen"] and report["runs_started"] == 1 and report["lost_results"] == 0
    assert report["jobs"]["failed"] == 0 and report["server"]["tracebacks_in_log"] == 0
    assert report["server"]["peak_rss_mb"] > 0 and report["server"]["cpu_seconds"] > 0
    assert report["passed"] and proc.returncode == 0
