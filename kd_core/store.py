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
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np

from kd_core import paths, schema

if TYPE_CHECKING:  # torch is imported where used (checkpoints), so cache look-ups stay light
    import torch

log = logging.getLogger("kd_core.store")
CODE_VERSION = 3  # bump when training code changes what a cached result would contain (3: kd_core.convgrad)
STALE_TEMP_SECONDS = 600  # a temp file this old was left by a writer that was killed; it is deleted
REJECTED_SUFFIX = ".rejected"  # a cache file that fails its check is moved aside under this name, kept for inspection
# The only module state: what was reported in this process, so each is reported once, not per read: folders
# whose writes failed; rejected files that could not be moved aside; results whose model files are gone.
_reported_unwritable: set[str] = set()
_reported_rejected: set[str] = set()
_reported_missing: set[str] = set()
# And, per thread of work (a job), where the reasons its failed writes go while recording_write_failures is on.
_write_failures: ContextVar[list[str] | None] = ContextVar("kd_lab_write_failures", default=None)


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


@contextmanager
def recording_write_failures() -> Iterator[list[str]]:
    """Collect in the yielded list why each cache write made in this context (a job's thread) failed."""
    failures: list[str] = []
    token = _write_failures.set(failures)
    try:
        yield failures
    finally:
        _write_failures.reset(token)


def atomic_write(path: Path, data: bytes) -> bool:
    """Write `data` to `path` through a temp file and rename; False (and a warning) if the folder is unwritable.

    The reason of a failed write also goes to the list of an enclosing recording_write_failures (the job's).

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
        if (failures := _write_failures.get()) is not None:
            failures.append(exc.strerror or str(exc))
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


def _leaves_cache(path: Path) -> bool:
    """Whether `path` is in the cache folder by name but a symlink on the way leads outside it."""
    root = paths.cache_dir()
    if not (path == root or os.path.abspath(path).startswith(os.path.join(os.path.abspath(root), ""))):
        return False  # not a cache file (a test's or a user's own path)
    return not paths.resolves_inside(path, root)


def reject(path: Path, problem: str) -> None:
    """Report a cache file that fails its check and move it aside to `<name>.rejected` (kept for inspection),
    so it reads as absent and is recomputed. Once per file: after the move there is nothing left to report;
    when the folder is read-only the file stays and is reported once per process."""
    aside = path.with_name(path.name + REJECTED_SUFFIX)
    try:
        os.replace(path, aside)  # a symlink is moved itself, never its target
    except FileNotFoundError:
        return  # another reader moved it a moment ago (and reported it)
    except OSError as exc:
        if str(path) not in _reported_rejected:
            _reported_rejected.add(str(path))
            log.warning("rejected cache file %s (%s); it is ignored and recomputed (not moved aside: %s)", path,
                        problem, exc.strerror or exc)
        return
    log.warning("rejected cache file %s (%s); moved aside to %s, it will be recomputed", path, problem, aside.name)


def refused_link(path: Path) -> bool:
    """True (after reporting and moving it aside) when `path` is a cache file behind a symlink out of the cache."""
    if _leaves_cache(path):
        reject(path, "a symlink that leads outside the cache folder")
        return True
    return False


def missing_file(files: Iterable[Path]) -> Path | None:
    """The first of `files` that is not a readable regular file inside the cache folder, or None when all are.

    Cheap (a stat each, no read): what a result checks on every read for the model files it names.
    """
    root = paths.cache_dir()
    for path in files:
        try:
            if not (path.is_file() and paths.resolves_inside(path, root) and os.access(path, os.R_OK)):
                return path
        except OSError:
            return path
    return None


def report_missing(result_path: Path, missing: Path) -> None:
    """Say once per process that a result is ignored because a model file it names is gone."""
    what = f"{result_path}:{missing}"
    if what not in _reported_missing:
        _reported_missing.add(what)
        log.warning("ignoring cached result %s: %s is missing or unreadable; it will be recomputed",
                    result_path, missing)


def write_report(path: Path, payload: dict[str, Any]) -> None:
    """Write a CLI's JSON report to a user-chosen path (errors propagate: the user asked for this file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))


def save_json(path: Path, payload: dict[str, Any]) -> bool:
    """Atomically write a JSON document."""
    return atomic_write(path, json.dumps(payload, indent=1).encode())


def load_json(path: Path, check: schema.Check | None = None) -> dict[str, Any] | None:
    """A JSON document, or None when missing, corrupt or refused.

    Unreadable JSON is reported and removed. JSON that is not an object, a cache file behind a symlink out
    of the cache folder, or a document that fails `check` (kd_core.schema: types, finite numbers in range,
    structure) is reported once and moved aside (`reject`): either way it reads as absent and is recomputed.
    """
    if refused_link(path) or not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        _report_corrupt(path, exc)
        return None
    if not isinstance(payload, dict):  # well-formed, but not what any of our writers writes
        reject(path, f"a JSON {type(payload).__name__}, not an object")
        return None
    if check is not None:
        try:
            schema.validate(payload, check)
        except schema.SchemaError as exc:
            reject(path, str(exc))
            return None
    return payload


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Atomically write numpy arrays as an .npz file."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write(path, buffer.getvalue())


def load_npz(path: Path, keys: tuple[str, ...] = ()) -> dict[str, np.ndarray] | None:
    """Arrays from an .npz file (never unpickled), or None when missing, corrupt or without one of `keys`."""
    if refused_link(path) or not path.is_file():
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


def load_checkpoint(path: Path, meta_check: schema.Check | None = None
                    ) -> tuple[str, dict[str, torch.Tensor], dict[str, Any]] | None:
    """(model name, weights, metadata) loaded with weights_only=True, or None when missing, corrupt or refused
    (behind a symlink out of the cache, or metadata failing `meta_check`: moved aside as load_json does)."""
    if refused_link(path) or not path.is_file():
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
    except Exception as exc:  # torch raises many kinds on a damaged zip/pickle stream
        _report_corrupt(path, exc)
        return None
    if meta_check is not None:
        try:
            schema.validate(meta, meta_check)
        except schema.SchemaError as exc:
            reject(path, f"metadata {exc}")
            return None
    return str(payload["model"]), weights, meta
