"""The one vocabulary of roles: each model's (and compression row's) key -> its display name and its colour.

Charts, pages, exports and the engine name and colour a model through these dicts only (plain data: no imports).
"""

from __future__ import annotations

ROLE_NAMES = {"teacher": "teacher", "distilled": "distilled student", "scratch": "scratch student"}
ROLES = tuple(ROLE_NAMES)             # the three models of every comparison, in display order
STUDENTS = ("distilled", "scratch")   # the two students trained from the same start
ROLE_TITLES = {**ROLE_NAMES, "distilled_all": "distilled student (every class)"}  # progress and result tables

OMITTED_CLASS_NAMES = {  # the omitted-class experiment's students ("it" is the omitted class)
    "scratch": "scratch (never saw it)", "distilled": "distilled (never saw it)",
    "distilled_corrected": "distilled + bias correction", "distilled_all": "distilled, saw every class",
}
COMPRESS_NAMES = {  # the compression rows (kd_core.compress); {s} is the pruned share of the weights
    "teacher": ROLE_NAMES["teacher"], "scratch": ROLE_NAMES["scratch"], "distilled": ROLE_NAMES["distilled"],
    "distilled-int8": "distilled → int8", "pruned": "distilled → pruned {s} (no fine-tune)",
    "pruned-ce": "distilled → pruned {s} + CE epoch", "pruned-kd": "distilled → pruned {s} + KD epoch",
    "pruned-kd-int8": "distilled → pruned {s} + KD epoch → int8",
}

ARCHITECTURE_NAMES = {  # kd_core.models' registry names, in words for summaries
    "classroom-teacher": "a small CNN", "keras-teacher": "the Keras example's teacher CNN",
    "keras-student": "the Keras example's student CNN", "tiny-mlp": "a one-layer MLP",
}

ROLE_COLORS = {"teacher": "#4C78A8", "distilled": "#F58518", "scratch": "#54A24B",
               "distilled_corrected": "#B6530B", "distilled_all": "#4C78A8"}
TERM_COLORS = {"hard": "#B279A2", "soft": "#E45756", "T=1": "#9D9D9D"}  # the loss terms; the plain softmax
COLORS = {**{role: ROLE_COLORS[role] for role in ROLES}, **TERM_COLORS}
COMPRESS_COLORS = {**{role: ROLE_COLORS[role] for role in ROLES},
                   "distilled-int8": "#E45756", "pruned": "#BAB0AC", "pruned-ce": "#72B7B2", "pruned-kd": "#B279A2",
                   "pruned-kd-int8": "#9D755D"}
