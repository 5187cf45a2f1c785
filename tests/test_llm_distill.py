"""The pretrained LLM distilled into tiny students (kd_core.lm.vocab, topk, teacher_passes, llm_distill), on the tiny
llama GGUF tests/test_pretrained_llm.py writes: the restricted vocabulary, the cached top-k targets (and a damaged
cache rejected), the sparse KD loss against the full-vocabulary loss, causal masking, the tiny run with every
method, prompt checks and the `llm --distill` command."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

pytest.importorskip("gguf", reason="the gguf package is not installed (make setup installs it)")
pytest.importorskip("transformers", reason="transformers is not installed (make setup installs it)")

from test_pretrained_llm import write_tiny_gguf  # noqa: E402

from kd_core import cli, schema, store  # noqa: E402
from kd_core.lm import llm_distill, pretrained, teacher_passes  # noqa: E402
from kd_core.lm.llm_distill import TINY, DistillConfig, run_distill  # noqa: E402
from kd_core.lm.model import CharGPT, GPTSpec, build_model  # noqa: E402
from kd_core.lm.pretrained import PretrainedError  # noqa: E402
from kd_core.lm.topk import TopK, coverage, from_logits, restricted, teacher_coarse, topk_kd_loss  # noqa: E402
from kd_core.lm.vocab import decode, encode_prompt, restrict, token_corpus  # noqa: E402
from kd_core.losses import divergence_kd_loss  # noqa: E402
from kd_core.train import TrainingCancelled  # noqa: E402


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llm-distill") / "tiny-llama.gguf"
    write_tiny_gguf(path)
    return path


@pytest.fixture()
def tiny(tiny_file, tmp_path, monkeypatch):
    """$KD_LAB_LLM_GGUF names the tiny model, the cache folder is the test's own; returns (tokenizer, model)."""
    monkeypatch.setenv(pretrained.GGUF_ENV, str(tiny_file))
    monkeypatch.setenv("KD_LAB_CACHE_DIR", str(tmp_path / "cache"))
    return pretrained.load_teacher()


def tiny_cfg(**changes) -> DistillConfig:
    return DistillConfig().replace(**{**TINY, "sample_prompt": "the cat", **changes})


def corpus_of(tiny, cfg: DistillConfig):
    tokenizer, model = tiny
    return token_corpus(cfg.corpus, tokenizer, int(model.config.vocab_size), cfg.train_tokens, cfg.val_tokens)


# ------------------------------------------------------------------------------------------------ vocabulary

def test_restricted_vocabulary_maps_back_to_the_full_ids():
    vocab = restrict(torch.tensor([7, 3, 7, 42, 3, 0]), full_size=50)
    assert vocab.size == 4 and vocab.full_size == 50 and vocab.full_ids.tolist() == [0, 3, 7, 42]
    full = torch.tensor([42, 0, 7, 3, 3])
    assert vocab.to_full(vocab.to_restricted(full)).tolist() == full.tolist()
    assert vocab.to_restricted(torch.tensor([5, 49])).tolist() == [-1, -1]   # not in the corpus
    with pytest.raises(ValueError, match="token ids must be in 0..49"):
        restrict(torch.tensor([50]), full_size=50)


def test_token_corpus_decodes_to_the_teachers_text(tiny):
    tokenizer, _ = tiny
    cfg = tiny_cfg()
    data = corpus_of(tiny, cfg)
    assert len(data.train) == cfg.train_tokens and len(data.val) == cfg.val_tokens
    assert int(data.train.min()) >= 0 and int(data.val.max()) < data.vocab.size   # held-out tokens are in it too
    assert data.vocab.size < data.vocab.full_size
    text = tokenizer.decode(data.train_full.tolist(), clean_up_tokenization_spaces=False)
    assert decode(tokenizer, data.vocab, data.train) == text
    ids = encode_prompt(tokenizer, data.vocab, "the cat")
    assert decode(tokenizer, data.vocab, ids) == "the cat"


# ------------------------------------------------------------------------------------------------ the loss

