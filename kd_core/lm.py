"""Distillation for language models: a character-level causal transformer teacher and a much smaller student.

The same idea as for images, at every position of a text: the student predicts the next character and
is trained on `(1 - alpha)·CE + alpha·T²·KL(teacher_T || student_T)` (kd_core.losses.kd_loss on the
(batch·positions, vocabulary) logits), or on the reverse KL, or on text sampled from the teacher
(sequence-level KD). Corpus: the docstrings of Python's standard library read from its .py sources with
ast (never imported), or a user's own .txt.
"""

from __future__ import annotations

import ast
import hashlib
import math
import statistics
import sysconfig
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from kd_core import store
from kd_core.config import checked_replace
from kd_core.losses import kd_loss, reverse_kd_loss
from kd_core.memo import computed_once
from kd_core.train import TrainingCancelled

# ---------------------------------------------------------------------------------------------- corpus

STDLIB_TITLE = ("Docstrings of Python's standard library: every module, class and function docstring in the "
                ".py files of this Python installation (tests and IDLE left out), read with ast.get_docstring "
                "from the source, never by importing the modules. About 1.5 MB of English technical prose.")
SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3", "turtledemo", "__pycache__"}
SMALL_MODULES = ("textwrap", "string", "fnmatch", "shlex", "heapq", "glob", "copy", "functools")  # "stdlib-small"
MAX_UPLOAD_BYTES = 2_000_000      # an uploaded .txt may be at most this big
MIN_TEXT_CHARS = 2_000            # ... and must have at least this many characters (context + validation)
MAX_VOCAB = 200                   # rarer characters of an upload beyond this are replaced by UNKNOWN
UNKNOWN = "\ufffd"
VAL_FRACTION = 0.1                # the last 10% of the text is the validation split
MAX_VAL_CHARS = 64_000            # validation loss is computed on at most this many characters


class CorpusError(ValueError):
    """A text that cannot be used as a corpus; the message says why and what to do."""


def _stdlib_files(modules: tuple[str, ...] | None = None) -> list[Path]:
    """The standard library's .py files, sorted, without tests, IDLE and installed packages (or just `modules`)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    if modules:
        return [root / f"{name}.py" for name in modules if (root / f"{name}.py").is_file()]
    return sorted(p for p in root.rglob("*.py")
                  if not any(part in SKIP_DIRS or part.startswith("test") for part in p.relative_to(root).parts[:-1]))


def stdlib_docstrings(modules: tuple[str, ...] | None = None) -> str:
    """Module, class and function docstrings (40+ characters) of the stdlib sources (or of `modules` only),
    printable ASCII only."""
    keep = set(map(chr, range(32, 127))) | {"\n"}
    docs = []
    for path in _stdlib_files(modules):
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= 40:
                    docs.append("".join(c for c in doc.replace("\t", "    ") if c in keep))
    return "\n\n".join(docs) + "\n"


def text_from_upload(data: bytes, name: str = "the file") -> str:
    """The text of an uploaded file, or CorpusError: empty, too large, binary or not UTF-8 are refused."""
    if not data or not data.strip():
        raise CorpusError(f"{name} is empty: upload a .txt file with some text in it.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise CorpusError(f"{name} is {len(data) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB. "
                          "Upload a shorter extract.")
    sample = data[:65536]
    control = sum(b < 32 and b not in (9, 10, 12, 13) for b in sample)
    if b"\x00" in sample or control > 0.01 * len(sample):
        raise CorpusError(f"{name} looks binary (it contains control bytes), not plain text: upload a .txt file.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{name} is not valid UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start} "
                          "cannot be decoded). Save it as UTF-8 and upload it again.") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if len(text) < MIN_TEXT_CHARS:
        raise CorpusError(f"{name} has only {len(text):,} characters; a language model needs at least "
                          f"{MIN_TEXT_CHARS:,} (the last 10% are kept for validation).")
    return text


def register_text(text: str) -> str:
    """Store a user's text in the cache and return its corpus name ("text-<hash>") for configs and jobs."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    name = f"text-{digest}"
    path = store.cache_path("lm", "corpora", f"{name}.json")  # JSON: a damaged file is detected when read
    if not path.is_file():
        store.save_json(path, {"text": text})
    _TEXTS[name] = text
    return name


