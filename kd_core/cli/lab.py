"""`python -m kd_core experiment NAME [...]`: the dark-knowledge lab from the command line.

NAME is one of data-budget, omitted-class, sweep, t-squared, hints. Progress goes to stderr, a table to
stdout, and `--json PATH` writes the experiment function's result dict (see kd_core.lab) as it is.
Each experiment starts from `kd_core.lab.default_config(NAME)` (the classroom preset, adjusted); the
flags below override it. torch is imported only when an experiment runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kd_core import paths
from kd_core.cli.common import ProgressPrinter, finish, finite_float, int_at_least, pct, positive_int, prepare, table
from kd_core.data import DATASETS

DESCRIPTIONS = {
    "data-budget": "distilled vs scratch as the students see fewer labelled images",
    "omitted-class": "students never see one class; the distilled one still recognises it (Hinton et al. 2015 §3)",
    "sweep": "distilled accuracy over a temperature x alpha grid, cached per cell",
    "t-squared": "the same distillation with and without the T² factor: soft-gradient size and accuracy",
    "hints": "layer-wise (FitNets-style) hints on top of distillation: accuracy with and without",
}


def _number_list(kind: type, name: str):
    """argparse type: a comma-separated list of positive numbers."""
    def parse(text: str) -> list:
        values = []
        for part in text.split(","):
            part = part.strip()
            try:
                value = kind(part)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{part!r} in {name} is not a number") from None
            if not value == value or value in (float("inf"), float("-inf")):
                raise argparse.ArgumentTypeError(f"{part!r} in {name} is not a finite number")
            values.append(value)
        if not values:
            raise argparse.ArgumentTypeError(f"{name} needs at least one value")
        return values
    return parse


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the `experiment` command and its experiments to the CLI's subparsers."""
    _train_limit = int_at_least(10, allow_all=True)  # an image count, or 'all'

    experiment = sub.add_parser("experiment", help="dark-knowledge lab: when and why distillation works")
    names = experiment.add_subparsers(dest="experiment", required=True, metavar="NAME")
    parsers = {name: names.add_parser(name, help=text, description=text) for name, text in DESCRIPTIONS.items()}
    for parser in parsers.values():
        parser.add_argument("--dataset", default="mnist-sample", choices=sorted(DATASETS))
        parser.add_argument("--seeds", type=positive_int, help="student seeds to average over")
        parser.add_argument("--student-epochs", type=positive_int)
        parser.add_argument("--teacher-epochs", type=positive_int)
        parser.add_argument("--student-train-limit", type=_train_limit, default=argparse.SUPPRESS,
                            help="labelled images the students see (an integer or 'all')")
        parser.add_argument("--teacher-train-limit", type=_train_limit, default=argparse.SUPPRESS,
                            help="training images the teacher sees (an integer or 'all')")
        parser.add_argument("--batch-size", type=positive_int)
        parser.add_argument("--data-dir", type=Path, help=f"folder with IDX files (default ${paths.DATA_ENV})")
        parser.add_argument("--json", type=Path, help="write the result as JSON to this path")
        if parser is not parsers["sweep"]:
            parser.add_argument("--no-cache", action="store_true", help="recompute (a cached teacher is still used)")
        if parser is not parsers["t-squared"] and parser is not parsers["sweep"]:
            parser.add_argument("--temperature", type=finite_float, help="T for the soft targets")
        if parser is not parsers["sweep"]:
            parser.add_argument("--alpha", type=finite_float, help="weight of the soft (teacher) term, 0..1")
    parsers["data-budget"].add_argument(
        "--budgets", type=_number_list(float, "--budgets"), default=None,
        help="comma-separated fractions (<= 1) or image counts (> 1) of the training set (default 0.01,0.05,0.2,1)")
    parsers["data-budget"].add_argument("--equal-epochs", action="store_true",
                                        help="train every budget for --student-epochs epochs instead of giving "
                                             "every budget the same number of steps")
    parsers["omitted-class"].add_argument("--label", type=int, default=3, help="the class the students never see")
    parsers["omitted-class"].add_argument("--heldout-fraction", type=finite_float, default=0.2,
                                          help="part of the TRAINING split held out to choose the bias")
    parsers["sweep"].add_argument("--temperatures", type=_number_list(float, "--temperatures"), default=None,
                                  help="comma-separated temperatures (default 1,2,4,8,16)")
    parsers["sweep"].add_argument("--alphas", type=_number_list(float, "--alphas"), default=None,
                                  help="comma-separated soft-term weights (default 0.25,0.5,0.75,0.9,1)")
    parsers["t-squared"].add_argument("--temperatures", type=_number_list(float, "--temperatures"), default=None,
                                      help="comma-separated temperatures (default 1,2,4,8,16,32)")
    parsers["hints"].add_argument("--weights", type=_number_list(float, "--weights"), default=None,
                                  help="comma-separated hint weights; 0 (plain KD) is always included (default 0,1,10)")
    parsers["hints"].add_argument("--hint-loss", choices=("mse", "cosine"),
                                  help="distance between projected student and teacher features (default mse)")


