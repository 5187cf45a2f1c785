"""What the app reads back from its own cache is checked like user input (issue 15, items 1-5 and 8).

Damaged files are planted in a copy of a cache that holds real tiny runs: wrong types, NaN, Infinity and
1e300, the wrong structure, export names that leave the cache, symlinks out of it, markdown in config
strings, results whose student checkpoints are gone. Each is tried where it is read: the engine's Task
(`cached()` is None, the file is moved aside as `.rejected`, one warning), the pages (AppTest: no
exception, the run button is offered), the CLI (exit 0, recomputed, no traceback) and Run history.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import tomllib
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import ui
from apptest import APP, assert_clean
from kd_core import cli, data, digits, history, lab, lm, paths, store, url_settings
from kd_core.compress import CompressConfig, compress, compress_key
from kd_core.config import preset
from kd_core.data import load_dataset
from kd_core.experiment import comparison_task, run_experiment, run_key, student_checkpoint_path

ROOT = Path(__file__).resolve().parent.parent
TINY = preset("classroom").replace(**ui.TINY_CHANGES)   # what the pages run in tiny mode (ui.base_preset)
OTHER = TINY.replace(temperature=2.0, alpha=0.5)       # a second run, for Run history
CLI_RUN = ["run", "--train-limit", "300", "--student-train-limit", "100", "--teacher-epochs", "1",
           "--student-epochs", "2", "--batch-size", "50"]  # the CLI's spelling of TINY
PAGE_COMPRESSION = CompressConfig(sparsity=0.5, quantize=True, throughput_batch=32, calibration_images=128)
LAB_PARAMS = {"budgets": (20, 50)}
SWEEP_PARAMS = {"temperatures": (2.0,), "alphas": (0.5,)}
LM_TINY = lm.LMConfig().replace(**lm.TINY)             # what the Language models page runs in tiny mode


# ----------------------------------------------------------------------------------------------------
# A cache with real tiny runs, built once; every test gets its own copy


@pytest.fixture(scope="module")
def template(tmp_path_factory, one_thread):
    """A cache folder with the comparisons TINY and OTHER, a data-budget and a sweep result, a compression
    result stored under the Efficiency page's key, and the Language models page's tiny run."""
    folder = tmp_path_factory.mktemp("trust-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(paths.CACHE_ENV, str(folder))
        dataset = load_dataset(TINY.dataset)
        for cfg in (OTHER, TINY):
            run_experiment(cfg)
        lab.task("data-budget", TINY, dataset, LAB_PARAMS).run()
        lab.task("sweep", TINY, dataset, SWEEP_PARAMS).run()
        cheap = CompressConfig(throughput_batch=8, calibration_images=32, export_onnx=False)
        out = compress(TINY, cheap)
        page_key = compress_key(TINY, PAGE_COMPRESSION, dataset)  # the same run, as the page's settings name it
        shutil.copytree(folder / "compress" / out["key"], folder / "compress" / page_key)
        doc = json.loads((folder / "compress" / f"{out['key']}.json").read_text())
        (folder / "compress" / f"{page_key}.json").write_text(json.dumps({**doc, "key": page_key}))
        lm.task(LM_TINY).run()
    return folder


@pytest.fixture()
def cache(template, tmp_path, monkeypatch):
    """This test's own copy of the template cache, as the current cache folder."""
    folder = tmp_path / "cache"
    shutil.copytree(template, folder, symlinks=True)
    monkeypatch.setenv(paths.CACHE_ENV, str(folder))
    monkeypatch.setenv(ui.TINY_ENV, "1")
    return folder


@pytest.fixture()
def cli_one_thread(monkeypatch):
    """The CLI's runs keep to one torch thread (the machine is shared)."""
    monkeypatch.setattr("kd_core.train.configure_threads", lambda *args, **kwargs: 1)