def full_and_restricted(vocab_size=30, full_size=80, support=6, k=8, seed=0):
    """Teacher and student logits over a full vocabulary whose mass lies on a restricted one (and the teacher's
    on `support` tokens of it); the same student as restricted logits."""
    g = torch.Generator().manual_seed(seed)
    kept = torch.randperm(full_size, generator=g)[:vocab_size]
    vocab = restrict(kept, full_size)
    n = 12
    teacher = torch.full((n, full_size), -1e9)
    chosen = vocab.full_ids[torch.stack([torch.randperm(vocab_size, generator=g)[:support] for _ in range(n)])]
    teacher.scatter_(1, chosen, torch.randn(n, support, generator=g) * 2)
    student_restricted = torch.randn(n, vocab_size, generator=g) * 2
    student_full = torch.full((n, full_size), -1e9)
    student_full[:, vocab.full_ids] = student_restricted
    labels = torch.randint(0, vocab_size, (n,), generator=g)
    ids, logprobs = from_logits(teacher, k)
    return vocab, restricted(ids, logprobs, vocab), teacher, student_restricted, student_full, labels


@pytest.mark.parametrize("divergence,beta", [("forward", 0.5), ("jsd", 0.3), ("jsd", 0.0), ("jsd", 0.9)])
def test_kd_loss_on_the_restricted_vocabulary_equals_the_full_vocabulary_loss(divergence, beta):
    vocab, top, teacher, s_small, s_full, labels = full_and_restricted()
    sparse = topk_kd_loss(s_small, top, labels, 0.7, divergence, beta)
    full = divergence_kd_loss(s_full, teacher, vocab.to_full(labels), 1.0, 0.7, divergence, beta)
    for a, b in zip(sparse, full):
        assert math.isclose(float(a), float(b), rel_tol=1e-4, abs_tol=1e-5)


def test_reverse_kl_matches_too_when_the_top_k_holds_the_whole_vocabulary():
    # the reverse KL is infinite where the student has mass the teacher has none: compare on a full support
    vocab, top, teacher, s_small, s_full, labels = full_and_restricted(vocab_size=10, support=10, k=10)
    for divergence in ("reverse", "forward", "jsd"):
        sparse = topk_kd_loss(s_small, top, labels, 1.0, divergence)
        full = divergence_kd_loss(s_full, teacher, vocab.to_full(labels), 1.0, 1.0, divergence)
        assert math.isclose(float(sparse.total), float(full.total), rel_tol=1e-4)


def test_the_mass_outside_the_top_k_and_the_vocabulary_goes_to_other():
    logprobs = torch.log(torch.tensor([[0.5, 0.2, 0.1]]))
    top = TopK(torch.tensor([[4, -1, 2]]), logprobs)   # the second token is outside the student's vocabulary
    coarse = teacher_coarse(top).exp()
    assert torch.allclose(coarse, torch.tensor([[0.5, 0.0, 0.1, 0.4]]), atol=1e-6)   # 0.2 + the 0.2 tail
    assert math.isclose(coverage(logprobs), 0.8, rel_tol=1e-6)
    student = torch.zeros(1, 6, requires_grad=True)
    loss = topk_kd_loss(student, top, torch.tensor([4]), 1.0)
    assert math.isfinite(float(loss.total.detach())) and float(loss.soft.detach()) > 0
    loss.total.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()


# ------------------------------------------------------------------------------------------------ causal masking

def test_a_future_token_does_not_change_earlier_logits(tiny):
    student = build_model(GPTSpec(2, 2, 16, 12), 40, seed=0).eval()
    x = torch.randint(0, 40, (1, 12), generator=torch.Generator().manual_seed(1))
    changed = x.clone()
    changed[0, 8] = (x[0, 8] + 1) % 40
    with torch.inference_mode():
        a, b = student(x), student(changed)
    assert torch.allclose(a[0, :8], b[0, :8], atol=1e-6) and not torch.allclose(a[0, 8:], b[0, 8:])
    _, teacher = tiny
    full = torch.randint(3, 200, (24,), generator=torch.Generator().manual_seed(2))
    later = full.clone()
    later[15] = (full[15] + 1) % 200
    ids_a, lp_a = teacher_passes.topk_pass(teacher, full, 5, chunk=12)
    ids_b, lp_b = teacher_passes.topk_pass(teacher, later, 5, chunk=12)
    assert torch.equal(ids_a[:15], ids_b[:15]) and torch.allclose(lp_a[:15], lp_b[:15], atol=1e-5)
    assert not torch.allclose(lp_a[15:24], lp_b[15:24])
    # chunks are read on their own: the second chunk (12..23) never sees the first
    alone_ids, alone_lp = teacher_passes.topk_pass(teacher, full[12:], 5, chunk=12)
    assert torch.equal(alone_ids, ids_a[12:]) and torch.allclose(alone_lp, lp_a[12:], atol=1e-5)


