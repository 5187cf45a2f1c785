"""`python -m kd_core compress [--sparsity S] [--quantize] [--json PATH]`: distil -> prune -> quantize, one row per stage.

Trains (or loads from the cache) the preset's teacher and students, prunes the distilled student, fine-tunes
it for an epoch with the KD loss and, to compare, with labels alone, optionally quantizes to int8, then
measures every model in this one process and prints a table. torch is imported only when it runs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from kd_core import paths
from kd_core.cli.common import ProgressPrinter, finish, int_at_least, positive_int, prepare, table
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
    from kd_core.config import PRESETS

    _runs = int_at_least(20)  # timed runs per latency figure: medians need at least 20

    p = sub.add_parser("compress", help="distil -> prune -> quantize: size, FLOPs, latency, memory and accuracy "
                                        "per stage")
    p.add_argument("--preset", default="classroom", choices=sorted(PRESETS))
    p.add_argument("--dataset", default="mnist-sample", choices=sorted(DATASETS))
    p.add_argument("--epochs", type=positive_int, metavar="N", help="epochs for the teacher and both students (preset's if unset)")
    p.add_argument("--train-limit", type=positive_int, metavar="N", help="cap on training images for teacher and students")
    p.add_argument("--sparsity", type=_fraction, default=0.5,
                   help="fraction of conv/linear weights pruned by magnitude (default 0.5)")
    p.add_argument("--finetune-epochs", type=int_at_least(0), default=1, metavar="N",
                   help="epochs of fine-tuning after pruning, with KD and (to compare) with CE (default 1)")
    p.add_argument("--quantize", action="store_true", help="add int8 rows (post-training static quantization)")
    p.add_argument("--runs", type=_runs, default=30, help="timed runs per latency figure after warm-up (default 30)")
    p.add_argument("--batch", type=int_at_least(2), default=256, help="batch size of the throughput figure (default 256)")
    p.add_argument("--no-onnx", action="store_true", help="skip writing ONNX files")
    p.add_argument("--export", type=Path, metavar="DIR", help="copy the exported model files into DIR")
    p.add_argument("--data-dir", type=Path, help=f"folder with IDX files (default ${paths.DATA_ENV})")
    p.add_argument("--no-cache", action="store_true", help="measure again (trained models still come from the cache)")
    p.add_argument("--json", type=Path, help="write the result (one row per stage) as JSON to this path")


def format_table(out: dict[str, Any]) -> str:
    """A compression result as a plain-text table: one row per model or stage, then what int8 and pruning changed."""
    from kd_core.compress.measure import nonzero_ms

    batch = out["compress"]["throughput_batch"]
    columns = [("model / stage", 44), ("acc %", 6), ("params", 8), ("nonzero", 8), ("size KB", 8), ("gzip KB", 8),
               ("MFLOPs", 7), ("ms/img b1 (min-max)", 21), (f"img/s b{batch} (min-max)", 24), ("mem KB", 8)]
    rows = [(r["name"], f"{100 * r['accuracy']:.2f}", f"{r['params']:,}", f"{r['nonzero_params']:,}",
             f"{r['size_bytes'] / 1024:.1f}", f"{r['size_gzip_bytes'] / 1024:.1f}", f"{r['flops'] / 1e6:.2f}",
             f"{lat['median_ms']:.3f} ({lat['min_ms']:.3f}-{lat['max_ms']:.3f})",
             f"{thr['median']:,.0f} ({thr['min']:,.0f}-{thr['max']:,.0f})", f"{r['peak_memory_bytes'] / 1024:.1f}")
            for r in out["rows"] for lat, thr in [(r["latency_ms"], r["throughput"])]]
    by_id = {r["id"]: r for r in out["rows"]}
    d = by_id["distilled"]
    notes = []
    if "distilled-int8" in by_id:
        q = by_id["distilled-int8"]
        notes.append(f"int8: {100 * (q['accuracy'] - d['accuracy']):+.2f} points, "
                     f"{d['size_bytes'] / q['size_bytes']:.2f}x smaller on disk, "
                     f"{d['latency_ms']['median_ms'] / nonzero_ms(q['latency_ms']['median_ms']):.2f}x the speed at batch 1")
    if "pruned-kd" in by_id:
        kd, ce, none = by_id["pruned-kd"], by_id["pruned-ce"], by_id["pruned"]
        notes.append(f"pruned {out['compress']['sparsity']:.0%}: no fine-tune {100 * (none['accuracy'] - d['accuracy']):+.2f},"
                     f" CE epoch {100 * (ce['accuracy'] - d['accuracy']):+.2f}, KD epoch "
                     f"{100 * (kd['accuracy'] - d['accuracy']):+.2f} points vs the unpruned distilled student")
    notes.append(f"latency: median of {out['compress']['latency_runs']} timed runs after warm-up, "
                 f"{out['threads']} torch thread(s), all in one process; mem = peak inference memory at batch 1")
    notes.extend(f"note: {n}" for n in out.get("notes", []))
    return table(columns, rows, notes)


def run(args: argparse.Namespace) -> int:
    """Run the compression pipeline the flags describe; print the table; write JSON / copy exports if asked."""
    from kd_core.compress import CompressConfig, compress, export_folder
    from kd_core.config import preset

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
    out = compress(cfg, ccfg, on_event=ProgressPrinter(), use_cache=not args.no_cache)
    if args.export:
        args.export.mkdir(parents=True, exist_ok=True)
        for files in out["exports"].values():
            for name in files.values():
                shutil.copy2(export_folder(out["key"]) / name, args.export / name)
        print(f"exported model files copied to {args.export}", file=sys.stderr)
    return finish(out, format_table(out), args.json, cached_note=f"measured {out['measured_at']}, from the cache")
