"""The cache: atomic writes, corrupt files detected and recomputed, unwritable folders survived."""

import torch

from kd_core import store
from kd_core.config import RunConfig
from kd_core.experiment import get_teacher
from kd_core.data import load_dataset


def test_config_key_is_stable_and_sensitive():
    a = store.config_key({"x": 1, "y": [1, 2]})
    assert a == store.config_key({"y": [1, 2], "x": 1})
    assert a != store.config_key({"x": 2, "y": [1, 2]})


def test_json_round_trip_and_corrupt_file(tmp_path, caplog):
    path = tmp_path / "r.json"
    assert store.save_json(path, {"a": 1})
    assert store.load_json(path) == {"a": 1}
    path.write_text('{"a": 1')            # truncated
    assert store.load_json(path) is None
    assert "corrupt" in caplog.text and not path.exists()


def test_checkpoint_round_trip_and_garbage(tmp_path):
    path = tmp_path / "m.pt"
    weights = {"w": torch.arange(4.0)}
    store.save_checkpoint(path, "tiny-mlp", weights, {"accuracy": 0.5})
    name, loaded, meta = store.load_checkpoint(path)
    assert name == "tiny-mlp" and torch.equal(loaded["w"], weights["w"]) and meta == {"accuracy": 0.5}
    path.write_bytes(path.read_bytes()[:50])
    assert store.load_checkpoint(path) is None


def test_pickled_code_is_never_run(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path('%s').write_text('pwned')" % (tmp_path / "flag"),))

    path = tmp_path / "evil.pt"
    torch.save({"model": "x", "state_dict": Evil(), "meta_json": "{}"}, path, pickle_module=pickle)
    assert store.load_checkpoint(path) is None
    assert not (tmp_path / "flag").exists()


def test_unwritable_cache_folder_is_survived(tmp_path, caplog):
    target = tmp_path / "file-not-folder"
    target.write_text("x")
    assert store.atomic_write(target / "sub" / "r.json", b"{}") is False
    assert "continuing without caching" in caplog.text


def test_corrupt_teacher_checkpoint_is_retrained(tiny_config):
    dataset = load_dataset(tiny_config.dataset)
    cfg = tiny_config.replace(teacher_seed=7)
    _, first = get_teacher(cfg, dataset)
    assert not first["cached"]
    path = next(store.cache_path("teachers").glob("*.pt"), None)
    assert path is not None
    for checkpoint in store.cache_path("teachers").glob("*.pt"):
        checkpoint.write_bytes(b"not a checkpoint")
    _, second = get_teacher(cfg, dataset)
    assert not second["cached"]               # recomputed, not loaded blindly
    _, third = get_teacher(cfg, dataset)
    assert third["cached"]


def test_unknown_setting_is_named():
    try:
        RunConfig().replace(temprature=3)
    except ValueError as exc:
        assert "temprature" in str(exc)
    else:
        raise AssertionError("unknown key accepted")