# ------------------------------------------------------------------------------------------------ the cache

def teacher_files():
    return sorted(store.cache_path("llmkd", "teacher").glob("*.npz"))


def test_top_k_cache_round_trip_and_a_damaged_file_is_rejected(tiny, caplog):
    cfg = tiny_cfg()
    data = corpus_of(tiny, cfg)
    _, model = tiny
    tracker = llm_distill.Tracker(None, 1.0)
    first, cached = llm_distill._teacher_pass(cfg, model, data, tracker, lambda: False)
    assert not cached
    again, cached = llm_distill._teacher_pass(cfg, model, data, tracker, lambda: False)
    assert cached and all(np.array_equal(first[k], again[k]) for k in first)
    assert first["ids"].shape == (cfg.train_tokens, cfg.top_k)
    assert 0 < coverage(torch.from_numpy(first["logprobs"])) <= 1
    [path] = teacher_files()
    damaged = {**first, "logprobs": np.abs(first["logprobs"])}   # positive log-probabilities: not what was written
    np.savez(path, **damaged)
    recomputed, cached = llm_distill._teacher_pass(cfg, model, data, tracker, lambda: False)
    assert not cached and np.allclose(recomputed["logprobs"], first["logprobs"], atol=1e-5)
    assert path.with_name(path.name + store.REJECTED_SUFFIX).is_file()
    assert "rejected cache file" in caplog.text
    path.write_bytes(b"not an npz archive")                    # unreadable: removed, recomputed
    _, cached = llm_distill._teacher_pass(cfg, model, data, tracker, lambda: False)
    assert not cached and path.is_file()
    np.savez(path, **{**first, "ids": first["ids"][:-1]})        # a shape that does not fit the slice
    _, cached = llm_distill._teacher_pass(cfg, model, data, tracker, lambda: False)
    assert not cached


# ------------------------------------------------------------------------------------------------ the run

def test_the_tiny_run_compares_every_method_and_is_cached(tiny):
    cfg = tiny_cfg()
    events = []
    result = run_distill(cfg, on_event=events.append)
    schema.validate(result, schema.LLM_DISTILL_RESULT)
    assert set(result["models"]) == {"teacher", "scratch", "token", "sequence", "onpolicy"}
    assert {e.phase for e in events if e.progress is not None} == {"scratch", "token", "sequence", "onpolicy"}
    assert events[-1].overall == pytest.approx(1.0) and all(0 <= e.overall <= 1 for e in events)
    norms = {m: result["models"][m]["runs"][0]["initial_norm"] for m in cfg.methods}
    assert len(set(norms.values())) == 1                         # one initial student for every method
    scratch = result["models"]["scratch"]
    for method in ("token", "sequence", "onpolicy"):
        assert result["ratios"][method] == pytest.approx(result["models"][method]["perplexity_mean"]
                                                         / scratch["perplexity_mean"])
    assert result["winner"] in result["ratios"] and result["onpolicy"]["teacher_tokens"] > 0
    assert result["sequence"]["tokens"] == cfg.sequence_streams * (cfg.prompt_tokens + cfg.sequence_tokens)
    assert all(isinstance(m["sample"], str) for m in result["models"].values())
    assert result["models"]["teacher"]["perplexity_mean"] <= result["models"]["teacher"]["perplexity_full_vocab"]
    again = run_distill(cfg)
    assert again["cached"] and again["models"] == json.loads(json.dumps(result["models"]))
    assert llm_distill.task(cfg).key == "llmkd-" + result["key"] and llm_distill.task(cfg).cached()["cached"]
    # recomputed with the teacher's passes from the cache: the same numbers (one thread, same seeds)
    fresh = run_distill(cfg, use_cache=False)
    assert fresh["topk"]["cached"] and fresh["sequence"]["cached"]
    for method in cfg.methods:
        assert fresh["models"][method]["val_nats"] == pytest.approx(result["models"][method]["val_nats"], rel=1e-5)
    student = llm_distill.load_student(result, "token")
    assert isinstance(student, CharGPT) and student.head.out_features == result["vocab_size"]
    text = llm_distill.sample_student(result, "token", "the cat", tokens=5)
    assert isinstance(text, str)


