"""What the pretrained teacher computes for distillation, in batches: top-k targets over a token stream, its
held-out log-likelihood, continuations of prompts (sequence-level KD) and scores of the student's samples.

The top-k targets and held-out scores of a corpus slice are one cached file (an .npz under llmkd/teacher,
keyed by the model file's content, the slice and k), its continuations another (llmkd/sequences): both are
checked when read back (shapes, id ranges, finite log-probabilities, masses at most 1) and a file that fails
is moved aside (kd_core.store.reject) and recomputed. Forward passes take the teacher's lock (one at a time
with the pages' next-token views) and the teacher's thread count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from kd_core import store
from kd_core.lm import pretrained
from kd_core.threads import torch_threads
from kd_core.lm.topk import TopK, from_logits, restricted
from kd_core.lm.vocab import Vocab
from kd_core.train import TrainingCancelled

# The teacher's own thread count (kd_core.lm.pretrained: one core left to the server). Measured on the shared 2-core
# machine (load ~3): 1 thread 190 tokens/s for the top-k pass and 68 for 64-stream generation, 2 threads 100 and 14.
BATCH_THREADS = pretrained.LLM_THREADS
CHUNKS_PER_FORWARD = 8        # chunks of the token stream in one forward pass
Done = Callable[[int, int], None]   # (units done, units in all) of a pass, for progress
NO_STOP: Callable[[], bool] = lambda: False


def _forward(model: Any, ids: torch.Tensor, cache: Any = None) -> torch.Tensor:
    """The teacher's logits (batch, length, vocab) for full ids (batch, length), under its lock."""
    with pretrained.INFERENCE_LOCK:
        if cache is None:
            return model(input_ids=ids).logits.float()
        return model(input_ids=ids, cache=cache, use_cache=True).logits.float()


def topk_pass(model: Any, full: torch.Tensor, k: int, chunk: int, done: Done | None = None,
              should_stop: Callable[[], bool] = NO_STOP) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's top-k (full ids int32, log-probs at T = 1) for the token after each position of the stream
    `full`, read in consecutive chunks of `chunk` tokens (a position sees the earlier tokens of its chunk)."""
    n = len(full)
    ids, logprobs = torch.zeros(n, k, dtype=torch.int32), torch.zeros(n, k)
    step = chunk * CHUNKS_PER_FORWARD
    with torch_threads(BATCH_THREADS), torch.inference_mode():
        for first in range(0, n, step):
            if should_stop():
                raise TrainingCancelled()
            block = full[first:first + step]
            whole = len(block) // chunk * chunk
            parts = [block[:whole].view(-1, chunk)] if whole else []
            parts += [block[whole:].view(1, -1)] if whole < len(block) else []
            out = [from_logits(_forward(model, part), k) for part in parts]
            ids[first:first + len(block)] = torch.cat([o[0].reshape(-1, k) for o in out])
            logprobs[first:first + len(block)] = torch.cat([o[1].reshape(-1, k) for o in out])
            if done is not None:
                done(first + len(block), n)
    return ids, logprobs


def heldout_pass(model: Any, full: torch.Tensor, vocab: Vocab, context: int, done: Done | None = None,
                 should_stop: Callable[[], bool] = NO_STOP) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's log-probability of each next token of `full` on the windows kd_core.lm.model.validation_loss
    scores a student on (non-overlapping, `context` long): under its whole vocabulary, and renormalised over
    the student's restricted vocabulary (the fair comparison with a student)."""
    windows = (len(full) - 1) // context
    x = full[:windows * context].view(windows, context)
    y = full[1:windows * context + 1].view(windows, context)
    whole, within = [], []
    with torch_threads(BATCH_THREADS), torch.inference_mode():
        for first in range(0, windows, CHUNKS_PER_FORWARD):
            if should_stop():
                raise TrainingCancelled()
            logits = _forward(model, x[first:first + CHUNKS_PER_FORWARD])
            target = y[first:first + CHUNKS_PER_FORWARD].unsqueeze(-1)
            whole.append(F.log_softmax(logits, -1).gather(-1, target).reshape(-1))
            within.append(F.log_softmax(logits[..., vocab.full_ids], -1).gather(-1, vocab.to_restricted(target))
                          .reshape(-1))
            if done is not None:
                done(min(first + CHUNKS_PER_FORWARD, windows), windows)
    return torch.cat(whole), torch.cat(within)


