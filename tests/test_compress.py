"""Efficiency and compression: well-formed measurements, exact sparsity, int8 and exports that reload and agree.

One tiny compression run (tiny classroom config, small throughput batch) is shared by the module; its numbers are
checked for shape and sign, never for speed (performance lives in bench/compress.py).
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
import torch

from kd_core import cli, compress as C
from kd_core.compress import exporting
from kd_core.data import load_dataset
from kd_core.evaluate import accuracy, predict_logits
from kd_core.models import create_model

FAST = C.CompressConfig(sparsity=0.5, throughput_batch=16, latency_runs=20, calibration_images=64)


@pytest.fixture(scope="module")
def run(tiny_config):
    """One tiny distil -> prune -> quantize run with exports (trains the tiny experiment first)."""
    torch.set_num_threads(1)
    out = C.compress(tiny_config, FAST)
    return out, load_dataset(tiny_config.dataset)


def test_table_numbers_are_well_formed_and_positive(run):
    out, _ = run
    ids = [r["id"] for r in out["rows"]]
    assert ids == ["teacher", "scratch", "distilled", "distilled-int8", "pruned", "pruned-ce", "pruned-kd",
                   "pruned-kd-int8"]
    for r in out["rows"]:
        assert 0.0 <= r["accuracy"] <= 1.0
        for key in ("params", "nonzero_params", "size_bytes", "size_gzip_bytes", "flops", "peak_memory_bytes"):
            assert isinstance(r[key], int) and r[key] > 0, (r["id"], key)
        lat, thr = r["latency_ms"], r["throughput"]
        assert 0 < lat["min_ms"] <= lat["median_ms"] <= lat["max_ms"] and lat["runs"] >= 20
        assert 0 < thr["min"] <= thr["median"] <= thr["max"] and thr["batch"] == 16
        assert r["peak_memory_batch_bytes"] >= r["peak_memory_bytes"]
        json.dumps(r)  # JSON-serialisable, as the CLI writes it
    rows = {r["id"]: r for r in out["rows"]}
    assert rows["teacher"]["params"] > rows["distilled"]["params"]
    assert rows["distilled-int8"]["size_bytes"] < rows["distilled"]["size_bytes"] / 2.5
    assert rows["pruned-kd"]["size_bytes"] == pytest.approx(rows["distilled"]["size_bytes"], rel=0.01)  # zeros stored
    assert rows["pruned-kd"]["nonzero_params"] < rows["distilled"]["nonzero_params"]
    assert rows["pruned-kd"]["size_gzip_bytes"] < rows["distilled"]["size_gzip_bytes"]
    assert [r["id"] for r in out["rows"] if r["pipeline"]] == list(C.PIPELINE)
    from kd_core.cli.compress import format_table

    text = format_table(out)
    assert "distilled → int8" in text and "KD epoch" in text and "x smaller on disk" in text


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
def test_pruning_reaches_the_requested_sparsity_and_fine_tuning_keeps_it(sparsity):
    torch.manual_seed(0)
    model = create_model("keras-student")
    pruned = C.prune_magnitude(model, sparsity)
    assert C.weight_sparsity(pruned) == pytest.approx(sparsity, abs=1e-3)
    images = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64,))
    from kd_core.train import train

    train(pruned, images, labels, epochs=1, batch_size=32, lr=1e-2, seed=0)  # masks keep pruned weights at zero
    C.make_permanent(pruned)
    assert C.weight_sparsity(pruned) >= sparsity - 1e-3
    assert not any(n.endswith("_orig") for n, _ in pruned.named_parameters())
    assert C.weight_sparsity(model) == 0.0  # the source is untouched


def test_int8_model_agrees_with_its_float_source_and_reloads_exactly(tmp_path):
    data = load_dataset("mnist-sample")
    torch.manual_seed(0)
    model = create_model("keras-student")
    from kd_core.train import train

    train(model, data.train_x[:500], data.train_y[:500], epochs=1, batch_size=50, lr=3e-3, seed=0)
    q = C.quantize_int8(model, data.train_x[500:700])
    batch = data.test_x[:300]
    float_logits, int8_logits = predict_logits(model, batch), predict_logits(q, batch)
    assert (float_logits.argmax(1) == int8_logits.argmax(1)).float().mean() >= 0.95
    assert C.state_dict_bytes(q) < C.state_dict_bytes(model) / 2.5
    files = C.export_model(q, tmp_path, "q", architecture="keras-student", precision="int8", meta={})
    assert set(files) == {"weights", "config"}  # no ONNX for eager int8
    reloaded = C.load_export(tmp_path / files["config"])
    assert torch.equal(predict_logits(reloaded, batch), int8_logits)


def test_exports_reload_with_the_measured_accuracy_and_onnx_agrees(run):
    out, data = run
    folder = C.export_folder(out["key"])
    rows = {r["id"]: r for r in out["rows"]}
    assert set(out["exports"]) == set(C.EXPORTED)
    import numpy as np
    import onnxruntime as ort

    for row_id, files in out["exports"].items():
        config = json.loads((folder / files["config"]).read_text())
        assert config["architecture"] == "keras-student" and config["test_accuracy"] == rows[row_id]["accuracy"]
        model = C.load_export(folder / files["config"])
        logits = predict_logits(model, data.test_x)
        assert accuracy(logits, data.test_y) == rows[row_id]["accuracy"]  # same predictions as the measured model
        if row_id.startswith("pruned"):
            assert C.weight_sparsity(model) >= 0.5 - 1e-3
        if "onnx" in files:
            session = ort.InferenceSession(str(folder / files["onnx"]), providers=["CPUExecutionProvider"])
            batch = data.test_x[:64].unsqueeze(1).float().div(255).numpy()
            onnx_logits = session.run(None, {"image": batch})[0]
            np.testing.assert_allclose(onnx_logits, logits[:64].numpy(), atol=1e-4)
        else:
            assert config["precision"] == "int8"


def _export_pair(tmp_path: Path, payload: bytes) -> Path:
    """A config that matches `payload` (size and checksum) next to it."""
    import hashlib

    (tmp_path / "w.pt").write_bytes(payload)
    config = {"format": C.EXPORT_FORMAT, "architecture": "keras-student", "precision": "float32",
              "weights_file": "w.pt", "weights_sha256": hashlib.sha256(payload).hexdigest()}
    (tmp_path / "w.json").write_text(json.dumps(config))
    return tmp_path / "w.json"


class _Exploit:
    """Unpickling this would create a file: proof that a loader ran code from the weights file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_bad_exports_are_refused_with_a_message_and_never_unpickled(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"x": _Exploit(str(marker))}, buffer)
    with pytest.raises(C.ExportError, match="does not load"):
        C.load_export(_export_pair(tmp_path, buffer.getvalue()))
    assert not marker.exists()

    with pytest.raises(C.ExportError, match="does not load"):
        C.load_export(_export_pair(tmp_path, b"not a checkpoint at all"))

    good = io.BytesIO()
    torch.save(create_model("keras-student").state_dict(), good)
    path = _export_pair(tmp_path, good.getvalue())
    monkeypatch.setattr(exporting, "MAX_WEIGHTS_BYTES", 1000)
    with pytest.raises(C.ExportError, match="larger than"):
        C.load_export(path)
    monkeypatch.undo()
    assert C.load_export(path) is not None

    (tmp_path / "w.pt").write_bytes(good.getvalue()[:-10])  # truncated: checksum no longer matches
    with pytest.raises(C.ExportError, match="checksum"):
        C.load_export(path)
    (tmp_path / "w.json").write_text("{not json")
    with pytest.raises(C.ExportError, match="not valid JSON"):
        C.load_export(path)
    (tmp_path / "w.json").write_text(json.dumps({"format": C.EXPORT_FORMAT, "architecture": "os.system",
                                                 "precision": "float32"}))
    with pytest.raises(C.ExportError, match="unknown architecture"):
        C.load_export(path)


