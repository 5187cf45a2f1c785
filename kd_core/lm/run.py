"""A whole language-model comparison: its config, the cached teacher, the distilled and scratch students per
seed, the result (cached by config) and the Task the app's job runner and the CLI run."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from kd_core import schema, store
from kd_core.config import checked_replace
from kd_core.lm.corpus import Corpus, corpus_title, load_corpus
from kd_core.lm.model import (CharGPT, GPTSpec, bits_per_char, build_model, chars_per_second, generate,
                              generate_cached, validation_loss)
from kd_core.threads import torch_threads
from kd_core.lm.training import train_lm
from kd_core.models import count_params
from kd_core.tasks import Event, Task, Tracker
from kd_core.train import Progress


@dataclass(frozen=True)
class LMConfig:
    """Everything that defines an LM distillation run; widgets and CLI flags both build one."""

    corpus: str = "stdlib"               # "stdlib", "stdlib-small" or a registered "text-<hash>"
    context: int = 64                    # characters the models see
    teacher_layers: int = 4
    teacher_heads: int = 4
    teacher_width: int = 96
    teacher_steps: int = 1000            # ~2 min on one core of this machine
    student_layers: int = 1
    student_heads: int = 2
    student_width: int = 32
    student_steps: int = 300             # few steps: the regime where the teacher's distributions help (see the page)
    batch_size: int = 16                 # windows of `context` characters per step
    teacher_lr: float = 2e-3
    student_lr: float = 1e-2
    temperature: float = 1.0             # T of the soft targets (T = 2 already hurt this tiny student: see the page)
    alpha: float = 0.9                   # weight of the soft (teacher) term; 1 - alpha weights the true next char
    method: str = "forward"              # "forward" KL, "reverse" KL (MiniLLM), or "sequence" (train on teacher text)
    sequence_chars: int = 60_000         # characters sampled from the teacher for sequence-level KD
    speed_chars: int = 150               # characters generated to measure each model's speed
    seeds: int = 3
    teacher_seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {list(METHODS)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be between 0 and 1, not {self.alpha}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, not {self.temperature}")
        if self.seeds < 1:
            raise ValueError("seeds must be at least 1")

    def replace(self, **changes: Any) -> "LMConfig":
        """A copy with `changes`; ValueError for a setting LMConfig does not have."""
        return checked_replace(self, "LM", changes)

    def teacher_spec(self) -> GPTSpec:
        """The teacher's shape."""
        return GPTSpec(self.teacher_layers, self.teacher_heads, self.teacher_width, self.context)

    def student_spec(self) -> GPTSpec:
        """The students' shape (distilled and scratch alike)."""
        return GPTSpec(self.student_layers, self.student_heads, self.student_width, self.context)

    def teacher_dict(self) -> dict[str, Any]:
        """The settings that define the teacher (its cache key): a change elsewhere reuses it."""
        return {k: getattr(self, k) for k in ("corpus", "context", "teacher_layers", "teacher_heads", "teacher_width",
                                              "teacher_steps", "batch_size", "teacher_lr", "teacher_seed")}


METHODS = {"forward": "token-level KD, forward KL(teacher || student): mode-covering",
           "reverse": "token-level KD, reverse KL(student || teacher): mode-seeking (MiniLLM)",
           "sequence": "sequence-level KD: train on text sampled from the teacher"}
TINY = {"corpus": "stdlib-small", "context": 32, "teacher_layers": 2, "teacher_width": 32, "teacher_heads": 2,
        "teacher_steps": 30, "student_width": 16, "student_steps": 20, "batch_size": 8, "seeds": 1,
        "sequence_chars": 2_000, "speed_chars": 20}
SAMPLE_PROMPT = "Return the "
SAMPLE_CHARS = 200


