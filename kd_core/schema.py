"""What every file read back from the cache must look like: small declarative checks, one per kind of result.

The cache is checked like user input: a file can be edited, planted or left by other code, and pages and
the CLI index into it without guarding each value. A check is a function `(value, where)` that returns
nothing or raises SchemaError naming the first problem and where it is ("models.distilled.accuracy_mean:
'ninety' is not a number"). They are built from a few constructors (number, text, flag, list_of, obj, ...)
and combined into one check per kind of file below. `store.load_json(path, check)` applies one: a file
that fails is reported once, moved aside as `<name>.rejected` and read as absent, so it is recomputed.

Numbers must be finite and within the range their meaning allows (accuracies 0..1, counts >= 0,
seconds >= 0 and below a century); names that become file names or registry look-ups must be known
names; lists must have the lengths the other fields imply. Extra keys are allowed (nothing reads them).
Light: no torch import at module level (the model registry is looked up when a check runs).
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterable

Check = Callable[[Any, str], None]

BIG = 1e15                 # the largest magnitude any unbounded number in a result may have
MAX_COUNT = 10 ** 12       # images, parameters, bytes, FLOPs, steps
MAX_SECONDS = 3.2e9        # a century: a time beyond that is not a measurement
MAX_TEXT = 100_000         # characters of any one string (a language model's sample is 200)
MAX_ITEMS = 1_000_000      # items of any one list
KEY_PATTERN = re.compile(r"[0-9a-f]{20}")  # store.config_key


class SchemaError(ValueError):
    """A document read back from the cache that is not what the code wrote: the message names where and why."""


def fail(where: str, message: str) -> None:
    """Raise SchemaError for `where` (a dotted path into the document)."""
    raise SchemaError(f"{where or 'the document'}: {message}")


def _shown(value: Any) -> str:
    """A value for a message: its repr, at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _at(where: str, key: Any) -> str:
    """The path of `key` inside `where`."""
    return f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else str(key))


# ----------------------------------------------------------------------------------------------------
# Constructors


def _number_problem(value: Any, low: float, high: float, integer: bool) -> str | None:
    """Why `value` is not a number in [low, high] (an integer when `integer`), or None."""
    kind = type(value)
    if kind is bool or kind not in (int, float):
        return f"{_shown(value)} is not {'an integer' if integer else 'a number'}"
    if integer and kind is float:
        if not (math.isfinite(value) and value == int(value)):
            return f"{_shown(value)} is not an integer"
    if not low <= value <= high:  # NaN fails every comparison; so do infinities and 1e300 here
        return f"{_shown(value)} is not a finite number from {low:g} to {high:g}"
    return None


def number(low: float = -BIG, high: float = BIG, *, integer: bool = False, nullable: bool = False) -> Check:
    """A JSON number in [low, high] (never a bool, NaN or infinite); an integer when `integer`; None allowed
    when `nullable`."""
    def check(value: Any, where: str) -> None:
        if value is None and nullable:
            return
        if (problem := _number_problem(value, low, high, integer)) is not None:
            fail(where, problem)
    return check


def numbers(low: float = -BIG, high: float = BIG, *, integer: bool = False, nullable: bool = False,
            min_len: int = 0, max_len: int = MAX_ITEMS) -> Check:
    """A list of numbers as `number` checks them (one tight loop: curves hold thousands)."""
    def check(value: Any, where: str) -> None:
        _length(value, where, min_len, max_len)
        for i, item in enumerate(value):
            if item is None and nullable:
                continue
            if (problem := _number_problem(item, low, high, integer)) is not None:
                fail(_at(where, i), problem)
    return check


def text(*, choices: Iterable[str] | Callable[[], Iterable[str]] | None = None, pattern: str | None = None,
         max_len: int = MAX_TEXT) -> Check:
    """A string of at most `max_len` characters; one of `choices` (a collection, or a function giving one,
    looked up when checking), or matching `pattern` in full, when given."""
    compiled = re.compile(pattern) if pattern is not None else None

    def check(value: Any, where: str) -> None:
        if not isinstance(value, str):
            fail(where, f"{_shown(value)} is not a string")
        if len(value) > max_len:
            fail(where, f"a string of {len(value):,} characters (at most {max_len:,})")
        if choices is not None:
            known = choices() if callable(choices) else choices
            if value not in known:
                fail(where, f"{_shown(value)} is not a known name")
        if compiled is not None and not compiled.fullmatch(value):
            fail(where, f"{_shown(value)} is not of the expected form")
    return check


