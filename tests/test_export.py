"""Exports for slides and homework: the CSV and JSON of real tiny results read back to exactly the same numbers.

Every result comes from the engine itself (tiny configs), computed once for the module in a cache folder of
its own: shared with the session's cache, it would turn the first run that another module times or counts
events of into a cache hit.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from kd_core import compress, export, lab, lm
from kd_core.experiment import run_experiment

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def read(rows: list[dict]) -> list[dict[str, str]]:
    """The CSV of `rows` as a spreadsheet would read it: a dict of text per row."""
    return list(csv.DictReader(io.StringIO(export.to_csv(rows))))


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory):
    """This module's results go to a cache folder of its own (see the module docstring)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("KD_LAB_CACHE_DIR", str(tmp_path_factory.mktemp("export-cache")))
    yield
    patch.undo()


@pytest.fixture(scope="module")
def comparison(tiny_config, one_thread):
    return run_experiment(tiny_config.replace(seeds=2))


@pytest.fixture(scope="module")
def experiments(tiny_config, one_thread):
    return {"data-budget": lab.data_budget(tiny_config.replace(seeds=2), budgets=(20, 0.01)),
            "omitted-class": lab.omitted_class(tiny_config, label=3),
            "sweep": lab.sweep(tiny_config, temperatures=(1, 4), alphas=(0.5, 1.0)),
            "t-squared": lab.t_squared(tiny_config, temperatures=(1, 4)),
            "hints": lab.hints(tiny_config, weights=(1.0,))}


@pytest.fixture(scope="module")
def lm_result():
    with lm.torch_threads():
        return lm.run_lm(lm.LMConfig().replace(**{**lm.TINY, "seeds": 2}))


@pytest.fixture(scope="module")
def compression(tiny_config, one_thread, comparison):
    """Compression of the comparison's students (already trained), without the slow ONNX export."""
    return compress.compress(tiny_config.replace(seeds=2), compress.CompressConfig(
        throughput_batch=16, latency_runs=20, calibration_images=64, export_onnx=False))


def test_comparison_csv_has_every_model_and_seed_at_full_precision(comparison):
    rows = read(export.comparison_rows(comparison))
    models = comparison["models"]
    assert [(r["role"], r["seed"]) for r in rows] == [("teacher", "0"), ("distilled", "0"), ("distilled", "1"),
                                                      ("scratch", "0"), ("scratch", "1")]
    assert list(rows[0])[:6] == ["run", "dataset", "role", "architecture", "seed", "accuracy"]
    assert float(rows[0]["accuracy"]) == models["teacher"]["accuracies"][0]
    assert [float(r["accuracy_class_7"]) for r in rows[:1]] == [models["teacher"]["per_class"][7]]
    assert rows[0]["agreement_with_teacher"] == "" and rows[0]["alpha"] == ""  # blanks where it does not apply
    for role in ("distilled", "scratch"):
        mine = [r for r in rows if r["role"] == role]
        runs = models[role]["runs"]
        assert [float(r["accuracy"]) for r in mine] == models[role]["accuracies"] == [run["accuracy"] for run in runs]
        assert [float(r["agreement_with_teacher"]) for r in mine] == [run["agreement_with_teacher"] for run in runs]
        assert [float(r["accuracy_class_3"]) for r in mine] == [run["per_class"][3] for run in runs]
        assert [float(r["train_seconds"]) for r in mine] == [run["seconds"] for run in runs]
        assert {float(r["accuracy_std"]) for r in mine} == {models[role]["accuracy_std"]}
        assert {int(r["params"]) for r in mine} == {models[role]["params"]}
    assert {r["alpha"] for r in rows if r["role"] == "scratch"} == {"0.0"}  # the scratch student: labels alone
    assert {r["temperature"] for r in rows if r["role"] == "distilled"} == {str(comparison["config"]["temperature"])}


