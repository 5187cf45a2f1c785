"""The CLI: `datasets` lists sources; `run` writes JSON of the documented shape; bad flags give messages."""

import json
import subprocess
import sys

import pytest

from kd_core import cli


def test_datasets_lists_each_dataset(capsys):
    assert cli.main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("mnist-sample", "mnist", "fashion-mnist"):
        assert name in out
    assert "available" in out


def test_run_writes_documented_json(tmp_path, capsys):
    out = tmp_path / "result.json"
    code = cli.main(["run", "--train-limit", "100", "--epochs", "1", "--seeds", "2", "--batch-size", "50",
                     "--temperature", "3", "--alpha", "0.5", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["dataset"] == "mnist-sample" and result["preset"] == "classroom"
    assert result["config"]["temperature"] == 3.0 and result["config"]["alpha"] == 0.5
    for role in ("teacher", "distilled", "scratch"):
        model = result["models"][role]
        for key in ("accuracies", "accuracy_mean", "accuracy_std", "params", "seconds"):
            assert key in model
    assert len(result["models"]["distilled"]["accuracies"]) == 2
    assert result["total_seconds"] > 0
    assert "distilled - scratch" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["run", "--alpha", "1.5"], "alpha must be between 0 and 1"),
    (["run", "--temperature", "-2"], "temperature must be positive"),
])
def test_bad_values_give_a_message(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_flags_exit_cleanly_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "kd_core", "run", "--seeds", "zero"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "not an integer" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "kd_core", "run", "--dataset", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
