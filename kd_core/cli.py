"""`python -m kd_core datasets | run`: the practitioner's entry point and what benchmarks call."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from kd_core import compress_cli, lab_cli, lm_cli, paths, store
from kd_core.config import PRESETS, preset
from kd_core.data import DATASETS, DatasetError, availability


def int_at_least(minimum: int, allow_all: bool = False):
    """An argparse type: an integer >= `minimum` (or the word 'all', read as None, when `allow_all`)."""
    def parse(text: str) -> int | None:
        if allow_all and text.strip().lower() == "all":
            return None
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer" + (" nor 'all'" if allow_all else "")) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}" + (" (or 'all')" if allow_all else ""))
        return value
    return parse


_positive_int = int_at_least(1)


def _float(text: str) -> float:
    """argparse type: a finite float."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = argparse.ArgumentParser(prog="python -m kd_core", description="KD Lab: knowledge distillation engine.")
    sub = parser.add_subparsers(dest="command", required=True)
    datasets = sub.add_parser("datasets", help="list datasets, whether they are available here, and their source")
    datasets.add_argument("--data-dir", type=Path, help=f"folder with IDX files (default ${paths.DATA_ENV})")

    run = sub.add_parser("run", help="teacher -> distilled student -> scratch student, compared on the test split")
    run.add_argument("--dataset", default="mnist-sample", choices=sorted(DATASETS))
    run.add_argument("--preset", default="classroom", choices=sorted(PRESETS))
    run.add_argument("--seeds", type=_positive_int, help="student seeds to average over (default 1)")
    run.add_argument("--epochs", type=_positive_int, help="epochs for the teacher and both students")
    run.add_argument("--teacher-epochs", type=_positive_int)
    run.add_argument("--student-epochs", type=_positive_int)
    run.add_argument("--train-limit", type=_positive_int,
                     help="cap on training images for the teacher and both students")
    run.add_argument("--student-train-limit", type=_positive_int, help="cap on the students' training images")
    run.add_argument("--batch-size", type=_positive_int)
    run.add_argument("--temperature", type=_float, help="T for the soft targets")
    run.add_argument("--alpha", type=_float, help="weight of the soft (teacher) term, 0..1")
    run.add_argument("--no-t-squared", action="store_true", help="drop the T² factor from the soft term")
    run.add_argument("--hint", type=_float, nargs="?", const=1.0, metavar="WEIGHT",
                     help="layer-wise (FitNets) hint: the distilled student also matches the teacher's last conv "
                          "features through a learned 1x1 projection; WEIGHT scales that term (default 1)")
    run.add_argument("--hint-loss", choices=("mse", "cosine"), help="hint distance (default mse)")
    run.add_argument("--data-dir", type=Path, help=f"folder with IDX files (default ${paths.DATA_ENV})")
    run.add_argument("--no-cache", action="store_true", help="recompute the result (a cached teacher is still used)")
    run.add_argument("--json", type=Path, help="write the result as JSON to this path")
    lab_cli.add_parser(sub)  # `experiment NAME ...`: the dark-knowledge lab
    lm_cli.add_parser(sub)  # `lm ...`: distillation for a character-level language model
    compress_cli.add_parser(sub)  # `compress ...`: distil -> prune -> quantize, measured per stage
    return parser


def config_from_args(args: argparse.Namespace):
    """The RunConfig the `run` flags describe (preset first, then explicit flags)."""
    changes: dict[str, Any] = {"dataset": args.dataset}
    if args.epochs:
        changes.update(teacher_epochs=args.epochs, student_epochs=args.epochs)
    if args.train_limit:
        changes.update(teacher_train_limit=args.train_limit, student_train_limit=args.train_limit)
    for flag, setting in (("teacher_epochs", "teacher_epochs"), ("student_epochs", "student_epochs"),
                          ("student_train_limit", "student_train_limit"), ("batch_size", "batch_size"),
                          ("temperature", "temperature"), ("alpha", "alpha"), ("seeds", "seeds")):
        if getattr(args, flag) is not None:
            changes[setting] = getattr(args, flag)
    if args.no_t_squared:
        changes["t_squared"] = False
    if args.hint is not None:
        changes["hint_weight"] = args.hint
    if args.hint_loss is not None:
        changes["hint_loss"] = args.hint_loss
    return preset(args.preset).replace(**changes)


def _print_datasets(data_dir: Path | None) -> int:
    """Print one line per dataset: name, available or not, source or how to get it."""
    for name, info in DATASETS.items():
        ok, where = availability(name, data_dir)
        print(f"{name:<14} {'available' if ok else 'missing':<10} {info.title}\n{'':<25}{where}")
    return 0


