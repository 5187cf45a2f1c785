"""The classroom demo, cold, in the CLI and in the app side by side, round after round. Prints JSON.

Run `.venv/bin/python bench/click_to_chart.py [--rounds 5]`. Each round, one after the other on an idle machine:
1. the CLI: `python -m kd_core run` (the classroom preset, one seed) in a fresh KD_LAB_CACHE_DIR, wall time from
   process start to exit (python, the torch import and the data included, as a user waits for it);
2. the app: bench/load.py with one Chromium session on a fresh server and cache (started as `make run` starts
   it), time from the click on "Run the classroom demo" to the comparison chart drawn.
The bar of issue 16: the app's time at most 1.2x the CLI's. Rounds alternate so that a machine that slows down or
speeds up meanwhile weighs on both sides alike; the medians and each round's ratio are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cli_seconds() -> float:
    """Wall seconds of one cold `python -m kd_core run` (classroom, one seed) in a fresh cache folder."""
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kd_core", "run"], cwd=ROOT, check=True, capture_output=True,
                       env={**os.environ, "KD_LAB_CACHE_DIR": cache})
        return time.perf_counter() - start


def app_seconds() -> dict:
    """bench/load.py's click -> chart seconds (and page-ready seconds) for one Chromium session, cold."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "load.json"
        subprocess.run([sys.executable, str(ROOT / "bench" / "load.py"), "--sessions", "1", "--full",
                        "--variant-every", "0", "--walk", "Home", "--out", str(out)], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        report = json.loads(out.read_text())
    return {"click_to_chart_s": report["time_to_result_s"]["p50"], "page_ready_s": report["ready_s"]["p50"],
            "passed": report["passed"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rounds = []
    for _ in range(args.rounds):
        cli = cli_seconds()
        app = app_seconds()
        rounds.append({"cli_wall_s": round(cli, 2), **app, "ratio": round(app["click_to_chart_s"] / cli, 2)})
        print(json.dumps(rounds[-1]), file=sys.stderr)
    median = {k: round(statistics.median(r[k] for r in rounds), 2) for k in ("cli_wall_s", "click_to_chart_s")}
    print(json.dumps({"rounds": rounds, "median": {**median, "ratio": round(median["click_to_chart_s"]
                                                                             / median["cli_wall_s"], 2)},
                      "bar": "click_to_chart_s <= 1.2 x cli_wall_s", "cores": len(os.sched_getaffinity(0))},
                     indent=1))


if __name__ == "__main__":
    main()
