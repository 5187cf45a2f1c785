"""Bad input at every entry point: malformed, oversized, empty and hostile values get a clear message, never a
traceback, a hang, a huge allocation or the unpickling of untrusted bytes. Parsers are tried with hypothesis.

Entry points: IDX dataset files and $KD_LAB_DATA_DIR, CLI flags, $KD_LAB_CACHE_DIR and $KD_LAB_TINY, the language
page's text upload, the digit page's image upload, checkpoint and cache files, names that become cache paths, and
user text on the pages. (The shareable link's parameters are tried in tests/test_link_and_lesson.py.)
"""

from __future__ import annotations

import argparse
import ast
import gzip
import io
import os
import pickle
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import ui
from kd_core import cli, data, lm, paths, store
from kd_core.data import DatasetError, read_idx

ROOT = Path(__file__).resolve().parent.parent
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def idx_bytes(array: np.ndarray) -> bytes:
    """`array` as an IDX file of unsigned bytes."""
    return bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()


GOOD_IMAGES = idx_bytes(np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28))


# ----------------------------------------------------------------------------------- IDX files

@FAST
@given(raw=st.binary(max_size=600), gz=st.booleans())
@example(raw=b"", gz=False)
@example(raw=b"\x00\x00\x08\x03", gz=False)
def test_any_bytes_parse_or_raise_dataset_error(tmp_path, raw, gz):
    path = tmp_path / "f"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    try:
        parsed = read_idx(path, 3)
    except DatasetError as exc:
        assert str(path) in str(exc)
    else:
        assert parsed.ndim == 3 and parsed.dtype == np.uint8 and parsed.size == len(raw) - 16


@FAST
@given(cut=st.integers(1, len(GOOD_IMAGES)), gz=st.booleans())
def test_every_truncation_of_a_valid_file_is_refused(tmp_path, cut, gz):
    raw = GOOD_IMAGES[:-cut]
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte"):
        read_idx(path, 3)


@FAST
@given(shape=st.tuples(*[st.integers(0, 2**32 - 1)] * 3), body=st.binary(max_size=64))
@example(shape=(2**31, 2**31, 4), body=b"")        # 2**64: wraps to 0 in int64 arithmetic
@example(shape=(2**32 - 1,) * 3, body=b"x")
def test_hostile_dimensions_are_refused_before_any_allocation(tmp_path, shape, body):
    path = tmp_path / "f"
    path.write_bytes(bytes([0, 0, 8, 3]) + b"".join(struct.pack(">I", d) for d in shape) + body)
    tracemalloc.start()
    try:
        read_idx(path, 3)
    except DatasetError:
        pass
    else:
        assert int(np.prod(shape)) == len(body) > 0
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 4_000_000  # the declared size may be up to 100 MB; memory follows the real bytes


def test_gzip_bomb_is_not_decompressed_past_the_declared_size(tmp_path):
    """A 3 KB .gz that would inflate to 300 MB, behind a header that declares 1,000 images."""
    header = bytes([0, 0, 8, 3]) + b"".join(struct.pack(">I", d) for d in (1000, 28, 28))
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
    chunks = [packer.compress(header)] + [packer.compress(bytes(1_000_000)) for _ in range(300)]
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(b"".join(chunks) + packer.flush())
    assert bomb.stat().st_size < 400_000
    tracemalloc.start()
    with pytest.raises(DatasetError, match="more than 784000 data bytes"):
        read_idx(bomb, 3)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10_000_000       # about twice the declared 784 KB, not 300 MB


def test_declared_size_over_the_limit_is_refused(tmp_path):
    path = tmp_path / "huge"
    path.write_bytes(bytes([0, 0, 8, 3]) + b"".join(struct.pack(">I", d) for d in (200_000, 28, 28)))
    with pytest.raises(DatasetError, match="declares"):
        read_idx(path, 3)


def _garbage_idx_folder(folder: Path) -> Path:
    """The four MNIST file names, holding random bytes."""
    rng = np.random.default_rng(0)
    for split in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            (folder / f"{split}-{kind}-ubyte").write_bytes(rng.bytes(5000))
    return folder


