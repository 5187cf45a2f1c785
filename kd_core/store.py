"""Results and checkpoints on disk, keyed by config hash, written atomically, checked when read."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kd_core import paths

if TYPE_CHECKING:  # torch is imported where used (checkpoints), so cache look-ups stay light
    import torch

log = logging.getLogger("kd_core.store")
CODE_VERSION = 1  # bump when training code changes what a cached result would contain


def config_key(config: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable config (plus the code version)."""
    text = json.dumps({"config": config, "code": CODE_VERSION}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cache_path(*parts: str) -> Path:
    """A path inside the cache folder."""
    return paths.cache_dir().joinpath(*parts)


def atomic_write(path: Path, data: bytes) -> bool:
    """Write `data` to `path` through a temp file and rename; False (and a warning) if the folder is unwritable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
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
        log.warning("cache not written (%s): %s; continuing without caching", path, exc)
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
    except (OSError, ValueError) as exc:
        _report_corrupt(path, exc)
        return None


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Atomically write numpy arrays as an .npz file."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write(path, buffer.getvalue())


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """Arrays from an .npz file (never unpickled), or None when missing or corrupt."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, KeyError, EOFError) as exc:
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
        return str(payload["model"]), payload["state_dict"], json.loads(payload["meta_json"])
    except Exception as exc:  # torch raises many kinds on a damaged zip/pickle stream
        _report_corrupt(path, exc)
        return None