def test_students_trained_side_by_side_get_exactly_the_numbers_they_get_one_after_another(tiny, monkeypatch):
    cfg = tiny_cfg(seeds=2)
    results = {}
    for workers in (1, 2):
        monkeypatch.setattr(llm_distill, "student_workers", lambda students, n=workers: n)
        events = []
        results[workers] = run_distill(cfg, on_event=events.append, use_cache=False)
        overall = [e.overall for e in events]
        assert overall[-1] == pytest.approx(1.0) and all(0 <= f <= 1 for f in overall)
    for method in cfg.methods:
        one, two = (results[w]["models"][method] for w in (1, 2))
        assert one["val_nats"] == two["val_nats"] and one["sample"] == two["sample"]
        assert [r["seed"] for r in two["runs"]] == [0, 1]
    assert results[1]["onpolicy"]["teacher_tokens"] == results[2]["onpolicy"]["teacher_tokens"]


def test_students_side_by_side_use_the_jobs_cores_only():
    from kd_core.threads import MAX_STUDENT_WORKERS, student_workers

    assert student_workers(12, cores=1) == 1              # the app: its job runner keeps the other core for pages
    assert student_workers(12, cores=2) == 2 and student_workers(1, cores=2) == 1
    assert student_workers(12, cores=64) == MAX_STUDENT_WORKERS
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert student_workers(12) == 1                   # by default: the torch threads the job started with
    finally:
        torch.set_num_threads(before)


def test_one_failing_student_stops_the_others_and_the_run_fails(tiny, monkeypatch):
    trained = []
    original = llm_distill.train_student

    def flaky(model, data, cfg, seed, targets=None, onpolicy=None, on_progress=None, should_stop=None):
        if targets is not None and onpolicy is None:  # the token method fails at once
            raise RuntimeError("disk on fire")
        trained.append(seed)
        return original(model, data, cfg, seed, targets, onpolicy, on_progress, should_stop)

    monkeypatch.setattr(llm_distill, "train_student", flaky)
    monkeypatch.setattr(llm_distill, "student_workers", lambda students: 2)
    with pytest.raises(RuntimeError, match="disk on fire"):
        run_distill(tiny_cfg(steps=400, methods=("scratch", "token")), use_cache=False)


def test_a_damaged_result_is_rejected_and_recomputed(tiny):
    cfg = tiny_cfg(methods=("scratch", "token"))
    result = run_distill(cfg)
    path = store.cache_path("llmkd", "results", f"{result['key']}.json")
    document = json.loads(path.read_text())
    del document["models"]["token"]
    path.write_text(json.dumps(document))
    assert llm_distill.cached_result(cfg) is None
    assert path.with_name(path.name + store.REJECTED_SUFFIX).is_file()
    assert not run_distill(cfg).get("cached")


def test_a_run_can_be_cancelled(tiny):
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(TrainingCancelled):
        run_distill(tiny_cfg(steps=50), should_stop=stop, use_cache=False)


def test_on_policy_batches_are_a_fraction_lambda_after_the_start(tiny):
    cfg = tiny_cfg(steps=100, onpolicy_start=0.5, onpolicy_lambda=0.25)
    onpolicy = llm_distill.OnPolicy(cfg, None, None, seed=0)
    used = [s for s in range(1, 101) if onpolicy.uses(s)]
    assert len(used) == 12 and used[0] > 50


