"""Distilling the real pretrained LLM (SmolLM2-135M-Instruct) into a tiny student, offline on a CPU: four ways.

Each student is a kd_core.lm.model.CharGPT over the teacher's tokens restricted to the corpus's (kd_core.lm.vocab);
per seed, every method starts from the same weights and draws the same training windows; only what it learns
from differs:
- scratch: cross-entropy on the text.
- token: token-level KD from the teacher's cached top-k (kd_core.lm.topk: the coarse top-k + "other" target),
  (1 - alpha)·CE + alpha·D with D the forward KL, reverse KL or GKD's generalized JSD (beta).
- sequence: sequence-level KD (Kim & Rush 2016): cross-entropy on text the teacher wrote, continuing prompts
  from the training text (sampled once per corpus and settings, cached).
- onpolicy: on-policy distillation in the GKD sense (Agarwal et al. 2024): from `onpolicy_start` of the steps
  on, a fraction `onpolicy_lambda` of the batches are the student's own samples (a pool refreshed every
  `pool_every` steps) scored by the teacher, trained on D alone; the other batches are the token method's.
Held-out perplexity and bits per token are on the same windows for every model (the teacher's renormalised
over the student's vocabulary, the fair comparison; its whole-vocabulary figure is reported too).
"""

from __future__ import annotations

import hashlib
import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from kd_core import schema, store
from kd_core.config import checked_replace
from kd_core.lm import teacher_passes as passes
from kd_core.lm.corpus import corpus_title, load_text
from kd_core.lm.model import CharGPT, GPTSpec, build_model, generate, validation_loss
from kd_core.lm.pretrained import MAX_NEW_TOKENS, file_hash, check_prompt, load_teacher, sample, teacher_info
from kd_core.threads import side_by_side, student_workers, torch_threads
from kd_core.lm.topk import TopK, coverage, restricted, topk_kd_loss
from kd_core.lm.training import fit
from kd_core.lm.vocab import TokenCorpus, decode, encode_prompt, token_corpus
from kd_core.losses import divergence_kd_loss
from kd_core.models import count_params
from kd_core.tasks import Event, Task, Tracker
from kd_core.train import Progress

METHODS = {"scratch": "cross-entropy on the text, no teacher",
           "token": "token-level KD from the teacher's cached top-k logits",
           "sequence": "sequence-level KD: cross-entropy on text the teacher generated",
           "onpolicy": "on-policy KD (GKD): some batches are the student's own samples, scored by the teacher"}
DIVERGENCES = ("forward", "reverse", "jsd")
FOLDER = "llmkd"
# Progress is counted in estimated seconds of a quiet 2-core machine (measured): a teacher token in a batched
# forward, a generated teacher token in a batch of streams, one student step.
TEACHER_TOKEN_S, GENERATED_TOKEN_S, STUDENT_STEP_S, LOAD_S = 1 / 400, 1 / 200, 0.03, 20.0