class ProgressPrinter:
    """Turns experiment events into a progress line on stderr (rewritten in place on a terminal)."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_phase: tuple[str, int] | None = None
        self.started = time.perf_counter()

    def __call__(self, event) -> None:
        """Print one event."""
        p = event.progress
        elapsed = time.perf_counter() - self.started
        eta = elapsed / event.overall * (1 - event.overall) if event.overall > 0 else 0.0
        test = f" test acc {p.test_acc:.1%}" if p.test_acc is not None else ""
        line = (f"[{event.overall:6.1%}] {event.phase:<9} seed {event.seed} epoch {p.epoch:5.2f}/{p.epochs}"
                f" loss {p.loss:.3f}{test}  elapsed {elapsed:4.0f}s eta {eta:4.0f}s")
        phase = (event.phase, event.seed)
        if self.tty:
            end = "\n" if phase != self.last_phase and self.last_phase else ""
            self.stream.write(f"{end}\r{line}")
        elif p.test_acc is not None and (round(p.epoch) % max(1, p.epochs // 5) == 0 or p.epoch == p.epochs):
            self.stream.write(line + "\n")  # about five lines per model when not on a terminal
        self.stream.flush()
        self.last_phase = phase


def format_table(result: dict[str, Any]) -> str:
    """The comparison as a plain-text table."""
    rows = [f"{'model':<10} {'accuracy (mean ± std)':>22} {'seeds':>5} {'params':>10} {'MFLOPs/img':>10} {'seconds':>8}"]
    for role, m in result["models"].items():
        rows.append(f"{role:<10} {m['accuracy_mean']:>14.2%} ± {m['accuracy_std']:.2%} {len(m['accuracies']):>5}"
                    f" {m['params']:>10,} {m['flops'] / 1e6:>10.2f} {m['seconds']:>8.1f}")
    d, s = result["models"]["distilled"], result["models"]["scratch"]
    rows.append(f"distilled - scratch: {100 * (d['accuracy_mean'] - s['accuracy_mean']):+.2f} points; "
                f"total {result['total_seconds']:.1f} s")
    if "hint" in result:
        h = result["hint"]
        rows.append(f"distilled with hint (weight {h['weight']:g}, {h['loss']}): teacher layer {h['teacher']['layer']} "
                    f"{h['teacher']['shape']} <- student layer {h['student']['layer']} {h['student']['shape']} "
                    f"through a {h['projection']} ({h['projection_params']:,} params, training only)")
    return "\n".join(rows)


def prepare(cfg, data_dir: Path | None) -> int:
    """Point the loaders at --data-dir, give torch its threads and load the dataset once; returns the thread count."""
    from kd_core.data import load_dataset
    from kd_core.train import configure_threads

    if data_dir:
        os.environ[paths.DATA_ENV] = str(data_dir)
    threads = configure_threads()
    load_dataset(cfg.dataset)
    return threads


def _run(args: argparse.Namespace) -> int:
    """Run the experiment the flags describe, print the table, write JSON if asked."""
    from kd_core.experiment import run_experiment  # imports torch: only when needed

    cfg = config_from_args(args)
    started = time.perf_counter()
    threads = prepare(cfg, args.data_dir)
    print(f"{cfg.dataset}: teacher {cfg.teacher}, students {cfg.student}, T={cfg.temperature:g}, "
          f"alpha={cfg.alpha:g} (weight of the teacher's soft targets), {cfg.seeds} seed(s), {threads} threads",
          file=sys.stderr)
    result = run_experiment(cfg, on_event=ProgressPrinter(), use_cache=not args.no_cache)
    print(file=sys.stderr)
    if result.get("cached"):
        print("(result from cache; --no-cache recomputes it)", file=sys.stderr)
    result = {**result, "preset": args.preset, "total_seconds": time.perf_counter() - started
              if not result.get("cached") else result["total_seconds"]}
    print(format_table(result))
    if args.json:
        store.write_report(args.json, result)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and dispatch; user errors print a message and return 2, never a traceback."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "datasets":
            return _print_datasets(args.data_dir)
        if args.command == "experiment":
            return lab_cli.run(args)
        if args.command == "lm":
            return lm_cli.run(args)
        if args.command == "compress":
            return compress_cli.run(args)
        return _run(args)
    except (DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. --json names a folder or an unwritable place
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; finished teachers and results stay cached", file=sys.stderr)
        return 130
