"""Run history: listing the cached comparisons, their charts, deleting runs safely, and the page (AppTest).

Two real tiny runs are made once into a private cache folder; every test works on its own copy of it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kd_core import charts, history, paths, store
from kd_core.data import load_dataset
from kd_core.experiment import cached_result, cached_teacher, run_experiment, student_checkpoint_path

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "app_pages/history.py"


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_config, one_thread):
    """A cache folder holding two finished runs that share one teacher: (folder, [older config, newer config])."""
    folder = tmp_path_factory.mktemp("history-cache")
    configs = [tiny_config.replace(seeds=2), tiny_config.replace(temperature=2.0, alpha=0.5)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(paths.CACHE_ENV, str(folder))
        for i, cfg in enumerate(configs):
            result = run_experiment(cfg)
            path = store.cache_path("results", f"{result['key']}.json")
            os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))  # a clear order: the second run is newer
    return folder, configs


@pytest.fixture()
def cache(built, tmp_path, monkeypatch):
    """This test's own copy of the two-run cache, as the current cache folder; yields (folder, configs)."""
    folder = tmp_path / "cache"
    shutil.copytree(built[0], folder)
    monkeypatch.setenv(paths.CACHE_ENV, str(folder))
    return folder, built[1]


def results_of(configs) -> list[dict]:
    """The stored result JSON of each config, newest (last) first."""
    return [cached_result(cfg) for cfg in reversed(configs)]


def all_files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_list_runs_gives_both_runs_newest_first_with_the_stored_numbers(cache):
    _, configs = cache
    runs, results = history.list_runs(), results_of(configs)
    assert [r["key"] for r in runs] == [res["key"] for res in results]
    assert [r["label"] for r in runs] == ["T=2 α=0.5", "T=8 α=0.9"]
    assert runs[0]["finished"] > runs[1]["finished"]
    for run, result in zip(runs, results):
        assert run["config"] == result["config"] and run["student_images"] == result["student_train_images"] == 100
        for role in history.ROLES:
            stored = result["models"][role]
            assert run["models"][role]["mean"] == stored["accuracy_mean"]
            assert run["models"][role]["std"] == stored["accuracy_std"]
            assert run["models"][role]["accuracies"] == stored["accuracies"]
        assert run["training_seconds"] == pytest.approx(sum(result["models"][r]["seconds"] for r in history.ROLES))
        for role in history.STUDENTS:
            curve = run["curves"][role]
            assert curve["epoch"] == [1.0, 2.0]  # tiny config: 2 student epochs
            # the last epoch's test evaluation is the final model's accuracy, averaged over the seeds
            assert curve["test_acc"][-1] == pytest.approx(result["models"][role]["accuracy_mean"], abs=1e-6)
    assert len(runs[1]["models"]["distilled"]["accuracies"]) == 2 and runs[1]["models"]["distilled"]["std"] > 0

    rows = history.table_rows(runs)
    assert [row["run"] for row in rows] == ["T=2 α=0.5", "T=8 α=0.9"]
    d, s = results[1]["models"]["distilled"], results[1]["models"]["scratch"]
    assert rows[1]["distilled (%)"] == round(100 * d["accuracy_mean"], 1)
    assert rows[1]["gain (points)"] == round(100 * (d["accuracy_mean"] - s["accuracy_mean"]), 1)
    assert rows[0]["T"] == 2.0 and rows[0]["alpha"] == 0.5 and rows[1]["seeds"] == 2


def test_labels_are_made_unique_by_the_settings_that_differ():
    base = {"temperature": 8.0, "alpha": 0.9, "t_squared": True, "dataset": "mnist-sample", "student_epochs": 30,
            "student_train_limit": 400, "seeds": 1, "teacher": "t", "student": "s", "teacher_epochs": 4,
            "hint_weight": 0.0}
    configs = [base, {**base, "student_epochs": 10}, {**base, "lr": 1.0}, {**base, "alpha": 0.5}]
    records = [{"key": str(i) * 20, "label": history.short_label(c), "config": c} for i, c in enumerate(configs)]
    labels = [r["label"] for r in history.unique_labels(records)]
    assert labels[1] == "T=8 α=0.9 · 10 ep" and labels[3] == "T=8 α=0.5"
    # runs 0 and 2 differ in no setting a label names (only lr): the key tells them apart
    assert labels[0] == "T=8 α=0.9 · 30 ep #000000" and labels[2] == "T=8 α=0.9 · 30 ep #222222"
    assert history.short_label({**base, "t_squared": False}) == "T=8 α=0.9 no T²"


