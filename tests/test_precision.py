"""Precision: "auto" is bf16 only on CPUs with native bf16, fp32 keys as before, forced bf16 trains and evaluates."""

import pytest
import torch

from kd_core import config
from kd_core.cli.run import config_from_args
from kd_core.config import RunConfig, native_bf16, preset
from kd_core.evaluate import accuracy, predict_logits
from kd_core.data import load_dataset
from kd_core.experiment import balanced_subset, read_result, result_path, run_experiment
from kd_core.models import create_model
from kd_core.train import train


@pytest.mark.parametrize("flags, native", [("fpu avx2 fma", False), ("avx2 avx512f avx512_bf16", True),
                                           ("avx2 amx_bf16 amx_tile", True), ("avx512f avx512_vnni", False)])
def test_native_bf16_reads_the_cpu_flags(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
    assert native_bf16(cpuinfo) is native
    assert native_bf16(tmp_path / "absent") is False


@pytest.mark.parametrize("native", [False, True])
def test_auto_resolves_to_the_native_precision_and_configs_rebuild_from_their_dict(monkeypatch, native):
    monkeypatch.setattr(config, "native_bf16", lambda: native)
    assert RunConfig().compute_precision() == ("bf16" if native else "fp32")
    for precision in config.PRECISIONS:
        cfg = preset("keras").replace(precision=precision)
        rebuilt = RunConfig(**cfg.as_dict())  # as the pages rebuild a stored result's config
        assert rebuilt.compute_precision() == cfg.compute_precision() and rebuilt.as_dict() == cfg.as_dict()


def test_fp32_on_a_cpu_without_bf16_keys_as_before_the_setting(monkeypatch):
    """No "precision" entry where the result is fp32 on an fp32 CPU (the pinned keys of test_cache_compat);
    bf16, and anything on a bf16 CPU, keys apart."""
    monkeypatch.setattr(config, "native_bf16", lambda: False)
    cfg = preset("classroom")
    for same in (cfg, cfg.replace(precision="fp32")):
        assert "precision" not in same.as_dict() and "precision" not in same.teacher_dict()
    assert cfg.replace(precision="bf16").as_dict()["precision"] == "bf16"
    assert cfg.replace(precision="bf16").teacher_dict()["precision"] == "bf16"
    monkeypatch.setattr(config, "native_bf16", lambda: True)
    assert cfg.as_dict()["precision"] == "bf16" and cfg.replace(precision="fp32").as_dict()["precision"] == "fp32"


def test_unknown_precision_is_refused_everywhere():
    with pytest.raises(ValueError, match="precision"):
        preset("classroom").replace(precision="fp16")
    with pytest.raises(ValueError, match="auto"):
        predict_logits(create_model("tiny-mlp"), torch.zeros(2, 28, 28, dtype=torch.uint8), precision="auto")


def test_cli_precision_flag():
    import argparse

    from kd_core.cli.run import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    assert config_from_args(parser.parse_args(["run", "--precision", "bf16"])).precision == "bf16"
    assert config_from_args(parser.parse_args(["run"])).precision == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--precision", "fp16"])


@pytest.fixture(scope="module")
def small():
    ds = load_dataset("mnist-sample")
    idx = balanced_subset(ds.train_y, 300)
    return ds.train_x[idx], ds.train_y[idx], ds.test_x[:300], ds.test_y[:300]


def test_forced_bf16_trains_and_evaluates(small, one_thread):
    """Under bf16 autocast the loss falls, logits come back as float32, close to but not bitwise the fp32 ones."""
    x, y, tx, ty = small
    models = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        models[precision] = create_model("keras-student")
        history = train(models[precision], x, y, epochs=3, batch_size=30, lr=3e-3, seed=0, precision=precision,
                        eval_set=(tx, ty))
        assert history.loss[-1] < history.loss[0] * 0.7 and history.test_acc[-1] > 0.5
    fp32 = predict_logits(models["fp32"], tx)
    bf16 = predict_logits(models["fp32"], tx, precision="bf16")
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)
    assert (bf16.argmax(1) == fp32.argmax(1)).float().mean() > 0.95
    assert abs(accuracy(predict_logits(models["bf16"], tx, precision="bf16"), ty) - accuracy(fp32, ty)) < 0.15


def test_a_bf16_run_is_keyed_apart_and_its_result_reads_back(tiny_config, tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("KD_LAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(config, "native_bf16", lambda: False)
    bf16 = run_experiment(tiny_config.replace(precision="bf16"))
    assert bf16["config"]["precision"] == "bf16"
    assert bf16["key"] != run_experiment(tiny_config)["key"]
    assert read_result(result_path(bf16["key"])) is not None  # the stored config passes the schema
