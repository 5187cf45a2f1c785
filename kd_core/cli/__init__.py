"""`python -m kd_core ...`: the practitioner's entry point and what benchmarks call.

- kd_core.cli.common:   argument types, the preamble every command runs, one progress printer, one table layout
- kd_core.cli.run:      `datasets` and `run` (the teacher -> distilled -> scratch comparison)
- kd_core.cli.lab:      `experiment NAME` (the dark-knowledge lab)
- kd_core.cli.lm:       `lm` (character-level language models)
- kd_core.cli.llm:      `llm` (a pretrained LLM's next-token dark knowledge)
- kd_core.cli.compress: `compress` (distil -> prune -> quantize, measured per stage)

Imports go one way: this package imports the command modules, which import kd_core.cli.common.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from kd_core.cli import compress, lab, llm, lm, run
from kd_core.cli.common import finite_float, int_at_least, positive_int
from kd_core.data import DatasetError

COMMANDS = {"datasets": run.print_datasets, "run": run.run, "experiment": lab.run, "lm": lm.run, "llm": llm.run,
            "compress": compress.run}


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = argparse.ArgumentParser(prog="python -m kd_core", description="KD Lab: knowledge distillation engine.")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (run, lab, lm, llm, compress):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and dispatch; user errors print a message and return 2, never a traceback."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. --json names a folder or an unwritable place
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; finished teachers and results stay cached", file=sys.stderr)
        return 130


__all__ = ["build_parser", "finite_float", "int_at_least", "main", "positive_int"]
