"""Language-model distillation: the token-level loss against the image loss and a hand computation, causal
masking, refused uploads, training, the tiny end-to-end run, the CLI and the page (AppTest)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kd_core import lm
from kd_core.losses import kd_loss, reverse_kd_loss

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models, as in kd_core.lm's own runs: one torch thread (two are far slower on a busy 2-core machine)."""
    with lm.torch_threads():
        yield


def logits(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3


@pytest.mark.parametrize("temperature,alpha", [(1.0, 0.5), (2.0, 0.9), (4.0, 1.0)])
def test_token_kd_loss_is_the_image_kd_loss_on_reshaped_logits_and_a_hand_computation(temperature, alpha):
    b, length, v = 3, 5, 7
    s, t = logits(b, length, v, seed=1), logits(b, length, v, seed=2)
    y = torch.randint(0, v, (b, length), generator=torch.Generator().manual_seed(3))
    token = lm.token_kd_loss(s, t, y, temperature, alpha)
    image = kd_loss(s.reshape(b * length, v), t.reshape(b * length, v), y.reshape(-1), temperature, alpha)
    assert torch.equal(token.total, image.total)
    # by hand: mean over every position of (1-alpha)·CE + alpha·T²·sum p (log p - log q)
    total = 0.0
    for i in range(b):
        for j in range(length):
            q = F.softmax(s[i, j] / temperature, -1)
            p = F.softmax(t[i, j] / temperature, -1)
            ce = -F.log_softmax(s[i, j], -1)[y[i, j]]
            total += (1 - alpha) * ce + alpha * temperature ** 2 * (p * (p.log() - q.log())).sum()
    assert token.total.item() == pytest.approx(total.item() / (b * length), rel=1e-5)


def test_reverse_kl_matches_a_hand_computation_and_leaves_no_gradient_on_the_teacher():
    s, t = logits(4, 6, seed=4).requires_grad_(), logits(4, 6, seed=5).requires_grad_()
    y = torch.tensor([0, 1, 2, 3])
    out = reverse_kd_loss(s, t, y, 2.0, 1.0)
    q, p = F.softmax(s / 2, -1), F.softmax(t / 2, -1)
    hand = 4 * (q * (q.log() - p.log())).sum(-1).mean()
    assert out.total.item() == pytest.approx(hand.item(), rel=1e-5)
    out.total.backward()
    assert t.grad is None and s.grad is not None
    assert reverse_kd_loss(s, s.detach(), y, 3.0, 1.0).soft.item() == pytest.approx(0.0, abs=1e-6)
    forward = lm.token_kd_loss(s[None], t[None], y[None], 2.0, 1.0, "forward").soft
    assert not torch.allclose(forward, out.soft)  # the two directions differ


def test_causal_masking_a_future_token_never_changes_earlier_outputs():
    model = lm.build_model(lm.GPTSpec(2, 2, 16, context=12), vocab_size=10, seed=0).eval()
    ids = torch.randint(0, 10, (1, 12), generator=torch.Generator().manual_seed(0))
    base = model(ids)
    for k in (0, 5, 11):
        changed = ids.clone()
        changed[0, k] = (changed[0, k] + 1) % 10
        out = model(changed)
        assert torch.equal(out[0, :k], base[0, :k]), f"position < {k} saw the future"
        assert not torch.allclose(out[0, k], base[0, k])


@pytest.mark.parametrize("data,message", [
    (b"", "is empty"),
    (b"  \n\t\n ", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 20, "looks binary"),
    (b"x" * (lm.MAX_UPLOAD_BYTES + 1), "the limit is 2 MB"),
    ("café au lait. ".encode("latin-1") * 300, "not valid UTF-8"),
    (b"too short", "needs at least"),
])
def test_uploads_that_cannot_be_a_corpus_are_refused_with_a_clear_message(data, message):
    with pytest.raises(lm.CorpusError, match=message):
        lm.text_from_upload(data, "notes.txt")


def test_a_good_upload_is_normalised_registered_and_split():
    text = lm.text_from_upload("\ufeffHello, wörld!\r\n".encode("utf-8") * 200, "hello.txt")
    assert text.startswith("Hello") and "\r" not in text
    name = lm.register_text(text)
    corpus = lm.load_corpus(name)
    assert corpus.decode(corpus.train[:5].tolist()) == "Hello"
    assert len(corpus.val) == len(text) - int(len(text) * 0.9) and "ö" in corpus.chars


def test_stdlib_corpus_reads_sources_without_importing_them():
    before = set(sys.modules)
    text = lm.stdlib_docstrings(("antigravity", "textwrap", "this"))
    assert len(text) > 3_000 and not {"antigravity", "this"} & (set(sys.modules) - before)
    assert set(text) <= set(map(chr, range(32, 127))) | {"\n"}


def test_tiny_training_lowers_the_validation_loss():
    text = "the quick brown fox jumps over the lazy dog. " * 100
    ids = torch.tensor([ord(c) % 64 for c in text])
    model = lm.build_model(lm.GPTSpec(1, 2, 16, context=16), 64, seed=0)
    events = []
    with lm.torch_threads():
        before = lm.validation_loss(model, ids[-400:])
        history = lm.train_lm(model, ids[:-400], steps=40, batch_size=8, lr=1e-2, seed=0, on_progress=events.append)
        after = lm.validation_loss(model, ids[-400:])
    assert after < before - 0.5
    assert events[-1].step == 40 and history["loss"][-1] < history["loss"][0]


def test_training_is_cancelled_cooperatively():
    from kd_core.train import TrainingCancelled

    model = lm.build_model(lm.GPTSpec(1, 1, 8, context=8), 10, seed=0)
    with pytest.raises(TrainingCancelled):
        lm.train_lm(model, torch.randint(0, 10, (200,)), steps=50, batch_size=4, lr=1e-3, seed=0,
                    should_stop=lambda: True)


def test_tiny_run_compares_three_models_from_the_same_start_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("KD_LAB_CACHE_DIR", str(tmp_path))
    cfg = lm.LMConfig().replace(**{**lm.TINY, "seeds": 2})
    events = []
    result = lm.run_lm(cfg, on_event=events.append)
    assert {e.phase for e in events} == {"teacher", "distilled", "scratch", "stage"}
    stages = [e for e in events if e.phase == "stage"]  # the end: each model's speed and samples, counted too
    assert [e.text.split()[2] for e in stages] == ["teacher's", "distilled's", "scratch's"] and events[-1] is stages[-1]
    overall = [e.overall for e in events]
    assert overall == sorted(overall) and 0.5 < overall[-1] < 1.0
    m = result["models"]
    assert m["teacher"]["params"] > m["distilled"]["params"] == m["scratch"]["params"]
    for role in ("distilled", "scratch"):
        assert len(m[role]["val_bpc"]) == 2 and m[role]["chars_per_s"] > 0 and len(m[role]["sample"]) == 200
    assert m["distilled"]["runs"][0]["initial_norm"] == m["scratch"]["runs"][0]["initial_norm"]
    assert result["models"]["teacher"]["perplexity_mean"] == pytest.approx(2 ** m["teacher"]["bpc_mean"], rel=1e-6)
    again = lm.run_lm(cfg)
    assert again["cached"] and again["models"]["distilled"]["val_bpc"] == m["distilled"]["val_bpc"]
    assert lm.load_student(result, "distilled") is not None
    reverse = lm.run_lm(cfg.replace(method="reverse", seeds=1))  # the cached teacher is reused
    assert not reverse.get("cached") and reverse["models"]["teacher"] == {**m["teacher"], **{
        k: reverse["models"]["teacher"][k] for k in ("chars_per_s", "runs")}}
    sequence = lm.run_lm(cfg.replace(method="sequence", seeds=1))
    assert sequence["models"]["distilled"]["val_bpc"] != reverse["models"]["distilled"]["val_bpc"]


def test_lm_config_rejects_unknown_settings():
    with pytest.raises(ValueError, match="unknown LM setting"):
        lm.LMConfig().replace(temprature=2)
    with pytest.raises(ValueError, match="unknown method"):
        lm.LMConfig(method="sideways")


def test_cli_lm_prints_the_comparison_and_writes_json(tmp_path, monkeypatch, capsys):
    from kd_core.cli import main

    monkeypatch.setenv("KD_LAB_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["lm", "--tiny", "--alpha", "0.5", "--json", str(tmp_path / "lm.json")]) == 0
    out = capsys.readouterr().out
    assert "val bits/char" in out and "teacher" in out and "x faster" in out
    saved = json.loads((tmp_path / "lm.json").read_text())
    assert saved["config"]["alpha"] == 0.5 and set(saved["models"]) == {"teacher", "distilled", "scratch"}
    binary = tmp_path / "bad.txt"
    binary.write_bytes(b"\x00\x01\x02" * 1000)
    assert main(["lm", "--tiny", "--corpus", str(binary)]) == 2
    assert "looks binary" in capsys.readouterr().err


# ------------------------------------------------------------------ the page (AppTest)



def _titles(at) -> list[str]:
    return [json.loads(el.proto.spec)["layout"]["title"]["text"] for el in at.get("plotly_chart")]


def _clean(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_language_page_loads_runs_tiny_and_shows_comparison_samples_and_next_char_view(fresh_app):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/language.py")
    at.run()
    _clean(at)
    assert at.title[0].value.startswith("Language models")
    labels = [s.label for s in at.slider]
    assert labels[:3] == ["beta (JSD only)", "Seeds", "Distance between the teacher's two modes (in mode widths)"]
    assert labels[3:] == ["Temperature T", "alpha (weight of the teacher's soft targets)", "Student steps", "Seeds"]
    assert any("Forward vs reverse KL" in s.value for s in at.subheader)
    assert at.radio(key="lm_source").label == "Text to learn" and at.radio(key="lm_method").value == "forward"
    assert "standard library" in " ".join(c.value for c in at.caption)
    at.radio(key="lm_method").set_value("reverse").run()
    assert "student} \\,\\|\\, p_T^{teacher" in at.latex[0].value  # reverse KL in the formula
    at.radio(key="lm_method").set_value("forward").run()
    at.button(key="lm-run").click().run()
    _clean(at)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not any(t.startswith("Validation bits") for t in _titles(at)):
        time.sleep(0.3)
        at.run()
        _clean(at)
    titles = _titles(at)
    assert any(t.startswith("Validation bits per character") for t in titles)
    assert any(t.startswith("Next character after your prompt") and "T = 1 and T = 3," in t for t in titles)
    assert list(at.dataframe[0].value["model"]) == ["teacher", "distilled student", "scratch student"]
    assert len([t for t in at.text if t.value.startswith(lm.SAMPLE_PROMPT)]) == 3  # samples, plain text
    at.slider(key="lm_view_t").set_value(5.0).run()
    _clean(at)
    assert any(t.startswith("Next character") and "T = 5" in t for t in _titles(at))
    at.text_input(key="lm_view_prompt").set_value("<b>import</b> ").run()
    _clean(at)
    at.radio(key="lm_source").set_value("upload").run()
    assert any("Upload a .txt file" in i.value for i in at.info)


def test_key_value_cache_gives_the_same_logits_as_recomputing_the_window():
    model = lm.build_model(lm.GPTSpec(2, 2, 16, context=12), vocab_size=10, seed=1).eval()
    ids = torch.randint(0, 10, (2, 12), generator=torch.Generator().manual_seed(1))
    full = model(ids)
    cache = [[None, None] for _ in model.blocks]
    steps = [model(ids[:, :5], cache)] + [model(ids[:, i:i + 1], cache, start=i) for i in range(5, 12)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    sample = lm.generate_cached(model, [1, 2, 3], 30, seed=0, streams=3)
    assert sample.shape == (3, 30) and torch.equal(sample, lm.generate_cached(model, [1, 2, 3], 30, seed=0, streams=3))
