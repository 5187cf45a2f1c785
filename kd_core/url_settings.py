"""The settings a shareable page link carries (?dataset=&preset=&T=&alpha=&epochs=&seeds=&t2=), parsed strictly.

A link is untrusted input: every value is checked against the same ranges the app's sliders allow, and a bad
one is reported in words and left out (the default stays), never passed on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kd_core.config import PRESETS
from kd_core.data import DATASETS

MAX_VALUE_CHARS = 40  # longer values are refused before any parsing
# What a number in a link may look like: ASCII digits with an optional sign; for numbers that are not
# integers also one dot and an ASCII exponent (encode writes the shortest exact text, "1e-05" for a tiny
# value). Python's int() and float() also take full-width and other Unicode digits ("１２"), underscores
# ("1_0"), "inf" and "nan"; no slider or encode() writes those, so a link must not carry them either.
INTEGER_TEXT = re.compile(r"[+-]?[0-9]+", re.ASCII)
NUMBER_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


@dataclass(frozen=True)
class Setting:
    """One run setting as the sliders show it and a link carries it."""

    field: str          # RunConfig field name
    kind: type          # float, int or bool
    low: float = 0.0    # inclusive range (numbers only): the slider's
    high: float = 0.0
    step: float = 1.0


SETTINGS: dict[str, Setting] = {  # URL name -> setting; the Distill and Temperature sliders use these ranges
    "T": Setting("temperature", float, 0.5, 20.0, 0.5),
    "alpha": Setting("alpha", float, 0.0, 1.0, 0.05),
    "epochs": Setting("student_epochs", int, 1, 60),
    "seeds": Setting("seeds", int, 1, 5),
    "t2": Setting("t_squared", bool),
}
BY_FIELD: dict[str, Setting] = {s.field: s for s in SETTINGS.values()}
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _number(setting: Setting, text: str) -> float | int:
    """`text` as the setting's number within its range, or ValueError saying what is allowed."""
    allowed = f"{'an integer' if setting.kind is int else 'a number'} from {setting.low:g} to {setting.high:g}"
    if not (INTEGER_TEXT if setting.kind is int else NUMBER_TEXT).fullmatch(text):
        raise ValueError(f"is not {allowed}")
    value = setting.kind(text)
    if not (math.isfinite(value) and setting.low <= value <= setting.high):
        raise ValueError(f"is outside the range: use {allowed}")
    return value


def _value(setting: Setting, text: str) -> Any:
    """`text` as the value of `setting`, or ValueError saying what is allowed."""
    if setting.kind is bool:
        if text.lower() in TRUE_WORDS + FALSE_WORDS:
            return text.lower() in TRUE_WORDS
        raise ValueError("is not one of 1/0, true/false, yes/no, on/off")
    return _number(setting, text)


def _shown(text: str) -> str:
    """A link value quoted for a message as a code span (so no markdown or link in it is rendered).

    Printable characters only, backticks replaced, at most MAX_VALUE_CHARS.
    """
    clean = "".join(c if c.isprintable() and c != "`" else "?" for c in text[:MAX_VALUE_CHARS])
    return f"`{clean}{'...' if len(text) > MAX_VALUE_CHARS else ''}`"


def parse(params: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """({"dataset", "preset", "settings"} from a link's parameters, problems in words); unknown names are ignored."""
    found: dict[str, Any] = {"settings": {}}
    problems: list[str] = []
    for name, text in params.items():
        text = str(text).strip()
        if name not in SETTINGS and name not in ("dataset", "preset"):
            continue
        if len(text) > MAX_VALUE_CHARS:
            problems.append(f"{name}={_shown(text)} is too long; the default is used.")
            continue
        if name in ("dataset", "preset"):
            choices = DATASETS if name == "dataset" else PRESETS
            if text in choices:
                found[name] = text
            else:
                problems.append(f"{name}={_shown(text)} is not one of {', '.join(choices)}; the default is used.")
            continue
        try:
            found["settings"][SETTINGS[name].field] = _value(SETTINGS[name], text)
        except ValueError as exc:
            problems.append(f"{name}={_shown(text)} {exc}; the default is used.")
    return found, problems


def encode(dataset: str, preset: str, settings: Mapping[str, Any]) -> dict[str, str]:
    """The link parameters of these settings (the inverse of parse for valid values)."""
    params = {"dataset": dataset, "preset": preset}
    for name, setting in SETTINGS.items():
        if setting.field in settings:
            params[name] = _text(setting, settings[setting.field])
    return params


def _text(setting: Setting, value: Any) -> str:
    """`value` as a link writes it: 1/0 for switches, the shortest exact text for numbers."""
    if setting.kind is bool:
        return "1" if value else "0"
    if setting.kind is int:
        return str(int(value))
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))