@pytest.fixture()
def warnings_seen():
    """Warnings of kd_core's loggers, caught on the loggers themselves (the app's logging set-up stops
    kd_core's records from reaching the root logger that caplog listens on)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler, logger = Keep(level=logging.WARNING), logging.getLogger("kd_core")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def messages(records) -> list[str]:
    return [r.getMessage() for r in records]


def result_file(folder: Path, cfg=TINY) -> Path:
    return folder / "results" / f"{run_key(cfg, load_dataset(cfg.dataset))}.json"


def rewrite(path: Path, change) -> None:
    """Apply `change(doc)` to the JSON document at `path` (it may replace the document by returning one)."""
    doc = json.loads(path.read_text())
    doc = change(doc) or doc
    path.write_text(json.dumps(doc))  # json writes NaN, Infinity and 1e300 as they are


def _set(keys: str, value):
    """A change that sets doc[k1][k2]... (dotted, integers index lists) to `value`."""
    def change(doc):
        *path, last = [int(k) if k.isdigit() else k for k in keys.split(".")]
        target = doc
        for k in path:
            target = target[k]
        target[last] = value
    return change


DAMAGE = {  # name -> change of a comparison result: each must read as absent
    "accuracy is a word": _set("models.distilled.accuracy_mean", "ninety"),
    "models is a list": _set("models", [1, 2, 3]),
    "accuracy is NaN": _set("models.scratch.accuracy_mean", float("nan")),
    "accuracy is 1e300": _set("models.teacher.accuracy_mean", 1e300),
    "seconds are infinite": _set("models.teacher.seconds", float("inf")),
    "seconds are 1e300": _set("total_seconds", 1e300),
    "accuracy above 1": _set("models.distilled.accuracies.0", 1.5),
    "zero parameters": _set("models.distilled.params", 0),
    "negative count": _set("student_train_images", -5),
    "no runs": _set("models.distilled.runs", []),
    "runs of numbers": _set("models.scratch.runs", [1, 2]),
    "curve of words": _set("models.distilled.runs.0.history.test_acc", ["a", "b"]),
    "key leaves the cache": _set("key", "../../../etc/passwd"),
    "markdown dataset": _set("config.dataset", "![x](http://example.com/x.png)"),
    "unknown model": _set("config.student", "[site](http://example.com)"),
    "a bool for a number": _set("models.teacher.flops", True),
    "missing key": lambda doc: doc.pop("classes") and None,
    "not a result": lambda doc: {"something": "else"},
    "a list, not an object": lambda doc: [doc],
}


# ----------------------------------------------------------------------------------------------------
# Item 1: one schema check for everything read back


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_comparison_result_is_rejected_once_moved_aside_and_reads_as_absent(cache, warnings_seen, damage):
    path = result_file(cache)
    rewrite(path, DAMAGE[damage])
    planted = path.read_bytes()
    task = comparison_task(TINY, load_dataset(TINY.dataset))
    assert task.cached() is None and task.cached() is None       # read twice ...
    rejected = path.with_name(path.name + ".rejected")
    assert not path.exists() and rejected.read_bytes() == planted  # ... moved aside, kept for inspection
    warned = [m for m in messages(warnings_seen) if str(path) in m]
    assert len(warned) == 1 and "rejected" in warned[0]           # ... reported once, naming the file


@pytest.mark.parametrize("damage", ["accuracy is a word", "models is a list", "markdown dataset", "zero parameters"])
@pytest.mark.parametrize("page, button", [("app_pages/home.py", "home-run"), ("app_pages/distill.py", "distill-run"),
                                          ("app_pages/compare.py", "compare-run")])
def test_pages_offer_the_run_instead_of_failing_on_a_damaged_result(cache, fresh_app, damage, page, button):
    for path in (cache / "results").glob("*.json"):  # every stored comparison damaged (Compare shows the latest)
        rewrite(path, DAMAGE[damage])
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(page)
    at.run()
    assert_clean(at)
    assert [b for b in at.button if b.key == button], f"{page} offers no run"
    assert not [s for s in at.success if s.value.startswith("Done")]
    for element in [*at.markdown, *at.caption, *at.success, *at.info]:
        assert "](http" not in element.value  # no link or image from the cache


@pytest.mark.parametrize("damage", ["accuracy is a word", "models is a list"])
def test_cli_run_recomputes_a_damaged_result_and_exits_0(cache, capsys, cli_one_thread, damage):
    path = result_file(cache)
    rewrite(path, DAMAGE[damage])
    assert cli.main(CLI_RUN) == 0
    out, err = capsys.readouterr()
    assert "result from cache" not in err and "Traceback" not in err
    assert "distilled" in out and json.loads(path.read_text())["models"]["distilled"]["accuracy_mean"] <= 1


def test_run_history_skips_a_damaged_run_and_still_lists_and_deletes_the_others(cache, warnings_seen):
    damaged, other = result_file(cache, TINY), result_file(cache, OTHER)
    rewrite(damaged, DAMAGE["accuracy is a word"])
    runs = history.list_runs()
    assert [r["key"] for r in runs] == [other.stem]
    assert damaged.with_name(damaged.name + ".rejected").exists()
    assert len([m for m in messages(warnings_seen) if str(damaged) in m]) == 1
    assert other in history.delete_run(other.stem) and history.list_runs() == []


def test_the_history_page_lists_the_other_run_when_one_is_damaged(cache, fresh_app):
    rewrite(result_file(cache, TINY), DAMAGE["models is a list"])
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/history.py")
    at.run()
    assert_clean(at)
    [table] = at.dataframe
    assert list(table.value["key"]) == [result_file(cache, OTHER).stem]


@pytest.mark.parametrize("change", [_set("rows.0.gain", "big"), _set("rows.0.distilled", [float("nan")]),
                                    _set("rows", {"a": 1}), _set("config.seeds", 1e300)])
def test_a_damaged_lab_result_is_rejected(cache, warnings_seen, change):
    dataset = load_dataset(TINY.dataset)
    task = lab.task("data-budget", TINY, dataset, LAB_PARAMS)
    path = cache / "lab" / "data-budget" / f"{lab.key('data-budget', TINY, dataset, LAB_PARAMS)}.json"
    rewrite(path, change)
    assert task.cached() is None and path.with_name(path.name + ".rejected").exists()
    assert len([m for m in messages(warnings_seen) if str(path) in m]) == 1


@pytest.mark.parametrize("accuracy", [float("nan"), "0.9", 1e300, -0.1])
def test_a_damaged_sweep_cell_is_rejected_and_the_sweep_is_not_served(cache, accuracy):
    dataset = load_dataset(TINY.dataset)
    task = lab.task("sweep", TINY, dataset, SWEEP_PARAMS)
    assert task.cached() is not None
    cell = sorted((cache / "lab" / "sweep-cells").glob("*.json"))[0]
    rewrite(cell, _set("accuracy", accuracy))
    assert task.cached() is None and cell.with_name(cell.name + ".rejected").exists()


def _compression_file(folder: Path) -> Path:
    return folder / "compress" / f"{compress_key(TINY, PAGE_COMPRESSION, load_dataset(TINY.dataset))}.json"


@pytest.mark.parametrize("change", [_set("rows.0.accuracy", "high"), _set("rows.0.size_bytes", 0),
                                    _set("rows", [1, 2, 3]), _set("rows.0.latency_ms.median_ms", float("inf")),
                                    _set("measured_at", "![x](http://example.com/x.png)")])
def test_a_damaged_compression_result_is_rejected(cache, change):
    from kd_core.compress import task as compression_task

    path = _compression_file(cache)
    rewrite(path, change)
    assert compression_task(TINY, PAGE_COMPRESSION, load_dataset(TINY.dataset)).cached() is None
    assert path.with_name(path.name + ".rejected").exists()


def _lm_result(folder: Path) -> Path:
    return folder / "lm" / "results" / f"{lm.run_key(LM_TINY)}.json"


@pytest.mark.parametrize("change", [_set("models.distilled.params", 0), _set("models.teacher.val_bpc", [float("nan")]),
                                    _set("config.corpus", "text-../../../etc/passwd"), _set("models", "x")])
def test_a_damaged_language_model_result_is_rejected(cache, change):
    path = _lm_result(cache)
    rewrite(path, change)
    assert lm.task(LM_TINY).cached() is None and path.with_name(path.name + ".rejected").exists()


def _open_language_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/language.py")
    at.run()
    return at


def test_language_page_with_a_zero_parameter_count_offers_the_run(cache, fresh_app):
    rewrite(_lm_result(cache), _set("models.distilled.params", 0))
    at = _open_language_page()
    assert_clean(at)
    assert [b for b in at.button if b.key == "lm-run"]


def test_a_teacher_checkpoint_with_bad_metadata_is_retrained_not_used(cache):
    import torch

    from kd_core.experiment import cached_teacher, teacher_key

    path = cache / "teachers" / f"{teacher_key(TINY, load_dataset(TINY.dataset))}.pt"
    payload = torch.load(path, weights_only=True)
    meta = json.loads(payload["meta_json"])
    payload["meta_json"] = json.dumps({**meta, "accuracy": "ninety"})
    torch.save(payload, path)
    assert cached_teacher(TINY, load_dataset(TINY.dataset)) is None
    assert path.with_name(path.name + ".rejected").exists()


def test_the_run_estimate_sees_a_teacher_damaged_or_deleted_after_it_was_checked(cache):
    """teacher_is_cached remembers a check per version of the file: a changed or missing file is looked at anew."""
    from kd_core.experiment import teacher_is_cached, teacher_key

    dataset = load_dataset(TINY.dataset)
    path = cache / "teachers" / f"{teacher_key(TINY, dataset)}.pt"
    assert teacher_is_cached(TINY, dataset) and teacher_is_cached(TINY, dataset)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])          # damaged in place: another size, another time
    assert not teacher_is_cached(TINY, dataset)
    assert not path.exists()                          # a corrupt checkpoint is removed, to be retrained
    path.write_bytes(good)
    assert teacher_is_cached(TINY, dataset)
    path.unlink()
    assert not teacher_is_cached(TINY, dataset)


# ----------------------------------------------------------------------------------------------------
# Item 2: file names read from the cache are plain names inside it


def _plant_exports(folder: Path, weights_name: str) -> None:
    path = _compression_file(folder)
    rewrite(path, lambda doc: {**doc, "exports": {row: {**files, "weights": weights_name}
                                                   for row, files in doc["exports"].items()}})


def _outside_secret(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the browser")
    return secret


def test_export_names_that_leave_the_cache_are_refused(cache, tmp_path, warnings_seen):
    from kd_core.compress import task as compression_task

    secret = _outside_secret(tmp_path)
    path = _compression_file(cache)
    export_dir = cache / "compress" / path.stem
    _plant_exports(cache, os.path.relpath(secret, export_dir))  # ../../../secret.txt
    assert compression_task(TINY, PAGE_COMPRESSION, load_dataset(TINY.dataset)).cached() is None
    assert path.with_name(path.name + ".rejected").exists() and secret.exists()
    assert len([m for m in messages(warnings_seen) if str(path) in m]) == 1


def test_an_export_file_that_links_out_of_the_cache_is_refused(cache, tmp_path):
    from kd_core.compress import task as compression_task

    secret = _outside_secret(tmp_path)
    path = _compression_file(cache)
    name = json.loads(path.read_text())["exports"]["distilled"]["weights"]
    (cache / "compress" / path.stem / name).unlink()
    (cache / "compress" / path.stem / name).symlink_to(secret)
    assert compression_task(TINY, PAGE_COMPRESSION, load_dataset(TINY.dataset)).cached() is None


@pytest.mark.parametrize("how", ["untouched", "dot-dot name", "absolute name", "symlink"])
def test_the_efficiency_page_never_serves_a_file_from_outside_the_cache(cache, fresh_app, tmp_path, how):
    secret = _outside_secret(tmp_path)
    path = _compression_file(cache)
    export_dir = cache / "compress" / path.stem
    if how == "untouched":
        pass
    elif how == "symlink":
        name = json.loads(path.read_text())["exports"]["distilled"]["weights"]
        (export_dir / name).unlink()
        (export_dir / name).symlink_to(secret)
    else:
        _plant_exports(cache, os.path.relpath(secret, export_dir) if how == "dot-dot name" else str(secret))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/efficiency.py")
    at.run()
    assert_clean(at)
    served = at.get("download_button")
    if how == "untouched":  # the stored run is shown with its downloads
        assert served and not [b for b in at.button if b.key == "efficiency-run"]
        return
    assert [b for b in at.button if b.key == "efficiency-run"]        # offered again, not served
    assert not served, "the page offers downloads of a result that names files outside the cache"


# ----------------------------------------------------------------------------------------------------
# Item 3: symlinks out of the cache are refused


def test_a_result_that_is_a_symlink_out_of_the_cache_is_refused_not_followed(cache, tmp_path, warnings_seen):
    path = result_file(cache)
    doctored = tmp_path / "doctored.json"
    doctored.write_bytes(path.read_bytes())  # a well-formed result, kept outside the cache
    path.unlink()
    path.symlink_to(doctored)
    assert comparison_task(TINY, load_dataset(TINY.dataset)).cached() is None
    aside = path.with_name(path.name + ".rejected")
    assert aside.is_symlink() and not path.exists() and doctored.is_file()  # the link moved, its target untouched
    assert len([m for m in messages(warnings_seen) if str(path) in m]) == 1
    assert path.stem not in [r["key"] for r in history.list_runs()]


def test_a_student_checkpoint_that_links_out_of_the_cache_makes_the_result_absent(cache, tmp_path):
    result = json.loads(result_file(cache).read_text())
    student = student_checkpoint_path(result, "distilled")
    copy_outside = tmp_path / "student.pt"
    shutil.move(student, copy_outside)
    student.symlink_to(copy_outside)
    assert comparison_task(TINY, load_dataset(TINY.dataset)).cached() is None
    assert store.load_checkpoint(student) is None  # not loaded either


def test_a_language_model_result_behind_a_symlink_is_refused(cache, tmp_path):
    path = _lm_result(cache)
    outside = tmp_path / "lm.json"
    shutil.move(path, outside)
    path.symlink_to(outside)
    assert lm.task(LM_TINY).cached() is None and outside.is_file()


# ----------------------------------------------------------------------------------------------------
# Item 4: strings from the cache and upload names are shown as text, never as markdown


def test_a_config_summary_shows_names_as_plain_text():
    hostile = {**TINY.as_dict(), "dataset": "![x](http://example.com/x.png)", "student": "**b** [s](http://x.io)"}
    summary = ui.config_summary(hostile)
    for live in ("![x](", "](http", "**b**", "[s]("):
        assert live not in summary
    assert ui.config_summary(TINY).startswith("MNIST sample \\(bundled\\), teacher: a small CNN (1 epoch)")


def test_an_upload_name_is_shown_as_plain_text_in_the_error(fresh_app):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/language.py").run()
    at.radio(key="lm_source").set_value("upload").run()
    at.file_uploader(key="lm_upload").set_value(("**bold** [site](http://example.com).txt", b"",
                                                  "text/plain")).run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert error.startswith("This file cannot be used") and "is empty" in error
    assert "**bold**" not in error and "](http" not in error and "[site]" not in error


# ----------------------------------------------------------------------------------------------------
# Item 5: a result does not outlive its models


def test_a_result_whose_student_checkpoint_is_gone_reads_as_absent_and_is_rerun(cache, fresh_app, capsys,
                                                                              cli_one_thread):
    result = json.loads(result_file(cache).read_text())
    student = student_checkpoint_path(result, "scratch")
    student.unlink()
    assert comparison_task(TINY, load_dataset(TINY.dataset)).cached() is None
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert_clean(at)
    assert [b for b in at.button if b.key == "home-run"]
    assert cli.main(CLI_RUN) == 0
    assert "result from cache" not in capsys.readouterr().err
    assert student.is_file() and comparison_task(TINY, load_dataset(TINY.dataset)).cached() is not None


def test_a_damaged_student_checkpoint_is_found_when_loaded_and_then_the_result_is_absent(cache):
    from kd_core.experiment import load_student

    result = json.loads(result_file(cache).read_text())
    student = student_checkpoint_path(result, "distilled")
    student.write_bytes(student.read_bytes()[:100])  # a disk that filled up mid-write
    assert load_student(result, "distilled") is None   # as Your digit and Compare load it
    assert comparison_task(TINY, load_dataset(TINY.dataset)).cached() is None


def test_a_result_is_not_stored_when_its_student_checkpoint_could_not_be_written(cache, monkeypatch):
    real = store.save_checkpoint

    def fail_students(path, *args, **kwargs):
        return False if path.parent.name == "students" else real(path, *args, **kwargs)

    monkeypatch.setattr(store, "save_checkpoint", fail_students)
    cfg = TINY.replace(temperature=4.0)
    result = run_experiment(cfg)
    assert result["models"]["distilled"]["accuracies"]      # the run itself works and is shown
    assert not result_file(cache, cfg).exists()             # but it is not stored without its models


def test_a_language_model_result_whose_student_is_gone_is_offered_again(cache, fresh_app):
    (cache / "lm" / "students" / f"{lm.run_key(LM_TINY)}-scratch.pt").unlink()
    assert lm.task(LM_TINY).cached() is None
    at = _open_language_page()
    assert_clean(at)
    assert [b for b in at.button if b.key == "lm-run"]


# ----------------------------------------------------------------------------------------------------
# Item 8: the smaller things


def test_the_image_limit_is_streamlits_real_upload_cap():
    cap_mb = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    assert digits.MAX_IMAGE_BYTES == cap_mb * 1_000_000  # Streamlit's MB are 10^6 bytes
    with pytest.raises(digits.ImageError, match=f"the limit is {cap_mb} MB"):
        digits.load_image(b"\0" * (cap_mb * 1_000_000 + 1))


@pytest.mark.parametrize("name, text", [("T", "１２"), ("epochs", "１０"), ("epochs", "1_0"), ("T", "1_2"),
                                        ("T", "1_0.5"), ("seeds", "٣"), ("epochs", "1e1"), ("alpha", "0x1")])
def test_link_numbers_take_ascii_digits_only(name, text):
    found, problems = url_settings.parse({name: text})
    assert found == {"settings": {}} and len(problems) == 1


def test_deleting_a_run_whose_files_link_out_of_the_cache_says_refused(cache, fresh_app, tmp_path):
    result = json.loads(result_file(cache).read_text())
    student = student_checkpoint_path(result, "distilled")
    outside = tmp_path / "student.pt"
    shutil.move(student, outside)
    student.symlink_to(outside)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/history.py")
    at.run()
    assert_clean(at)
    keys = list(at.dataframe[0].value["key"])
    assert result["key"] in keys and len(keys) == 2   # both runs listed and ticked by default
    [sure] = [c for c in at.checkbox if c.key.startswith("history-sure-")]
    sure.check().run()
    at.button(key="history-delete").click().run()
    assert_clean(at)
    said = " ".join(e.value for e in [*at.success, *at.warning])
    assert "refused" in said and "deleted already" not in said
    assert outside.is_file() and student.is_symlink() and result_file(cache).is_file()  # nothing of it touched


def _idx(path: Path, array: np.ndarray) -> None:
    path.write_bytes(bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
                     + array.astype(np.uint8).tobytes())


def test_a_data_dir_without_the_files_is_an_error_not_a_fallback(tmp_path, monkeypatch, capsys, cli_one_thread):
    system = tmp_path / "system-copy"  # stands in for Debian's /usr/share/datasets/fashion-mnist
    system.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("t10k", 20)):
        _idx(system / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _idx(system / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", system)
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    empty = tmp_path / "my-data"
    empty.mkdir()
    data.load_dataset.cache_clear()
    try:
        code = cli.main(["run", "--dataset", "fashion-mnist", "--data-dir", str(empty), "--epochs", "1"])
    finally:
        data.load_dataset.cache_clear()  # no other test may see this tiny Fashion-MNIST
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and str(empty) in err and "does not hold" in err
    assert not (tmp_path / "cache" / "results").exists()  # nothing trained on the other copy