def test_config_checks_values():
    with pytest.raises(ValueError, match="sparsity"):
        C.CompressConfig(sparsity=1.0).validated()
    with pytest.raises(ValueError, match="at least 20"):
        C.CompressConfig().replace(latency_runs=5)
    with pytest.raises(ValueError, match="unknown compression setting"):
        C.CompressConfig().replace(speed=3)


def test_cli_prints_one_row_per_stage_and_writes_json(tmp_path, capsys, run):
    path = tmp_path / "compress.json"
    code = cli.main(["compress", "--train-limit", "100", "--epochs", "1", "--sparsity", "50%", "--quantize",
                     "--runs", "20", "--batch", "8", "--no-onnx", "--json", str(path), "--export", str(tmp_path / "x")])
    assert code == 0
    out = json.loads(path.read_text())
    assert [r["id"] for r in out["rows"]][-1] == "pruned-kd-int8" and out["compress"]["sparsity"] == 0.5
    printed = capsys.readouterr().out
    assert printed.count("\n") >= len(out["rows"]) + 2 and "distilled → pruned 50% + KD epoch → int8" in printed
    assert sorted(p.suffix for p in (tmp_path / "x").iterdir()) == [".json"] * 4 + [".pt"] * 4


def test_cli_refuses_bad_sparsity(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["compress", "--sparsity", "1.5"])
    assert exit_info.value.code == 2 and "below 1" in capsys.readouterr().err