def config_from_args(args: argparse.Namespace):
    """The RunConfig for the chosen experiment: its default config, then explicit flags."""
    from kd_core.lab import default_config

    changes: dict[str, Any] = {"dataset": args.dataset}
    for flag in ("seeds", "student_epochs", "teacher_epochs", "batch_size", "temperature", "alpha", "hint_loss"):
        if getattr(args, flag, None) is not None:
            changes[flag] = getattr(args, flag)
    for limit in ("student_train_limit", "teacher_train_limit"):
        if hasattr(args, limit):
            changes[limit] = getattr(args, limit)
    return default_config(args.experiment).replace(**changes)


def format_table(result: dict[str, Any]) -> str:
    """An experiment's result as a plain-text table."""
    name = result["experiment"]
    total = f"total {result['total_seconds']:.1f} s"
    if name == "data-budget":
        return table([("images", 7), ("epochs", 6), ("distilled (mean ± std)", 24), ("scratch (mean ± std)", 22),
                      ("gain (points)", 14), ("", 0)],
                     [(r["images"], r["epochs"], f"{pct(r['distilled_mean'])} ± {100 * r['distilled_std']:.2f}",
                       f"{pct(r['scratch_mean'])} ± {100 * r['scratch_std']:.2f}",
                       f"{100 * r['gain']:+.2f} ± {100 * r['gain_std']:.2f}",
                       " (within noise)" if r["within_noise"] else "") for r in result["rows"]],
                     [f"teacher {pct(result['teacher']['accuracy'])}; {result['seeds']} seed(s); {total}"])
    if name == "omitted-class":
        label, bias = result["class_name"], result["bias"]
        return table([("model", 20), ("overall", 8), ("on " + label, 8), ("others", 8)],
                     [(role, pct(m["accuracy_mean"]), pct(m["label_accuracy_mean"]), pct(m["other_accuracy_mean"]))
                      for role in ("teacher", "scratch", "distilled", "distilled_corrected", "distilled_all")
                      for m in [result["models"][role]]],
                     [f"bias added to class {label}: {', '.join(f'{b:+g}' for b in bias['chosen'])} "
                      f"(chosen on {bias['chosen_on']})",
                      f"other classes vs a distilled student that saw every class: "
                      f"{-100 * result['other_class_gap']['corrected']:+.2f} points after correction; {total}"])
    if name == "sweep":
        temps, b = result["temperatures"], result["best"]
        cell = {(c["temperature"], c["alpha"]): c for c in result["cells"]}
        grid = table([("alpha", 6), *((f"T={t:g}", 9) for t in temps)],
                     [(f"{a:g}", *(f"{pct(c['mean'])}{'*' if c['best'] else '~' if c['within_noise'] else ' '}"
                                   for t in temps for c in [cell[(t, a)]])) for a in result["alphas"]],
                     [f"scratch {pct(result['scratch']['mean'])}; best T={b['temperature']:g}, alpha={b['alpha']:g}: "
                      f"{pct(b['mean'])} ({100 * b['gain']:+.2f} points); trained {result['trained_students']}, "
                      f"from cache {result['cached_students']}; {total}"])
        return "distilled accuracy; rows alpha (weight of the soft term), columns T; * best, ~ within noise\n" + grid
    if name == "hints":
        m = result["matched"]
        head = (f"teacher {m['teacher']['model']} layer {m['teacher']['layer']} {m['teacher']['shape']} <- "
                f"student {m['student']['model']} layer {m['student']['layer']} {m['student']['shape']} "
                f"through a {m['projection']} ({m['projection_params']:,} params, training only); "
                f"loss {result['hint_loss']}")
        return head + "\n" + table(
            [("hint weight", 11), ("accuracy (mean ± std)", 22), ("vs plain KD (points)", 21), ("hint distance", 16),
             ("", 0)],
            [(f"{r['weight']:g}", f"{pct(r['accuracy_mean'])} ± {100 * r['accuracy_std']:.2f}",
              "reference" if r["weight"] == 0 else
              f"{100 * r['gain_vs_plain_kd']:+.2f} ± {100 * r['gain_vs_plain_kd_std']:.2f}",
              "" if r["hint_distance_first"] is None else
              f"{r['hint_distance_first']:.3f} -> {r['hint_distance_last']:.3f}",
              " (within noise)" if r["weight"] and r["within_noise"] else "") for r in result["rows"]],
            [f"scratch {pct(result['scratch']['mean'])} ± {100 * result['scratch']['std']:.2f}; teacher "
             f"{pct(result['teacher']['accuracy'])}; {result['seeds']} seed(s); {total}"])
    return table([("T", 5), ("soft grad (with T²)", 20), ("(without)", 10), ("acc with T²", 12), ("without", 9)],
                 [(f"{r['temperature']:g}", f"{r['with_t2']['soft_grad_params']:.4f}",
                   f"{r['without_t2']['soft_grad_params']:.4f}", pct(r["with_t2"]["accuracy_mean"]),
                   pct(r["without_t2"]["accuracy_mean"])) for r in result["rows"]],
                 [f"soft-term gradient norm w.r.t. the parameters at initialisation; hard term's "
                  f"{result['rows'][0]['with_t2']['hard_grad_params']:.4f} at every T; scratch "
                  f"{pct(result['scratch']['mean'])}; alpha {result['alpha']:g}; {total}"])