def flag(value: Any, where: str) -> None:
    """True or False."""
    if not isinstance(value, bool):
        fail(where, f"{_shown(value)} is not true or false")


def anything(value: Any, where: str) -> None:
    """Any JSON value (for fields nothing reads)."""


def nullable(check: Check) -> Check:
    """`check`, or None."""
    def nullable_check(value: Any, where: str) -> None:
        if value is not None:
            check(value, where)
    return nullable_check


def _length(value: Any, where: str, min_len: int, max_len: int) -> None:
    """ValueError unless `value` is a list with min_len..max_len items."""
    if not isinstance(value, list):
        fail(where, f"{_shown(value)} is not a list")
    if not min_len <= len(value) <= max_len:
        fail(where, f"a list of {len(value)} items (expected {min_len} to {max_len})")


def list_of(item: Check, min_len: int = 0, max_len: int = MAX_ITEMS) -> Check:
    """A list of `min_len`..`max_len` items, each passing `item`."""
    def check(value: Any, where: str) -> None:
        _length(value, where, min_len, max_len)
        for i, element in enumerate(value):
            item(element, _at(where, i))
    return check


def obj(required: dict[str, Check], optional: dict[str, Check] | None = None, *,
        then: Callable[[dict[str, Any], str], None] | None = None) -> Check:
    """A JSON object with every key of `required` (each value passing its check), the keys of `optional`
    checked when present, and other keys ignored; then `then(value, where)` for checks across fields."""
    optional = optional or {}

    def check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            fail(where, f"{_shown(value)} is not an object")
        for key, key_check in required.items():
            if key not in value:
                fail(where, f"the key {key!r} is missing")
            key_check(value[key], _at(where, key))
        for key, key_check in optional.items():
            if key in value:
                key_check(value[key], _at(where, key))
        if then is not None:
            then(value, where)
    return check


def map_of(item: Check, keys: Check = text(max_len=200), min_len: int = 0, max_len: int = 10_000) -> Check:
    """A JSON object used as a mapping: `min_len`..`max_len` keys each passing `keys`, values passing `item`."""
    def check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            fail(where, f"{_shown(value)} is not an object")
        if not min_len <= len(value) <= max_len:
            fail(where, f"an object of {len(value)} keys (expected {min_len} to {max_len})")
        for key, element in value.items():
            keys(key, _at(where, "<key>"))
            item(element, _at(where, key))
    return check


def require(ok: bool, where: str, message: str) -> None:
    """For `then` checks: SchemaError at `where` unless `ok`."""
    if not ok:
        fail(where, message)


def same_lengths(*names: str) -> Callable[[dict[str, Any], str], None]:
    """A `then` check: the lists under `names` (those present) have one length."""
    def then(value: dict[str, Any], where: str) -> None:
        lengths = {name: len(value[name]) for name in names if isinstance(value.get(name), list)}
        require(len(set(lengths.values())) <= 1, where, f"lists of different lengths {lengths}")
    return then


def both(*thens: Callable[[dict[str, Any], str], None]) -> Callable[[dict[str, Any], str], None]:
    """Several `then` checks in order."""
    def then(value: dict[str, Any], where: str) -> None:
        for step in thens:
            step(value, where)
    return then


def with_key(check: Check, key: str) -> Check:
    """`check`, and the document's "key" equals `key` (the file's own cache key: a result names its files by it)."""
    def keyed(value: Any, where: str) -> None:
        check(value, where)
        require(value.get("key") == key, _at(where, "key"), f"{_shown(value.get('key'))} is not this file's key {key}")
    return keyed


def validate(document: Any, check: Check) -> None:
    """Run `check` on a whole document (SchemaError naming the first problem)."""
    try:
        check(document, "")
    except RecursionError:  # absurdly deep nesting where a flat value was expected
        fail("", "nested too deeply")


# ----------------------------------------------------------------------------------------------------
# Shared pieces

FRACTION = number(0.0, 1.0)
FRACTIONS = numbers(0.0, 1.0)
COUNT = number(0, MAX_COUNT, integer=True)
POSITIVE = number(1, MAX_COUNT, integer=True)
SECONDS = number(0.0, MAX_SECONDS)
FINITE = number()
NON_NEGATIVE = number(0.0)
KEY = text(pattern=KEY_PATTERN.pattern)
NAME = text(max_len=200)
NOTE = text(max_len=5000)    # a sentence the result carries (how noise is judged, how a figure was measured)


