"""Parsing Python source safely from several threads at once.

CPython 3.11's ast module keeps one recursion counter per interpreter, so two threads building ASTs at the same
time can fail with "SystemError: AST constructor recursion depth mismatch" (100 sessions on one server hit it:
pages that built the standalone script parsed kd_core's sources on every run). Every ast.parse of kd_core goes
through `parse` and its one lock; a third party's parse that races (onnxscript's, in the ONNX export) is retried
where it is called, recognised by RACE.
"""

from __future__ import annotations

import ast
import threading

RACE = "AST constructor recursion depth mismatch"  # the SystemError CPython 3.11 raises when two ASTs race
_LOCK = threading.Lock()


def parse(source: str | bytes, filename: str = "<unknown>") -> ast.Module:
    """ast.parse(source), one thread at a time."""
    with _LOCK:
        return ast.parse(source, filename)