def run(args: argparse.Namespace) -> int:
    """Run the experiment the flags describe, print its table, write JSON if asked."""
    from kd_core import lab

    cfg = config_from_args(args)
    threads = prepare(cfg, args.data_dir)
    print(f"experiment {args.experiment} on {cfg.dataset}: teacher {cfg.teacher}, students {cfg.student}, "
          f"alpha={cfg.alpha:g} (weight of the teacher's soft targets), {cfg.seeds} seed(s), {threads} threads",
          file=sys.stderr)
    common = {"on_event": ProgressPrinter()}
    if args.experiment != "sweep":
        common["use_cache"] = not args.no_cache
    if args.experiment == "data-budget":
        result = lab.data_budget(cfg, args.budgets or lab.DEFAULT_BUDGETS, equal_steps=not args.equal_epochs, **common)
    elif args.experiment == "omitted-class":
        result = lab.omitted_class(cfg, args.label, heldout_fraction=args.heldout_fraction, **common)
    elif args.experiment == "sweep":
        result = lab.sweep(cfg, args.temperatures or lab.DEFAULT_TEMPERATURES, args.alphas or lab.DEFAULT_ALPHAS,
                           **common)
    elif args.experiment == "hints":
        result = lab.hints(cfg, args.weights or lab.DEFAULT_HINT_WEIGHTS, **common)
    else:
        result = lab.t_squared(cfg, args.temperatures or lab.DEFAULT_T2_TEMPERATURES, **common)
    # the sweep is cached per cell and has no --no-cache: it never says "from the cache"
    return finish(result, format_table(result), args.json, say_cached=args.experiment != "sweep")
