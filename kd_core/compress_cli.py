"""`python -m kd_core compress [--sparsity S] [--quantize] [--json PATH]`: distil -> prune -> quantize, one row per stage.

Trains (or loads from the cache) the preset's teacher and students, prunes the distilled student, fine-tunes
it for an epoch with the KD loss and, to compare, with labels alone, optionally quantizes to int8, then
measures every model in this one process and prints a table. torch is imported only when it runs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from kd_core import paths, store
from kd_core.data import DATASETS


def _fraction(text: str) -> float:
    """argparse type: a sparsity in [0, 1), as 0.5 or 50%."""
    raw = text.strip()
    try:
        value = float(raw.rstrip("%")) / (100 if raw.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"sparsity {text!r} must be at least 0 and below 1 (e.g. 0.5 or 50%)")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the `compress` sub-command."""
    from kd_core.cli import int_at_least
    from kd_core.config import PRESETS

    _runs = int_at_least(20)  # timed runs per latency figure: medians need at least 20

    p = sub.add_parser("compress", help="distil -> prune -> quantize: size, FLOPs, latency, memory and accuracy "
                                        "per stage")
    p.add_argument("--preset", default="classroom", choices=sorted(PRESETS))
    p.add_argument("--dataset", default="mnist-sample", choices=sorted(DATASETS))
    p.add_argument("--epochs", type=int, metavar="N", help="epochs for the teacher and both students (preset's if unset)")
    p.add_argument("--train-limit", type=int, metavar="N", help="cap on training images for teacher and students")
    p.add_argument("--sparsity", type=_fraction, default=0.5,
                   help="fraction of conv/linear weights pruned by magnitude (default 0.5)")
    p.add_argument("--finetune-epochs", type=int, default=1, choices=range(0, 11), metavar="N",
                   help="epochs of fine-tuning after pruning, with KD and (to compare) with CE (default 1)")
    p.add_argument("--quantize", action="store_true", help="add int8 rows (post-training static quantization)")
    p.add_argument("--runs", type=_runs, default=30, help="timed runs per latency figure after warm-up (default 30)")
    p.add_argument("--batch", type=int, default=256, help="batch size of the throughput figure (default 256)")
    p.add_argument("--no-onnx", action="store_true", help="skip writing ONNX files")
    p.add_argument("--export", type=Path, metavar="DIR", help="copy the exported model files into DIR")
    p.add_argument("--data-dir", type=Path, help=f"folder with IDX files (default ${paths.DATA_ENV})")
    p.add_argument("--no-cache", action="store_true", help="measure again (trained models still come from the cache)")
    p.add_argument("--json", type=Path, help="write the result (one row per stage) as JSON to this path")


class _Printer:
    """Experiment and compression progress as lines on stderr."""

    def __init__(self) -> None:
        self.last = ""
        self.started = time.perf_counter()

    def __call__(self, event) -> None:
        text = getattr(event, "text", None) or f"training the {event.phase} model"
        if "step" in text and not sys.stderr.isatty():
            return
        if text != self.last:
            end = "\r" if sys.stderr.isatty() else "\n"
            sys.stderr.write(f"[{event.overall:6.1%}] {text}  ({time.perf_counter() - self.started:.0f} s){end}")
            sys.stderr.flush()
            self.last = text


def run(args: argparse.Namespace) -> int:
    """Run the compression pipeline the flags describe; print the table; write JSON / copy exports if asked."""
    from kd_core.compress import CompressConfig, compress, export_folder, format_table
    from kd_core.cli import prepare
    from kd_core.config import preset

    if args.batch < 2:
        raise ValueError("--batch must be at least 2")
    changes = {"dataset": args.dataset}
    if args.epochs:
        changes.update(teacher_epochs=args.epochs, student_epochs=args.epochs)
    if args.train_limit:
        changes.update(teacher_train_limit=args.train_limit, student_train_limit=args.train_limit)
    cfg = preset(args.preset).replace(**changes)
    ccfg = CompressConfig(sparsity=args.sparsity, finetune_epochs=args.finetune_epochs, quantize=args.quantize,
                          latency_runs=args.runs, throughput_batch=args.batch, export_onnx=not args.no_onnx)
    threads = prepare(cfg, args.data_dir)
    print(f"{cfg.dataset}, preset {args.preset}: student {cfg.student}, sparsity {ccfg.sparsity:.0%}, "
          f"int8 {'on' if ccfg.quantize else 'off (--quantize adds it)'}, {threads} torch threads", file=sys.stderr)
    out = compress(cfg, ccfg, on_event=_Printer(), use_cache=not args.no_cache)
    if out.get("cached"):
        print(f"(measured {out['measured_at']}, from cache; --no-cache measures again)", file=sys.stderr)
    print(format_table(out))
    if args.export:
        args.export.mkdir(parents=True, exist_ok=True)
        for files in out["exports"].values():
            for name in files.values():
                shutil.copy2(export_folder(out["key"]) / name, args.export / name)
        print(f"exported model files copied to {args.export}", file=sys.stderr)
    if args.json:
        store.write_report(args.json, out)
    return 0
