"""The texts the language models learn: the standard library's docstrings, or a user's upload, as character ids.

Corpus names are "stdlib", "stdlib-small" (tiny mode) and "text-<hash>" for a registered upload; the
texts are cached as JSON under lm/corpora. A Corpus holds the character vocabulary and the 90/10
train/validation split.
"""

from __future__ import annotations

import ast
import hashlib
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

from kd_core import pyast, schema, store
from kd_core.memo import computed_once

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
            tree = pyast.parse(path.read_bytes(), str(path))
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
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        path = store.cache_path("lm", "corpora", f"{name}-py{version}-v1.json")
        text = (store.load_json(path, schema.CORPUS) or {}).get("text")
        if not isinstance(text, str):
            text = stdlib_docstrings(SMALL_MODULES if name == "stdlib-small" else None)
            store.save_json(path, {"text": text})
    elif name.startswith("text-"):
        text = (store.load_json(store.cache_path("lm", "corpora", f"{name}.json"), schema.CORPUS) or {}).get("text")
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
        """Number of distinct characters (ids 0 .. vocab_size - 1)."""
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Character ids; characters outside the vocabulary become UNKNOWN if it has one, else are dropped."""
        index = {c: i for i, c in enumerate(self.chars)}
        fallback = index.get(UNKNOWN)
        return [index.get(c, fallback) for c in text if c in index or fallback is not None]

    def decode(self, ids: list[int]) -> str:
        """The text of character ids."""
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