_TEXTS: dict[str, str] = {}  # texts registered in this process (also when the cache folder is unwritable)


def corpus_title(name: str) -> str:
    """What a corpus is, in words."""
    if name == "stdlib":
        return STDLIB_TITLE
    if name == "stdlib-small":
        return f"Docstrings of {len(SMALL_MODULES)} modules of Python's standard library (tiny mode)."
    return "Your uploaded text."


def load_text(name: str) -> str:
    """The raw text of corpus `name`: "stdlib" (cached on disk after the first ~5-10 s parse), "stdlib-small",
    or a registered "text-<hash>"."""
    if name in _TEXTS:
        return _TEXTS[name]
    if name in ("stdlib", "stdlib-small"):
        import sys

        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        path = store.cache_path("lm", "corpora", f"{name}-py{version}-v1.json")
        text = (store.load_json(path) or {}).get("text")
        if not isinstance(text, str):
            text = stdlib_docstrings(SMALL_MODULES if name == "stdlib-small" else None)
            store.save_json(path, {"text": text})
    elif name.startswith("text-"):
        text = (store.load_json(store.cache_path("lm", "corpora", f"{name}.json")) or {}).get("text")
        if not isinstance(text, str):
            raise CorpusError(f"the uploaded text {name} is no longer in the cache: upload it again.")
    else:
        raise CorpusError(f"unknown corpus {name!r}; use 'stdlib' or upload a text file")
    _TEXTS[name] = text
    return text


