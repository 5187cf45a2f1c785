"""Training: the loss falls, cancel stops within one step, same seed gives the same numbers, fair pairs."""

import pytest
import torch

from kd_core.data import load_dataset
from kd_core.experiment import balanced_subset, run_experiment
from kd_core.models import create_model
from kd_core.train import TrainingCancelled, train


@pytest.fixture(scope="module")
def small():
    ds = load_dataset("mnist-sample")
    idx = balanced_subset(ds.train_y, 200)
    return ds.train_x[idx], ds.train_y[idx]


def fit(small, seed=0, **kw):
    torch.manual_seed(seed)
    model = create_model("keras-student")
    history = train(model, *small, epochs=kw.pop("epochs", 3), batch_size=20, lr=3e-3, seed=seed, **kw)
    return model, history


def test_a_few_epochs_lower_the_loss(small):
    _, history = fit(small)
    assert history.loss[-1] < history.loss[0] * 0.7
    assert history.train_acc[-1] > history.train_acc[0]


def test_distillation_loss_falls_and_reports_both_parts(small):
    teacher_logits = torch.randn(len(small[1]), 10) * 3
    _, history = fit(small, teacher_logits=teacher_logits, temperature=4.0, alpha=0.9)
    assert history.soft[-1] < history.soft[0]
    assert all(s > 0 for s in history.soft) and all(h > 0 for h in history.hard)


def test_cancel_stops_within_one_step(small):
    steps = []

    def should_stop():
        steps.append(1)
        return len(steps) > 3

    model = create_model("keras-student")
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(TrainingCancelled):
        train(model, *small, epochs=5, batch_size=20, lr=1e-3, seed=0, should_stop=should_stop)
    assert len(steps) == 4   # polled before each step; stopped at the first True
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_same_seed_same_numbers(small):
    (m1, h1), (m2, h2) = fit(small, seed=1, epochs=1), fit(small, seed=1, epochs=1)
    assert h1.loss == h2.loss
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    _, h3 = fit(small, seed=2, epochs=1)
    assert h3.loss != h1.loss


def test_progress_callback_gets_epoch_end_test_accuracy(small):
    seen = []
    ds = load_dataset("mnist-sample")
    fit(small, epochs=2, eval_set=(ds.test_x[:100], ds.test_y[:100]), on_progress=seen.append)
    ends = [p for p in seen if p.test_acc is not None]
    assert [p.epoch for p in ends] == [1.0, 2.0]
    assert seen[-1].step == seen[-1].steps


def test_balanced_subset_takes_classes_in_turn():
    labels = torch.tensor([0] * 50 + [1] * 50 + [2] * 5)
    idx = balanced_subset(labels, 12)
    assert torch.bincount(labels[idx]).tolist() == [4, 4, 4]
    assert len(balanced_subset(labels, None)) == len(labels)


def test_run_experiment_pairs_start_equal_and_result_is_cached(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("KD_LAB_CACHE_DIR", str(tmp_path))  # its own cache: other test files run this config too
    events = []
    cfg = tiny_config.replace(seeds=2)
    result = run_experiment(cfg, on_event=events.append)
    models = result["models"]
    assert set(models) == {"teacher", "distilled", "scratch"}
    for role in ("distilled", "scratch"):
        assert len(models[role]["accuracies"]) == 2
        assert 0.0 <= models[role]["accuracy_mean"] <= 1.0
    for d, s in zip(models["distilled"]["runs"], models["scratch"]["runs"]):
        assert d["initial_first_layer_norm"] == s["initial_first_layer_norm"]  # same starting weights
    assert {e.phase for e in events} == {"teacher", "distilled", "scratch"}
    assert events[-1].overall == pytest.approx(1.0)
    assert not result["cached"] and not models["teacher"]["cached"]

    again = run_experiment(cfg)
    assert again["cached"] and again["models"]["distilled"]["accuracies"] == models["distilled"]["accuracies"]
    other_students = run_experiment(cfg.replace(temperature=2.0))
    assert other_students["models"]["teacher"]["cached"]   # the teacher is reused, not retrained


def test_a_fresh_teacher_and_its_cached_copy_give_identical_logits(tiny_config, tmp_path, monkeypatch):
    """The first run of a config and every later one (teacher from the cache) must see the same soft targets."""
    from kd_core.evaluate import predict_logits
    from kd_core.experiment import get_teacher

    monkeypatch.setenv("KD_LAB_CACHE_DIR", str(tmp_path))
    dataset = load_dataset(tiny_config.dataset)
    fresh, meta = get_teacher(tiny_config, dataset)
    cached, cached_meta = get_teacher(tiny_config, dataset)
    assert not meta["cached"] and cached_meta["cached"]
    images = dataset.test_x[:200]
    assert torch.equal(predict_logits(fresh, images), predict_logits(cached, images))


def test_curves_use_the_fixed_test_subset_and_final_numbers_the_whole_test_set(tiny_config, tmp_path, monkeypatch):
    """Per-epoch test accuracy on the first CURVE_TEST_IMAGES test images, final accuracies on all of them, and
    the result says which; a result stored before these keys existed still passes the schema."""
    from kd_core import experiment, schema
    from kd_core.evaluate import accuracy, predict_logits

    monkeypatch.setenv("KD_LAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(experiment, "CURVE_TEST_IMAGES", 300)
    dataset = load_dataset(tiny_config.dataset)
    result = run_experiment(tiny_config)
    assert (result["curve_test_images"], result["test_images"]) == (300, len(dataset.test_y)) == (300, 1000)
    teacher = result["models"]["teacher"]
    assert teacher["curve_test_images"] == 300
    precision = tiny_config.compute_precision()  # bf16 on a CPU that has it natively

    def score(model, n=None):
        return accuracy(predict_logits(model, dataset.test_x[:n], precision=precision), dataset.test_y[:n])

    for role in ("distilled", "scratch"):
        run = result["models"][role]["runs"][0]
        student = experiment.load_student(result, role)
        assert run["history"]["test_acc"][-1] == score(student, 300) and run["accuracy"] == score(student)
    cached_teacher, _ = experiment.cached_teacher(tiny_config, dataset)
    assert teacher["accuracies"] == [score(cached_teacher)]

    stored = {k: v for k, v in result.items() if k not in ("curve_test_images", "test_images", "cached")}
    stored["models"] = {**stored["models"], "teacher": {k: v for k, v in teacher.items() if k != "curve_test_images"}}
    schema.validate(stored, schema.COMPARISON)  # as written before curves used a subset
    with pytest.raises(schema.SchemaError, match="curve_test_images"):
        schema.validate({**result, "curve_test_images": 2000}, schema.COMPARISON)
