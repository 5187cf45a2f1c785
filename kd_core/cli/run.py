"""`python -m kd_core datasets | run`: where the data comes from, and the teacher -> distilled -> scratch comparison."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from kd_core import paths
from kd_core.cli.common import ProgressPrinter, finish, finite_float, pct, positive_int, prepare, table
from kd_core.config import PRECISIONS, PRESETS, preset
from kd_core.data import DATASETS, availability


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the `datasets` and `run` commands to the CLI's subparsers."""
    datasets = sub.add_parser("datasets", help="list datasets, whether they are available here, and their source")
    datasets.add_argument("--data-dir", type=Path, help=f"folder with IDX files (default ${paths.DATA_ENV})")

    run = sub.add_parser("run", help="teacher -> distilled student -> scratch student, compared on the test split")
    run.add_argument("--dataset", default="mnist-sample", choices=sorted(DATASETS))
    run.add_argument("--preset", default="classroom", choices=sorted(PRESETS))
    run.add_argument("--seeds", type=positive_int, help="student seeds to average over (default 1)")
    run.add_argument("--epochs", type=positive_int, help="epochs for the teacher and both students")
    run.add_argument("--teacher-epochs", type=positive_int)
    run.add_argument("--student-epochs", type=positive_int)
    run.add_argument("--train-limit", type=positive_int,
                     help="cap on training images for the teacher and both students")
    run.add_argument("--student-train-limit", type=positive_int, help="cap on the students' training images")
    run.add_argument("--batch-size", type=positive_int)
    run.add_argument("--temperature", type=finite_float, help="T for the soft targets")
    run.add_argument("--alpha", type=finite_float, help="weight of the soft (teacher) term, 0..1")
    run.add_argument("--no-t-squared", action="store_true", help="drop the T² factor from the soft term")
    run.add_argument("--hint", type=finite_float, nargs="?", const=1.0, metavar="WEIGHT",
                     help="layer-wise (FitNets) hint: the distilled student also matches the teacher's last conv "
                          "features through a learned 1x1 projection; WEIGHT scales that term (default 1)")
    run.add_argument("--hint-loss", choices=("mse", "cosine"), help="hint distance (default mse)")
    run.add_argument("--precision", choices=PRECISIONS,
                     help="fp32, bf16 (autocast) or auto (default: bf16 where the CPU has AVX-512 BF16 or AMX)")
    run.add_argument("--data-dir", type=Path, help=f"folder with IDX files (default ${paths.DATA_ENV})")
    run.add_argument("--no-cache", action="store_true", help="recompute the result (a cached teacher is still used)")
    run.add_argument("--json", type=Path, help="write the result as JSON to this path")


def config_from_args(args: argparse.Namespace):
    """The RunConfig the `run` flags describe (preset first, then explicit flags)."""
    changes: dict[str, Any] = {"dataset": args.dataset}
    if args.epochs:
        changes.update(teacher_epochs=args.epochs, student_epochs=args.epochs)
    if args.train_limit:
        changes.update(teacher_train_limit=args.train_limit, student_train_limit=args.train_limit)
    for setting in ("teacher_epochs", "student_epochs", "student_train_limit", "batch_size", "temperature", "alpha",
                    "seeds", "precision"):
        if getattr(args, setting) is not None:
            changes[setting] = getattr(args, setting)
    if args.no_t_squared:
        changes["t_squared"] = False
    if args.hint is not None:
        changes["hint_weight"] = args.hint
    if args.hint_loss is not None:
        changes["hint_loss"] = args.hint_loss
    return preset(args.preset).replace(**changes)


def print_datasets(args: argparse.Namespace) -> int:
    """Print one line per dataset: name, available or not, source or how to get it."""
    for name, info in DATASETS.items():
        ok, where = availability(name, args.data_dir)
        print(f"{name:<14} {'available' if ok else 'missing':<10} {info.title}\n{'':<25}{where}")
    return 0


def format_table(result: dict[str, Any]) -> str:
    """The comparison as a plain-text table."""
    columns = [("model", 10), ("accuracy (mean ± std)", 22), ("seeds", 5), ("params", 10), ("MFLOPs/img", 10),
               ("seconds", 8)]
    rows = [(role, f"{pct(m['accuracy_mean'])} ± {pct(m['accuracy_std'])}", len(m["accuracies"]), f"{m['params']:,}",
             f"{m['flops'] / 1e6:.2f}", f"{m['seconds']:.1f}") for role, m in result["models"].items()]
    d, s = result["models"]["distilled"], result["models"]["scratch"]
    notes = [f"distilled - scratch: {100 * (d['accuracy_mean'] - s['accuracy_mean']):+.2f} points; "
             f"total {result['total_seconds']:.1f} s"]
    if "hint" in result:
        h = result["hint"]
        notes.append(f"distilled with hint (weight {h['weight']:g}, {h['loss']}): teacher layer {h['teacher']['layer']} "
                     f"{h['teacher']['shape']} <- student layer {h['student']['layer']} {h['student']['shape']} "
                     f"through a {h['projection']} ({h['projection_params']:,} params, training only)")
    return table(columns, rows, notes)


def run(args: argparse.Namespace) -> int:
    """Run the comparison the flags describe, print the table, write JSON if asked."""
    import sys

    from kd_core.experiment import run_experiment  # imports torch: only when needed

    cfg = config_from_args(args)
    started = time.perf_counter()
    threads = prepare(cfg, args.data_dir)
    print(f"{cfg.dataset}: teacher {cfg.teacher}, students {cfg.student}, T={cfg.temperature:g}, "
          f"alpha={cfg.alpha:g} (weight of the teacher's soft targets), {cfg.seeds} seed(s), {threads} threads, "
          f"{cfg.compute_precision()}",
          file=sys.stderr)
    result = run_experiment(cfg, on_event=ProgressPrinter(), use_cache=not args.no_cache)
    result = {**result, "preset": args.preset, "total_seconds": time.perf_counter() - started
              if not result.get("cached") else result["total_seconds"]}
    return finish(result, format_table(result), args.json)