@dataclass(frozen=True)
class DistillConfig:
    """Everything that defines a distillation run of the pretrained teacher; widgets and CLI flags build one."""

    corpus: str = "stdlib"               # kd_core.lm.corpus name: "stdlib", "stdlib-small" or "text-<hash>"
    train_tokens: int = 12_288           # training text, in teacher tokens: the teacher's top-k is computed on all
    val_tokens: int = 2_048              # held-out tokens every model is scored on
    top_k: int = 32                      # teacher tokens kept per position (about 80% of its mass: see the result)
    teacher_chunk: int = 128             # the teacher reads the training text in chunks this long
    context: int = 64                    # tokens a student sees
    layers: int = 2                      # the student's shape (every method's)
    heads: int = 2
    width: int = 64
    steps: int = 150                     # few steps of few windows: ~12 runs must fit in a minute on 2 cores
    batch_size: int = 12                 # windows of `context` tokens per step
    lr: float = 3e-3
    alpha: float = 0.9                   # weight of the soft (teacher) term; 1 - alpha weights the true next token
    divergence: str = "forward"          # D of the token and on-policy methods: "forward", "reverse" or "jsd"
    beta: float = 0.5                    # the JSD's mixture weight (0: forward KL, 1: reverse KL, as in GKD)
    methods: tuple[str, ...] = tuple(METHODS)
    prompt_tokens: int = 16              # real tokens that start each teacher (sequence) or student (on-policy) sample
    sequence_streams: int = 64           # teacher samples for sequence-level KD, generated as one batch
    sequence_tokens: int = 48            # new tokens per teacher sample
    onpolicy_start: float = 0.5          # on-policy batches begin at this fraction of the steps (the student
    #                                      first learns to write something like text)
    onpolicy_lambda: float = 0.25        # ... and are this fraction of the batches from then on
    pool_size: int = 8                   # student samples per pool (scored by the teacher at once: ~2-5 s)
    pool_every: int = 40                 # steps between pool refreshes
    seeds: int = 3
    sample_prompt: str = "Return the"   # the prompt of the side-by-side samples
    sample_tokens: int = 40

    def __post_init__(self) -> None:
        checks = [(self.divergence in DIVERGENCES,
                   f"unknown divergence {self.divergence!r}; choose from {list(DIVERGENCES)}"),
                  (0.0 <= self.beta <= 1.0, f"beta must be between 0 and 1, not {self.beta}"),
                  (0.0 <= self.alpha <= 1.0, f"alpha must be between 0 and 1, not {self.alpha}"),
                  (0.0 <= self.onpolicy_lambda <= 1.0 and 0.0 <= self.onpolicy_start < 1.0,
                   "onpolicy_lambda must be in 0..1 and onpolicy_start in 0..1 (excluded)"),
                  (self.lr > 0, "the learning rate must be positive"),
                  (1 <= self.seeds <= 20, "seeds must be between 1 and 20"),
                  (0 < self.prompt_tokens < self.context, "prompt_tokens must be between 1 and context - 1"),
                  (self.train_tokens > self.context + 1 and self.val_tokens > self.context + 1,
                   "train_tokens and val_tokens must exceed context + 1"),
                  (all(v >= 1 for v in (self.top_k, self.teacher_chunk, self.layers, self.heads, self.steps,
                                        self.batch_size, self.sequence_streams, self.sequence_tokens,
                                        self.pool_size, self.pool_every, self.sample_tokens)),
                   "sizes and counts must be at least 1"),
                  (self.sample_tokens <= MAX_NEW_TOKENS, f"sample_tokens must be at most {MAX_NEW_TOKENS}"),
                  (self.width % self.heads == 0, "width must be a multiple of heads"),
                  (len(set(self.methods)) == len(self.methods) and "scratch" in self.methods
                   and set(self.methods) <= set(METHODS) and len(self.methods) >= 2,
                   f"methods must be distinct names from {list(METHODS)}, with scratch and at least one other")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        object.__setattr__(self, "methods", tuple(self.methods))
        check_prompt(self.sample_prompt)

    def replace(self, **changes: Any) -> "DistillConfig":
        """A copy with `changes`; ValueError for a setting DistillConfig does not have or a value out of range."""
        return checked_replace(self, "LLM distillation", changes)

    def spec(self) -> GPTSpec:
        """The students' shape."""
        return GPTSpec(self.layers, self.heads, self.width, self.context)


TINY = {"corpus": "stdlib-small", "train_tokens": 600, "val_tokens": 200, "top_k": 8, "teacher_chunk": 32,
        "context": 16, "width": 16, "layers": 1, "steps": 12, "batch_size": 4, "prompt_tokens": 4,
        "sequence_streams": 4, "sequence_tokens": 12, "pool_size": 4, "pool_every": 4, "seeds": 1,
        "sample_tokens": 8}


def _fingerprint(corpus: str) -> str:
    """sha256 of the corpus text (its first 16 hex digits)."""
    return hashlib.sha256(load_text(corpus).encode()).hexdigest()[:16]


def _teacher_file_key(cfg: DistillConfig) -> dict[str, Any]:
    """What the teacher's passes over the corpus depend on: the model file, the text and the slice."""
    return {"teacher": file_hash(), "data": _fingerprint(cfg.corpus), "corpus": cfg.corpus,
            "train_tokens": cfg.train_tokens, "val_tokens": cfg.val_tokens}


def run_key(cfg: DistillConfig) -> str:
    """The cache key of `cfg`'s result: the whole config, the teacher file's and the text's fingerprints."""
    return store.config_key({"llmkd": asdict(cfg), **_teacher_file_key(cfg)})


def _path(*parts: str) -> Path:
    return store.cache_path(FOLDER, *parts)


def student_path(key: str, method: str) -> Path:
    """Where the seed-0 student of `method` of the result with key `key` is checkpointed."""
    return _path("students", f"{key}-{method}.pt")


def cached_result(cfg: DistillConfig) -> dict[str, Any] | None:
    """The stored result of `cfg` (checked by kd_core.schema.LLM_DISTILL_RESULT), or None; never trains. A result
    whose student checkpoints are gone reads as absent."""
    key = run_key(cfg)
    path = _path("results", f"{key}.json")
    found = store.load_json(path, schema.with_key(schema.LLM_DISTILL_RESULT, key))
    if found is None:
        return None
    if (missing := store.missing_file(student_path(key, m) for m in cfg.methods)) is not None:
        store.report_missing(path, missing)
        return None
    return found


def load_student(result: dict[str, Any], method: str) -> CharGPT | None:
    """The seed-0 student of `method` of a result, or None when its checkpoint is gone or damaged."""
    loaded = store.load_checkpoint(student_path(result["key"], method), schema.LM_STUDENT_META)
    if loaded is None or loaded[0] != "char-gpt":
        return None
    try:
        model = CharGPT(GPTSpec(**loaded[2]["spec"]), result["vocab_size"])
        model.load_state_dict(loaded[1])
    except (RuntimeError, ValueError, TypeError):
        return None
    return model.eval()


# ---------------------------------------------------------------------------------------------- teacher passes

def _teacher_pass(cfg: DistillConfig, model: Any, data: TokenCorpus, tracker: Tracker,
                  should_stop: Callable[[], bool]) -> tuple[dict[str, Any], bool]:
    """The teacher's top-k over the training tokens and its held-out log-probs: from the cache, or computed
    (and cached). Returns (arrays, whether they came from the cache)."""
    key = store.config_key({**_teacher_file_key(cfg), "k": cfg.top_k, "chunk": cfg.teacher_chunk,
                            "context": cfg.context})
    path = _path("teacher", f"{key}.npz")
    n, k, windows = cfg.train_tokens, min(cfg.top_k, data.vocab.full_size), (cfg.val_tokens - 1) // cfg.context
    shapes = {"ids": (n, k), "logprobs": (n, k), "val_full": (windows * cfg.context,),
              "val_restricted": (windows * cfg.context,), "seconds": ()}
    ranges = {"ids": (0, data.vocab.full_size - 1), "logprobs": (-1e4, 1e-4), "val_full": (-1e4, 1e-4),
              "val_restricted": (-1e4, 1e-4), "seconds": (0.0, schema.MAX_SECONDS)}
    found = passes.load_checked(path, shapes, ranges)
    if found is not None:
        tracker.trained((n + cfg.val_tokens) * TEACHER_TOKEN_S)
        return found, True
    started = time.perf_counter()
    ids, logprobs = passes.topk_pass(model, data.train_full, k, cfg.teacher_chunk,
                                     _stage(tracker, f"teacher: top-{k} next tokens of {n:,} training tokens",
                                            n * TEACHER_TOKEN_S), should_stop)
    full, within = passes.heldout_pass(model, data.val_full, data.vocab, cfg.context,
                                       _stage(tracker, "teacher: held-out tokens", cfg.val_tokens * TEACHER_TOKEN_S),
                                       should_stop)
    arrays = {"ids": ids.numpy(), "logprobs": logprobs.numpy(), "val_full": full.numpy(),
              "val_restricted": within.numpy(), "seconds": torch.tensor(time.perf_counter() - started).numpy()}
    store.save_npz(path, arrays)
    return arrays, False


def _stage(tracker: Tracker, text: str, units: float) -> passes.Done:
    """A teacher pass's progress callback: stage events saying `text`; its `units` are counted when it ends."""
    def done(finished: int, total: int) -> None:
        tracker.stage(text, units * finished / total)
        if finished == total:
            tracker.trained(units)
    return done


def _sequences(cfg: DistillConfig, model: Any, data: TokenCorpus, tracker: Tracker,
               should_stop: Callable[[], bool]) -> tuple[torch.Tensor, float, bool]:
    """The teacher's continuations of prompts spread over the training text (restricted ids), the seconds they
    took and whether they came from the cache."""
    key = store.config_key({**_teacher_file_key(cfg), "prompt": cfg.prompt_tokens,
                            "streams": cfg.sequence_streams, "new": cfg.sequence_tokens})
    path = _path("sequences", f"{key}.npz")
    shape = (cfg.sequence_streams, cfg.prompt_tokens + cfg.sequence_tokens)
    found = passes.load_checked(path, {"tokens": shape, "seconds": ()},
                                {"tokens": (0, data.vocab.size - 1), "seconds": (0.0, schema.MAX_SECONDS)})
    units = cfg.sequence_streams * cfg.sequence_tokens * GENERATED_TOKEN_S
    if found is not None:
        tracker.trained(units)
        return torch.from_numpy(found["tokens"]).long(), float(found["seconds"]), True
    starts = torch.linspace(0, cfg.train_tokens - cfg.prompt_tokens - 1, cfg.sequence_streams).long()
    prompts = torch.stack([data.train_full[s:s + cfg.prompt_tokens] for s in starts.tolist()])
    started = time.perf_counter()
    tokens = passes.continuations(model, prompts, data.vocab, cfg.sequence_tokens, seed=0,
                                  done=_stage(tracker, f"teacher: writing {cfg.sequence_streams} texts for "
                                                       "sequence-level KD", units), should_stop=should_stop)
    seconds = time.perf_counter() - started
    store.save_npz(path, {"tokens": tokens.numpy(), "seconds": torch.tensor(seconds).numpy()})
    return tokens, seconds, False


# ---------------------------------------------------------------------------------------------- training

class OnPolicy:
    """GKD's on-policy batches: a pool of the student's own samples (each starting from `prompt_tokens` real
    tokens), scored by the teacher, refreshed every `pool_every` steps; which steps use it is fixed by cfg."""

    def __init__(self, cfg: DistillConfig, teacher: Any, data: TokenCorpus, seed: int) -> None:
        self.cfg, self.teacher, self.data = cfg, teacher, data
        self.generator = torch.Generator().manual_seed(7919 + seed)
        self.start = int(cfg.steps * cfg.onpolicy_start)
        self.pool: torch.Tensor | None = None
        self.targets: TopK | None = None
        self.refreshed = 0
        self.teacher_tokens, self.teacher_seconds = 0, 0.0

    def uses(self, step: int) -> bool:
        """Whether batch `step` (1-based) is on-policy: a fraction lambda of the batches after the start."""
        i, lam = step - self.start, self.cfg.onpolicy_lambda
        return i > 0 and math.floor(i * lam) > math.floor((i - 1) * lam)

    def _refresh(self, student: CharGPT, step: int) -> None:
        """Sample a new pool from the student (in eval mode) and score it with the teacher."""
        cfg = self.cfg
        streams = 4
        prompts = torch.randint(0, cfg.train_tokens - cfg.prompt_tokens, (-(-cfg.pool_size // streams),),
                                generator=self.generator)
        new = cfg.context + 1 - cfg.prompt_tokens
        rows = []
        student.eval()
        for i, start in enumerate(prompts.tolist()):
            prompt = self.data.train[start:start + cfg.prompt_tokens]
            out = generate(student, prompt.tolist(), new, seed=step * 1000 + i, streams=streams)
            rows.append(torch.cat([prompt.repeat(streams, 1), out], dim=1))
        student.train()
        self.pool = torch.cat(rows)[:cfg.pool_size].clone()   # an ordinary tensor, not an inference one
        started = time.perf_counter()
        scored = passes.score(self.teacher, self.pool[:, :-1], self.data.vocab, cfg.top_k)
        self.teacher_seconds += time.perf_counter() - started
        self.teacher_tokens += self.pool[:, :-1].numel()
        self.targets = TopK(scored.ids.view(cfg.pool_size, cfg.context, -1),
                            scored.logprobs.view(cfg.pool_size, cfg.context, -1))
        self.refreshed = step

    def loss(self, student: CharGPT, step: int):
        """The on-policy loss of one batch: D(teacher, student) on the tokens the student generated."""
        cfg = self.cfg
        if self.pool is None or step - self.refreshed >= cfg.pool_every:
            self._refresh(student, step)
        assert self.pool is not None and self.targets is not None
        pick = torch.randperm(cfg.pool_size, generator=self.generator)[:cfg.batch_size]
        seqs, first = self.pool[pick], cfg.prompt_tokens - 1   # positions >= first predict generated tokens
        logits = student(seqs[:, :-1])[:, first:]
        top = TopK(self.targets.ids[pick][:, first:].reshape(-1, self.targets.ids.shape[-1]),
                   self.targets.logprobs[pick][:, first:].reshape(-1, self.targets.ids.shape[-1]))
        return topk_kd_loss(logits.reshape(-1, logits.shape[-1]), top, seqs[:, first + 1:].reshape(-1), 1.0,
                            cfg.divergence, cfg.beta)


def train_student(model: CharGPT, data: torch.Tensor, cfg: DistillConfig, seed: int, targets: TopK | None = None,
                  onpolicy: OnPolicy | None = None, on_progress: Callable[[Progress], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> dict[str, list]:
    """Train `model` in place (kd_core.lm.training.fit, AdamW on random windows of `data` in restricted ids drawn
    from `seed` alone): cross-entropy, or topk_kd_loss when `targets` (the teacher's top-k at each position of
    `data`) are given; `onpolicy` replaces some batches by its own. Returns the loss history."""
    length = cfg.context

    def batch_loss(step: int, offsets: torch.Tensor):
        """The loss of batch `step`: on-policy where it says so, else the windows of `data` at `offsets`."""
        if onpolicy is not None and onpolicy.uses(step):
            return onpolicy.loss(model, step)
        positions = (offsets[:, None] + torch.arange(length)).reshape(-1)
        x, y = data[positions].view(-1, length), data[positions + 1]
        logits = model(x).reshape(len(positions), -1)
        return (divergence_kd_loss(logits, None, y, 1.0, 0.0) if targets is None else
                topk_kd_loss(logits, targets.rows(positions), y, cfg.alpha, cfg.divergence, cfg.beta))

    return fit(model, batch_loss, tokens=len(data), length=length, steps=cfg.steps, batch_size=cfg.batch_size,
               lr=cfg.lr, seed=seed, on_progress=on_progress, should_stop=should_stop)


# ---------------------------------------------------------------------------------------------- the run

def task(cfg: DistillConfig) -> Task:
    """The distillation comparison of `cfg` as a Task (job key "llmkd-" + its result key)."""
    def cached() -> dict[str, Any] | None:
        """The stored result marked "cached": True, or None."""
        found = cached_result(cfg)
        return None if found is None else {**found, "cached": True}

    return Task(key="llmkd-" + run_key(cfg),
                label=f"pretrained LLM distilled into a tiny student ({', '.join(cfg.methods)}; {cfg.divergence}"
                      f"{f' beta={cfg.beta:g}' if cfg.divergence == 'jsd' else ''}, alpha={cfg.alpha:g}, "
                      f"{cfg.seeds} seed{'s' if cfg.seeds != 1 else ''})",
                cached=cached,
                work=lambda report, should_stop, use_cache: run_distill(cfg, on_event=report, should_stop=should_stop,
                                                                        use_cache=use_cache))


def run_distill(cfg: DistillConfig, on_event: Callable[[Event], None] | None = None,
                should_stop: Callable[[], bool] | None = None, use_cache: bool = True) -> dict[str, Any]:
    """The teacher's passes (cached per corpus), then per seed one student per method from the same weights and
    data order; held-out perplexity and bits per token of each (and of the teacher), their ratios to scratch,
    parameters, tokens/s and samples from the same prompt and seed. The result is cached by config, written
    only after its students' checkpoints. `use_cache=False` recomputes the result (the teacher's passes are
    still reused)."""
    if use_cache and (found := cached_result(cfg)) is not None:
        return {**found, "cached": True}
    return _run(cfg, run_key(cfg), on_event, should_stop or (lambda: False))


def _summary(nats: list[float]) -> dict[str, Any]:
    """Held-out losses of one model over seeds: nats, bits per token and perplexity, with mean and sample std."""
    bits = [n / math.log(2) for n in nats]
    ppl = [math.exp(n) for n in nats]
    spread = (lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0)
    return {"val_nats": nats, "val_bits": bits, "perplexities": ppl, "bits_mean": statistics.fmean(bits),
            "bits_std": spread(bits), "perplexity_mean": statistics.fmean(ppl), "perplexity_std": spread(ppl)}


def _tokens_per_second(model: CharGPT, prompt: list[int], tokens: int = 30) -> float:
    """Tokens a student samples per second (one stream, one thread; the faster of two tries)."""
    generate(model, prompt, 4, seed=0)
    times = []
    for r in range(2):
        started = time.perf_counter()
        generate(model, prompt, tokens, seed=r)
        times.append(time.perf_counter() - started)
    return tokens / min(times)


def _run(cfg: DistillConfig, key: str, on_event: Callable[[Event], None] | None,
         should_stop: Callable[[], bool]) -> dict[str, Any]:
    """run_distill's work, uncached."""
    started = time.perf_counter()
    phases: dict[str, float] = {}
    n_student = len(cfg.methods) * cfg.seeds * cfg.steps * STUDENT_STEP_S
    teacher_units = LOAD_S + (cfg.train_tokens + cfg.val_tokens) * TEACHER_TOKEN_S
    if "sequence" in cfg.methods:
        teacher_units += cfg.sequence_streams * cfg.sequence_tokens * GENERATED_TOKEN_S
    tracker = Tracker(on_event, teacher_units + n_student)
    tracker.stage("loading the teacher (SmolLM2-135M-Instruct)")
    t0 = time.perf_counter()
    tokenizer, teacher = load_teacher()
    info = teacher_info()
    tracker.trained(LOAD_S)
    phases["load_teacher"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = token_corpus(cfg.corpus, tokenizer, int(teacher.config.vocab_size), cfg.train_tokens, cfg.val_tokens)
    prompt = encode_prompt(tokenizer, data.vocab, cfg.sample_prompt)   # refused before any training
    phases["tokenize"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    arrays, topk_cached = _teacher_pass(cfg, teacher, data, tracker, should_stop)
    phases["teacher_topk"] = time.perf_counter() - t0
    targets = restricted(torch.from_numpy(arrays["ids"]), torch.from_numpy(arrays["logprobs"]), data.vocab)
    sequences, seq_seconds, seq_cached = None, 0.0, False
    if "sequence" in cfg.methods:
        t0 = time.perf_counter()
        sequences, seq_seconds, seq_cached = _sequences(cfg, teacher, data, tracker, should_stop)
        phases["teacher_text"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in cfg.methods}
    students: dict[str, CharGPT] = {}
    onpolicy_tokens, onpolicy_seconds = 0, 0.0
    workers = student_workers(len(cfg.methods) * cfg.seeds)   # the job's cores, before each student takes one thread
    with torch_threads():
        initial = {seed: build_model(cfg.spec(), data.vocab.size, 1000 + seed).state_dict()
                   for seed in range(cfg.seeds)}
        plan = [(seed, method) for seed in range(cfg.seeds) for method in cfg.methods]

        def train_one(seed: int, method: str,
                      stopped: Callable[[], bool]) -> tuple[CharGPT, dict[str, Any], OnPolicy | None]:
            """One student of `method` from seed `seed`'s start, trained (until `stopped()`) and scored on the
            held-out tokens."""
            model = CharGPT(cfg.spec(), data.vocab.size)
            model.load_state_dict(initial[seed])
            onpolicy = OnPolicy(cfg, teacher, data, seed) if method == "onpolicy" else None
            text = sequences.reshape(-1) if method == "sequence" and sequences is not None else data.train
            run_started, watch = time.perf_counter(), tracker.watch(method, seed, units=cfg.steps * STUDENT_STEP_S)
            history = train_student(model, text, cfg, 1000 + seed,
                                    targets if method in ("token", "onpolicy") else None, onpolicy, watch, stopped)
            tracker.trained(cfg.steps * STUDENT_STEP_S, watch)
            return model, {"seed": seed, "val_nats": validation_loss(model, data.val),
                           "seconds": time.perf_counter() - run_started, "history": history,
                           "initial_norm": float(initial[seed]["tok.weight"].norm())}, onpolicy

        outcomes = side_by_side([lambda stopped, job=job: train_one(*job, stopped) for job in plan], workers,
                                should_stop)  # in plan order
        for (seed, method), (model, run, onpolicy) in zip(plan, outcomes):
            runs[method].append(run)
            if onpolicy is not None:
                onpolicy_tokens += onpolicy.teacher_tokens
                onpolicy_seconds += onpolicy.teacher_seconds
            if seed == 0:
                students[method] = model
        phases["students"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        tracker.stage("samples and speed")
        models: dict[str, Any] = {}
        for method, model in students.items():
            models[method] = {**_summary([r["val_nats"] for r in runs[method]]),
                              "params": count_params(model, trainable_only=False),
                              "tokens_per_s": _tokens_per_second(model, prompt),
                              "sample": decode(tokenizer, data.vocab, generate(model, prompt, cfg.sample_tokens,
                                                                               seed=0)[0]),
                              "runs": runs[method]}
    spoken = sample(cfg.sample_prompt, 1.0, n=1, max_new_tokens=cfg.sample_tokens, seed=0)
    val_full = torch.from_numpy(arrays["val_full"]).double()
    models = {"teacher": {**_summary([-float(torch.from_numpy(arrays["val_restricted"]).double().mean())]),
                          "val_nats_full_vocab": -float(val_full.mean()),
                          "perplexity_full_vocab": math.exp(-float(val_full.mean())),
                          "params": int(info["params"]), "tokens_per_s": spoken["tokens_per_s"],
                          "sample": spoken["samples"][0], "runs": []}, **models}
    phases["samples_and_speed"] = time.perf_counter() - t0
    students_saved = all([store.save_checkpoint(student_path(key, m), "char-gpt", model.state_dict(),
                                                {"spec": asdict(cfg.spec())}) for m, model in students.items()])
    result = _result(cfg, key, data, info, models, targets, topk_cached, float(arrays["seconds"]))
    result["sequence"] = {"cached": seq_cached, "seconds": seq_seconds,
                          "tokens": 0 if sequences is None else int(sequences.numel())}
    result["onpolicy"] = {"teacher_tokens": onpolicy_tokens, "teacher_seconds": onpolicy_seconds}
    result["phases"] = phases
    result["total_seconds"] = time.perf_counter() - started
    if students_saved:   # a result is stored only after its models
        store.save_json(_path("results", f"{key}.json"), result)
    return result


def _result(cfg: DistillConfig, key: str, data: TokenCorpus, info: dict[str, Any], models: dict[str, Any],
            targets: TopK, topk_cached: bool, topk_seconds: float) -> dict[str, Any]:
    """The result document: models, their ratios to scratch, the winner in words, what the top-k covers."""
    scratch = models["scratch"]
    distilled = [m for m in cfg.methods if m != "scratch"]
    ratios = {m: models[m]["perplexity_mean"] / scratch["perplexity_mean"] for m in distilled}
    below = {m: max(models[m]["perplexities"]) < min(scratch["perplexities"]) for m in distilled}
    ranked = sorted(distilled, key=lambda m: models[m]["perplexity_mean"])
    best = ranked[0]
    if len(ranked) > 1:
        second = ranked[1]
        gap = models[second]["perplexity_mean"] - models[best]["perplexity_mean"]
        noise = max(models[best]["perplexity_std"], models[second]["perplexity_std"])
        verdict = (f"{best} wins: perplexity {models[best]['perplexity_mean']:.1f} vs {second} "
                   f"{models[second]['perplexity_mean']:.1f} ({gap / models[second]['perplexity_mean']:.1%} lower; "
                   + ("within the spread between seeds, so not a clear win)" if cfg.seeds > 1 and gap <= noise else
                      "more than the spread between seeds)" if cfg.seeds > 1 else "one seed: spread unknown)"))
    else:
        verdict = f"{best} is the only distilled method"
    kept = targets.ids >= 0
    return {"key": key, "config": {**asdict(cfg), "methods": list(cfg.methods)},
            "corpus_title": corpus_title(cfg.corpus),
            "teacher": {"name": str(info["name"]), "params": int(info["params"]),
                        "vocab_size": int(info["vocab_size"]), "loaded_from": str(info["loaded_from"])},
            "train_tokens": cfg.train_tokens, "val_positions": len(data.val) - 1 - (len(data.val) - 1) % cfg.context,
            "vocab_size": data.vocab.size, "full_vocab_size": data.vocab.full_size,
            "topk": {"k": int(targets.ids.shape[1]), "coverage": coverage(targets.logprobs),
                     "coverage_in_vocab": coverage(targets.logprobs.masked_fill(~kept, float("-inf"))),
                     "outside_vocab": float((~kept).float().mean()), "cached": topk_cached,
                     "seconds": topk_seconds},
            "models": models, "ratios": ratios, "below_scratch": below,
            "every_distilled_below_every_scratch": all(below.values()), "winner": best, "verdict": verdict,
            "sample_prompt": cfg.sample_prompt, "sample_seed": 0}


def sample_student(result: dict[str, Any], method: str, prompt: Any, tokens: int = 40, seed: int = 0) -> str:
    """`tokens` tokens the seed-0 student of `method` samples after `prompt` (checked; PretrainedError for a bad
    one or for tokens outside the student's vocabulary); ValueError when that student is not stored."""
    cfg = DistillConfig(**{**result["config"], "methods": tuple(result["config"]["methods"])})
    model = load_student(result, method)
    if model is None:
        raise ValueError(f"the {method} student of this result is not stored; run the distillation again")
    tokenizer, teacher = load_teacher()
    data = token_corpus(cfg.corpus, tokenizer, int(teacher.config.vocab_size), cfg.train_tokens, cfg.val_tokens)
    ids = encode_prompt(tokenizer, data.vocab, prompt)
    with torch_threads():
        return decode(tokenizer, data.vocab, generate(model, ids, tokens, seed=seed)[0])