def continuations(model: Any, prompts: torch.Tensor, vocab: Vocab, new_tokens: int, seed: int,
                  temperature: float = 1.0, done: Done | None = None,
                  should_stop: Callable[[], bool] = NO_STOP) -> torch.Tensor:
    """Restricted ids (streams, prompt + new_tokens): each row of full-id `prompts` continued by the teacher,
    sampled at `temperature` from its distribution renormalised over the student's vocabulary (all rows as one
    batch, with a key/value cache; the same seed gives the same text)."""
    from transformers import DynamicCache

    generator = torch.Generator().manual_seed(seed)
    outside = torch.full((vocab.full_size,), float("-inf"))
    outside[vocab.full_ids] = 0.0
    cache = DynamicCache(config=model.config)
    steps = []
    with torch_threads(BATCH_THREADS), torch.inference_mode():
        logits = _forward(model, prompts, cache)[:, -1]
        for i in range(new_tokens):
            if should_stop():
                raise TrainingCancelled()
            probs = F.softmax((logits[:, :vocab.full_size] + outside) / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
            steps.append(nxt)
            if done is not None:
                done(i + 1, new_tokens)
            if i + 1 < new_tokens:
                logits = _forward(model, nxt, cache)[:, -1]
    return vocab.to_restricted(torch.cat([prompts, *steps], dim=1))


def score(model: Any, restricted_ids: torch.Tensor, vocab: Vocab, k: int) -> TopK:
    """The teacher's top-k targets (positions of every row, flattened) for the student's own samples. Runs with
    the caller's threads: it is called inside a student's training (kd_core.threads does not restore an
    outer count when a nested block ends)."""
    with torch.inference_mode():
        full_ids, logprobs = from_logits(_forward(model, vocab.to_full(restricted_ids)), k)
    return restricted(full_ids.reshape(-1, full_ids.shape[-1]), logprobs.reshape(-1, logprobs.shape[-1]), vocab)


# ---------------------------------------------------------------------------------------------- the cached files

def _problem(arrays: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]],
             ranges: dict[str, tuple[float, float]]) -> str | None:
    """Why `arrays` are not what was written (a shape, a dtype kind or a value range), or None."""
    for name, shape in shapes.items():
        a = arrays[name]
        if a.shape != shape:
            return f"{name} has shape {a.shape}, not {shape}"
        low, high = ranges[name]
        if a.dtype.kind not in "iuf" or (a.size and not (np.isfinite(a).all() and a.min() >= low and a.max() <= high)):
            return f"{name} holds values that are not finite numbers from {low:g} to {high:g}"
    return None


def load_checked(path: Path, shapes: dict[str, tuple[int, ...]],
                 ranges: dict[str, tuple[float, float]]) -> dict[str, np.ndarray] | None:
    """The arrays of the cache file `path` when they have exactly `shapes` and values within `ranges`; None when
    it is absent or damaged (an unreadable file is removed, one failing the check moved aside: both recomputed)."""
    arrays = store.load_npz(path, tuple(shapes))
    if arrays is None:
        return None
    problem = _problem(arrays, shapes, ranges)
    if problem is None and "logprobs" in arrays and arrays["logprobs"].size:
        if float(np.exp(arrays["logprobs"].astype(np.float64)).sum(-1).max()) > 1.0 + 1e-3:
            problem = "top-k probabilities that add up to more than 1"
    if problem is not None:
        store.reject(path, problem)
        return None
    return arrays