def _dataset_names() -> Iterable[str]:
    from kd_core.data import DATASETS

    return DATASETS


def _model_names() -> Iterable[str]:
    from kd_core.models import MODELS  # imports torch: only when a result is checked

    return MODELS


DATASET = text(choices=_dataset_names)
MODEL = text(choices=_model_names)
HINT_LOSS = text(choices=("mse", "cosine"))


def _builds(make: Callable[..., Any], what: str) -> Callable[[dict[str, Any], str], None]:
    """A `then` check: `make(**value)` builds (and validates) a settings object, else SchemaError."""
    def then(value: dict[str, Any], where: str) -> None:
        try:
            make(**value)
        except (TypeError, ValueError) as exc:
            fail(where, f"not {what} ({exc})")
    return then


def _run_config(**values: Any) -> Any:
    from kd_core.config import RunConfig

    return RunConfig(**values).validated()


RUN_CONFIG = obj({
    "dataset": DATASET, "teacher": MODEL, "student": MODEL,
    "teacher_epochs": number(1, 10_000, integer=True), "student_epochs": number(1, 10_000, integer=True),
    "teacher_train_limit": nullable(number(10, MAX_COUNT, integer=True)),
    "student_train_limit": nullable(number(10, MAX_COUNT, integer=True)),
    "batch_size": number(1, 1_000_000, integer=True), "lr": number(1e-12, 1e3), "adam_eps": number(0.0, 1.0),
    "temperature": number(1e-6, 1e4), "alpha": FRACTION, "t_squared": flag, "seeds": number(1, 20, integer=True),
    "teacher_seed": number(0, 2 ** 63, integer=True), "hint_weight": number(0.0, 1e6), "hint_loss": HINT_LOSS,
}, then=_builds(_run_config, "the settings of a run"))

CURVES = obj({}, {  # kd_core.train.History.as_dict (and the LM trainer's curves, which have "epoch" too)
    "step": numbers(0, MAX_COUNT, integer=True), "epoch": numbers(0.0, 1e9), "loss": numbers(nullable=True),
    "hard": numbers(nullable=True), "soft": numbers(nullable=True), "train_acc": numbers(0.0, 1.0, nullable=True),
    "test_acc": numbers(0.0, 1.0, nullable=True), "elapsed": numbers(0.0, MAX_SECONDS),
}, then=same_lengths("step", "epoch", "loss", "hard", "soft", "train_acc", "test_acc", "elapsed"))

CONFUSION = list_of(numbers(0, MAX_COUNT, integer=True, max_len=10_000), max_len=10_000)


def _classes_fit(value: dict[str, Any], where: str, classes: int) -> None:
    """per_class and confusion of one model or run have one entry per class."""
    if "per_class" in value:
        require(len(value["per_class"]) == classes, _at(where, "per_class"), f"not one value per class ({classes})")
    if "confusion" in value:
        require(len(value["confusion"]) == classes and all(len(row) == classes for row in value["confusion"]),
                _at(where, "confusion"), f"not a {classes} x {classes} matrix")


def _known_classes(value: dict[str, Any], where: str) -> None:
    """The class names are those of the result's dataset (they are drawn on charts)."""
    from kd_core.data import DATASETS

    require(tuple(value["classes"]) == DATASETS[value["dataset"]].classes, _at(where, "classes"),
            f"not the classes of {value['dataset']}")


# ----------------------------------------------------------------------------------------------------
# The comparison (kd_core.experiment.run_experiment), results/<key>.json

_SUMMARY = {"accuracies": numbers(0.0, 1.0, min_len=1, max_len=20), "accuracy_mean": FRACTION,
            "accuracy_std": FRACTION, "params": POSITIVE, "flops": COUNT, "seconds": SECONDS}
_STUDENT_RUN = obj({"seed": COUNT, "accuracy": FRACTION, "seconds": SECONDS, "initial_first_layer_norm": NON_NEGATIVE,
                    "history": CURVES, "per_class": FRACTIONS, "agreement_with_teacher": FRACTION,
                    "confusion": CONFUSION},
                   {"hint_distance_first": FINITE, "hint_distance_last": FINITE})
_CURVE_IMAGES = {"curve_test_images": POSITIVE, "test_images": POSITIVE}  # absent: curves on the whole test set
_TEACHER_ROW = obj({**_SUMMARY, "history": CURVES},
                   {"cached": flag, "per_class": FRACTIONS, "confusion": CONFUSION, "curve_test_images": POSITIVE})