def test_data_dir_with_garbage_files_gives_a_message_naming_the_file(tmp_path, monkeypatch, capsys):
    folder = _garbage_idx_folder(tmp_path)
    monkeypatch.setenv(paths.DATA_ENV, str(folder))
    data.load_dataset.cache_clear()
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte: not an IDX file"):
        data.load_dataset("mnist", download=False)
    assert cli.main(["run", "--dataset", "mnist", "--data-dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not an IDX file" in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["", "   ", "/nonexistent/kd-lab-data", "a-file", "relative/dir"])
def test_data_dir_missing_or_a_file_says_how_to_get_the_data(value, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv(paths.DATA_ENV, value)
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", tmp_path / "nowhere")
    data.load_dataset.cache_clear()
    with pytest.raises(DatasetError, match="was not found locally"):
        data.load_dataset("mnist", download=False)
    assert data.availability("mnist")[0] is False


# ----------------------------------------------------------------------------------- CLI flags

@FAST
@given(text=st.text(max_size=50) | st.sampled_from(["-1", "0", "1e3", "0x10", "nan", "inf", "9" * 5000, "٣",
                                                    "1_000", " 7 ", "all", "ALL"]))
def test_number_flag_types_accept_only_valid_numbers(text):
    for parse, minimum in ((cli.int_at_least(1), 1), (cli.int_at_least(10, allow_all=True), 10)):
        try:
            value = parse(text)
        except argparse.ArgumentTypeError as exc:
            assert str(exc)                                   # a message, shown by argparse with exit 2
        else:
            assert value is None and text.strip().lower() == "all" or isinstance(value, int) and value >= minimum
    try:
        number = cli.finite_float(text)
    except argparse.ArgumentTypeError as exc:
        assert "number" in str(exc)
    else:
        assert np.isfinite(number)


@pytest.mark.parametrize("argv, message", [
    (["run", "--epochs", "-1"], "must be at least 1"),
    (["run", "--seeds", "0"], "must be at least 1"),
    (["run", "--train-limit", "1e9"], "is not an integer"),
    (["run", "--alpha", "nan"], "is not a finite number"),
    (["run", "--temperature", "1e999"], "is not a finite number"),
    (["run", "--batch-size", ""], "is not an integer"),
    (["run", "--dataset", "../../etc/passwd"], "invalid choice"),
    (["run", "--preset", "<script>"], "invalid choice"),
    (["run", "--epochs"], "expected one argument"),
    (["frobnicate"], "invalid choice"),
    (["lm", "--student-steps", "-5"], "must be at least 1"),
    (["experiment", "sweep", "--temperatures", "1,abc"], ""),
])
def test_bad_flags_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["run", "--seeds", "21"], "seeds must be between 1 and 20"),
    (["run", "--train-limit", "5"], "train limit must be >= 10"),
    (["run", "--hint", "-1"], "hint weight must be zero"),
])
def test_out_of_range_values_exit_2_with_a_message(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_bad_value_through_a_real_process_exits_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "kd_core", "run", "--alpha", "2"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "alpha must be between 0 and 1" in proc.stderr and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------------- environment variables

@pytest.mark.parametrize("value, expected", [
    ("", "HOME/.cache/kd-lab"), ("   ", "HOME/.cache/kd-lab"), ("~", "HOME"), ("~/kd", "HOME/kd"),
    ("relative/cache", "CWD/relative/cache"), ("new/deep/folder", "CWD/new/deep/folder"), (".", "CWD"),
    ("./a/../b", "CWD/b"),
])
def test_cache_dir_variable_values_resolve_and_work(value, expected, tmp_path, monkeypatch):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    monkeypatch.setenv(paths.CACHE_ENV, value)
    folder = paths.cache_dir()
    assert Path(os.path.abspath(folder)) == Path(expected.replace("HOME", str(home)).replace("CWD", str(cwd)))
    assert store.check_writable() is None and store.save_json(store.cache_path("results", "x.json"), {"a": 1})
    assert store.load_json(store.cache_path("results", "x.json")) == {"a": 1}


@pytest.mark.parametrize("value", ["a-file", "a-file/cache", "/dev/null", "/proc/version/cache"])
def test_cache_dir_variable_naming_a_file_means_no_caching(value, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setattr(store, "_reported_unwritable", set())   # as in a fresh process
    monkeypatch.setenv(paths.CACHE_ENV, value)
    assert store.check_writable() is not None
    assert store.save_json(store.cache_path("results", "x.json"), {}) is False
    assert store.load_json(store.cache_path("results", "x.json")) is None
    assert "continuing without caching" in caplog.text


def test_cli_run_with_an_unusable_cache_folder_works_and_says_so_once(tmp_path, monkeypatch, caplog, capsys):
    """Also: --json naming a folder is a message (exit 2), not a traceback, after the table is printed."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv(paths.CACHE_ENV, str(blocker / "cache"))
    argv = ["run", "--train-limit", "20", "--student-train-limit", "10", "--epochs", "1", "--batch-size", "10"]
    assert cli.main([*argv, "--json", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert "distilled - scratch" in out                                  # the run worked without a cache
    assert f"error: {tmp_path}: Is a directory" in err and "Traceback" not in err
    assert [r.getMessage() for r in caplog.records if r.name == "kd_core.store"][0].endswith(
        "continuing without caching (runs work but are not kept)")
    assert len([r for r in caplog.records if r.levelname == "WARNING" and r.name == "kd_core.store"]) == 1


@pytest.mark.parametrize("value, tiny", [("", False), ("0", False), ("false", False), ("no", False), (" 0 ", False),
                                         ("1", True), ("yes", True), ("true", True), ("2", True)])
def test_tiny_variable_values(value, tiny, monkeypatch):
    monkeypatch.setenv(ui.TINY_ENV, value)
    assert ui.tiny() is tiny


# ----------------------------------------------------------------------------------- text upload (language page)

@FAST
@given(raw=st.binary(max_size=3000) | st.text(max_size=2500).map(lambda t: t.encode("utf-8", "surrogatepass")))
@example(raw=b"a")
@example(raw=b"\xff\xfe" + "hello".encode("utf-16-le") * 500)
@example(raw="é".encode("latin-1") * 3000)
@example(raw=b"\x00" * 3000)
def test_any_upload_becomes_text_or_a_corpus_error(raw):
    try:
        text = lm.text_from_upload(raw, "notes.txt")
    except lm.CorpusError as exc:
        assert "notes.txt" in str(exc)
    else:
        assert isinstance(text, str) and len(text) >= lm.MIN_TEXT_CHARS and "\r" not in text


@pytest.mark.parametrize("raw, words", [
    (b"", "is empty"), (b"\n \t\n", "is empty"), (b"x", "only 1 characters"),
    (b"a" * (lm.MAX_UPLOAD_BYTES + 1), "the limit is 2 MB"),
    (bytes(range(256)) * 20, "looks binary"), ("é".encode("latin-1") * 3000, "not valid UTF-8"),
])
def test_bad_uploads_have_clear_messages(raw, words):
    with pytest.raises(lm.CorpusError, match=words):
        lm.text_from_upload(raw, "notes.txt")


def _upload_page(name: str, raw: bytes):
    """The language page after uploading `raw` as `name` (AppTest)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/language.py").run()
    at.radio(key="lm_source").set_value("upload").run()
    at.file_uploader(key="lm_upload").set_value((name, raw, "text/plain")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("raw, words", [(b"", "is empty"), (b"\x00\x01\x02" * 900, "looks binary"),
                                        (b"\xff" * 2500, "not valid UTF-8"), (b"hi", "only 2 characters")])
def test_bad_uploads_on_the_page_are_an_error_message_not_a_traceback(fresh_app, raw, words):
    at = _upload_page("<script>alert(1)</script>.txt", raw)
    [error] = [e.value for e in at.error]
    assert error.startswith("This file cannot be used") and words in error
    below = [c for c in at.get("plotly_chart") if not c.key.startswith(("modes-", "llmkd-"))]  # not the sections above
    assert not below and not [b for b in at.button if b.key == "lm-run"]  # the page stopped at the upload


def test_uploaded_text_is_shown_literally_never_as_html(fresh_app):
    hostile = "<script>alert(1)</script> **bold** <img src=x onerror=alert(2)> [link](javascript:alert(3))\n"
    at = _upload_page("notes.txt", (hostile * 40).encode())
    assert not at.error
    assert any(t.value.startswith(hostile) for t in at.text)          # st.text: shown as typed
    for element in at.markdown:
        assert "<script>" not in element.value and not element.proto.allow_html


HTML_ALLOWED = {("ui/widgets.py", "wide_and_narrow")}  # our own CSS rule, its only variable a checked widget key


def test_no_page_renders_html_from_text():
    """No unsafe_allow_html=True anywhere in the app's pages; st.html or components.html only where listed."""
    for path in [ROOT / "app.py", *sorted((ROOT / "ui").glob("*.py")), *sorted((ROOT / "app_pages").glob("*.py"))]:
        tree = ast.parse(path.read_text())
        within = {id(node): f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) for node in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name.endswith(("st.html", "components.html", "components.v1.html")):
                    assert (str(path.relative_to(ROOT)), within.get(id(node))) in HTML_ALLOWED, f"{path}: {name}"
                for kw in node.keywords:
                    assert not (kw.arg == "unsafe_allow_html" and not (isinstance(kw.value, ast.Constant)
                                                                       and kw.value.value is False)), path


# ----------------------------------------------------------------------------------- image upload (digit page)

@FAST
@given(raw=st.binary(max_size=2000), prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"\xff\xd8\xff",
                                                            b"BM", b"RIFF\x00\x00\x00\x00WEBP"]))
@example(raw=bytes(40), prefix=b"BM")
def test_any_image_bytes_load_or_raise_image_error(raw, prefix):
    from kd_core import digits

    try:
        pixels = digits.load_image(prefix + raw)
    except digits.ImageError as exc:
        assert str(exc)
    else:
        assert pixels.dtype == np.uint8 and pixels.ndim == 2


# ----------------------------------------------------------------------------------- checkpoints and cache files

@FAST
@given(raw=st.binary(max_size=4000))
def test_random_bytes_never_load_as_a_checkpoint(tmp_path, raw):
    path = tmp_path / "m.pt"
    path.write_bytes(raw)
    assert store.load_checkpoint(path) is None and not path.exists()


class _Marker:
    """Unpickling this runs code: it writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


@pytest.mark.parametrize("fmt", ["zip", "legacy-pickle", "plain-pickle"])
def test_a_malicious_checkpoint_is_refused_and_its_code_never_runs(tmp_path, fmt):
    marker = tmp_path / "marker"
    payload = {"model": "keras-student", "state_dict": {"w": torch.zeros(2), "x": _Marker(marker)}, "meta_json": "{}"}
    buffer = io.BytesIO()
    if fmt == "plain-pickle":
        buffer.write(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, buffer, _use_new_zipfile_serialization=fmt == "zip")
    path = tmp_path / "m.pt"
    for load in (store.load_checkpoint, store.load_npz):   # nor through the array loader
        path.write_bytes(buffer.getvalue())
        assert load(path) is None and not path.exists()
    assert not marker.exists()
    path.write_bytes(buffer.getvalue())
    if fmt != "plain-pickle":   # the test can fail: an unsafe load does run the code
        torch.load(path, weights_only=False)
        assert marker.exists()


@pytest.mark.parametrize("payload", [
    {"model": "keras-student", "state_dict": [1, 2], "meta_json": "{}"},
    {"model": "keras-student", "state_dict": {"w": "not a tensor"}, "meta_json": "{}"},
    {"model": "keras-student", "state_dict": {"w": torch.zeros(1)}, "meta_json": "[1]"},
    torch.zeros(3),
])
def test_a_safe_pickle_of_the_wrong_shape_is_not_a_checkpoint(tmp_path, payload, caplog):
    path = tmp_path / "m.pt"
    torch.save(payload, path)
    assert store.load_checkpoint(path) is None and "corrupt cache file" in caplog.text


def test_results_json_with_hostile_content_is_data_not_code(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"__class__": "os.system", "key": "<script>", "nested": ' + "[" * 50 + "]" * 50 + "}")
    assert store.load_json(path)["key"] == "<script>"
    path.write_text("[" * 100_000 + "]" * 100_000)            # deep nesting: RecursionError must not escape
    assert store.load_json(path) is None


# ----------------------------------------------------------------------------------- names that become paths

ESCAPES = ["../../x", "../../../etc/passwd", "a/../../../x", "/etc/passwd", "", "a\x00b", "x" * 300,
           "ok/" + "y" * 256]  # each is joined below "results/" in the cache folder


@pytest.mark.parametrize("name", ESCAPES)
def test_cache_names_cannot_leave_the_cache_folder(name, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="refused file name"):
        store.cache_path("results", name)


def test_dot_dot_inside_the_cache_is_allowed():
    root = Path("/srv/cache")
    assert paths.inside(root, "results", "a", "..", "x.json") == root / "results" / "a" / ".." / "x.json"
    with pytest.raises(ValueError, match="leads outside"):
        paths.inside(root, "results", "..", "..", "cache-other", "x.json")   # a sibling whose name starts alike


@FAST
@given(part=st.text(max_size=40))
def test_any_name_is_either_refused_or_stays_inside(tmp_path, part):
    try:
        path = paths.inside(tmp_path, "results", part)
    except ValueError:
        return
    assert tmp_path.resolve() in path.resolve().parents   # (tmp_path holds no symlinks)


@pytest.mark.parametrize("name", ["text-../../../../etc/passwd", "text-/etc/passwd", "text-\x00"])
def test_a_corpus_name_cannot_read_outside_the_cache(name, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(ValueError):
        lm.load_text(name)


@pytest.mark.parametrize("name", ["cifar", "../mnist", "mnist\x00", "", "MNIST"])
def test_dataset_names_come_from_the_registry_only(name):
    with pytest.raises(DatasetError, match="unknown dataset"):
        data.dataset_info(name)
