"""Layer-wise hints: features by layer, matched shapes, the hint loss falls, weight 0 changes nothing, lab and CLI."""

import json

import pytest
import torch

from kd_core import cli, hints, lab
from kd_core.data import load_dataset, to_float
from kd_core.experiment import balanced_subset, hint_for, initial_student_weights, run_experiment, train_student
from kd_core.models import create_model
from kd_core.train import train


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory):
    """A cache folder of this module's own, so other test files still find their teachers untrained."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KD_LAB_CACHE_DIR", str(tmp_path_factory.mktemp("hints-cache")))
        yield


@pytest.fixture(scope="module")
def small():
    ds = load_dataset("mnist-sample")
    idx = balanced_subset(ds.train_y, 100)
    return ds.train_x[idx], ds.train_y[idx]


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return create_model("classroom-teacher").eval()


def test_features_equal_the_sequential_prefix(small, teacher):
    x = small[0][:7]
    got = hints.features(teacher, "5", x)
    with torch.no_grad():
        expected = teacher[:6](to_float(x))  # conv, relu, pool, conv, relu, pool
    assert got.shape == (7, 64, 7, 7) and torch.allclose(got, expected)


@pytest.mark.parametrize("teacher_name,student_name,t_shape,s_shape,matched,params", [
    ("classroom-teacher", "keras-student", (64, 7, 7), (32, 7, 7), (64, 7, 7), 32 * 64 + 64),
    ("keras-teacher", "keras-student", (512, 7, 7), (32, 7, 7), (512, 7, 7), 32 * 512 + 512),
    ("classroom-teacher", "tiny-mlp", (64, 7, 7), (32,), (64,), 32 * 64 + 64),
])
def test_matched_shapes_and_projection(teacher_name, student_name, t_shape, s_shape, matched, params):
    pair = hints.hint_pair(teacher_name, student_name)
    assert (pair.teacher_shape, pair.student_shape, pair.matched_shape) == (t_shape, s_shape, matched)
    projection = pair.new_projection(seed=0)
    assert sum(p.numel() for p in projection.parameters()) == pair.projection_params == params
    student_features = torch.randn(2, *s_shape)
    assert projection(hints.pool_to(student_features, matched)).shape == (2, *matched)
    info = pair.describe()
    assert info["teacher"]["shape"] == list(t_shape) and info["student"]["layer"] == pair.student_layer
    json.dumps(info)


def test_pooling_to_a_smaller_map_and_bad_layers_are_named():
    pair = hints.hint_pair("classroom-teacher", "keras-student", teacher_layer="2")  # first block: 32 x 14 x 14
    assert pair.teacher_shape == (32, 14, 14) and pair.matched_shape == (32, 7, 7)
    x = torch.arange(4.0).reshape(1, 1, 2, 2)
    assert hints.pool_to(x, (1, 1, 1)).item() == 1.5 and hints.pool_to(x, (1,)).tolist() == [[1.5]]
    with pytest.raises(ValueError, match="no layer '42'"):
        hints.hint_pair("classroom-teacher", "keras-student", teacher_layer=42)


def test_hint_distances_against_hand_computation():
    a, b = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    assert hints.hint_distance(a, b, "mse").item() == pytest.approx((0 + 4 + 9 + 16) / 4)
    # cosine: 1 - cos per image, so scale does not matter; orthogonal = 1, opposite = 2
    assert hints.hint_distance(b, 3 * b, "cosine").item() == pytest.approx(0.0, abs=1e-6)
    assert hints.hint_distance(b, -b, "cosine").item() == pytest.approx(2.0)
    assert hints.hint_distance(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 5.0]]), "cosine").item() == 1.0
    with pytest.raises(ValueError, match="unknown hint loss"):
        hints.hint_distance(a, b, "l1")


def test_the_hint_term_falls_and_trains_the_projection(small, teacher):
    pair = hints.hint_pair("classroom-teacher", "keras-student")
    targets = hints.teacher_targets(teacher, pair, small[0])
    hint = hints.HintLoss(pair, weight=10.0, seed=0, targets=targets)  # the hint term dominates the CE term
    before = [p.detach().clone() for p in hint.params]
    torch.manual_seed(0)
    student = create_model("keras-student")
    train(student, *small, epochs=4, batch_size=20, lr=3e-3, seed=0, extra_loss=hint.bind(student),
          extra_params=hint.params)
    hint.unbind()
    assert len(hint.values) == 20
    assert sum(hint.values[-5:]) / 5 < 0.7 * hint.values[0]
    assert any(not torch.equal(a, b) for a, b in zip(before, hint.params))


def test_hint_weight_zero_gives_exactly_the_plain_student(small, teacher, tiny_config):
    cfg = tiny_config
    assert cfg.hint_weight == 0.0 and cfg.as_dict()["hint_weight"] == 0.0
    soft = torch.randn(len(small[1]), 10)
    initial = initial_student_weights(cfg, 0)
    plain, h1, _, _ = train_student(cfg, initial, *small, seed=0, teacher_logits=soft)
    make, _ = hint_for(cfg.replace(hint_weight=1.0), teacher, small[0])
    zero = make(0, 0.0)
    hinted, h2, _, _ = train_student(cfg, initial, *small, seed=0, teacher_logits=soft, hint=zero)
    assert h1.loss == h2.loss and h1.soft == h2.soft and zero.values
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), hinted.state_dict().values()))
    assert not zero._handle  # the hook is gone after training


def test_per_batch_teacher_features_equal_the_precomputed_ones(small, teacher, tiny_config, monkeypatch):
    cfg = tiny_config.replace(hint_weight=1.0)
    make, info = hint_for(cfg, teacher, small[0])
    assert info["teacher_features"] == "computed once"
    monkeypatch.setattr(hints, "HINT_MEMORY_BYTES", 1)
    make_lazy, info_lazy = hint_for(cfg, teacher, small[0])
    assert info_lazy["teacher_features"].startswith("computed per batch")
    idx = torch.tensor([3, 0, 7])
    assert torch.allclose(make(0).target(idx), make_lazy(0).target(idx))


def test_run_experiment_with_hint_reports_what_is_matched(tiny_config):
    result = run_experiment(tiny_config.replace(hint_weight=0.5, hint_loss="cosine"), use_cache=False)
    h = result["hint"]
    assert h["weight"] == 0.5 and h["loss"] == "cosine" and h["matched_shape"] == [64, 7, 7]
    assert h["teacher"]["layer"] == "5" and h["student"]["shape"] == [32, 7, 7]
    for run in result["models"]["distilled"]["runs"]:
        assert run["hint_distance_last"] >= 0 and run["hint_distance_first"] >= 0
    assert "hint_distance_first" not in result["models"]["scratch"]["runs"][0]
    assert "hint" not in run_experiment(tiny_config, use_cache=False)


def test_hints_experiment_is_well_formed(tiny_config):
    events = []
    result = lab.hints(tiny_config.replace(seeds=2), weights=(1.0,), on_event=events.append)
    assert result["experiment"] == "hints" and not result["cached"] and result["weights"] == [0.0, 1.0]
    plain, hinted = result["rows"]
    assert plain["weight"] == 0 and plain["gain_vs_plain_kd"] == 0 and plain["hint_distance_first"] is None
    assert len(hinted["accuracies"]) == 2 and 0 <= hinted["accuracy_mean"] <= 1
    assert hinted["hint_distance_last"] < hinted["hint_distance_first"]
    assert hinted["gain_vs_plain_kd"] == pytest.approx(hinted["accuracy_mean"] - plain["accuracy_mean"], abs=1e-9)
    m = result["matched"]
    assert m["teacher"]["shape"] == [64, 7, 7] and m["student"]["shape"] == [32, 7, 7]
    assert m["projection_params"] == 2112
    assert len(result["scratch"]["accuracies"]) == 2
    assert {e.phase for e in events} >= {"scratch", "distilled", "hinted", "part"}
    assert events[-1].overall == pytest.approx(1.0)
    json.dumps(result)
    assert lab.hints(tiny_config.replace(seeds=2), weights=(0, 1))["cached"]


TINY = ["--train-limit", "100", "--epochs", "1", "--batch-size", "50"]


@pytest.fixture
def keep_one_thread(monkeypatch):
    """The CLI gives torch a thread per core; on a machine shared with busy processes one is faster here."""
    monkeypatch.setattr("kd_core.train.configure_threads", lambda workers=1: torch.get_num_threads())


def test_cli_run_hint_writes_json(tmp_path, capsys, keep_one_thread):
    out = tmp_path / "hint.json"
    assert cli.main(["run", *TINY, "--hint", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["config"]["hint_weight"] == 1.0 and result["hint"]["projection"].startswith("1x1 conv")
    assert "with hint" in capsys.readouterr().out
    assert cli.main(["run", *TINY, "--hint", "0.3", "--hint-loss", "cosine", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["config"]["hint_weight"] == 0.3 and result["hint"]["loss"] == "cosine"
    assert cli.main(["run", "--hint", "-1"]) == 2
    assert "hint weight" in capsys.readouterr().err


def test_cli_experiment_hints_writes_json(tmp_path, capsys, keep_one_thread):
    out = tmp_path / "hints.json"
    flags = ["--teacher-train-limit", "300", "--teacher-epochs", "1", "--student-train-limit", "100",
             "--student-epochs", "2", "--batch-size", "50", "--seeds", "1"]
    assert cli.main(["experiment", "hints", "--weights", "2", *flags, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["weights"] == [0.0, 2.0] and "matched" in result
    assert "hint weight" in capsys.readouterr().out
