"""A cache written before the tasks redesign is still found: the same job keys, cache keys and file paths.

The literal keys below were computed by the code as it was before kd_core.tasks existed (ui.experiment_key,
ui.teacher_key, ui.lab_key and compress.compress_key of that version) for the bundled MNIST sample, whose
fingerprint is checked first so that a change of the data, not of the code, is reported as such. They were made
at store.CODE_VERSION 1; a bump of it (training that computes differently) changes every key on purpose, so
these tests pin version 1 and check that the key is made the same way, and one test that a bump changes it.
"""

from __future__ import annotations

import json

import pytest

import ui
from kd_core import compress, lab
from kd_core.config import preset
from kd_core.data import load_dataset
from kd_core.experiment import comparison_task, teacher_task

BEFORE = {
    "comparison_tiny": "run-408dfa1688b26d02e1c2", "comparison_classroom": "run-51e804a14cecb887e8f4",
    "teacher_tiny": "teacher-8e02f9fdbf0014680814", "teacher_classroom": "teacher-40d05b57c6bf2e6d52e3",
    "compress_default": "compress-14aebbbf3bd9ee45d314",
    "data-budget": "lab-data-budget-485019409aec0848bcda", "omitted-class": "lab-omitted-class-2456631fb57d37a2ad32",
    "sweep": "lab-sweep-1e052caf790a21a5c2be", "t-squared": "lab-t-squared-43cec911a4768d6bc474",
}


@pytest.fixture(autouse=True)
def fp32_cpu(monkeypatch):
    """The keys were computed on a CPU without native bf16, where precision "auto" means fp32 (and stays out of
    the key): on a CPU with it, "auto" trains in bf16, a different computation with a different key."""
    import kd_core.config

    monkeypatch.setattr(kd_core.config, "native_bf16", lambda: False)


@pytest.fixture(autouse=True)
def code_version_1(monkeypatch):
    """The code version the keys were made at."""
    from kd_core import store

    monkeypatch.setattr(store, "CODE_VERSION", 1)


TINY_LAB = {"data-budget": {"budgets": (20, 100)}, "omitted-class": {},
            "sweep": {"temperatures": (2.0, 8.0), "alphas": (0.5, 0.9)}, "t-squared": {"temperatures": (2.0, 16.0)}}


@pytest.fixture(scope="module")
def dataset():
    found = load_dataset("mnist-sample")
    assert found.fingerprint == "1efa5808cf0d478f", "the bundled sample changed: the keys below no longer apply"
    return found


def tiny_lab_config(name: str):
    """The config the Experiments page ran in tiny mode before the redesign (ui.lab_setup of that version)."""
    cfg = lab.default_config(name)
    return cfg.replace(**ui.TINY_CHANGES, seeds=min(cfg.seeds, 2))


def test_job_keys_are_the_keys_of_before(dataset):
    tiny, full = preset("classroom").replace(**ui.TINY_CHANGES), preset("classroom")
    assert comparison_task(tiny, dataset).key == BEFORE["comparison_tiny"]
    assert comparison_task(full, dataset).key == BEFORE["comparison_classroom"]
    assert teacher_task(tiny, dataset).key == BEFORE["teacher_tiny"]
    assert teacher_task(full, dataset).key == BEFORE["teacher_classroom"]
    assert compress.task(full, compress.CompressConfig(), dataset).key == BEFORE["compress_default"]
    for name, params in TINY_LAB.items():
        assert lab.task(name, tiny_lab_config(name), dataset, lab.parameters(name, **params)).key == BEFORE[name]


def test_a_code_version_bump_changes_every_key(dataset, monkeypatch):
    """Results of training that computed differently are not found: the pages and the CLI train again."""
    from kd_core import store

    tiny = preset("classroom").replace(**ui.TINY_CHANGES)
    monkeypatch.setattr(store, "CODE_VERSION", 2)
    assert comparison_task(tiny, dataset).key != BEFORE["comparison_tiny"]
    assert teacher_task(tiny, dataset).key != BEFORE["teacher_tiny"]


def test_results_stored_under_the_old_paths_are_found(dataset, tmp_path, monkeypatch, one_thread):
    """Real tiny runs land where the old code wrote them, and are found there. (A hand-made skeleton of a
    result is no longer enough: every result read back is checked against kd_core.schema, and a comparison
    needs its student checkpoints.)"""
    from kd_core.experiment import run_experiment

    monkeypatch.setenv("KD_LAB_CACHE_DIR", str(tmp_path))
    cfg = preset("classroom").replace(**ui.TINY_CHANGES)
    key = BEFORE["comparison_tiny"].removeprefix("run-")
    run_experiment(cfg)
    assert json.loads((tmp_path / "results" / f"{key}.json").read_text())["key"] == key  # where the old code wrote it
    found = comparison_task(cfg, dataset).cached()
    assert found is not None and found["key"] == key and found["cached"]

    name = "t-squared"
    lab_key = BEFORE[name].removeprefix(f"lab-{name}-")
    task = lab.task(name, tiny_lab_config(name), dataset, lab.parameters(name, **TINY_LAB[name]))
    task.run()
    assert json.loads((tmp_path / "lab" / name / f"{lab_key}.json").read_text())["key"] == lab_key
    found = task.cached()
    assert found is not None and found["key"] == lab_key and found["cached"]
