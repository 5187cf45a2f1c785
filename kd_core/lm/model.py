"""The character-level causal transformer (nanoGPT-style) and what is done with a trained one: sampling,
next-character logits, generation speed and validation loss in bits per character."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kd_core.lm.corpus import Corpus
from kd_core.models import seeded
from kd_core.threads import torch_threads

MAX_VAL_CHARS = 64_000            # validation loss is computed on at most this many characters


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


def build_model(spec: GPTSpec, vocab_size: int, seed: int) -> CharGPT:
    """A freshly initialised model; equal seeds give equal weights."""
    with seeded(seed):
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
    """A loss in nats per character as bits per character."""
    return nats / math.log(2)