def _teacher_path(cfg: LMConfig, corpus: Corpus) -> Path:
    """Where the teacher of `cfg` trained on `corpus` is cached."""
    key = store.config_key({"lm_teacher": cfg.teacher_dict(), "data": corpus.fingerprint})
    return store.cache_path("lm", "teachers", f"{key}.pt")


def _load_model(path: Path, corpus_name: str,
                meta_check: schema.Check = schema.LM_STUDENT_META) -> tuple[CharGPT, dict[str, Any]] | None:
    """The model checkpointed at `path` for corpus `corpus_name` (in eval mode) and its metadata, or None when
    the checkpoint is missing, does not load or its metadata fails `meta_check` (kd_core.schema)."""
    loaded = store.load_checkpoint(path, meta_check)
    if loaded is None or loaded[0] != "char-gpt":
        return None
    try:
        model = CharGPT(GPTSpec(**loaded[2]["spec"]), load_corpus(corpus_name).vocab_size)
        model.load_state_dict(loaded[1])
    except (RuntimeError, ValueError, AssertionError):  # weights or shape that do not fit this corpus's model
        return None
    return model.eval(), loaded[2]


def _save_model(path: Path, model: CharGPT, meta: dict[str, Any]) -> bool:
    """Checkpoint `model` at `path` with `meta` (which holds its "spec"); False when it could not be written."""
    return store.save_checkpoint(path, "char-gpt", model.state_dict(), meta)


def cached_teacher(cfg: LMConfig) -> tuple[CharGPT, dict[str, Any]] | None:
    """The trained teacher for `cfg` and its metadata, or None."""
    return _load_model(_teacher_path(cfg, load_corpus(cfg.corpus)), cfg.corpus, schema.LM_TEACHER_META)