def test_overlay_chart_draws_distilled_and_scratch_of_each_run(cache):
    runs = history.list_runs()
    fig = charts.history_curves(runs, "test_acc")
    assert [t.name for t in fig.data] == ["T=2 α=0.5 · distilled", "T=2 α=0.5 · scratch",
                                          "T=8 α=0.9 · distilled", "T=8 α=0.9 · scratch"]
    assert [t.line.dash for t in fig.data] == ["solid", "dash"] * 2
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color  # one colour per run
    assert list(fig.data[2].y) == pytest.approx([100 * v for v in runs[1]["curves"]["distilled"]["test_acc"]])
    assert "Test accuracy after each epoch" in fig.layout.title.text
    assert fig.layout.xaxis.title.text == "epoch" and fig.layout.yaxis.title.text == "test accuracy (%)"
    loss = charts.history_curves(runs[:1], "hard")
    assert len(loss.data) == 2 and "(nats" in loss.layout.yaxis.title.text
    assert list(loss.data[1].y) == pytest.approx(runs[0]["curves"]["scratch"]["hard"])


def test_accuracy_chart_bars_equal_the_results(cache):
    _, configs = cache
    runs, results = history.list_runs(), results_of(configs)
    fig = charts.history_accuracies(runs)
    assert [t.name for t in fig.data] == ["teacher", "distilled student", "scratch student"]
    for trace, role in zip(fig.data, history.ROLES):
        assert list(trace.x) == ["T=2 α=0.5", "T=8 α=0.9"]
        assert list(trace.y) == pytest.approx([100 * r["models"][role]["accuracy_mean"] for r in results])
        assert list(trace.error_y.array) == pytest.approx([100 * r["models"][role]["accuracy_std"] for r in results])
    assert fig.layout.barmode == "group" and fig.layout.yaxis.title.text == "test accuracy (%)"
    assert fig.layout.title.text.startswith("Test accuracy of the chosen runs")


def test_delete_removes_exactly_one_run_and_keeps_the_other_and_the_teacher(cache):
    folder, configs = cache
    older, newer = results_of(configs)[::-1]
    before = all_files(folder)
    removed = history.delete_run(newer["key"])
    expected = {folder / "results" / f"{newer['key']}.json",
                *(student_checkpoint_path(newer, role) for role in history.STUDENTS)}
    assert set(removed) == {p.resolve() for p in expected} and len(removed) == 3
    assert all_files(folder) == before - expected
    assert [r["key"] for r in history.list_runs()] == [older["key"]]
    dataset = load_dataset(configs[0].dataset)
    assert cached_teacher(configs[1], dataset) is not None  # the shared teacher stays usable
    assert cached_result(configs[0], dataset)["key"] == older["key"]
    assert all(store.load_checkpoint(student_checkpoint_path(older, r)) is not None for r in history.STUDENTS)
    with pytest.raises(history.RunKeyError, match="no finished run"):
        history.delete_run(newer["key"])  # twice: a clear error, nothing else touched
    assert all_files(folder) == before - expected


@pytest.mark.parametrize("key", ["../x", "", "a/b", "f" * 10_000, "../" * 7 + "etc/passwd", "A" * 20,
                                 "0123456789abcdef012/", None, 12345])
def test_invalid_or_hostile_keys_raise_and_delete_nothing(cache, key):
    folder, _ = cache
    before = all_files(folder)
    with pytest.raises(history.RunKeyError, match="invalid run key") as info:
        history.delete_run(key)
    assert len(str(info.value)) < 200  # a very long key is not echoed in full
    assert all_files(folder) == before


def test_a_link_leading_out_of_the_cache_is_refused(cache, tmp_path):
    folder, _ = cache
    outside = tmp_path / "precious.json"
    outside.write_text(json.dumps({"keep": True}))
    link = folder / "results" / f"{'e' * 20}.json"
    link.symlink_to(outside)
    before = all_files(folder)
    with pytest.raises(history.RunKeyError, match="outside the cache folder"):
        history.delete_run("e" * 20)
    assert outside.is_file() and link.is_symlink() and all_files(folder) == before


