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
