"""Results and checkpoints on disk, keyed by config hash, written atomically, checked when read."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kd_core import paths

if TYPE_CHECKING:  # torch is imported where used (checkpoints), so cache look-ups stay light
    import torch

log = logging.getLogger("kd_core.store")
CODE_VERSION = 1  # bump when training code changes what a cached result would contain
STALE_TEMP_SECONDS = 600  # a temp file this old was left by a writer that was killed; it is deleted
# The only module state: folders whose writes failed in this process, so each is reported once, not per file.
_reported_unwritable: set[str] = set()


def config_key(config: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable config (plus the code version)."""
    text = json.dumps({"config": config, "code": CODE_VERSION}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cache_path(*parts: str) -> Path:
    """A path inside the cache folder; ValueError for a part that would lead outside it (paths.inside)."""
    return paths.inside(paths.cache_dir(), *parts)


def check_writable(folder: Path | None = None) -> str | None:
    """Why `folder` (default: the cache folder) cannot hold files, or None when a test write there succeeds."""
    folder = paths.cache_dir() if folder is None else folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".write-check.") as handle:
            handle.write(b"kd-lab")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _remove_stale_temps(folder: Path) -> None:
    """Delete temp files in `folder` left by killed writers (older than STALE_TEMP_SECONDS); never read anyway."""
    cutoff = time.time() - STALE_TEMP_SECONDS
    for stale in folder.glob(".*.tmp"):
        try:
            if stale.stat().st_mtime < cutoff:
                stale.unlink()
        except OSError:
            pass  # another process removed it, or the folder is read-only: harmless


def _report_unwritable(path: Path, exc: OSError) -> None:
    """Warn that a cache write failed: once per folder (the cache root when `path` is in it) and reason."""
    root = paths.cache_dir()
    folder = root if root == path or root in path.parents else path.parent
    what = f"{folder}: {exc.strerror or exc}"
    if what in _reported_unwritable:
        log.debug("cache not written (%s): %s", path, exc)
        return
    _reported_unwritable.add(what)
    log.warning("cache not written (%s): %s; continuing without caching (runs work but are not kept)", path, exc)


def atomic_write(path: Path, data: bytes) -> bool:
    """Write `data` to `path` through a temp file and rename; False (and a warning) if the folder is unwritable.

    A reader sees the old file or the whole new one, never a part: a writer killed midway leaves only a
    `.NAME.*.tmp` file, which no reader opens and a later write into the same folder deletes once it is stale.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        _report_unwritable(path, exc)
        return False
    return True


def _report_corrupt(path: Path, exc: Exception) -> None:
    """Log that a cached file is unusable and remove it so it is recomputed."""
    log.warning("ignoring corrupt cache file %s (%s); it will be recomputed", path, exc)
    try:
        path.unlink()
    except OSError:
        pass


def write_report(path: Path, payload: dict[str, Any]) -> None:
    """Write a CLI's JSON report to a user-chosen path (errors propagate: the user asked for this file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))


def save_json(path: Path, payload: dict[str, Any]) -> bool:
    """Atomically write a JSON document."""
    return atomic_write(path, json.dumps(payload, indent=1).encode())


def load_json(path: Path) -> dict[str, Any] | None:
    """A JSON document, or None when missing or corrupt (corrupt ones are reported and removed)."""
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
        if not isinstance(payload, dict):
            raise ValueError("not a JSON object")
        return payload
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        _report_corrupt(path, exc)
        return None


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Atomically write numpy arrays as an .npz file."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write(path, buffer.getvalue())


def load_npz(path: Path, keys: tuple[str, ...] = ()) -> dict[str, np.ndarray] | None:
    """Arrays from an .npz file (never unpickled), or None when missing, corrupt or without one of `keys`."""
    if not path.is_file():
        return None
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with loaded as archive:
            arrays = {name: archive[name] for name in archive.files}
        if not all(isinstance(a, np.ndarray) for a in arrays.values()):
            raise ValueError("the archive holds files that are not arrays")
        if missing := sorted(set(keys) - set(arrays)):
            raise ValueError(f"arrays {missing} are missing")
        return arrays
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        _report_corrupt(path, exc)
        return None


def save_checkpoint(path: Path, model_name: str, state_dict: dict[str, torch.Tensor],
                    meta: dict[str, Any]) -> bool:
    """Atomically save weights with the model name and JSON metadata, so the file rebuilds its model."""
    import torch

    buffer = io.BytesIO()
    torch.save({"model": model_name, "state_dict": state_dict, "meta_json": json.dumps(meta)}, buffer)
    return atomic_write(path, buffer.getvalue())


def load_checkpoint(path: Path) -> tuple[str, dict[str, torch.Tensor], dict[str, Any]] | None:
    """(model name, weights, metadata) loaded with weights_only=True, or None when missing or corrupt."""
    if not path.is_file():
        return None
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict):
            raise ValueError(f"holds a {type(payload).__name__}, not a checkpoint")
        weights, meta = payload["state_dict"], json.loads(payload["meta_json"])
        if not (isinstance(weights, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                  for k, v in weights.items()) and isinstance(meta, dict)):
            raise ValueError("not a checkpoint: weights must map names to tensors, metadata must be an object")
        return str(payload["model"]), weights, meta
    except Exception as exc:  # torch raises many kinds on a damaged zip/pickle stream
        _report_corrupt(path, exc)
        return None
