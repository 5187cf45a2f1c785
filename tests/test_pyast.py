"""kd_core.pyast: retrying CPython 3.11's AST race (retry_race), and the two places that retry with it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pytest

from kd_core import pyast


def flaky(errors: list[BaseException]) -> tuple[Callable[[], str], list[int]]:
    """A function that raises `errors` one per call, then returns "ok"; and the list its calls are counted in."""
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "ok"

    return fn, calls


def race() -> SystemError:
    return SystemError(f"{pyast.RACE} (start: 3 != end: 4)")  # what CPython 3.11 says, with its counts


def test_retry_race_calls_again_after_the_race_and_returns_the_result():
    fn, calls = flaky([race(), race()])
    assert pyast.retry_race(fn, 3) == "ok" and len(calls) == 3
    fn, calls = flaky([])
    assert pyast.retry_race(fn, 3) == "ok" and len(calls) == 1


@pytest.mark.parametrize("error", [SystemError("some other SystemError"), ValueError(pyast.RACE), KeyError("x")])
def test_retry_race_re_raises_anything_else_at_once(error):
    fn, calls = flaky([error])
    with pytest.raises(type(error)) as raised:
        pyast.retry_race(fn, 5)
    assert raised.value is error and len(calls) == 1


def test_retry_race_re_raises_the_race_after_the_last_attempt():
    errors = [race() for _ in range(3)]
    fn, calls = flaky(errors)
    with pytest.raises(SystemError, match=pyast.RACE) as raised:
        pyast.retry_race(fn, 3)
    assert raised.value is errors[-1] and len(calls) == 3
    fn, calls = flaky([race()])
    with pytest.raises(SystemError, match=pyast.RACE):
        pyast.retry_race(fn, 1)  # one attempt: no retry
    assert len(calls) == 1


def test_onnx_export_retries_the_race_up_to_its_attempts(monkeypatch):
    import torch

    from kd_core.compress import exporting

    program = SimpleNamespace(model_proto=SimpleNamespace(SerializeToString=lambda: b"onnx"))
    export, calls = flaky([race()] * (exporting.AST_RACE_RETRIES - 1))
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: export() and program)
    assert exporting.onnx_bytes(torch.nn.Linear(2, 2)) == b"onnx" and len(calls) == exporting.AST_RACE_RETRIES
    export, calls = flaky([race()] * exporting.AST_RACE_RETRIES)
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: export() and program)
    with pytest.raises(SystemError, match=pyast.RACE):
        exporting.onnx_bytes(torch.nn.Linear(2, 2))
    assert len(calls) == exporting.AST_RACE_RETRIES


def test_compile_page_retries_the_race_up_to_its_attempts(monkeypatch, tmp_path):
    import streamlit.runtime.scriptrunner as scriptrunner

    from ui import lifecycle

    page = SimpleNamespace(_page=Path(tmp_path / "page.py"))
    for errors, fails in (([race()] * (lifecycle.COMPILE_ATTEMPTS - 1), False),
                          ([race()] * lifecycle.COMPILE_ATTEMPTS, True)):
        compile_script, calls = flaky(errors)
        ctx = SimpleNamespace(pages_manager=SimpleNamespace(get_page_script_byte_code=lambda path: compile_script()))
        monkeypatch.setattr(scriptrunner, "get_script_run_ctx", lambda: ctx)
        if fails:
            with pytest.raises(SystemError, match=pyast.RACE):
                lifecycle.compile_page(page)
        else:
            assert lifecycle.compile_page(page) is None
        assert len(calls) == lifecycle.COMPILE_ATTEMPTS
