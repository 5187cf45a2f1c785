"""`python -m kd_core experiment NAME [...]`: the dark-knowledge lab from the command line.

NAME is one of data-budget, omitted-class, sweep, t-squared, hints. Progress goes to stderr, a table to
stdout, and `--json PATH` writes the experiment function's result dict (see kd_core.lab) as it is.
Each experiment starts from `kd_core.lab.default_config(NAME)` (the classroom preset, adjusted); the
flags below override it. torch is imported only when an experiment runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from kd_core import paths, store
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
    from kd_core.cli import _float, _positive_int, int_at_least

    _train_limit = int_at_least(10, allow_all=True)  # an image count, or 'all'

    experiment = sub.add_parser("experiment", help="dark-knowledge lab: when and why distillation works")
    names = experiment.add_subparsers(dest="experiment", required=True, metavar="NAME")
    parsers = {name: names.add_parser(name, help=text, description=text) for name, text in DESCRIPTIONS.items()}
    for parser in parsers.values():
        parser.add_argument("--dataset", default="mnist-sample", choices=sorted(DATASETS))
        parser.add_argument("--seeds", type=_positive_int, help="student seeds to average over")
        parser.add_argument("--student-epochs", type=_positive_int)
        parser.add_argument("--teacher-epochs", type=_positive_int)
        parser.add_argument("--student-train-limit", type=_train_limit, default=argparse.SUPPRESS,
                            help="labelled images the students see (an integer or 'all')")
        parser.add_argument("--teacher-train-limit", type=_train_limit, default=argparse.SUPPRESS,
                            help="training images the teacher sees (an integer or 'all')")
        parser.add_argument("--batch-size", type=_positive_int)
        parser.add_argument("--data-dir", type=Path, help=f"folder with IDX files (default ${paths.DATA_ENV})")
        parser.add_argument("--json", type=Path, help="write the result as JSON to this path")
        if parser is not parsers["sweep"]:
            parser.add_argument("--no-cache", action="store_true", help="recompute (a cached teacher is still used)")
        if parser is not parsers["t-squared"] and parser is not parsers["sweep"]:
            parser.add_argument("--temperature", type=_float, help="T for the soft targets")
        if parser is not parsers["sweep"]:
            parser.add_argument("--alpha", type=_float, help="weight of the soft (teacher) term, 0..1")
    parsers["data-budget"].add_argument(
        "--budgets", type=_number_list(float, "--budgets"), default=None,
        help="comma-separated fractions (<= 1) or image counts (> 1) of the training set (default 0.01,0.05,0.2,1)")
    parsers["data-budget"].add_argument("--equal-epochs", action="store_true",
                                        help="train every budget for --student-epochs epochs instead of giving "
                                             "every budget the same number of steps")
    parsers["omitted-class"].add_argument("--label", type=int, default=3, help="the class the students never see")
    parsers["omitted-class"].add_argument("--heldout-fraction", type=_float, default=0.2,
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


class LabProgress:
    """LabEvents as progress lines on stderr: one per finished training run and per finished part."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty, self.started = self.stream.isatty(), time.perf_counter()

    def __call__(self, event) -> None:
        """Print one event (training snapshots in place on a terminal, run ends otherwise)."""
        elapsed = time.perf_counter() - self.started
        eta = elapsed / event.overall * (1 - event.overall) if event.overall > 0 else 0.0
        head = f"[{event.overall:6.1%}] "
        if event.progress is None:
            self.stream.write(f"{chr(13) if self.tty else ''}{head}done: {event.step}"
                              f"{' (cached)' if (event.partial or {}).get('cached') else ''}"
                              f"  elapsed {elapsed:4.0f}s\n")
        else:
            p = event.progress
            line = (f"{head}{event.step:<24} {event.phase:<13} seed {event.seed} epoch {p.epoch:6.2f}/{p.epochs}"
                    f" loss {p.loss:.3f}  elapsed {elapsed:4.0f}s eta {eta:4.0f}s")
            if self.tty:
                self.stream.write(f"\r{line}")
            elif p.step == p.steps:
                self.stream.write(line + "\n")
        self.stream.flush()


def _pct(value: float) -> str:
    return f"{100 * value:6.2f}%"


