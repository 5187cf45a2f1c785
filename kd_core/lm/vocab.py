"""The student's vocabulary: the teacher's tokenizer restricted to the tokens that occur in the corpus, and the
corpus as token ids in both numberings (the teacher's full ids, the student's restricted ids).

A student that shares the teacher's tokenizer but only has rows for the few thousand tokens a corpus uses is
~10x cheaper than one with SmolLM2's 49,152 rows; its ids map back to full ids for decoding. The corpus text is
kd_core.lm.corpus's (the same 90/10 character split); its vocabulary is every token of the train and held-out
slices used, so held-out perplexity is defined (a closed vocabulary, as the character models have).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from kd_core.lm.corpus import VAL_FRACTION, load_text
from kd_core.lm.pretrained import PretrainedError, check_prompt, token_text
from kd_core.memo import computed_once


@dataclass(frozen=True)
class Vocab:
    """A restricted vocabulary: restricted id i is full id full_ids[i]; index[full id] is its restricted id or -1."""

    full_ids: torch.Tensor   # (size,) int64, ascending
    index: torch.Tensor      # (full_size,) int64, -1 for tokens outside the vocabulary

    @property
    def size(self) -> int:
        """Number of tokens kept (the student's vocab_size)."""
        return len(self.full_ids)

    @property
    def full_size(self) -> int:
        """Size of the teacher's vocabulary."""
        return len(self.index)

    def to_restricted(self, full: torch.Tensor) -> torch.Tensor:
        """Restricted ids of full ids, -1 where a token is outside the vocabulary."""
        return self.index[full.long()]

    def to_full(self, restricted: torch.Tensor) -> torch.Tensor:
        """Full (teacher) ids of restricted ids."""
        return self.full_ids[restricted.long()]


def restrict(tokens: torch.Tensor, full_size: int) -> Vocab:
    """The vocabulary of the distinct full ids in `tokens` (a teacher vocabulary of `full_size` tokens)."""
    full_ids = torch.unique(tokens.long())
    if len(full_ids) and not 0 <= int(full_ids[0]) <= int(full_ids[-1]) < full_size:
        raise ValueError(f"token ids must be in 0..{full_size - 1}")
    index = torch.full((full_size,), -1, dtype=torch.long)
    index[full_ids] = torch.arange(len(full_ids))
    return Vocab(full_ids, index)


@dataclass(frozen=True)
class TokenCorpus:
    """A corpus slice as teacher tokens: full ids (for the teacher), restricted ids (for the students)."""

    name: str
    vocab: Vocab
    train_full: torch.Tensor   # (train_tokens,) int64 teacher ids
    val_full: torch.Tensor     # (val_tokens,)
    train: torch.Tensor        # the same as restricted ids
    val: torch.Tensor


def _tokens(tokenizer: Any, text: str, count: int) -> torch.Tensor:
    """The first `count` token ids of `text` (growing prefixes are tokenized, not the whole text); ValueError
    when the text has fewer."""
    chars = max(64, 6 * count)
    while True:
        ids = tokenizer(text[:chars], add_special_tokens=False, split_special_tokens=True)["input_ids"]
        if len(ids) > count or chars >= len(text):
            break
        chars *= 2
    if len(ids) < count:
        raise ValueError(f"the text has only {len(ids):,} tokens here; {count:,} are needed")
    return torch.tensor(ids[:count], dtype=torch.long)   # the last token of a prefix may be cut: dropped


@computed_once(maxsize=4)
def token_corpus(name: str, tokenizer: Any, full_size: int, train_tokens: int, val_tokens: int) -> TokenCorpus:
    """The first `train_tokens` tokens of corpus `name`'s train split and the first `val_tokens` of its held-out
    split, tokenized with the teacher's `tokenizer` (a vocabulary of `full_size`), and their restricted vocabulary."""
    text = load_text(name)
    split = int(len(text) * (1 - VAL_FRACTION))
    train_full = _tokens(tokenizer, text[:split], train_tokens)
    val_full = _tokens(tokenizer, text[split:], val_tokens)
    vocab = restrict(torch.cat([train_full, val_full]), full_size)
    return TokenCorpus(name, vocab, train_full, val_full, vocab.to_restricted(train_full),
                       vocab.to_restricted(val_full))


def _respell(piece: str, known: dict[str, int]) -> list[int] | None:
    """Restricted ids spelling the token text `piece` with the longest known pieces from the left, or None."""
    out, i = [], 0
    while i < len(piece):
        j = next((j for j in range(len(piece), i, -1) if piece[i:j] in known), None)
        if j is None:
            return None
        out.append(known[piece[i:j]])
        i = j
    return out


def encode_prompt(tokenizer: Any, vocab: Vocab, prompt: Any) -> list[int]:
    """`prompt` (checked by kd_core.lm.pretrained.check_prompt) as restricted ids. A token the corpus never uses is
    spelled with shorter tokens it does use (" cat" as " c" + "at"); PretrainedError naming the tokens that cannot
    be (a character no text of the corpus has)."""
    text = check_prompt(prompt)
    full = tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    known = dict(zip(tokenizer.convert_ids_to_tokens(vocab.full_ids.tolist()), range(vocab.size)))
    ids, unknown = [], []
    for token in full:
        piece = tokenizer.convert_ids_to_tokens(int(token))
        spelled = [int(vocab.index[token])] if vocab.index[token] >= 0 else _respell(piece, known)
        if spelled is None:
            unknown.append(token_text(tokenizer, int(token)))
        else:
            ids += spelled
    if unknown:
        raise PretrainedError(f"the prompt holds {len(unknown)} token(s) that the student's corpus cannot spell, so "
                              f"it has no rows for them: {', '.join(unknown[:5])}; rephrase it with characters from "
                              f"the corpus (Python docstrings)")
    return ids


def decode(tokenizer: Any, vocab: Vocab, restricted: torch.Tensor | list[int]) -> str:
    """The text of restricted ids (mapped back to the teacher's ids, decoded by its tokenizer)."""
    full = vocab.to_full(torch.as_tensor(restricted, dtype=torch.long)).tolist()
    return tokenizer.decode(full, skip_special_tokens=False, clean_up_tokenization_spaces=False)
