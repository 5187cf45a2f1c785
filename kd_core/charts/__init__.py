"""Plotly figure builders for the app: plain functions of plain data, each figure titled with labelled axes.

Nothing here trains or loads a model; pages pass in results, histories, logits or counts. Softened
probabilities always come from `kd_core.losses.soften` (the formula lives there only).

Modules:
    common      the shared look (_layout, _subtitled, _log_ticks) and softened probabilities
    training    the main comparison: KD flow and formula, training curves, accuracy bars, confusion cells
    lab         the Experiments page (kd_core.lab): budgets, omitted class, T x alpha sweep, T²
    temperature soft targets at T (effective classes, class similarity) and the Temperature page's charts, each
                with its own client-side T slider (no server round trip)
    divergence  the forward-vs-reverse-KL toy (kd_core.modes): fitted students, loss landscapes, JSD's ends
    language    the language models (kd_core.lm): next characters, training loss, bits per character
    efficiency  compression (kd_core.compress rows): accuracy vs latency or size, recovery from pruning
    history     the run history (kd_core.history records): several runs side by side
Role names and colours come from kd_core.roles, and `events_to_histories` (data, not a figure) from
kd_core.tasks; both are re-exported here.
"""

from __future__ import annotations

import pandas  # noqa: F401  (imported whole before any figure: Plotly reads a half-imported pandas from another thread)

from kd_core.charts.common import softened
from kd_core.charts.divergence import DIVERGENCE_COLORS, beta_name, jsd_ends, mode_fits
from kd_core.charts.efficiency import PARETO_AXES, efficiency_pareto, finetune_recovery, pareto_front
from kd_core.charts.history import HISTORY_METRICS, RUN_COLORS, history_accuracies, history_curves
from kd_core.charts.lab import (bias_curve, budget_accuracy, budget_gain, omitted_class_accuracy, soft_output_bars,
                                sweep_heatmap, t2_accuracy, t2_gradients)
from kd_core.charts.language import (LLM_METHOD_NAMES, char_label, effective_choices_vs_t, llm_perplexity_bars,
                                     lm_bpc_comparison, lm_training_curves, next_char_bars, next_token_bars)
from kd_core.roles import (COLORS, COMPRESS_COLORS, COMPRESS_NAMES, OMITTED_CLASS_NAMES, ROLE_COLORS, ROLE_NAMES,
                                  ROLE_TITLES, ROLES, STUDENTS, TERM_COLORS)
from kd_core.charts.training import (accuracy_comparison, agreement_with_teacher, cell_examples, class_counts,
                                     confusion, digit_outputs, kd_flow_dot, loss_formula_latex, loss_parts,
                                     per_class_accuracy, training_curves)
from kd_core.charts.temperature import (T_GRID, TEMPERATURE_RANGE, average_soft_targets, effective_classes,
                                        effective_classes_slider, most_similar_pairs, similarity_slider,
                                        softmax_slider, t_grid)
from kd_core.tasks import events_to_histories

__all__ = [
    "COLORS", "COMPRESS_COLORS", "COMPRESS_NAMES", "OMITTED_CLASS_NAMES", "ROLE_COLORS", "ROLE_NAMES", "ROLE_TITLES",
    "ROLES", "STUDENTS", "TERM_COLORS",  # the vocabulary (roles)
    "DIVERGENCE_COLORS", "HISTORY_METRICS", "PARETO_AXES", "RUN_COLORS", "TEMPERATURE_RANGE", "T_GRID",
    "accuracy_comparison", "agreement_with_teacher", "average_soft_targets", "bias_curve", "budget_accuracy",
    "beta_name", "budget_gain", "cell_examples", "char_label", "class_counts", "confusion",
    "digit_outputs",
    "effective_classes",
    "effective_choices_vs_t", "effective_classes_slider", 
    "efficiency_pareto", "events_to_histories", "finetune_recovery", "history_accuracies",
    "history_curves", "jsd_ends", "kd_flow_dot", "LLM_METHOD_NAMES", "llm_perplexity_bars", "lm_bpc_comparison", "lm_training_curves", "loss_formula_latex",
    "loss_parts", "mode_fits", "most_similar_pairs",
    "next_char_bars", "next_token_bars",
    "omitted_class_accuracy", "pareto_front", "per_class_accuracy", "similarity_slider", "soft_output_bars",
    "softened",
    "softmax_slider", "sweep_heatmap", "t2_accuracy", "t2_gradients", "t_grid", "training_curves",
]