@dataclass
class Corpus:
    """A text as character ids, its vocabulary and its train/validation split."""

    name: str
    chars: str                    # the vocabulary: id i is chars[i]
    train: torch.Tensor           # int64 ids, the first 90%
    val: torch.Tensor             # the last 10%
    fingerprint: str

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Character ids; characters outside the vocabulary become UNKNOWN if it has one, else are dropped."""
        index = {c: i for i, c in enumerate(self.chars)}
        fallback = index.get(UNKNOWN)
        return [index.get(c, fallback) for c in text if c in index or fallback is not None]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)


@computed_once(maxsize=4)
def load_corpus(name: str) -> Corpus:
    """The corpus `name` as ids with a character vocabulary (at most MAX_VOCAB) and a 90/10 split."""
    text = load_text(name)
    counts: dict[str, int] = {}
    for c in text:
        counts[c] = counts.get(c, 0) + 1
    if len(counts) > MAX_VOCAB:
        kept = set(sorted(counts, key=counts.get, reverse=True)[:MAX_VOCAB - 1])
        text = "".join(c if c in kept else UNKNOWN for c in text)
        counts = {c: 1 for c in kept | {UNKNOWN}}
    chars = "".join(sorted(counts))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    split = int(len(ids) * (1 - VAL_FRACTION))
    fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Corpus(name, chars, ids[:split], ids[split:], fingerprint)


# ---------------------------------------------------------------------------------------------- model

@dataclass(frozen=True)
class GPTSpec:
    """Shape of a character-level causal transformer (nanoGPT-style, pre-norm)."""

    n_layer: int
    n_head: int
    n_embd: int
    context: int = 64


class Block(nn.Module):
    """Causal self-attention then an MLP, each with a residual connection and a LayerNorm before it."""

    def __init__(self, spec: GPTSpec) -> None:
        super().__init__()
        self.n_head = spec.n_head
        self.ln1, self.ln2 = nn.LayerNorm(spec.n_embd), nn.LayerNorm(spec.n_embd)
        self.qkv = nn.Linear(spec.n_embd, 3 * spec.n_embd)
        self.proj = nn.Linear(spec.n_embd, spec.n_embd)
        self.mlp = nn.Sequential(nn.Linear(spec.n_embd, 4 * spec.n_embd), nn.GELU(),
                                 nn.Linear(4 * spec.n_embd, spec.n_embd))

    def forward(self, x: torch.Tensor, kv: list | None = None) -> torch.Tensor:
        """`kv`, when given, is this block's [keys, values] cache from earlier positions; it is extended in place."""
        b, length, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (t.view(b, length, self.n_head, c // self.n_head).transpose(1, 2) for t in (q, k, v))
        if kv is not None:
            if kv[0] is not None:
                k, v = torch.cat([kv[0], k], dim=2), torch.cat([kv[1], v], dim=2)
            kv[0], kv[1] = k, v
        # is_causal: position i attends to positions <= i only; it never sees the future. One new position
        # after cached ones attends to all of them (they are all in its past).
        causal = q.shape[2] == k.shape[2]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal).transpose(1, 2).reshape(b, length, c)
        x = x + self.proj(y)
        return x + self.mlp(self.ln2(x))


class CharGPT(nn.Module):
    """Token + position embeddings, `n_layer` causal blocks, a final LayerNorm and a linear head to the vocabulary."""

    def __init__(self, spec: GPTSpec, vocab_size: int) -> None:
        super().__init__()
        self.spec = spec
        self.tok = nn.Embedding(vocab_size, spec.n_embd)
        self.pos = nn.Embedding(spec.context, spec.n_embd)
        self.blocks = nn.Sequential(*[Block(spec) for _ in range(spec.n_layer)])
        self.ln = nn.LayerNorm(spec.n_embd)
        self.head = nn.Linear(spec.n_embd, vocab_size)

    def forward(self, idx: torch.Tensor, cache: list[list] | None = None, start: int = 0) -> torch.Tensor:
        """Logits (batch, length, vocab) for ids (batch, length) at positions start.. < context; with `cache`
        (one [keys, values] per block) earlier positions are reused instead of recomputed."""
        positions = torch.arange(start, start + idx.shape[1], device=idx.device)
        x = self.tok(idx) + self.pos(positions)
        for i, block in enumerate(self.blocks):
            x = block(x, None if cache is None else cache[i])
        return self.head(self.ln(x))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(spec: GPTSpec, vocab_size: int, seed: int) -> CharGPT:
    """A freshly initialised model; equal seeds give equal weights."""
    torch.manual_seed(seed)
    return CharGPT(spec, vocab_size)


@torch.inference_mode()
def generate(model: CharGPT, prompt: list[int], length: int, seed: int, temperature: float = 1.0,
             streams: int = 1) -> torch.Tensor:
    """Sample `length` ids after `prompt` for `streams` parallel streams (batch, length); same seed, same text."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    context = model.spec.context
    idx = torch.tensor(prompt or [0], dtype=torch.long).repeat(streams, 1)
    out = []
    for _ in range(length):
        logits = model(idx[:, -context:])[:, -1, :] / max(temperature, 1e-6)
        nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
        out.append(nxt)
        idx = torch.cat([idx[:, -context + 1:], nxt], dim=1)
    return torch.cat(out, dim=1)


@torch.inference_mode()
def generate_cached(model: CharGPT, prompt: list[int], length: int, seed: int, streams: int = 1) -> torch.Tensor:
    """Like generate (T = 1) but with a key/value cache: when the window is full it restarts from its last half,
    so each new character costs about two positions instead of a whole window. For bulk sampling (sequence KD)."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    context = model.spec.context
    window = torch.tensor((prompt or [0])[-(context // 2):], dtype=torch.long).repeat(streams, 1)
    cache = [[None, None] for _ in model.blocks]
    logits = model(window, cache)[:, -1]
    out = []
    for _ in range(length):
        nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
        out.append(nxt)
        window = torch.cat([window, nxt], dim=1)
        if window.shape[1] > context:
            window = window[:, -(context // 2):]
            cache = [[None, None] for _ in model.blocks]
            logits = model(window, cache)[:, -1]
        else:
            logits = model(nxt, cache, start=window.shape[1] - 1)[:, -1]
    return torch.cat(out, dim=1)


def chars_per_second(model: CharGPT, corpus: Corpus, chars: int = 150, repeats: int = 3) -> float:
    """Generation speed on this CPU: characters sampled per second, one stream, one torch thread, full context
    (no key/value cache); median of `repeats`."""
    prompt = corpus.val[:model.spec.context].tolist()
    times = []
    with torch_threads():
        generate(model, prompt, 10, seed=0)  # warm-up
        for r in range(repeats):
            start = time.perf_counter()
            generate(model, prompt, chars, seed=r)
            times.append(time.perf_counter() - start)
    return chars / statistics.median(times)


def sample_text(model: CharGPT, corpus: Corpus, prompt: str, chars: int = 200, seed: int = 0,
                temperature: float = 1.0) -> str:
    """`chars` characters sampled after `prompt` (one torch thread; same model, prompt and seed -> same text)."""
    with torch_threads():
        ids = generate(model, corpus.encode(prompt)[-model.spec.context:], chars, seed, temperature)
    return corpus.decode(ids[0].tolist())


@torch.inference_mode()
def next_char_logits(model: CharGPT, corpus: Corpus, prompt: str) -> torch.Tensor:
    """The model's logits for the character after `prompt` (its last `context` characters)."""
    model.eval()
    ids = corpus.encode(prompt)[-model.spec.context:] or [0]
    return model(torch.tensor([ids]))[0, -1].float()


@torch.inference_mode()
def validation_loss(model: CharGPT, data: torch.Tensor, batch_size: int = 64) -> float:
    """Mean next-character cross-entropy in nats on non-overlapping windows of `data` (at most MAX_VAL_CHARS)."""
    model.eval()
    length = model.spec.context
    data = data[:MAX_VAL_CHARS + 1]
    windows = (len(data) - 1) // length
    x = data[:windows * length].view(windows, length)
    y = data[1:windows * length + 1].view(windows, length)
    total = 0.0
    for first in range(0, windows, batch_size):
        logits = model(x[first:first + batch_size])
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[first:first + batch_size].reshape(-1),
                                 reduction="sum").item()
    return total / (windows * length)


def bits_per_char(nats: float) -> float:
    return nats / math.log(2)


# ---------------------------------------------------------------------------------------------- training

@dataclass(frozen=True)
class LMProgress:
    """A snapshot sent during training (fields named as kd_core.train.Progress where they mean the same)."""

    step: int
    steps: int
    epoch: float          # passes over the training text so far
    epochs: float         # passes over the training text in the whole run
    loss: float           # mean total loss since the last snapshot (nats per character)
    hard: float           # mean CE with the true next characters
    soft: float           # mean T²·KL to the teacher (0 without a teacher)
    val_bpc: float | None  # validation bits per character, at the end
    elapsed: float
    train_acc: float | None = None
    test_acc: float | None = None


@dataclass(frozen=True)
class LMEvent:
    """Progress of a whole LM run: which model trains, its snapshot, and the overall fraction done (0..1)."""

    phase: str   # "teacher", "distilled" or "scratch"
    seed: int
    progress: LMProgress
    overall: float


CURVE_POINTS = 40
LM_THREADS = 1  # these models are tiny: one torch thread beats two (measured 2-10x faster on a 2-core machine)


_threads_lock = threading.Lock()
_threads_state = {"depth": 0, "before": 1}


@contextmanager
def torch_threads(n: int = LM_THREADS):
    """Run the block with `n` torch threads; the count from before the outermost block (in any thread: a job and
    a page may overlap) is restored when the last block ends, so the image jobs keep theirs."""
    with _threads_lock:
        if _threads_state["depth"] == 0:
            _threads_state["before"] = torch.get_num_threads()
        _threads_state["depth"] += 1
        torch.set_num_threads(n)
    try:
        yield
    finally:
        with _threads_lock:
            _threads_state["depth"] -= 1
            if _threads_state["depth"] == 0:
                torch.set_num_threads(_threads_state["before"])


def token_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, targets: torch.Tensor,
                  temperature: float, alpha: float, divergence: str = "forward"):
    """kd_loss (or reverse_kd_loss) at every position: logits (B, L, V) are reshaped to (B·L, V), targets to (B·L)."""
    v = student_logits.shape[-1]
    s = student_logits.reshape(-1, v)
    t = None if teacher_logits is None else teacher_logits.reshape(-1, v)
    fn = reverse_kd_loss if divergence == "reverse" else kd_loss
    return fn(s, t, targets.reshape(-1), temperature, alpha)


def train_lm(model: CharGPT, data: torch.Tensor, *, steps: int, batch_size: int, lr: float, seed: int,
             teacher: CharGPT | None = None, temperature: float = 1.0, alpha: float = 0.0,
             divergence: str = "forward", on_progress: Callable[[LMProgress], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> dict[str, list]:
    """Train `model` in place with AdamW on random windows of `data`; token-level KD when `teacher` is given.

    The windows depend only on `seed` (and len(data)), so two students with the same seed see the same
    text in the same order. Returns the loss history; raises TrainingCancelled when should_stop() is True.
    """
    length = model.spec.context
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 20)
                                                 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / steps))))
    generator = torch.Generator().manual_seed(seed)
    epochs = round(steps * batch_size * length / max(len(data), 1), 2)
    report_every = max(1, steps // CURVE_POINTS)
    history: dict[str, list] = {"step": [], "epoch": [], "loss": [], "hard": [], "soft": []}
    sums, count = torch.zeros(3), 0
    start = time.perf_counter()
    if teacher is not None:
        teacher.eval()
    model.train()
    for step in range(1, steps + 1):
        if should_stop is not None and should_stop():
            raise TrainingCancelled()
        offsets = torch.randint(0, len(data) - length - 1, (batch_size,), generator=generator)
        window = torch.stack([data[o:o + length + 1] for o in offsets.tolist()])
        x, y = window[:, :-1], window[:, 1:]
        teacher_logits = None
        if teacher is not None:
            with torch.inference_mode():
                teacher_logits = teacher(x)
            teacher_logits = teacher_logits.clone()  # an ordinary tensor (not an inference one) for autograd
        parts = token_kd_loss(model(x), teacher_logits, y, temperature, alpha, divergence)
        optimizer.zero_grad(set_to_none=True)
        parts.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        sums += torch.stack([parts.total.detach(), parts.hard.detach(), parts.soft.detach()])
        count += 1
        if step % report_every == 0 or step == steps:
            loss, hard, soft = (sums / count).tolist()
            for name, value in (("step", step), ("epoch", epochs * step / steps), ("loss", loss), ("hard", hard),
                                ("soft", soft)):
                history[name].append(value)
            if on_progress is not None:
                on_progress(LMProgress(step, steps, epochs * step / steps, epochs, loss, hard, soft, None,
                                       time.perf_counter() - start))
            sums, count = torch.zeros(3), 0
    model.eval()
    return history


# ---------------------------------------------------------------------------------------------- the run

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
        return checked_replace(self, "LM", changes)

    def teacher_spec(self) -> GPTSpec:
        return GPTSpec(self.teacher_layers, self.teacher_heads, self.teacher_width, self.context)

    def student_spec(self) -> GPTSpec:
        return GPTSpec(self.student_layers, self.student_heads, self.student_width, self.context)

    def teacher_dict(self) -> dict[str, Any]:
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
    key = store.config_key({"lm_teacher": cfg.teacher_dict(), "data": corpus.fingerprint})
    return store.cache_path("lm", "teachers", f"{key}.pt")


def cached_teacher(cfg: LMConfig) -> tuple[CharGPT, dict[str, Any]] | None:
    """The trained teacher for `cfg` and its metadata, or None."""
    corpus = load_corpus(cfg.corpus)
    loaded = store.load_checkpoint(_teacher_path(cfg, corpus))
    if loaded is None or loaded[0] != "char-gpt":
        return None
    meta = loaded[2]
    model = CharGPT(GPTSpec(**meta["spec"]), corpus.vocab_size)
    try:
        model.load_state_dict(loaded[1])
    except RuntimeError:
        return None
    return model.eval(), meta


def get_teacher(cfg: LMConfig, on_event: Callable[[LMEvent], None] | None = None,
                should_stop: Callable[[], bool] | None = None, overall: tuple[float, float] = (0.0, 1.0)):
    """The cached teacher, or a freshly trained (and cached) one: (model, metadata)."""
    found = cached_teacher(cfg)
    if found is not None:
        return found
    corpus = load_corpus(cfg.corpus)
    model = build_model(cfg.teacher_spec(), corpus.vocab_size, cfg.teacher_seed)
    start, cpu_start = time.perf_counter(), time.thread_time()

    def report(p: LMProgress) -> None:
        if on_event is not None:
            on_event(LMEvent("teacher", cfg.teacher_seed, p, overall[0] + overall[1] * p.step / p.steps))

    history = train_lm(model, corpus.train, steps=cfg.teacher_steps, batch_size=cfg.batch_size, lr=cfg.teacher_lr,
                       seed=cfg.teacher_seed, on_progress=report, should_stop=should_stop)
    meta = {"spec": asdict(cfg.teacher_spec()), "history": history, "seconds": time.perf_counter() - start,
            "cpu_seconds": time.thread_time() - cpu_start,  # = wall time on a quiet machine (one torch thread)
            "val_nats": validation_loss(model, corpus.val), "params": count_params(model)}
    store.save_checkpoint(_teacher_path(cfg, corpus), "char-gpt", model.state_dict(), meta)
    return model, meta


def run_key(cfg: LMConfig) -> str:
    return store.config_key({"lm": asdict(cfg), "data": load_corpus(cfg.corpus).fingerprint})


def cached_result(cfg: LMConfig) -> dict[str, Any] | None:
    return store.load_json(store.cache_path("lm", "results", f"{run_key(cfg)}.json"))


def student_path(key: str, role: str) -> Path:
    return store.cache_path("lm", "students", f"{key}-{role}.pt")


def load_student(result: dict[str, Any], role: str) -> CharGPT | None:
    """The seed-0 `role` student ("distilled" or "scratch") of a result, or None when its checkpoint is gone."""
    loaded = store.load_checkpoint(student_path(result["key"], role))
    if loaded is None:
        return None
    corpus = load_corpus(result["config"]["corpus"])
    model = CharGPT(GPTSpec(**loaded[2]["spec"]), corpus.vocab_size)
    try:
        model.load_state_dict(loaded[1])
    except RuntimeError:
        return None
    return model.eval()


def _summary(nats: list[float]) -> dict[str, Any]:
    bpc = [bits_per_char(n) for n in nats]
    return {"val_nats": nats, "val_bpc": bpc, "bpc_mean": statistics.fmean(bpc),
            "bpc_std": statistics.pstdev(bpc) if len(bpc) > 1 else 0.0,
            "perplexity_mean": statistics.fmean(math.exp(n) for n in nats)}


def run_lm(cfg: LMConfig, on_event: Callable[[LMEvent], None] | None = None,
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


def _run_lm(cfg: LMConfig, key: str, on_event: Callable[[LMEvent], None] | None,
            should_stop: Callable[[], bool] | None) -> dict[str, Any]:
    """run_lm's work, uncached."""
    started = time.perf_counter()
    corpus = load_corpus(cfg.corpus)
    seq = cfg.method == "sequence"
    teacher_cost = 0.0 if cached_teacher(cfg) is not None else cfg.teacher_steps * cfg.teacher_width ** 2 * cfg.teacher_layers
    student_cost = cfg.student_steps * cfg.teacher_width ** 2 * cfg.teacher_layers * 0.5  # distilled: teacher forward
    total = teacher_cost + cfg.seeds * 1.6 * student_cost or 1.0
    teacher, tmeta = get_teacher(cfg, on_event, should_stop, (0.0, teacher_cost / total))
    teacher_nats = tmeta["val_nats"]
    train_data = corpus.train
    if seq:  # the teacher's own text: streams of samples started from real prompts
        streams = 64
        prompt = corpus.train[:cfg.context].tolist()
        sampled = generate_cached(teacher, prompt, max(cfg.sequence_chars // streams, cfg.context + 2),
                                  seed=cfg.teacher_seed, streams=streams)
        train_data = sampled.reshape(-1)
    runs: dict[str, list[dict[str, Any]]] = {"distilled": [], "scratch": []}
    done = teacher_cost
    for seed in range(cfg.seeds):
        initial = build_model(cfg.student_spec(), corpus.vocab_size, 1000 + seed).state_dict()
        for role in ("distilled", "scratch"):
            model = CharGPT(cfg.student_spec(), corpus.vocab_size)
            model.load_state_dict(initial)
            share = student_cost / total * (0.6 if role == "scratch" else 1.0)
            base = done / total

            def report(p: LMProgress, role=role, seed=seed, base=base, share=share) -> None:
                if on_event is not None:
                    on_event(LMEvent(role, seed, p, min(1.0, base + share * p.step / p.steps)))

            t0 = time.perf_counter()
            distilled = role == "distilled"
            history = train_lm(model, train_data if distilled else corpus.train, steps=cfg.student_steps,
                               batch_size=cfg.batch_size, lr=cfg.student_lr, seed=1000 + seed,
                               teacher=teacher if distilled and not seq else None, temperature=cfg.temperature,
                               alpha=cfg.alpha if distilled else 0.0, divergence=cfg.method,
                               on_progress=report, should_stop=should_stop)
            done += student_cost * (0.6 if role == "scratch" else 1.0)
            runs[role].append({"seed": seed, "val_nats": validation_loss(model, corpus.val), "history": history,
                               "seconds": time.perf_counter() - t0,
                               "initial_norm": float(initial["tok.weight"].norm())})
            if seed == 0:
                store.save_checkpoint(student_path(key, role), "char-gpt", model.state_dict(),
                                      {"spec": asdict(cfg.student_spec())})
                if role == "distilled":
                    distilled_model = model
                else:
                    scratch_model = model
    prompt = corpus.encode(SAMPLE_PROMPT)
    models = {"teacher": teacher, "distilled": distilled_model, "scratch": scratch_model}
    result: dict[str, Any] = {"key": key, "config": asdict(cfg), "corpus_title": corpus_title(cfg.corpus),
                              "corpus_chars": len(corpus.train) + len(corpus.val), "vocab_size": corpus.vocab_size,
                              "teacher_history": tmeta["history"], "teacher_seconds": tmeta["seconds"],
                              "teacher_cpu_seconds": tmeta.get("cpu_seconds"), "models": {}}
    for role, model in models.items():
        nats = [teacher_nats] if role == "teacher" else [r["val_nats"] for r in runs[role]]
        result["models"][role] = {
            **_summary(nats), "params": count_params(model), "chars_per_s": chars_per_second(model, corpus, cfg.speed_chars),
            "sample": corpus.decode(generate(model, prompt, SAMPLE_CHARS, seed=0)[0].tolist()),
            "runs": runs.get(role, [])}
    d = result["models"]["distilled"]["val_bpc"]
    s = result["models"]["scratch"]["val_bpc"]
    result["every_distilled_below_every_scratch"] = max(d) < min(s)
    result["gap_bpc"] = statistics.fmean(s) - statistics.fmean(d)
    result["speedup"] = result["models"]["distilled"]["chars_per_s"] / result["models"]["teacher"]["chars_per_s"]
    result["sample_prompt"] = SAMPLE_PROMPT
    result["total_seconds"] = time.perf_counter() - started
    store.save_json(store.cache_path("lm", "results", f"{key}.json"), result)
    return result
