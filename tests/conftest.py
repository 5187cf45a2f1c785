"""Shared test set-up: a private cache folder per test session and a tiny, fast config."""

from __future__ import annotations

import os
import tempfile

import pytest

# Set before any kd_core import reads it: every test session gets its own empty cache.
os.environ.setdefault("KD_LAB_CACHE_DIR", tempfile.mkdtemp(prefix="kd-lab-test-cache-"))

from kd_core.config import preset  # noqa: E402


@pytest.fixture(scope="session")
def tiny_config():
    """The classroom preset shrunk to seconds: small teacher and student sets, one epoch each."""
    return preset("classroom").replace(teacher_train_limit=300, student_train_limit=100,
                                       teacher_epochs=1, student_epochs=2, batch_size=50)


@pytest.fixture()
def fresh_app(tmp_path, monkeypatch):
    """For AppTest: tiny runs, an empty cache folder, and no cached resources (runner, teacher outputs) from earlier tests.

    Jobs run in a child process as the app's do; a test that patches the engine in this process to inject a fault
    also sets kd_core.jobs.IN_PROCESS_ENV, so the patch reaches the job."""
    import streamlit as st
    import torch

    import ui

    monkeypatch.setenv("KD_LAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(ui.TINY_ENV, "1")
    st.cache_data.clear()
    st.cache_resource.clear()
    threads = torch.get_num_threads()
    yield
    ui.get_runner().close()  # its jobs stopped, its training process ended
    st.cache_resource.clear()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one torch thread is as fast, and far steadier when other processes share the cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
