"""Parsing Python source safely from several threads at once.

CPython 3.11's ast module keeps one recursion counter per interpreter, so two threads building ASTs at the same
time can fail with "SystemError: AST constructor recursion depth mismatch" (100 sessions on one server hit it:
pages that built the standalone script parsed kd_core's sources on every run). Every ast.parse of kd_core goes
through `parse` and its one lock; a parse that is not ours and races (onnxscript's, in the ONNX export; Streamlit's
compile of a page) is retried with `retry_race`, which recognises it by RACE.
"""

from __future__ import annotations

import ast
import threading
from typing import Callable, TypeVar

RACE = "AST constructor recursion depth mismatch"  # the SystemError CPython 3.11 raises when two ASTs race
_LOCK = threading.Lock()
T = TypeVar("T")


def parse(source: str | bytes, filename: str = "<unknown>") -> ast.Module:
    """ast.parse(source), one thread at a time."""
    with _LOCK:
        return ast.parse(source, filename)


def retry_race(fn: Callable[[], T], attempts: int) -> T:
    """fn(), tried up to `attempts` times in all while it raises RACE's SystemError; others, or the last, propagate."""
    for _ in range(attempts - 1):
        try:
            return fn()
        except SystemError as exc:
            if RACE not in str(exc):
                raise
    return fn()