_STUDENT_ROW = obj({**_SUMMARY, "runs": list_of(_STUDENT_RUN, 1, 20)})
_HINT = obj({"weight": NON_NEGATIVE, "loss": HINT_LOSS, "projection": NAME, "projection_params": COUNT,
             "teacher": obj({"layer": anything, "shape": numbers(0, MAX_COUNT, integer=True)}),
             "student": obj({"layer": anything, "shape": numbers(0, MAX_COUNT, integer=True)})})


def _comparison_fits(value: dict[str, Any], where: str) -> None:
    """Across fields: one dataset, runs per seed, one value per class."""
    config, models, classes = value["config"], value["models"], len(value["classes"])
    require(value["dataset"] == config["dataset"], _at(where, "dataset"), "not the dataset of its config")
    _known_classes(value, where)
    require(len(models["teacher"]["accuracies"]) == 1, "models.teacher.accuracies", "not one teacher accuracy")
    _classes_fit(models["teacher"], "models.teacher", classes)
    for role in ("distilled", "scratch"):
        m = models[role]
        require(len(m["accuracies"]) == len(m["runs"]) == config["seeds"], f"models.{role}",
                f"not one accuracy and one run per seed ({config['seeds']})")
        for i, run in enumerate(m["runs"]):
            _classes_fit(run, f"models.{role}.runs[{i}]", classes)
    if "test_images" in value:
        for at, curve in (("curve_test_images", value.get("curve_test_images")),
                          ("models.teacher.curve_test_images", models["teacher"].get("curve_test_images"))):
            require(curve is None or curve <= value["test_images"], at, "more than the test images")


COMPARISON = obj({
    "dataset": DATASET, "config": RUN_CONFIG, "key": KEY, "student_train_images": COUNT,
    "teacher_train_images": nullable(COUNT), "classes": list_of(NAME, 2, 1000),
    "models": obj({"teacher": _TEACHER_ROW, "distilled": _STUDENT_ROW, "scratch": _STUDENT_ROW}),
    "total_seconds": SECONDS,
}, {"hint": _HINT, **_CURVE_IMAGES}, then=_comparison_fits)

TEACHER_META = obj({"accuracy": FRACTION, "seconds": SECONDS, "history": CURVES},  # a teacher checkpoint's metadata
                   {"train_images": nullable(COUNT), "config": anything, **_CURVE_IMAGES})


# ----------------------------------------------------------------------------------------------------
# The lab (kd_core.lab), lab/<experiment>/<key>.json and the sweep's lab/sweep-cells/<key>.json

_STATS = obj({"accuracies": numbers(0.0, 1.0, min_len=1, max_len=20), "mean": FRACTION, "std": FRACTION})
_LAB_TEACHER = obj({"accuracy": FRACTION}, {"cached": flag, "train_images": nullable(COUNT)})
_GAIN = number(-1.0, 1.0)


def _lab(name: str, fields: dict[str, Check], optional: dict[str, Check] | None = None,
         then: Callable[[dict[str, Any], str], None] | None = None) -> Check:
    """A lab result: its experiment name, dataset, config, key, total seconds, and `fields`."""
    def fits(value: dict[str, Any], where: str) -> None:
        require(value["dataset"] == value["config"]["dataset"], "dataset", "not the dataset of its config")
        if then is not None:
            then(value, where)
    return obj({"experiment": text(choices=(name,)), "dataset": DATASET, "config": RUN_CONFIG, "key": KEY,
                "total_seconds": SECONDS, **fields}, optional, then=fits)


def _per_seed(*names: str) -> Callable[[dict[str, Any], str], None]:
    """A `then` check on a lab result: each row's lists under `names` hold one value per seed."""
    def then(value: dict[str, Any], where: str) -> None:
        for i, row in enumerate(value["rows"]):
            for name in names:
                part, _, key = name.partition(".")
                values = row[part][key] if key else row[part]
                require(len(values) == value["seeds"], f"rows[{i}].{name}",
                        f"not one value per seed ({value['seeds']})")
    return then


_BUDGET_ROW = obj({"images": POSITIVE, "fraction": FRACTION, "per_class": NON_NEGATIVE, "epochs": POSITIVE,
                   "steps": COUNT, "distilled": FRACTIONS, "distilled_mean": FRACTION, "distilled_std": FRACTION,
                   "scratch": FRACTIONS, "scratch_mean": FRACTION, "scratch_std": FRACTION, "gain": _GAIN,
                   "gain_std": FRACTION, "gains": numbers(-1.0, 1.0), "noise": NON_NEGATIVE, "within_noise": flag})
