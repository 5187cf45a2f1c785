"""'Show the code': the standalone script runs without kd_core and prints exactly the app's table.

Same seeds, data order and operations, and the test process's torch thread count (which the script sets),
so the accuracies are compared exactly; a script with the Keras alpha convention by mistake must differ.
"""

from __future__ import annotations

import re
import runpy
import subprocess
import sys

import numpy as np
import pytest
import torch

from kd_core import data, paths
from kd_core.config import preset
from kd_core.experiment import run_experiment
from kd_core.standalone import standalone_script

ROW = re.compile(r"^(teacher|distilled|scratch)\s+\S+ ± \S+\s+(\d+)\s+(.+)$", re.MULTILINE)


def run_script(text: str, tmp_path, name: str) -> dict[str, list[str]]:
    """Run `text` as a script in an isolated interpreter (kd_core not importable); its table's per-seed cells."""
    path = tmp_path / name
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-I", str(path)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {role: cells.split() for role, seeds, cells in ROW.findall(proc.stdout)}
    assert set(rows) == {"teacher", "distilled", "scratch"}, proc.stdout
    return rows


def app_table(result: dict) -> dict[str, list[str]]:
    """The app's accuracies per model and seed, formatted as the script prints them."""
    return {role: [f"{a:.2%}" for a in model["accuracies"]] for role, model in result["models"].items()}


@pytest.fixture(scope="module")
def two_seeds(tiny_config):
    return tiny_config.replace(seeds=2)


def test_the_script_prints_the_apps_numbers_and_a_wrong_alpha_does_not(two_seeds, tmp_path):
    script = standalone_script(two_seeds, "mnist-sample")
    assert "import kd_core" not in script and "from kd_core" not in script
    assert "ALPHA = 0.9 " in script and "soft = kl * T ** 2" in script
    expected = app_table(run_experiment(two_seeds, use_cache=False))
    assert run_script(script, tmp_path, "kd_lab_run.py") == expected

    # the Keras convention by mistake (alpha weighting the labels), one seed: the distilled student changes
    wrong = re.sub(r"^ALPHA = 0.9 ", "ALPHA = 0.1 ", script, flags=re.MULTILINE).replace("SEEDS = 2 ", "SEEDS = 1 ")
    rows = run_script(wrong, tmp_path, "wrong_alpha.py")
    assert rows["teacher"] == expected["teacher"] and rows["scratch"] == expected["scratch"][:1]
    assert rows["distilled"] != expected["distilled"][:1]


def test_a_keras_teacher_script_trains_its_wide_conv_as_the_app_does(tmp_path):
    """bf16: the app computes the keras-teacher's 512-filter weight gradient through kd_core.convgrad; the script
    inlines that path and prints the app's numbers (without it they differ at rounding level)."""
    cfg = preset("keras").replace(teacher_train_limit=96, student_train_limit=64, teacher_epochs=1, student_epochs=1,
                                  precision="bf16")
    script = standalone_script(cfg, "mnist-sample")
    assert "with patch_weight_grads(model):" in script and "class PatchGradConv2d" in script
    assert run_script(script, tmp_path, "keras_run.py") == app_table(run_experiment(cfg, use_cache=False))
    assert "patch_weight_grads" not in standalone_script(preset("classroom"), "mnist-sample")


def write_idx(path, array: np.ndarray) -> None:
    """An IDX file of unsigned bytes: magic 0 0 8 <dims>, big-endian sizes, data."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_the_idx_loader_reads_what_kd_core_reads(tmp_path, monkeypatch, tiny_config):
    """Full-MNIST IDX files (here small ones cut from the sample, the training pair gzipped): equal tensors."""
    import gzip

    sample = data.load_dataset("mnist-sample")
    folder = tmp_path / "idx"
    folder.mkdir()
    arrays = {"train-images-idx3-ubyte": sample.train_x[:300], "train-labels-idx1-ubyte": sample.train_y[:300],
              "t10k-images-idx3-ubyte": sample.test_x[:100], "t10k-labels-idx1-ubyte": sample.test_y[:100]}
    for stem, array in arrays.items():
        write_idx(folder / stem, array.numpy())
        if stem.startswith("train"):
            (folder / f"{stem}.gz").write_bytes(gzip.compress((folder / stem).read_bytes()))
            (folder / stem).unlink()
    monkeypatch.setenv(paths.DATA_ENV, str(folder))
    script = standalone_script(tiny_config, "mnist")
    assert f"DATA_DIR = Path({str(folder)!r})" in script
    path = tmp_path / "kd_lab_run.py"
    path.write_text(script)
    loaded = runpy.run_path(str(path), run_name="not_main")["load_data"]()   # defines, runs nothing else
    app = data.load_dataset("mnist", folder)
    for ours, theirs in zip(loaded, (app.train_x, app.train_y, app.test_x, app.test_y)):
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)


@pytest.mark.parametrize("name", sorted(data.DATASETS))
@pytest.mark.parametrize("t_squared", [True, False])
def test_every_dataset_and_architecture_gives_a_valid_script(tiny_config, name, t_squared):
    for teacher, student in (("classroom-teacher", "keras-student"), ("keras-teacher", "tiny-mlp")):
        cfg = tiny_config.replace(teacher=teacher, student=student, t_squared=t_squared)
        script = standalone_script(cfg, name)
        compile(script, "kd_lab_run.py", "exec")
        assert ("soft = kl * T ** 2" in script) == t_squared and script.count("def _keras_net") <= 1
    if name == "fashion-mnist" and data.locate(name) is None:
        assert f"DATA_DIR = Path({str(data.DEBIAN_FASHION_DIR)!r})" in script


def test_what_the_script_cannot_write_out_is_refused(tiny_config):
    with pytest.raises(ValueError, match="layer-wise hint"):
        standalone_script(tiny_config.replace(hint_weight=1.0), "mnist-sample")
