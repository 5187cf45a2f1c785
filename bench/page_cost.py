"""What one script run of each page costs the server, alone: the per-run price every visitor pays. JSON.

Run `.venv/bin/python bench/page_cost.py [--reruns 15] [--out PATH]`. The server starts exactly as `make run` starts
it (tests/appserver.py: the shipped config, a fresh temporary KD_LAB_CACHE_DIR, KD_LAB_TINY=1); one protocol session
(bench/ws_load.py's client: Streamlit's websocket protocol, no browser) runs the classroom demo on Home, then opens
each page and reruns it --reruns times, one run at a time, and on Temperature and Distill moves the T slider. With
one session and no job training, a rerun's latency (rerun_script sent -> script_finished) is the server's time for
that run: its median per page and the server's CPU time per run are printed (the latency has a floor of about
50 ms that is not CPU: the CPU figure is the cost). Under load
(bench/ws_load.py) these costs add up on one interpreter lock: they are what the latency bar is made of.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load import emit  # noqa: E402
from bench.machine import cpu_model  # noqa: E402
from bench.ws_load import DEFAULT_T, T_STEP, WALK, ProtocolSession, Stats  # noqa: E402
from tests.appserver import cpu_seconds, free_port, start_app, wait_healthy  # noqa: E402


async def measure(url: str, reruns: int, cpu: Callable[[], float]) -> dict[str, Any]:
    """Demo on Home, then each page of the walk rerun `reruns` times (and its T slider moved): per page the median
    latency and the server's CPU time per rerun (`cpu()`: its CPU seconds so far)."""
    s = ProtocolSession(Stats(0, runner=True), url, rerun_timeout=180)
    pages: dict[str, Any] = {}
    try:
        await s.open()
        if not (await s.rerun() and await s.press("home-run") and await s.shows("home-again", 600)):
            raise RuntimeError(f"the demo did not finish: {s.stats.errors}")
        for title in WALK:
            await s.open_page(title)
            before = cpu()
            for _ in range(reruns):
                await s.rerun()
            times = s.stats.rerun_s[-reruns:]
            pages[title] = {"median_ms": round(1000 * statistics.median(times), 1),
                            "min_ms": round(1000 * min(times), 1),
                            "cpu_ms_per_run": round(1000 * (cpu() - before) / reruns, 1)}
            if "w_temperature" in s.sliders:
                before = len(s.stats.rerun_s)
                for i in range(reruns):
                    await s.set_slider("w_temperature", DEFAULT_T + (T_STEP if i % 2 == 0 else 0.0))
                moved = s.stats.rerun_s[before:]
                pages[title]["t_slider_median_ms"] = round(1000 * statistics.median(moved), 1)
    finally:
        await s.close()
    if s.stats.errors:
        raise RuntimeError(f"errors: {s.stats.errors[:5]}")
    return pages


def main() -> int:
    """Start the server, measure every page, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reruns", type=int, default=15, help="reruns of each page (and T slider moves)")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kd-lab-page-cost-") as tmp:
        port = free_port()
        proc = start_app(port, {"KD_LAB_CACHE_DIR": str(Path(tmp) / "cache"), "KD_LAB_TINY": "1"})
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, proc, 120)
            pages = asyncio.run(measure(url, args.reruns, lambda: cpu_seconds(proc.pid)))
            cpu = cpu_seconds(proc.pid)
        finally:
            proc.kill()
            proc.wait(30)
    return emit({"machine": cpu_model(), "reruns_per_page": args.reruns, "pages": pages,
                 "server_cpu_seconds_total": round(cpu, 1), "passed": True}, args.out)


if __name__ == "__main__":
    sys.exit(main())