def test_efficiency_page_runs_the_pipeline_in_tiny_mode(fresh_app):
    from streamlit.testing.v1 import AppTest

    app = str(Path(__file__).resolve().parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=60)
    at.run()
    at.switch_page("app_pages/efficiency.py").run()
    assert not at.exception and not at.error
    assert at.slider(key="eff_sparsity").value == 50 and at.toggle(key="eff_quantize").value is True
    at.slider(key="eff_sparsity").set_value(60).run()
    at.button(key="efficiency-run").click().run()
    deadline = time.monotonic() + 300  # a generous cap on a loaded machine, not a speed check
    while not at.dataframe and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]   # the page's own catch-all shows an error, not an exception
    if not at.dataframe:  # say where every thread is, so a hang can be told from slowness
        import faulthandler
        import sys

        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    assert at.dataframe, "the compression job did not finish"
    table = at.dataframe[0].value
    assert len(table) == 8 and (table["accuracy (%)"] >= 0).all()
    assert "distilled → pruned 60% + KD epoch" in list(table["model / stage"])
    titles = [json.loads(el.proto.spec)["layout"]["title"]["text"] for el in at.get("plotly_chart")]
    assert any(t.startswith("Accuracy vs latency") for t in titles)
    assert any(t.startswith("Accuracy vs size on disk") for t in titles)
    assert any(t.startswith("Recovering from pruning") for t in titles)
    assert [b.key for b in at.get("download_button")][-3:] == ["dl-weights", "dl-config", "dl-onnx"]
    assert at.radio(key="eff_download").options



def test_the_int8_speed_note_says_why_when_int8_is_slower_and_plainly_when_it_is_faster():
    from kd_core.compress import speed_note

    def row(ms, per_second, size):
        return {"latency_ms": {"median_ms": ms}, "throughput": {"median": per_second, "batch": 256},
                "size_bytes": size, "flops": 540_000}

    slower = speed_note(row(0.086, 19_000, 90_000), row(0.294, 34_000, 25_000))
    assert "Why int8 is not faster at batch 1" in slower and "0.294 ms per image against 0.086 ms" in slower
    assert "3.4× slower" in slower and "0.54 MFLOPs" in slower and "34,000 images/s against 19,000" in slower
    assert "3.6× smaller" in slower and "bench/int8.py" in slower
    faster = speed_note(row(0.2, 19_000, 90_000), row(0.1, 34_000, 25_000))
    assert faster.startswith("**int8 is faster here:**") and "Why" not in faster