def format_table(result: dict[str, Any]) -> str:
    """An experiment's result as a plain-text table."""
    name = result["experiment"]
    rows: list[str] = []
    if name == "data-budget":
        rows.append(f"{'images':>7} {'epochs':>6} {'distilled (mean ± std)':>24} {'scratch (mean ± std)':>22}"
                    f" {'gain (points)':>14}")
        for r in result["rows"]:
            rows.append(f"{r['images']:>7} {r['epochs']:>6} {_pct(r['distilled_mean']):>15} ± {100 * r['distilled_std']:.2f}"
                        f" {_pct(r['scratch_mean']):>13} ± {100 * r['scratch_std']:.2f}"
                        f" {100 * r['gain']:>+8.2f} ± {100 * r['gain_std']:.2f}{'  (within noise)' if r['within_noise'] else ''}")
        rows.append(f"teacher {_pct(result['teacher']['accuracy'])}; {result['seeds']} seed(s); "
                    f"total {result['total_seconds']:.1f} s")
    elif name == "omitted-class":
        label = result["class_name"]
        rows.append(f"{'model':<20} {'overall':>8} {'on ' + label:>8} {'others':>8}")
        for role in ("teacher", "scratch", "distilled", "distilled_corrected", "distilled_all"):
            m = result["models"][role]
            rows.append(f"{role:<20} {_pct(m['accuracy_mean']):>8} {_pct(m['label_accuracy_mean']):>8}"
                        f" {_pct(m['other_accuracy_mean']):>8}")
        rows.append(f"bias added to class {label}: {', '.join(f'{b:+g}' for b in result['bias']['chosen'])}"
                    f" (chosen on {result['bias']['chosen_on']})")
        rows.append(f"other classes vs a distilled student that saw every class: "
                    f"{-100 * result['other_class_gap']['corrected']:+.2f} points after correction; "
                    f"total {result['total_seconds']:.1f} s")
    elif name == "sweep":
        temps = result["temperatures"]
        rows.append("distilled accuracy; rows alpha (weight of the soft term), columns T; * best, ~ within noise")
        rows.append(f"{'alpha':>6} " + " ".join(f"{'T=' + format(t, 'g'):>9}" for t in temps))
        for a, line in zip(result["alphas"], result["matrix"]):
            cells = [next(c for c in result["cells"] if c["temperature"] == t and c["alpha"] == a) for t in temps]
            rows.append(f"{a:>6g} " + " ".join(
                f"{_pct(c['mean']):>8}{'*' if c['best'] else '~' if c['within_noise'] else ' '}" for c in cells))
        b = result["best"]
        rows.append(f"scratch {_pct(result['scratch']['mean'])}; best T={b['temperature']:g}, alpha={b['alpha']:g}: "
                    f"{_pct(b['mean'])} ({100 * b['gain']:+.2f} points); trained {result['trained_students']}, "
                    f"from cache {result['cached_students']}; total {result['total_seconds']:.1f} s")
    elif name == "hints":
        m = result["matched"]
        rows.append(f"teacher {m['teacher']['model']} layer {m['teacher']['layer']} {m['teacher']['shape']} <- "
                    f"student {m['student']['model']} layer {m['student']['layer']} {m['student']['shape']} "
                    f"through a {m['projection']} ({m['projection_params']:,} params, training only); "
                    f"loss {result['hint_loss']}")
        rows.append(f"{'hint weight':>11} {'accuracy (mean ± std)':>22} {'vs plain KD (points)':>21}"
                    f" {'hint distance':>16}")
        for r in result["rows"]:
            dist = "" if r["hint_distance_first"] is None else \
                f"{r['hint_distance_first']:.3f} -> {r['hint_distance_last']:.3f}"
            gain = "reference" if r["weight"] == 0 else \
                f"{100 * r['gain_vs_plain_kd']:+.2f} ± {100 * r['gain_vs_plain_kd_std']:.2f}"
            rows.append(f"{r['weight']:>11g} {_pct(r['accuracy_mean']):>13} ± {100 * r['accuracy_std']:.2f}"
                        f" {gain:>21} {dist:>16}{'  (within noise)' if r['weight'] and r['within_noise'] else ''}")
        rows.append(f"scratch {_pct(result['scratch']['mean'])} ± {100 * result['scratch']['std']:.2f}; teacher "
                    f"{_pct(result['teacher']['accuracy'])}; {result['seeds']} seed(s); "
                    f"total {result['total_seconds']:.1f} s")
    else:
        rows.append(f"{'T':>5} {'soft grad (with T²)':>20} {'(without)':>10} {'acc with T²':>12} {'without':>9}")
        for r in result["rows"]:
            w, wo = r["with_t2"], r["without_t2"]
            rows.append(f"{r['temperature']:>5g} {w['soft_grad_params']:>20.4f} {wo['soft_grad_params']:>10.4f}"
                        f" {_pct(w['accuracy_mean']):>12} {_pct(wo['accuracy_mean']):>9}")
        rows.append(f"soft-term gradient norm w.r.t. the parameters at initialisation; hard term's "
                    f"{result['rows'][0]['with_t2']['hard_grad_params']:.4f} at every T; scratch "
                    f"{_pct(result['scratch']['mean'])}; alpha {result['alpha']:g}; total {result['total_seconds']:.1f} s")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    """Run the experiment the flags describe, print its table, write JSON if asked."""
    from kd_core import lab
    from kd_core.cli import prepare

    cfg = config_from_args(args)
    threads = prepare(cfg, args.data_dir)
    print(f"experiment {args.experiment} on {cfg.dataset}: teacher {cfg.teacher}, students {cfg.student}, "
          f"alpha={cfg.alpha:g} (weight of the teacher's soft targets), {cfg.seeds} seed(s), {threads} threads",
          file=sys.stderr)
    common = {"on_event": LabProgress()}
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
    if result.get("cached") and args.experiment != "sweep":
        print("(result from cache; --no-cache recomputes it)", file=sys.stderr)
    print(format_table(result))
    if args.json:
        store.write_report(args.json, result)
    return 0