def test_data_budget_csv(experiments):
    result = experiments["data-budget"]
    rows = read(export.experiment_rows("data-budget", result))
    assert len(rows) == sum(len(r["distilled"]) for r in result["rows"]) == 4
    by_images = {r["images"]: r for r in result["rows"]}
    for row in rows:
        budget, seed = by_images[int(row["images"])], int(row["seed"])
        assert float(row["distilled_accuracy"]) == budget["distilled"][seed]
        assert float(row["scratch_accuracy"]) == budget["scratch"][seed]
        assert float(row["gain"]) == budget["gains"][seed] and float(row["noise"]) == budget["noise"]
        assert row["within_noise"] == str(budget["within_noise"])


def test_omitted_class_csv(experiments):
    result = experiments["omitted-class"]
    rows = read(export.experiment_rows("omitted-class", result))
    assert [r["model"] for r in rows] == ["scratch", "distilled", "distilled_corrected", "distilled_all", "teacher"]
    for row in rows[:-1]:
        run = result["models"][row["model"]]["runs"][int(row["seed"])]
        assert float(row["omitted_class_accuracy"]) == run["label_accuracy"]
        assert float(row["other_classes_accuracy"]) == run["other_accuracy"]
        assert float(row["accuracy"]) == run["accuracy"]
    assert float(rows[2]["bias"]) == result["bias"]["chosen"][0] and rows[1]["bias"] == ""
    assert float(rows[-1]["omitted_class_accuracy"]) == result["models"]["teacher"]["label_accuracy_mean"]
    assert {r["omitted_class"] for r in rows} == {result["class_name"]}


def test_sweep_csv(experiments):
    result = experiments["sweep"]
    rows = read(export.experiment_rows("sweep", result))
    assert float(rows[0]["accuracy"]) == result["scratch"]["accuracies"][0] and rows[0]["temperature"] == ""
    cells = {(c["temperature"], c["alpha"]): c for c in result["cells"]}
    assert len(rows) == 1 + len(cells) == 5
    for row in rows[1:]:
        cell = cells[(float(row["temperature"]), float(row["alpha"]))]
        assert float(row["accuracy"]) == cell["accuracies"][int(row["seed"])]
        assert float(row["gain_vs_scratch"]) == cell["gain"] and row["best"] == str(cell["best"])


def test_t_squared_csv(experiments):
    result = experiments["t-squared"]
    rows = read(export.experiment_rows("t-squared", result))
    assert len(rows) == 1 + 2 * len(result["rows"])  # scratch, then with and without T² per temperature
    parts = {(r["temperature"], flag): r["with_t2" if flag else "without_t2"] for r in result["rows"]
             for flag in (True, False)}
    for row in rows[1:]:
        part = parts[(float(row["temperature"]), row["t_squared"] == "True")]
        assert float(row["accuracy"]) == part["accuracies"][int(row["seed"])]
        assert float(row["soft_grad_params"]) == part["soft_grad_params"]
    high = [r for r in rows if r["temperature"] == "4.0"]
    assert float(high[0]["soft_grad_params"]) > float(high[1]["soft_grad_params"])  # the collapse without T²


def test_hints_csv(experiments):
    result = experiments["hints"]
    rows = read(export.experiment_rows("hints", result))
    assert [(r["model"], r["hint_weight"]) for r in rows] == [("scratch", ""), ("distilled", "0.0"), ("hinted", "1.0")]
    assert [float(r["accuracy"]) for r in rows[1:]] == [r["accuracies"][0] for r in result["rows"]]


def test_unknown_experiment_is_named():
    with pytest.raises(ValueError, match="choose from.*data-budget"):
        export.experiment_rows("budget", {})


def test_language_model_csv(lm_result):
    rows = read(export.lm_rows(lm_result))
    models = lm_result["models"]
    assert [(r["role"], r["seed"]) for r in rows] == [("teacher", "0"), ("distilled", "0"), ("distilled", "1"),
                                                      ("scratch", "0"), ("scratch", "1")]
    for role in ("teacher", "distilled", "scratch"):
        mine = [r for r in rows if r["role"] == role]
        assert [float(r["val_bits_per_char"]) for r in mine] == models[role]["val_bpc"]
        assert [float(r["val_nats"]) for r in mine] == models[role]["val_nats"]
        assert mine[0]["sample"].removeprefix("'") == models[role]["sample"]  # generated text survives the CSV
        assert all(r["sample"] == "" for r in mine[1:])