DATA_BUDGET = _lab("data-budget", {
    "budgets": numbers(0.0, MAX_COUNT), "equal_steps": flag, "train_images": POSITIVE, "test_images": POSITIVE,
    "seeds": number(1, 20, integer=True), "teacher": _LAB_TEACHER, "rows": list_of(_BUDGET_ROW, 1, 1000),
    "noise_rule": NOTE, "summary": anything,
}, then=_per_seed("distilled", "scratch", "gains"))

_CLASS_SCORES = {"accuracy": FRACTION, "label_accuracy": FRACTION, "other_accuracy": FRACTION}
_OMITTED_ROLE = obj({"runs": list_of(obj({"seed": COUNT, **_CLASS_SCORES}), 1, 20),
                     **{f"{m}_{s}": FRACTION for m in _CLASS_SCORES for s in ("mean", "std")}})
_SOFT_OUTPUT = obj({"predicted": COUNT, "probabilities": FRACTIONS})
_FOUR_ROLES = ("distilled", "distilled_corrected", "scratch", "distilled_all")


def _omitted_fits(value: dict[str, Any], where: str) -> None:
    """The omitted label is a class; matrices, curves and examples fit the classes and seeds."""
    _known_classes(value, where)
    classes = len(value["classes"])
    require(value["label"] < classes, "label", f"not one of the {classes} classes")
    require(value["class_name"] == value["classes"][value["label"]], "class_name", "not the omitted class's name")
    require(len(value["bias"]["chosen"]) == value["seeds"], "bias.chosen", "not one bias per seed")
    require(len(value["bias"]["curve"]) >= 1, "bias.curve", "empty")
    for role in _FOUR_ROLES:
        require(len(value["models"][role]["runs"]) == value["seeds"], f"models.{role}.runs", "not one run per seed")
        _classes_fit({"per_class": value["per_class"][role], "confusion": value["confusion"][role]}, role, classes)
    for i, example in enumerate(value["examples"]):
        require(example["test_index"] < value["test_images"], f"examples[{i}].test_index", "not a test image")
        for role in ("distilled", "distilled_corrected", "scratch", "teacher"):
            require(example[role]["predicted"] < classes and len(example[role]["probabilities"]) == classes,
                    f"examples[{i}].{role}", "not an output over the classes")


OMITTED_CLASS = _lab("omitted-class", {
    "label": COUNT, "class_name": NAME, "classes": list_of(NAME, 2, 1000), "seeds": number(1, 20, integer=True),
    "student_train_images": COUNT, "student_train_images_all_classes": COUNT, "heldout_images": COUNT,
    "heldout_label_images": COUNT, "test_images": POSITIVE, "test_label_images": COUNT, "teacher": _LAB_TEACHER,
    "models": obj({**{role: _OMITTED_ROLE for role in _FOUR_ROLES},
                   "teacher": obj({f"{m}_mean": FRACTION for m in _CLASS_SCORES})}),
    "bias": obj({"chosen": numbers(-1e6, 1e6, min_len=1), "mean": number(-1e6, 1e6), "grid": numbers(-1e6, 1e6),
                 "curve": list_of(obj({"bias": number(-1e6, 1e6), "heldout_accuracy": FRACTION,
                                       "heldout_label_accuracy": FRACTION})), "chosen_on": NOTE}),
    "other_class_gap": obj({"raw": _GAIN, "corrected": _GAIN}),
    "confusion": obj({role: CONFUSION for role in _FOUR_ROLES}),
    "per_class": obj({role: FRACTIONS for role in _FOUR_ROLES}),
    "examples": list_of(obj({"test_index": COUNT, "teacher": _SOFT_OUTPUT,
                             **{role: _SOFT_OUTPUT for role in ("distilled", "distilled_corrected", "scratch")}}),
                        max_len=1000),
}, then=_omitted_fits)

_T2_PART = obj({"accuracies": FRACTIONS, "accuracy_mean": FRACTION, "accuracy_std": FRACTION,
                "soft_grad_logits": NON_NEGATIVE, "soft_grad_params": NON_NEGATIVE, "hard_grad_logits": NON_NEGATIVE,
                "hard_grad_params": NON_NEGATIVE, "soft_to_hard_params": NON_NEGATIVE}, {"same_as_with_t2": flag})
