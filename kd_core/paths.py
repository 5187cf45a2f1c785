"""Where KD Lab keeps files: the cache folder and the optional local data folder (set by environment variables)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "KD_LAB_CACHE_DIR"
DATA_ENV = "KD_LAB_DATA_DIR"
MAX_NAME_BYTES = 255  # the longest file name most file systems allow


def cache_dir() -> Path:
    """The cache folder: $KD_LAB_CACHE_DIR, else ~/.cache/kd-lab."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "kd-lab"


def data_dir() -> Path | None:
    """The user's local IDX data folder from $KD_LAB_DATA_DIR, or None when unset."""
    configured = os.environ.get(DATA_ENV, "").strip()
    return Path(configured).expanduser() if configured else None


def inside(folder: Path, *parts: str) -> Path:
    """`folder` joined with `parts`, or ValueError when a part is empty, absolute, too long or holds a NUL byte,
    or ".." would lead out of `folder`. The check is on the names (symlinks the operator put there are followed)."""
    for part in parts:
        if not part or "\x00" in part or Path(part).is_absolute():
            raise ValueError(f"refused file name {part[:80]!r}: empty, absolute or with a NUL byte")
        if any(len(name.encode(errors="surrogateescape")) > MAX_NAME_BYTES for name in Path(part).parts):
            raise ValueError(f"refused file name {part[:80]!r}...: longer than {MAX_NAME_BYTES} bytes")
    path = folder.joinpath(*parts)
    if not os.path.abspath(path).startswith(os.path.join(os.path.abspath(folder), "")):
        raise ValueError(f"refused file name {'/'.join(parts)[:80]!r}: it leads outside {folder}")
    return path