def get_teacher(cfg: LMConfig, on_progress: Callable[[Progress], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> tuple[CharGPT, dict[str, Any]]:
    """The cached teacher, or a freshly trained (and cached) one: (model, metadata)."""
    found = cached_teacher(cfg)
    if found is not None:
        return found
    corpus = load_corpus(cfg.corpus)
    model = build_model(cfg.teacher_spec(), corpus.vocab_size, cfg.teacher_seed)
    start, cpu_start = time.perf_counter(), time.thread_time()
    history = train_lm(model, corpus.train, steps=cfg.teacher_steps, batch_size=cfg.batch_size, lr=cfg.teacher_lr,
                       seed=cfg.teacher_seed, on_progress=on_progress, should_stop=should_stop)
    meta = {"spec": asdict(cfg.teacher_spec()), "history": history, "seconds": time.perf_counter() - start,
            "cpu_seconds": time.thread_time() - cpu_start,  # = wall time on a quiet machine (one torch thread)
            "val_nats": validation_loss(model, corpus.val), "params": count_params(model, trainable_only=False)}
    _save_model(_teacher_path(cfg, corpus), model, meta)
    return model, meta


def run_key(cfg: LMConfig) -> str:
    """The cache key of `cfg`'s result: the whole config and the corpus text's fingerprint."""
    return store.config_key({"lm": asdict(cfg), "data": load_corpus(cfg.corpus).fingerprint})


def cached_result(cfg: LMConfig) -> dict[str, Any] | None:
    """The stored result of `cfg`, or None (never trains). A file failing kd_core.schema.LM_RESULT is reported
    and moved aside; a result whose student checkpoints are gone reads as absent (it is run again)."""
    key = run_key(cfg)
    path = store.cache_path("lm", "results", f"{key}.json")
    found = store.load_json(path, schema.with_key(schema.LM_RESULT, key))
    if found is None:
        return None
    if (missing := store.missing_file(student_path(key, role) for role in ("distilled", "scratch"))) is not None:
        store.report_missing(path, missing)
        return None
    return found


def student_path(key: str, role: str) -> Path:
    """Where the seed-0 `role` student of the result with key `key` is checkpointed."""
    return store.cache_path("lm", "students", f"{key}-{role}.pt")


def load_student(result: dict[str, Any], role: str) -> CharGPT | None:
    """The seed-0 `role` student ("distilled" or "scratch") of a result, or None when its checkpoint is gone."""
    found = _load_model(student_path(result["key"], role), result["config"]["corpus"])
    return None if found is None else found[0]


def _summary(nats: list[float]) -> dict[str, Any]:
    """Validation losses of one model over seeds, in bits per character (mean, sample std) and perplexity."""
    bpc = [bits_per_char(n) for n in nats]
    return {"val_nats": nats, "val_bpc": bpc, "bpc_mean": statistics.fmean(bpc),
            "bpc_std": statistics.stdev(bpc) if len(bpc) > 1 else 0.0,
            "perplexity_mean": statistics.fmean(math.exp(n) for n in nats)}


def task(cfg: LMConfig) -> Task:
    """The comparison of `cfg` as a Task (job key "lm-" + its result key)."""
    def cached() -> dict[str, Any] | None:
        """The stored result marked "cached": True, or None."""
        found = cached_result(cfg)
        return None if found is None else {**found, "cached": True}

    return Task(key="lm-" + run_key(cfg),
                label=f"language models: teacher, distilled and scratch students ({cfg.method}, "
                      f"T={cfg.temperature:g}, alpha={cfg.alpha:g}, {cfg.seeds} seed{'s' if cfg.seeds != 1 else ''})",
                cached=cached,
                work=lambda report, should_stop, use_cache: run_lm(cfg, on_event=report, should_stop=should_stop,
                                                                   use_cache=use_cache))


MEASURE_SHARES = {"teacher": 0.76, "distilled": 0.12, "scratch": 0.12}  # of the final measuring, by model (measured)


def run_lm(cfg: LMConfig, on_event: Callable[[Event], None] | None = None,
           should_stop: Callable[[], bool] | None = None, use_cache: bool = True) -> dict[str, Any]:
    """Teacher (cached), then per seed a distilled and a scratch student from the same weights and data order.

    Returns validation bits per character and perplexity of each model (mean over seeds), parameters,
    generation speed, seed-0 training curves and samples from the same prompt and seed. Cached by config.
    """
    key = run_key(cfg)
    if use_cache and (found := cached_result(cfg)) is not None:
        return {**found, "cached": True}
    with torch_threads():
        return _run_lm(cfg, key, on_event, should_stop)


def _run_lm(cfg: LMConfig, key: str, on_event: Callable[[Event], None] | None,
            should_stop: Callable[[], bool] | None) -> dict[str, Any]:
    """run_lm's work, uncached."""
    started = time.perf_counter()
    corpus = load_corpus(cfg.corpus)
    seq = cfg.method == "sequence"
    # overall progress is weighted by an estimated cost in teacher steps (x width² x layers): a distilled student's
    # step costs 0.40 of a teacher step (the teacher's forward pass is most of it), a scratch student's 0.09 (measured
    # with the default LMConfig, 1 torch thread: teacher 55.7 s / 1,000 steps, distilled 6.7 s and scratch 1.5 s / 300);
    # measuring the three models at the end (speed, a sample) took 1.7 s, about 30 teacher steps: the teacher 1.3 s
    step = cfg.teacher_width ** 2 * cfg.teacher_layers
    teacher_cost = 0.0 if cached_teacher(cfg) is not None else cfg.teacher_steps * step
    costs = {"distilled": 0.40 * cfg.student_steps * step, "scratch": 0.09 * cfg.student_steps * step}
    measure_cost = 30 * step * cfg.speed_chars / LMConfig.speed_chars  # all three models
    tracker = Tracker(on_event, teacher_cost + cfg.seeds * sum(costs.values()) + measure_cost or 1.0)
    teacher, tmeta = get_teacher(cfg, tracker.watch("teacher", cfg.teacher_seed, units=teacher_cost), should_stop)
    tracker.trained(teacher_cost)
    teacher_nats = tmeta["val_nats"]
    train_data = corpus.train
    if seq:  # the teacher's own text: streams of samples started from real prompts
        streams = 64
        prompt = corpus.train[:cfg.context].tolist()
        sampled = generate_cached(teacher, prompt, max(cfg.sequence_chars // streams, cfg.context + 2),
                                  seed=cfg.teacher_seed, streams=streams)
        train_data = sampled.reshape(-1)
    runs: dict[str, list[dict[str, Any]]] = {"distilled": [], "scratch": []}
    models: dict[str, CharGPT] = {"teacher": teacher}
    saved: dict[str, bool] = {}  # role -> whether its seed-0 checkpoint was written
    for seed in range(cfg.seeds):
        initial = build_model(cfg.student_spec(), corpus.vocab_size, 1000 + seed).state_dict()
        for role in ("distilled", "scratch"):
            model = CharGPT(cfg.student_spec(), corpus.vocab_size)
            model.load_state_dict(initial)
            t0 = time.perf_counter()
            distilled = role == "distilled"
            history = train_lm(model, train_data if distilled else corpus.train, steps=cfg.student_steps,
                               batch_size=cfg.batch_size, lr=cfg.student_lr, seed=1000 + seed,
                               teacher=teacher if distilled and not seq else None, temperature=cfg.temperature,
                               alpha=cfg.alpha if distilled else 0.0, divergence=cfg.method,
                               on_progress=tracker.watch(role, seed, units=costs[role]), should_stop=should_stop)
            tracker.trained(costs[role])
            runs[role].append({"seed": seed, "val_nats": validation_loss(model, corpus.val), "history": history,
                               "seconds": time.perf_counter() - t0,
                               "initial_norm": float(initial["tok.weight"].norm())})
            if seed == 0:
                saved[role] = _save_model(student_path(key, role), model, {"spec": asdict(cfg.student_spec())})
                models[role] = model
    prompt = corpus.encode(SAMPLE_PROMPT)
    result: dict[str, Any] = {"key": key, "config": asdict(cfg), "corpus_title": corpus_title(cfg.corpus),
                              "corpus_chars": len(corpus.train) + len(corpus.val), "vocab_size": corpus.vocab_size,
                              "teacher_history": tmeta["history"], "teacher_seconds": tmeta["seconds"],
                              "teacher_cpu_seconds": tmeta.get("cpu_seconds"), "models": {}}
    measured = 0.0
    for i, (role, model) in enumerate(models.items()):
        tracker.stage(f"measuring the {role}'s speed and sampling its text ({i + 1}/{len(models)})",
                      units_done=measured)
        measured += measure_cost * MEASURE_SHARES[role]
        nats = [teacher_nats] if role == "teacher" else [r["val_nats"] for r in runs[role]]
        result["models"][role] = {
            **_summary(nats), "params": count_params(model, trainable_only=False),
            "chars_per_s": chars_per_second(model, corpus, cfg.speed_chars),
            "sample": corpus.decode(generate(model, prompt, SAMPLE_CHARS, seed=0)[0].tolist()),
            "runs": runs.get(role, [])}
    tracker.trained(measure_cost)
    d = result["models"]["distilled"]["val_bpc"]
    s = result["models"]["scratch"]["val_bpc"]
    result["every_distilled_below_every_scratch"] = max(d) < min(s)
    result["gap_bpc"] = statistics.fmean(s) - statistics.fmean(d)
    result["speedup"] = result["models"]["distilled"]["chars_per_s"] / result["models"]["teacher"]["chars_per_s"]
    result["sample_prompt"] = SAMPLE_PROMPT
    result["total_seconds"] = time.perf_counter() - started
    if saved.get("distilled") and saved.get("scratch"):  # a result is stored only after its models
        store.save_json(store.cache_path("lm", "results", f"{key}.json"), result)
    return result