T_SQUARED = _lab("t-squared", {
    "temperatures": numbers(1e-6, 1e4, min_len=1), "alpha": FRACTION, "seeds": number(1, 20, integer=True),
    "grad_batches": POSITIVE, "student_train_images": COUNT, "teacher": _LAB_TEACHER,
    "scratch": _STATS, "rows": list_of(obj({"temperature": number(1e-6, 1e4), "with_t2": _T2_PART,
                                            "without_t2": _T2_PART}), 1, 1000),
    "gradient_note": NOTE,
}, then=_per_seed("with_t2.accuracies", "without_t2.accuracies"))

_HINT_ROW = obj({"weight": NON_NEGATIVE, "accuracies": FRACTIONS, "accuracy_mean": FRACTION, "accuracy_std": FRACTION,
                 "gain_vs_plain_kd": _GAIN, "gain_vs_plain_kd_std": FRACTION, "noise": NON_NEGATIVE,
                 "within_noise": flag, "gain_vs_scratch": _GAIN,
                 "hint_distance_first": nullable(FINITE), "hint_distance_last": nullable(FINITE)})
HINTS = _lab("hints", {
    "weights": numbers(0.0, 1e6, min_len=1), "hint_loss": HINT_LOSS,
    "seeds": number(1, 20, integer=True), "student_train_images": COUNT, "test_images": POSITIVE,
    "teacher": _LAB_TEACHER, "matched": anything, "scratch": _STATS, "rows": list_of(_HINT_ROW, 1, 1000),
    "summary": obj({"plain_kd_mean": FRACTION, "best_weight": NON_NEGATIVE, "best_mean": FRACTION,
                    "best_gain_vs_plain_kd": _GAIN, "best_within_noise": flag}),
    "noise_rule": NOTE, "hint_distance_note": NOTE,
}, then=_per_seed("accuracies"))

SWEEP_CELL = obj({"accuracy": FRACTION, "role": text(choices=("distilled", "scratch")), "seed": COUNT,
                  "config": RUN_CONFIG})

LAB = {"data-budget": DATA_BUDGET, "omitted-class": OMITTED_CLASS, "t-squared": T_SQUARED, "hints": HINTS}


# ----------------------------------------------------------------------------------------------------
# Compression (kd_core.compress), compress/<key>.json

_SPREAD_MS = obj({"median_ms": NON_NEGATIVE, "min_ms": NON_NEGATIVE, "max_ms": NON_NEGATIVE, "runs": POSITIVE})
_THROUGHPUT = obj({"median": NON_NEGATIVE, "min": NON_NEGATIVE, "max": NON_NEGATIVE, "batch": POSITIVE,
                   "runs": POSITIVE})
