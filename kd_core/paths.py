"""Where KD Lab keeps files: the cache folder and the optional local data folder (set by environment variables)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "KD_LAB_CACHE_DIR"
DATA_ENV = "KD_LAB_DATA_DIR"


def cache_dir() -> Path:
    """The cache folder: $KD_LAB_CACHE_DIR, else ~/.cache/kd-lab."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "kd-lab"


def data_dir() -> Path | None:
    """The user's local IDX data folder from $KD_LAB_DATA_DIR, or None when unset."""
    configured = os.environ.get(DATA_ENV, "").strip()
    return Path(configured).expanduser() if configured else None
