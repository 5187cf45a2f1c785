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


def resolves_inside(path: Path, folder: Path) -> bool:
    """Whether `path`, every symlink on the way followed, lands inside `folder` (itself resolved the same way).

    A cache folder that is itself a link (say /tmp to /private/tmp) is fine; a file or subfolder in it that
    links elsewhere is not.
    """
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))
    except (OSError, ValueError):  # a link loop, or a name the OS refuses
        return False


def plain_name(name: object) -> str:
    """`name` when it is one plain file name (no folder separator, not "." or "..", no NUL, at most
    MAX_NAME_BYTES), else ValueError. For file names read back from the cache, which are joined to a folder."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name \
            or "\x00" in name or len(name.encode(errors="surrogateescape")) > MAX_NAME_BYTES:
        shown = repr(name)[:80] if isinstance(name, str) else type(name).__name__
        raise ValueError(f"refused file name {shown}: not one plain file name")
    return name


def inside(folder: Path, *parts: str, resolved: bool = False) -> Path:
    """`folder` joined with `parts`, or ValueError when a part is empty, absolute, too long or holds a NUL byte,
    or ".." would lead out of `folder`. The check is on the names; with `resolved`, the path must also land
    inside `folder` once symlinks are followed (resolves_inside): for paths that are read, never created."""
    for part in parts:
        if not part or "\x00" in part or Path(part).is_absolute():
            raise ValueError(f"refused file name {part[:80]!r}: empty, absolute or with a NUL byte")
        if any(len(name.encode(errors="surrogateescape")) > MAX_NAME_BYTES for name in Path(part).parts):
            raise ValueError(f"refused file name {part[:80]!r}...: longer than {MAX_NAME_BYTES} bytes")
    path = folder.joinpath(*parts)
    if not os.path.abspath(path).startswith(os.path.join(os.path.abspath(folder), "")):
        raise ValueError(f"refused file name {'/'.join(parts)[:80]!r}: it leads outside {folder}")
    if resolved and not resolves_inside(path, folder):
        raise ValueError(f"refused file name {'/'.join(parts)[:80]!r}: a symlink leads outside {folder}")
    return path