@pytest.mark.parametrize("changes,message", [
    ({"methods": ("token",)}, "with scratch"),
    ({"methods": ("scratch", "bogus")}, "distinct names"),
    ({"divergence": "hellinger"}, "unknown divergence"),
    ({"beta": 1.5}, "beta must be between 0 and 1"),
    ({"prompt_tokens": 16}, "prompt_tokens must be between"),
    ({"sample_tokens": 500}, "at most 200"),
])
def test_bad_settings_are_refused(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        tiny_cfg(**changes)
    with pytest.raises(ValueError, match="unknown LLM distillation setting"):
        DistillConfig().replace(temperature=2.0)


# ------------------------------------------------------------------------------------------------ prompts

@pytest.mark.parametrize("prompt,message", [
    ("", "the prompt is empty"),
    (" \n ", "the prompt is empty"),
    ("x" * (pretrained.MAX_PROMPT_CHARS + 1), "at most 2,000 are allowed"),
    ("a\x00b", "control character (U+0000)"),
    ("bell \x07", "control character (U+0007)"),
    ("bad \udcff byte", "not valid text"),
    (b"the cat", "must be text"),
])
def test_bad_prompts_are_refused_with_a_message(tiny, prompt, message):
    with pytest.raises(PretrainedError, match=re.escape(message)):
        tiny_cfg(sample_prompt=prompt)
    tokenizer, _ = tiny
    data = corpus_of(tiny, tiny_cfg())
    with pytest.raises(PretrainedError, match=re.escape(message)):
        encode_prompt(tokenizer, data.vocab, prompt)


def test_a_prompt_with_tokens_outside_the_corpus_is_refused(tiny):
    tokenizer, _ = tiny
    data = corpus_of(tiny, tiny_cfg())
    with pytest.raises(PretrainedError, match="the student.s corpus cannot spell"):
        encode_prompt(tokenizer, data.vocab, "caf\u00e9 \u00fc\u00f1\u00ee")   # bytes no docstring here has


def test_cli_distills_and_prints_the_comparison(tiny, tmp_path, capsys):
    out = tmp_path / "distill.json"
    code = cli.main(["llm", "--distill", "--tiny", "--method", "token", "onpolicy", "--seeds", "1",
                     "--prompt", "the cat", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr()
    assert "perplexity (mean ± std)" in printed.out and "vs scratch" in printed.out and "onpolicy" in printed.out
    assert "samples after 'the cat'" in printed.out and "covers" in printed.out
    assert "[" in printed.err   # progress lines
    result = json.loads(out.read_text())
    assert result["config"]["methods"] == ["scratch", "token", "onpolicy"]


@pytest.mark.parametrize("argv,message", [
    (["llm", "--distill", "--tiny", "--prompt", ""], "the prompt is empty"),
    (["llm", "--distill", "--tiny", "--prompt", "a\x1bb"], "control character"),
    (["llm", "--distill", "--tiny", "--beta", "2"], "beta must be between 0 and 1"),
])
def test_cli_refuses_bad_distillation_input_with_exit_2(tiny, argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_refuses_a_non_utf8_prompt_file(tiny, tmp_path, capsys):
    bad = tmp_path / "prompt.txt"
    bad.write_bytes(b"caf\xe9")
    assert cli.main(["llm", "--distill", "--tiny", "--prompt-file", str(bad)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ the page


def test_language_page_distils_the_teacher_in_the_background_and_shows_the_comparison(tiny, fresh_app):
    import ui
    from apptest import assert_clean, open_page, plotly_titles

    at = open_page("app_pages/language.py")
    assert any(s.value.startswith("Distil it: SmolLM2") for s in at.subheader)
    at.button(key="llmkd-run").click().run()
    assert_clean(at)
    job = next(j for k, j in ui.get_runner().jobs().items() if k.startswith("llmkd-"))
    assert job.wait(300) and job.status == "done", job.error
    at.run()
    assert_clean(at)
    assert any(t.startswith("Held-out perplexity of the tiny students") for t in plotly_titles(at))
    table = next(d.value for d in at.dataframe if "vs scratch" in d.value.columns)
    assert list(table["student"]) == ["scratch", "token-level KD", "sequence-level KD", "on-policy KD (GKD)",
                                      "teacher (SmolLM2-135M)"]
    assert len([t for t in at.text]) >= 4  # one sample per student, as plain text
    assert "llmkd-run" not in [b.key for b in at.button] and "llmkd-again" in [b.key for b in at.button]
