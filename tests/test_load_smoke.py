"""bench/load.py with two real browser sessions on the same config: both see the result, one job runs."""

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
