"""The dark-knowledge lab: each experiment on a tiny config, the bias never sees test data, the sweep resumes."""

import dataclasses
import json
import math
import subprocess
import sys

import pytest
import torch

from kd_core import cli, lab
from kd_core.data import load_dataset
from kd_core.lab import common as lab_common
from kd_core.train import TrainingCancelled


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("mnist-sample")


def test_data_budget_rows_are_well_formed(tiny_config):
    events = []
    result = lab.data_budget(tiny_config.replace(seeds=2), budgets=(20, 0.01), on_event=events.append)
    assert result["experiment"] == "data-budget" and not result["cached"]
    assert [r["images"] for r in result["rows"]] == [20, 40]  # 1 % of the 4,000 training images
    for row in result["rows"]:
        assert len(row["distilled"]) == len(row["scratch"]) == len(row["gains"]) == 2
        assert row["gain"] == pytest.approx(row["distilled_mean"] - row["scratch_mean"], abs=1e-9)
        assert row["steps"] >= 4 and row["epochs"] >= 1 and 0 <= row["distilled_mean"] <= 1
    assert result["summary"]["smallest_gain"] == result["rows"][0]["gain"]
    assert [e.step for e in events if e.phase == "part"] == ["20 images", "40 images"]
    assert events[-1].overall == pytest.approx(1.0)
    json.dumps(result)
    again = lab.data_budget(tiny_config.replace(seeds=2), budgets=(20, 0.01))
    assert again["cached"] and again["rows"] == result["rows"]


def test_budgets_resolve_and_bad_ones_are_named():
    assert lab.resolve_budgets((0.01, 1.0, 400, 400), 4000) == [40, 400, 4000]
    assert lab.resolve_budgets((0.001,), 4000) == [10]
    with pytest.raises(ValueError, match="must be positive"):
        lab.resolve_budgets((0,), 4000)
    with pytest.raises(ValueError, match="whole number"):
        lab.resolve_budgets((2.5,), 4000)


def test_omitted_class_is_well_formed(tiny_config, dataset):
    result = lab.omitted_class(tiny_config, label=3)
    assert result["label"] == 3 and result["class_name"] == "3"
    for role in ("teacher", "scratch", "distilled", "distilled_corrected", "distilled_all"):
        for metric in ("accuracy_mean", "label_accuracy_mean", "other_accuracy_mean"):
            assert 0 <= result["models"][role][metric] <= 1
    assert result["bias"]["chosen"][0] in result["bias"]["grid"]
    assert len(result["bias"]["curve"]) == len(result["bias"]["grid"])
    matrix = torch.tensor(result["confusion"]["distilled"])
    assert matrix.shape == (10, 10) and int(matrix.sum()) == len(dataset.test_y)
    assert result["examples"] and all(int(dataset.test_y[e["test_index"]]) == 3 for e in result["examples"])
    assert all(math.isclose(sum(e["distilled"]["probabilities"]), 1, abs_tol=1e-3) for e in result["examples"])
    assert result["heldout_label_images"] > 0 and result["student_train_images"] > 0
    json.dumps(result)


def test_omitted_class_students_never_see_the_label(tiny_config, monkeypatch):
    seen = []
    real = lab_common.train_student

    def spy(cfg, initial, images, labels, **kw):
        seen.append((kw["teacher_logits"] is not None, set(labels.tolist())))
        return real(cfg, initial, images, labels, **kw)

    monkeypatch.setattr(lab_common, "train_student", spy)
    lab.omitted_class(tiny_config, label=5, use_cache=False)
    assert [5 in labels for _, labels in seen] == [False, False, True]  # distilled, scratch, distilled_all


def test_bias_is_chosen_without_reading_test_data(tiny_config, dataset):
    """Scrambled test images and permuted test labels change the reported scores but not the chosen bias."""
    generator = torch.Generator().manual_seed(1)
    corrupted = dataclasses.replace(
        dataset, test_x=torch.randint(0, 256, dataset.test_x.shape, dtype=torch.uint8, generator=generator),
        test_y=dataset.test_y[torch.randperm(len(dataset.test_y), generator=generator)],
        fingerprint=dataset.fingerprint + "-corrupted-test")
    real = lab.omitted_class(tiny_config, label=3, use_cache=False, dataset=dataset)
    fake = lab.omitted_class(tiny_config, label=3, use_cache=False, dataset=corrupted)
    assert fake["models"]["distilled"]["accuracy_mean"] != real["models"]["distilled"]["accuracy_mean"]
    assert fake["bias"]["chosen"] == real["bias"]["chosen"]
    assert fake["bias"]["curve"] == real["bias"]["curve"]


