"""What every command shares: argument types, the one-time preamble, one progress printer, one table layout."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from kd_core import paths
from kd_core.estimate import eta_seconds


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


positive_int = int_at_least(1)


def finite_float(text: str) -> float:
    """argparse type: a finite float."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def prepare(cfg, data_dir: Path | None) -> int:
    """Point the loaders at --data-dir, give torch its threads and load the dataset once; returns the thread count.

    A --data-dir that lacks the dataset's IDX files is an error saying so (never a silent fall-back to
    another copy, such as Debian's Fashion-MNIST)."""
    from kd_core.data import load_dataset, require_in
    from kd_core.train import configure_threads

    if data_dir:
        require_in(cfg.dataset, data_dir)
        os.environ[paths.DATA_ENV] = str(data_dir)
    threads = configure_threads()
    load_dataset(cfg.dataset)
    return threads


def finish(result: dict[str, Any], table: str, json_path: Path | None, cached_note: str = "result from cache",
           say_cached: bool = True) -> int:
    """The end of every command: say when the result came from the cache, print its table, write JSON if asked."""
    from kd_core import store

    if say_cached and result.get("cached"):
        print(f"({cached_note}; --no-cache recomputes it)", file=sys.stderr)
    print(table)
    if json_path:
        store.write_report(json_path, result)
    return 0


class ProgressPrinter:
    """kd_core.tasks.Events as progress lines on stderr: rewritten in place on a terminal, a line per run otherwise.

    Training snapshots say what trains (part, model, seed, epoch, loss, test accuracy); a finished part
    says "done: ..."; a stage says in words what runs now.
    """

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty, self.started = self.stream.isatty(), time.perf_counter()
        self.last_text = ""

    def __call__(self, event) -> None:
        """Print one event."""
        elapsed = time.perf_counter() - self.started
        eta = eta_seconds((0.0, 0.0), elapsed, event.overall) or 0.0
        head = f"[{event.overall:6.1%}] "
        p = event.progress
        if event.phase == "part":
            self._line(f"{head}done: {event.step}{' (cached)' if (event.partial or {}).get('cached') else ''}"
                       f"  elapsed {elapsed:4.0f}s", final=True)
        elif p is None or event.text:
            if event.text != self.last_text:
                self._line(f"{head}{event.text}  elapsed {elapsed:4.0f}s", final=True)
                self.last_text = event.text
        else:
            test = f" test acc {p.test_acc:.1%}" if p.test_acc is not None else ""
            part = f"{event.step:<20} " if event.step else ""
            line = (f"{head}{part}{event.phase:<9} seed {event.seed} step {p.step}/{p.steps} epoch {p.epoch:5.2f}/"
                    f"{p.epochs:g} loss {p.loss:.3f}{test}  elapsed {elapsed:4.0f}s eta {eta:4.0f}s")
            self._line(line, final=p.step == p.steps)
        self.stream.flush()

    def _line(self, line: str, final: bool) -> None:
        """On a terminal rewrite the current line (keeping `final` ones); elsewhere write only `final` lines."""
        if self.tty:
            self.stream.write(f"\r{line}" + ("\n" if final else ""))
        elif final:
            self.stream.write(line + "\n")


def pct(value: float) -> str:
    """An accuracy fraction as a percentage with two decimals."""
    return f"{100 * value:.2f}%"


def table(columns: Sequence[tuple[str, int]], rows: Sequence[Sequence[Any]], notes: Sequence[str] = ()) -> str:
    """Plain-text table: a header of (title, width) columns, the first left-aligned, the others right-aligned,
    one line per row of already formatted cells, then free-text note lines."""
    def line(cells: Sequence[Any]) -> str:
        return " ".join(f"{str(c):<{w}}" if i == 0 else f"{str(c):>{w}}" for i, (c, (_, w)) in enumerate(zip(cells, columns)))

    return "\n".join([line([title for title, _ in columns]), *(line(r).rstrip() for r in rows), *notes])