_PLAIN_FILE = text(pattern=r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*", max_len=200)  # no separator, no ".."
_EXPORT_FILES = obj({"weights": _PLAIN_FILE, "config": _PLAIN_FILE}, {"onnx": _PLAIN_FILE})


def _row_ids() -> Iterable[str]:
    from kd_core.compress.pipeline import ROW_ORDER

    return ROW_ORDER


def _compress_config(**values: Any) -> Any:
    from kd_core.compress.pipeline import CompressConfig

    return CompressConfig(**values).validated()


_COMPRESS_ROW = obj({
    "id": text(choices=_row_ids), "name": NAME, "architecture": MODEL, "precision": text(choices=("float32", "int8")),
    "pipeline": flag, "accuracy": FRACTION, "params": POSITIVE, "nonzero_params": COUNT, "sparsity": FRACTION,
    "size_bytes": POSITIVE, "size_gzip_bytes": POSITIVE, "flops": COUNT, "latency_ms": _SPREAD_MS,
    "throughput": _THROUGHPUT, "peak_memory_bytes": COUNT, "peak_memory_batch_bytes": COUNT,
}, {"agreement_with_distilled": FRACTION})


def _compression_fits(value: dict[str, Any], where: str) -> None:
    """Rows have distinct ids, hold the ones the page compares, and every export is a measured row."""
    ids = [row["id"] for row in value["rows"]]
    require(len(ids) == len(set(ids)), "rows", "the same model twice")
    for needed in ("teacher", "scratch", "distilled", "pruned", "pruned-kd", "pruned-ce"):
        require(needed in ids, "rows", f"the row {needed!r} is missing")
    for row_id in value["exports"]:
        require(row_id in ids, "exports", f"{_shown(row_id)} is not a measured row")
    require(value["dataset"] == value["config"]["dataset"], "dataset", "not the dataset of its config")


COMPRESSION = obj({
    "key": KEY, "experiment_key": KEY, "dataset": DATASET, "config": RUN_CONFIG,
    "compress": obj({}, then=_builds(_compress_config, "compression settings")),
    "rows": list_of(_COMPRESS_ROW, 1, 100), "exports": map_of(_EXPORT_FILES, text(choices=_row_ids), 1, 100),
    "notes": list_of(text(max_len=2000), max_len=100), "threads": number(1, 100_000, integer=True),
    "torch": text(pattern=r"[0-9A-Za-z.+_-]{1,60}"), "calibration_images": COUNT, "finetune_images": COUNT,
    "measured_at": text(pattern=r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"), "total_seconds": SECONDS,
}, then=_compression_fits)


# ----------------------------------------------------------------------------------------------------
# Language models (kd_core.lm), lm/results/<key>.json and lm/corpora/<name>.json

CORPUS_NAME = text(pattern=r"stdlib|stdlib-small|text-[0-9a-f]{16}")


def _lm_config(**values: Any) -> Any:
    from kd_core.lm.run import LMConfig

    return LMConfig(**values)


_LM_CONFIG = obj({"corpus": CORPUS_NAME, **{name: number(1, 1_000_000, integer=True) for name in (
    "context", "teacher_layers", "teacher_heads", "teacher_width", "teacher_steps", "student_layers",
    "student_heads", "student_width", "student_steps", "batch_size")},
    "teacher_lr": number(1e-12, 1e3), "student_lr": number(1e-12, 1e3), "temperature": number(1e-6, 1e4),
    "alpha": FRACTION, "method": text(choices=("forward", "reverse", "sequence")),
    "sequence_chars": COUNT, "speed_chars": COUNT, "seeds": number(1, 20, integer=True),
    "teacher_seed": number(0, 2 ** 63, integer=True)}, then=_builds(_lm_config, "language-model settings"))
_LM_RUN = obj({"seed": COUNT, "val_nats": NON_NEGATIVE, "history": CURVES, "seconds": SECONDS,
               "initial_norm": NON_NEGATIVE})
_LOSSES = numbers(0.0, 1e4, min_len=1, max_len=20)
_LM_MODEL = obj({"val_nats": _LOSSES, "val_bpc": _LOSSES,
                 "bpc_mean": number(0.0, 1e4), "bpc_std": number(0.0, 1e4), "perplexity_mean": NON_NEGATIVE,
                 "params": POSITIVE, "chars_per_s": NON_NEGATIVE, "sample": text(max_len=10_000),
                 "runs": list_of(_LM_RUN, 0, 20)})


def _lm_fits(value: dict[str, Any], where: str) -> None:
    """Students have one run and one loss per seed; the teacher has one loss."""
    seeds, models = value["config"]["seeds"], value["models"]
    require(len(models["teacher"]["val_bpc"]) == 1, "models.teacher.val_bpc", "not one teacher loss")
    for role in ("distilled", "scratch"):
        m = models[role]
        require(len(m["runs"]) == len(m["val_bpc"]) == len(m["val_nats"]) == seeds, f"models.{role}",
                f"not one run and one loss per seed ({seeds})")


LM_RESULT = obj({
    "key": KEY, "config": _LM_CONFIG, "corpus_title": text(max_len=2000),
    "corpus_chars": COUNT, "vocab_size": POSITIVE, "teacher_history": CURVES, "teacher_seconds": SECONDS,
    "teacher_cpu_seconds": nullable(SECONDS),
    "models": obj({"teacher": _LM_MODEL, "distilled": _LM_MODEL, "scratch": _LM_MODEL}),
    "every_distilled_below_every_scratch": flag, "gap_bpc": number(-1e4, 1e4), "speedup": NON_NEGATIVE,
    "sample_prompt": text(max_len=1000), "total_seconds": SECONDS,
}, then=_lm_fits)

CORPUS = obj({"text": text(max_len=50_000_000)})

_GPT_SPEC = obj({"n_layer": number(1, 1000, integer=True), "n_head": number(1, 1000, integer=True),
                 "n_embd": number(1, 100_000, integer=True), "context": number(1, 100_000, integer=True)})
LM_STUDENT_META = obj({"spec": _GPT_SPEC})  # a language model checkpoint's metadata
LM_TEACHER_META = obj({"spec": _GPT_SPEC, "history": CURVES, "seconds": SECONDS, "val_nats": number(0.0, 1e4)},
                      {"cpu_seconds": nullable(SECONDS), "params": POSITIVE})


# ----------------------------------------------------------------------------------------------------
# The pretrained LLM distilled into tiny students (kd_core.lm.llm_distill), llmkd/results/<key>.json

def _llm_distill_config(**values: Any) -> Any:
    from kd_core.lm.llm_distill import DistillConfig

    return DistillConfig(**{**values, "methods": tuple(values["methods"])})


_DISTILL_METHODS = ("scratch", "token", "sequence", "onpolicy")
_DISTILL_CONFIG = obj({"corpus": CORPUS_NAME, "methods": list_of(text(choices=_DISTILL_METHODS), 2, 4),
                       "sample_prompt": text(max_len=2000), "divergence": text(choices=("forward", "reverse", "jsd")),
                       **{name: number(1, 10_000_000, integer=True) for name in (
                           "train_tokens", "val_tokens", "top_k", "teacher_chunk", "context", "layers", "heads",
                           "width", "steps", "batch_size", "prompt_tokens", "sequence_streams", "sequence_tokens",
                           "pool_size", "pool_every", "seeds", "sample_tokens")},
                       **{name: FRACTION for name in ("alpha", "beta", "onpolicy_start", "onpolicy_lambda")},
                       "lr": number(1e-12, 1e3)},
                      then=_builds(_llm_distill_config, "LLM distillation settings"))
_PPL = number(1.0, BIG)
_DISTILL_MODEL = obj({"val_nats": _LOSSES, "val_bits": _LOSSES, "perplexities": list_of(_PPL, 1, 20),
                      "bits_mean": number(0.0, 1e4), "bits_std": number(0.0, 1e4), "perplexity_mean": _PPL,
                      "perplexity_std": number(0.0, BIG), "params": POSITIVE, "tokens_per_s": NON_NEGATIVE,
                      "sample": text(max_len=20_000), "runs": list_of(_LM_RUN, 0, 20)},
                     {"val_nats_full_vocab": number(0.0, 1e4), "perplexity_full_vocab": number(1.0, BIG)})


def _llm_distill_fits(value: dict[str, Any], where: str) -> None:
    """One model per method (and the teacher), one run and loss per seed, a ratio per distilled method."""
    config, models = value["config"], value["models"]
    methods, seeds = config["methods"], config["seeds"]
    require(set(models) == {"teacher", *methods}, "models", "not the teacher and one model per method")
    require(len(models["teacher"]["val_nats"]) == 1, "models.teacher.val_nats", "not one teacher loss")
    for method in methods:
        m = models[method]
        require(len(m["runs"]) == len(m["val_nats"]) == len(m["val_bits"]) == len(m["perplexities"]) == seeds,
                f"models.{method}", f"not one run and one loss per seed ({seeds})")
    distilled = {m for m in methods if m != "scratch"}
    require(set(value["ratios"]) == set(value["below_scratch"]) == distilled, "ratios",
            "not one ratio per distilled method")
    require(value["winner"] in distilled, "winner", "not a distilled method")


LLM_DISTILL_RESULT = obj({
    "key": KEY, "config": _DISTILL_CONFIG, "corpus_title": text(max_len=2000),
    "teacher": obj({"name": NAME, "params": POSITIVE, "vocab_size": POSITIVE, "loaded_from": NAME}),
    "train_tokens": POSITIVE, "val_positions": POSITIVE, "vocab_size": POSITIVE, "full_vocab_size": POSITIVE,
    "topk": obj({"k": POSITIVE, "coverage": FRACTION, "coverage_in_vocab": FRACTION, "outside_vocab": FRACTION,
                 "cached": flag, "seconds": SECONDS}),
    "models": map_of(_DISTILL_MODEL, keys=text(choices=("teacher", *_DISTILL_METHODS)), min_len=3, max_len=5),
    "ratios": map_of(number(0.0, BIG), keys=text(choices=_DISTILL_METHODS)),
    "below_scratch": map_of(flag, keys=text(choices=_DISTILL_METHODS)),
    "every_distilled_below_every_scratch": flag, "winner": text(choices=_DISTILL_METHODS), "verdict": NOTE,
    "sample_prompt": text(max_len=2000), "sample_seed": COUNT,
    "sequence": obj({"cached": flag, "seconds": SECONDS, "tokens": COUNT}),
    "onpolicy": obj({"teacher_tokens": COUNT, "teacher_seconds": SECONDS}),
    "phases": map_of(SECONDS, keys=text(choices=("load_teacher", "tokenize", "teacher_topk", "teacher_text",
                                                 "students", "samples_and_speed"))),
    "total_seconds": SECONDS,
}, then=_llm_distill_fits)