def test_corrupt_and_foreign_results_are_skipped(cache, caplog):
    folder, configs = cache
    corrupt = folder / "results" / f"{'a' * 20}.json"
    corrupt.write_text("{not json")
    foreign = folder / "results" / f"{'b' * 20}.json"
    foreign.write_text(json.dumps({"something": "else"}))
    (folder / "results" / "notes.json").write_text("{}")  # not a run key: never read
    tampered = results_of(configs)[0]
    tampered["config"]["seeds"] = "many"  # right shape, wrong type: refused by RunConfig's checks
    (folder / "results" / f"{'c' * 20}.json").write_text(json.dumps(tampered))
    runs = history.list_runs()
    assert [r["key"] for r in runs] == [r["key"] for r in results_of(configs)]
    assert "corrupt cache file" in caplog.text and "rejected cache file" in caplog.text
    # unreadable JSON is removed; well-formed JSON that is not a comparison result (kd_core.schema) is moved aside
    assert not corrupt.exists() and not foreign.exists() and foreign.with_name(foreign.name + ".rejected").exists()
    assert (folder / "results" / f"{'c' * 20}.json.rejected").exists() and (folder / "results" / "notes.json").exists()


def test_no_cache_folder_means_no_runs(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "never-created"))
    assert history.list_runs() == []


# ----------------------------------------------------------------------------------------------------
# The page


def open_history(folder: Path, built_folder: Path | None) -> AppTest:
    """The app's router, then the Run history page, over `folder` (filled from `built_folder` when given)."""
    if built_folder is not None:
        shutil.copytree(built_folder, folder)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def plot_traces(at: AppTest) -> dict[str, list[str]]:
    """Title -> trace names of each Plotly figure on the page."""
    figs = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    return {f["layout"]["title"]["text"].split("<br>")[0]: [t["name"] for t in f["data"]] for f in figs}


@pytest.mark.usefixtures("fresh_app")
def test_page_without_runs_says_so_and_links_home(tmp_path):
    at = open_history(tmp_path / "cache", None)
    assert any("No runs yet" in i.value for i in at.info)
    assert not at.get("plotly_chart") and not at.dataframe


@pytest.mark.usefixtures("fresh_app")
def test_page_lists_runs_draws_the_chosen_ones_and_deletes_with_confirmation(built, tmp_path):
    folder = tmp_path / "cache"  # the fresh_app fixture's cache folder
    at = open_history(folder, built[0])
    table = at.dataframe[0]
    assert list(table.value["run"]) == ["T=2 α=0.5", "T=8 α=0.9"]
    # both runs are ticked at first: two charts with both runs in them
    traces = plot_traces(at)
    assert traces["Test accuracy after each epoch, run by run"] == [
        "T=2 α=0.5 · distilled", "T=2 α=0.5 · scratch", "T=8 α=0.9 · distilled", "T=8 α=0.9 · scratch"]
    assert "Test accuracy of the chosen runs" in traces and len(at.get("plotly_chart")) == 2
    assert sum("Notice:" in c.value for c in at.caption) >= 2

    at.session_state[table.key] = {"selection": {"rows": [1], "columns": [], "cells": []}}  # tick the older only
    at.run()
    assert plot_traces(at)["Test accuracy after each epoch, run by run"] == [
        "T=8 α=0.9 · distilled", "T=8 α=0.9 · scratch"]
    at.segmented_control(key="history-metric").set_value("hard").run()
    assert "Training loss against the labels, run by run" in plot_traces(at)

    delete = at.button(key="history-delete")
    assert delete.disabled  # nothing is deleted before the confirmation box is ticked
    older = table.value["key"][1]
    at.checkbox[0].check().run()
    at.button(key="history-delete").click().run()
    assert not at.exception and not at.error
    assert any("Deleted 1 run(s) (3 files)" in s.value for s in at.success)
    assert list(at.dataframe[0].value["run"]) == ["T=2 α=0.5"]
    assert not (folder / "results" / f"{older}.json").exists()
    assert len(list((folder / "teachers").glob("*.pt"))) == 1
