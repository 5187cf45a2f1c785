"""LLM distillation benchmark: the default kd_core.lm.llm_distill run, cold and then warm. Prints JSON.

Run with `.venv/bin/python bench/llm_distill.py [--cache DIR]`. Two fresh processes on one cache folder (default: a
new empty one): the first cold (the GGUF read and de-quantized, the stdlib docstrings parsed, the teacher's top-k
logits and its texts for sequence-level KD computed and cached), the second warm (the result recomputed, with the
teacher's cached logits and texts; its weights from the safetensors copy). Each reports the seconds of every
phase and in all (from its process's start, imports included), its CPU seconds, the perplexities per method and
seed, the distilled/scratch perplexity ratios, the winner and the teacher's top-k mass coverage. The issue's
bars: cold <= 4 min, warm <= 2 min, every distilled seed below every scratch seed. Other busy processes on the
machine inflate every time (the load averages before and after are printed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STARTED = time.perf_counter()
sys.path.insert(0, str(ROOT / "bench"))

from llm_view import rounded  # noqa: E402
from machine import cpu_model  # noqa: E402


def child() -> dict:
    """One run of the default config (the result cache ignored), timed from this process's start."""
    from kd_core.lm.llm_distill import DistillConfig, run_distill

    imported = time.perf_counter()
    result = run_distill(DistillConfig(), use_cache=False)
    models = result["models"]
    return {"imports_s": imported - STARTED, "phases_s": result["phases"], "run_s": result["total_seconds"],
            "process_total_s": time.perf_counter() - STARTED, "cpu_s": time.process_time(),
            "teacher_loaded_from": result["teacher"]["loaded_from"], "topk_cached": result["topk"]["cached"],
            "topk_seconds": result["topk"]["seconds"], "sequence_seconds": result["sequence"]["seconds"],
            "onpolicy_teacher": result["onpolicy"],
            "perplexities": {m: d["perplexities"] for m, d in models.items()},
            "perplexity_mean": {m: d["perplexity_mean"] for m, d in models.items()},
            "teacher_perplexity_full_vocab": models["teacher"]["perplexity_full_vocab"],
            "ratios_to_scratch": result["ratios"], "below_scratch": result["below_scratch"],
            "every_distilled_below_every_scratch": result["every_distilled_below_every_scratch"],
            "winner": result["winner"], "verdict": result["verdict"],
            "topk_coverage": result["topk"]["coverage"], "topk_coverage_in_vocab": result["topk"]["coverage_in_vocab"],
            "vocab_size": result["vocab_size"], "params": {m: d["params"] for m, d in models.items()},
            "tokens_per_s": {m: d["tokens_per_s"] for m, d in models.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="cache folder to use (default: a fresh temporary one)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child()))
        return
    cache = args.cache or Path(tempfile.mkdtemp(prefix="kd-lab-bench-llmkd-"))
    env = {**os.environ, "KD_LAB_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    runs, loads = {}, {"before": os.getloadavg()}
    try:
        for name in ("cold", "warm"):
            wall = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--child"], env=env, cwd=ROOT, capture_output=True,
                                  text=True, check=True)
            runs[name] = {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall_s": time.perf_counter() - wall}
            loads[f"after_{name}"] = os.getloadavg()
    finally:
        if args.cache is None:
            shutil.rmtree(cache, ignore_errors=True)   # the teacher's weights copy is 540 MB
    report = {"command": "python bench/llm_distill.py", "cpu": cpu_model(), "cores": os.cpu_count(),
              "load_average": loads, "runs": runs,
              "bar_cold_le_240s": runs["cold"]["wall_s"] <= 240.0, "bar_warm_le_120s": runs["warm"]["wall_s"] <= 120.0,
              "bar_every_distilled_below_every_scratch": all(r["every_distilled_below_every_scratch"]
                                                             for r in runs.values())}
    print(json.dumps(rounded(report), indent=1))


if __name__ == "__main__":
    main()
