"""`python -m kd_core lm ...`: teacher -> distilled -> scratch character-level language models, compared."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kd_core.cli.common import ProgressPrinter, finish, finite_float, positive_int, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the `lm` command to the CLI's subparsers."""
    from kd_core.lm import METHODS

    lm = sub.add_parser("lm", help="distillation for a character-level language model (teacher, distilled, scratch)",
                        description="Train a small causal transformer teacher on a text, then per seed a much "
                                    "smaller student distilled from it and one from scratch (same start, same data "
                                    "order); print validation bits per character, parameters and generation speed.")
    lm.add_argument("--corpus", type=Path, help="a UTF-8 .txt file (default: the docstrings of Python's stdlib)")
    lm.add_argument("--temperature", type=finite_float, help="T for the soft targets")
    lm.add_argument("--alpha", type=finite_float, help="weight of the soft (teacher) term, 0..1")
    lm.add_argument("--method", choices=sorted(METHODS), help="forward KL, reverse KL or sequence-level KD")
    lm.add_argument("--seeds", type=positive_int, help="student seeds (default 3)")
    lm.add_argument("--student-steps", type=positive_int)
    lm.add_argument("--teacher-steps", type=positive_int)
    lm.add_argument("--tiny", action="store_true", help="a run of seconds (small corpus and models), for a smoke test")
    lm.add_argument("--no-cache", action="store_true", help="recompute the result (a cached teacher is still used)")
    lm.add_argument("--json", type=Path, help="write the result as JSON to this path")


def config_from_args(args: argparse.Namespace):
    """The LMConfig the flags describe."""
    from kd_core.lm import TINY, LMConfig, register_text, text_from_upload

    cfg = LMConfig().replace(**TINY) if args.tiny else LMConfig()
    changes: dict[str, Any] = {}
    if args.corpus is not None:
        try:
            data = args.corpus.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {args.corpus}: {exc.strerror}") from None
        changes["corpus"] = register_text(text_from_upload(data, str(args.corpus)))
    for flag in ("temperature", "alpha", "method", "seeds", "student_steps", "teacher_steps"):
        if getattr(args, flag) is not None:
            changes[flag] = getattr(args, flag)
    return cfg.replace(**changes)


def format_table(result: dict[str, Any]) -> str:
    """The comparison as a plain-text table."""
    columns = [("model", 10), ("val bits/char (mean ± std)", 27), ("perplexity", 10), ("seeds", 5), ("params", 9),
               ("chars/s", 8)]
    rows = [(role, f"{m['bpc_mean']:.3f} ± {m['bpc_std']:.3f}", f"{m['perplexity_mean']:.2f}", len(m["val_bpc"]),
             f"{m['params']:,}", f"{m['chars_per_s']:.0f}") for role, m in result["models"].items()]
    verdict = "every" if result["every_distilled_below_every_scratch"] else "NOT every"
    notes = [f"distilled - scratch: {-result['gap_bpc']:+.3f} bits/char (negative: distillation helped; {verdict} "
             f"distilled seed below every scratch seed); student generates {result['speedup']:.1f}x faster than the "
             f"teacher; total {result['total_seconds']:.0f} s"]
    return table(columns, rows, notes)


def run(args: argparse.Namespace) -> int:
    """Run the LM comparison the flags describe, print the table, write JSON if asked."""
    from kd_core.lm import corpus_title, load_corpus, run_lm

    cfg = config_from_args(args)
    corpus = load_corpus(cfg.corpus)
    print(f"{corpus_title(cfg.corpus)}\n{len(corpus.train) + len(corpus.val):,} characters, vocabulary "
          f"{corpus.vocab_size}; T={cfg.temperature:g}, alpha={cfg.alpha:g} (weight of the teacher's soft targets), "
          f"method {cfg.method}, {cfg.seeds} seed(s)", file=sys.stderr)
    result = run_lm(cfg, on_event=ProgressPrinter(), use_cache=not args.no_cache)
    return finish(result, format_table(result), args.json)