def test_choose_bias_picks_the_heldout_best_and_the_smallest_on_ties():
    # Two class-3 examples need a bias above 1 and above 2; one class-0 example is lost above 4.
    logits = torch.tensor([[1.0, 0, 0, 0.0], [2.0, 0, 0, 0.0], [0, 0, 0, -4.0]])
    labels = torch.tensor([3, 3, 0])
    bias, curve = lab.choose_bias(logits, labels, 3, grid=(0, 1.5, 2.5, 3, 5))
    assert bias == 2.5
    assert [round(c["heldout_accuracy"], 3) for c in curve] == [0.333, 0.667, 1.0, 1.0, 0.667]


def test_sweep_resumes_from_cache(tiny_config, monkeypatch, tmp_path):
    monkeypatch.setenv("KD_LAB_CACHE_DIR", str(tmp_path))
    trained = []
    real = lab_common.train_student

    def counting(*args, **kw):
        out = real(*args, **kw)
        trained.append(1)
        return out

    monkeypatch.setattr(lab_common, "train_student", counting)
    grid = dict(temperatures=(1, 4), alphas=(0.5, 1.0))
    with pytest.raises(TrainingCancelled):  # interrupted after two students (scratch and one cell)
        lab.sweep(tiny_config, **grid, should_stop=lambda: len(trained) >= 2)
    assert len(trained) == 2
    events = []
    first = lab.sweep(tiny_config, **grid, on_event=events.append)
    assert len(trained) == 5 and first["trained_students"] == 3 and first["cached_students"] == 2
    parts = [e.partial for e in events if e.phase == "part"]
    assert len(parts) == 5 and parts[1]["cached"] and not parts[-1]["cached"]  # cells arrive as they finish
    again = lab.sweep(tiny_config, **grid)
    assert len(trained) == 5 and again["trained_students"] == 0 and again["cached"]
    assert again["matrix"] == first["matrix"] and len(first["matrix"]) == 2 and len(first["matrix"][0]) == 2
    best = [c for c in first["cells"] if c["best"]]
    assert len(best) == 1 and best[0]["within_noise"] and first["best"]["mean"] == max(c["mean"] for c in first["cells"])


def test_t_squared_scales_the_soft_gradient_by_t_squared(tiny_config):
    result = lab.t_squared(tiny_config, temperatures=(1, 4))
    low, high = result["rows"]
    assert low["without_t2"]["same_as_with_t2"]
    for key in ("soft_grad_logits", "soft_grad_params"):
        assert high["with_t2"][key] == pytest.approx(16 * high["without_t2"][key], rel=1e-4)
        assert high["without_t2"][key] < low["without_t2"][key]  # the collapse the T² factor prevents
    assert high["with_t2"]["hard_grad_params"] == pytest.approx(low["with_t2"]["hard_grad_params"])
    assert 0 <= high["without_t2"]["accuracy_mean"] <= 1 and 0 <= result["scratch"]["mean"] <= 1
    json.dumps(result)


TINY_FLAGS = ["--teacher-train-limit", "300", "--teacher-epochs", "1", "--student-train-limit", "100",
              "--student-epochs", "2", "--batch-size", "50"]


@pytest.mark.parametrize("argv,keys", [
    (["data-budget", "--budgets", "20,0.05", "--seeds", "1"], ["rows", "summary", "teacher"]),
    (["omitted-class", "--label", "7"], ["models", "bias", "confusion", "examples", "other_class_gap"]),
    (["sweep", "--temperatures", "2", "--alphas", "0.5,0.9"], ["cells", "matrix", "best", "scratch"]),
    (["t-squared", "--temperatures", "1,8"], ["rows", "scratch"]),
])
def test_cli_experiment_writes_json(argv, keys, tmp_path, capsys):
    out = tmp_path / "result.json"
    assert cli.main(["experiment", *argv, *TINY_FLAGS, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["experiment"] == argv[0] and result["config"]["student_train_limit"] == 100
    assert all(key in result for key in keys)
    captured = capsys.readouterr()
    assert captured.out.strip() and "done:" in captured.err


@pytest.mark.parametrize("argv,message", [
    (["experiment", "omitted-class", "--label", "12"], "out of range"),
    (["experiment", "sweep", "--alphas", "0.5,2"], "alpha must be between 0 and 1"),
    (["experiment", "data-budget", "--budgets", "0"], "must be positive"),
])
def test_cli_bad_values_give_a_message(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_bad_flags_exit_without_traceback():
    for argv, message in ((["experiment", "nope"], "invalid choice"),
                          (["experiment", "sweep", "--temperatures", "1,x"], "not a number"),
                          (["experiment", "omitted-class", "--student-train-limit", "few"], "nor 'all'")):
        proc = subprocess.run([sys.executable, "-m", "kd_core", *argv], capture_output=True, text=True)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and message in proc.stderr