def test_compression_csv(compression):
    rows = read(export.compression_rows(compression))
    assert [r["id"] for r in rows] == [r["id"] for r in compression["rows"]]
    for row, stage in zip(rows, compression["rows"]):
        assert float(row["accuracy"]) == stage["accuracy"] and int(row["size_bytes"]) == stage["size_bytes"]
        assert float(row["latency_ms.median_ms"]) == stage["latency_ms"]["median_ms"]
        assert float(row["throughput.median"]) == stage["throughput"]["median"]


def test_json_is_the_whole_result_with_sorted_keys(comparison, experiments, lm_result, compression):
    for result in (comparison, *experiments.values(), lm_result, compression):
        text = export.to_json(result)
        assert json.loads(text) == result
        assert text == json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False)


def test_numpy_and_torch_values_become_plain_numbers():
    third = np.float64(0.1) + np.float64(0.2)  # not 0.3: full precision must survive
    document = {"acc": np.float32(0.5), "third": third, "n": np.int64(7), "curve": np.arange(3),
                "t": torch.tensor([1.5]), "pair": (1, 2)}
    assert json.loads(export.to_json(document)) == {"acc": 0.5, "third": 0.30000000000000004, "n": 7,
                                                    "curve": [0, 1, 2], "t": [1.5], "pair": [1, 2]}
    [row] = read([{"third": third, "n": np.int64(7)}])
    assert float(row["third"]) == third and row["n"] == "7"


def test_text_a_spreadsheet_would_run_as_a_formula_is_neutralised():
    """Language-model samples are text generated by a model trained on the user's upload: any text at all.

    A spreadsheet runs a cell starting with =, +, -, @ (or tab, CR) as a formula; such text gets a leading
    apostrophe. Numbers, negative ones included, stay numbers."""
    [row] = read([{"a": "=HYPERLINK(\"http://x\")", "b": "+1", "c": "-2+3", "d": "@SUM(A1)", "e": "\tx",
                   "safe": "Return the ", "neg": -0.25, "text": "a=b"}])
    assert [row[k] for k in "abcde"] == ["'=HYPERLINK(\"http://x\")", "'+1", "'-2+3", "'@SUM(A1)", "'\tx"]
    assert row["safe"] == "Return the " and row["neg"] == "-0.25" and row["text"] == "a=b"


def test_rows_with_different_columns_share_one_header():
    assert export.to_csv([{"a": 1}, {"b": None, "a": 2}]).splitlines() == ["a,b", "1,", "2,"]


def test_compare_page_offers_the_csv_and_the_json(fresh_app):
    import ui

    result = run_experiment(ui.base_preset("classroom"))  # the tiny config the page shows (fresh_app: tiny mode)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/compare.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    buttons = [b for b in at.get("download_button") if b.key != "compare-script"]  # the script: tests/test_standalone.py
    assert [b.proto.label for b in buttons] == ["Table (CSV)", "Everything (JSON)"]
    assert [b.key for b in buttons] == [f"dl-comparison-{result['key']}-csv", f"dl-comparison-{result['key']}-json"]
    assert [Path(b.proto.url).suffix for b in buttons] == [".csv", ".json"]
    assert all(b.proto.ignore_rerun for b in buttons)  # a download does not re-run the page
    configs = [json.loads(chart.proto.config) for chart in at.get("plotly_chart")]
    assert len(configs) == 4 and {c["toImageButtonOptions"]["format"] for c in configs} == {"png"}  # + the confusion cells
    assert configs[0]["toImageButtonOptions"]["filename"].startswith("kd-lab-test-accuracy-of-the-three-models")
