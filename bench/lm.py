"""Language-model benchmark: the default LM run (teacher + 3 seeds of both students) as a user runs it. Prints JSON.

Run with `.venv/bin/python bench/lm.py [--cache DIR] [extra `python -m kd_core lm` flags]`. The whole
`python -m kd_core lm` command is timed in a subprocess with a fresh cache folder (so the teacher trains and
the stdlib corpus is parsed), or with --cache DIR to reuse one. Reports the issue's bar: total wall time
(<= 5 min), teacher training time (<= 2 min), every distilled seed below every scratch seed in validation
loss and the gap, and the student's generation speed-up over the teacher (>= 3x). Other busy processes on
the machine inflate every wall time; cpu_seconds (the run uses one torch thread) is what it takes on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="cache folder to use (default: a fresh temporary one)")
    args, extra = parser.parse_known_args()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="kd-lab-bench-lm-"))
    out = cache / f"lm-{time.monotonic_ns()}.json"
    env = {**os.environ, "KD_LAB_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "kd_core", "lm", *extra, "--json", str(out)]
    start = time.perf_counter()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    result = json.loads(out.read_text())
    m = result["models"]
    report = {
        "command": " ".join(["python -m kd_core lm", *extra]),
        "wall_seconds": round(wall, 1),
        "bar_wall_le_300s": wall <= 300,
        # the run uses one torch thread: on a quiet machine its wall time is about its CPU time
        "cpu_seconds": round(cpu, 1),
        "teacher_train_seconds": round(result["teacher_seconds"], 1),
        "teacher_cpu_seconds": result.get("teacher_cpu_seconds") and round(result["teacher_cpu_seconds"], 1),
        "bar_teacher_le_120s": result["teacher_seconds"] <= 120,
        "val_bpc": {role: [round(x, 4) for x in m[role]["val_bpc"]] for role in m},
        "perplexity": {role: round(m[role]["perplexity_mean"], 3) for role in m},
        "gap_bpc_scratch_minus_distilled": round(result["gap_bpc"], 4),
        "bar_every_distilled_below_every_scratch": result["every_distilled_below_every_scratch"],
        "params": {role: m[role]["params"] for role in m},
        "chars_per_s": {role: round(m[role]["chars_per_s"], 1) for role in m},
        "student_speedup": round(result["speedup"], 2),
        "bar_speedup_ge_3x": result["speedup"] >= 3,
        "config": result["config"],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_1m_after": round(os.getloadavg()[0], 2)},
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
