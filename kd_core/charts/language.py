"""Charts of the language models (kd_core.lm): next-character probabilities, training loss, bits per character."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go

from kd_core.charts.common import _layout, _log_axis, softened
from kd_core.roles import COLORS, ROLE_NAMES, ROLES


def char_label(c: str) -> str:
    """A character as a readable bar label: space, newline and tab get visible names."""
    return {" ": "␣ (space)", "\n": "⏎ (newline)", "\t": "⇥ (tab)"}.get(c, c)


def next_char_bars(chars: str, teacher_logits: Sequence[float] | np.ndarray,
                   student_logits: Sequence[float] | np.ndarray, temperature: float, top: int = 12,
                   student_name: str = ROLE_NAMES["distilled"]) -> go.Figure:
    """Teacher at T = 1, teacher at T and student at T for the teacher's `top` next characters at T = 1."""
    teacher_1 = softened(teacher_logits, 1.0)
    order = np.argsort(-teacher_1)[:top]
    labels = [char_label(chars[i]) for i in order]
    fig = go.Figure([
        go.Bar(x=labels, y=teacher_1[order], name="teacher, T = 1", marker_color=COLORS["T=1"]),
        go.Bar(x=labels, y=softened(teacher_logits, temperature)[order], name=f"teacher, T = {temperature:g}",
               marker_color=COLORS["teacher"]),
        go.Bar(x=labels, y=softened(student_logits, temperature)[order], name=f"{student_name}, T = {temperature:g}",
               marker_color=COLORS["distilled"]),
    ])
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_xaxes(type="category")
    return _layout(fig, f"Next character after your prompt: teacher at T = 1 and T = {temperature:g}, student beside it",
                   f"next character (the teacher's top {top} at T = 1)", "probability (0-1)")


def lm_training_curves(histories: dict[str, dict[str, list]], title: str = "Training loss") -> go.Figure:
    """Cross-entropy with the true next character (bits per character) against optimisation steps, per model."""
    fig = go.Figure()
    for role, history in histories.items():
        fig.add_trace(go.Scatter(x=history.get("step", []), y=[h / math.log(2) for h in history.get("hard", [])],
                                 mode="lines", name=ROLE_NAMES.get(role, role), line={"color": COLORS.get(role)}))
    return _layout(fig, title, "optimisation step", "CE with the true next char (bits/char)")


def lm_bpc_comparison(result: dict[str, Any]) -> go.Figure:
    """Validation bits per character of teacher, distilled and scratch students: mean bars, one dot per seed."""
    names = [ROLE_NAMES[r] for r in ROLES]
    models = result["models"]
    fig = go.Figure(go.Bar(x=names, y=[models[r]["bpc_mean"] for r in ROLES],
                           marker_color=[COLORS[r] for r in ROLES], name="mean over seeds",
                           text=[f"{models[r]['bpc_mean']:.3f}" for r in ROLES], textposition="outside"))
    for r, name in zip(ROLES, names):
        fig.add_trace(go.Scatter(x=[name] * len(models[r]["val_bpc"]), y=models[r]["val_bpc"], mode="markers",
                                 marker={"color": "black", "size": 7}, name="one seed", showlegend=r == "distilled"))
    top = max(max(models[r]["val_bpc"]) for r in ROLES)
    fig.update_yaxes(range=[0, top * 1.15])
    seeds = len(models["distilled"]["val_bpc"])
    return _layout(fig, f"Validation bits per character (lower is better; {seeds} seed{'s' if seeds > 1 else ''})",
                   "model", "bits per character")


def next_token_bars(view: dict[str, Any]) -> go.Figure:
    """A pretrained LLM's top-k next tokens (kd_core.lm.next_tokens) at T = 1 and at T, and the mass outside them."""
    t = view["temperature"]
    labels = [*view["tokens"], "(other)"]
    at_1, at_t = view["at_1"], view["at_T"]
    fig = go.Figure([
        go.Bar(x=labels, y=[*at_1["probs"], at_1["other"]], name="T = 1", marker_color=COLORS["T=1"]),
        go.Bar(x=labels, y=[*at_t["probs"], at_t["other"]], name=f"T = {t:g}", marker_color=COLORS["teacher"]),
    ])
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_xaxes(type="category")
    return _layout(fig, f"The teacher's next token: its top {view['k']} at T = 1 and at T = {t:g}",
                   f"next token (␣ = a space; '(other)' = the {view['vocab_size'] - view['k']:,} other tokens)",
                   "probability (0-1)")


def effective_choices_vs_t(view: dict[str, Any]) -> go.Figure:
    """Effective number of next tokens (exp of the entropy of the whole softened distribution) against T."""
    curve, t = view["curve"], view["temperature"]
    fig = go.Figure([
        go.Scatter(x=curve["temperatures"], y=curve["effective_choices"], mode="lines+markers",
                   name="effective choices", line={"color": COLORS["teacher"]}),
        go.Scatter(x=[t], y=[view["at_T"]["effective_choices"]], mode="markers", marker={"size": 12,
                   "color": COLORS["soft"]}, name=f"current T = {t:g}"),
    ])
    ticks = [t for t in (0.25, 0.5, 1, 2, 4, 8, 16) if min(curve["temperatures"]) <= t <= max(curve["temperatures"])]
    fig.update_xaxes(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    _log_axis(fig, [*curve["effective_choices"], view["at_T"]["effective_choices"]], "y")
    return _layout(fig, "Effective number of next tokens vs T",
                   "temperature T (log scale)", "effective number of tokens (e^entropy, log scale)")


LLM_METHOD_NAMES = {"teacher": "teacher (SmolLM2-135M)", "scratch": "scratch", "token": "token-level KD",
                    "sequence": "sequence-level KD", "onpolicy": "on-policy KD (GKD)"}


def llm_perplexity_bars(result: dict[str, Any]) -> go.Figure:
    """Held-out perplexity of each student method (kd_core.lm.run_distill): mean bars, one dot per seed, log scale."""
    methods = list(result["config"]["methods"])
    models = result["models"]
    names = [LLM_METHOD_NAMES.get(m, m) for m in methods]
    colors = [COLORS["scratch"] if m == "scratch" else COLORS["distilled"] for m in methods]
    fig = go.Figure(go.Bar(x=names, y=[models[m]["perplexity_mean"] for m in methods], marker_color=colors,
                           name="mean over seeds", text=[f"{models[m]['perplexity_mean']:,.0f}" for m in methods],
                           textposition="inside", insidetextanchor="start", textfont={"color": "white"}))
    for m, name in zip(methods, names):
        fig.add_trace(go.Scatter(x=[name] * len(models[m]["perplexities"]), y=models[m]["perplexities"],
                                 mode="markers", marker={"color": "black", "size": 7}, name="one seed",
                                 showlegend=m == methods[0]))
    teacher = models["teacher"]["perplexity_mean"]
    fig.add_hline(y=teacher, line_dash="dot", line_color=COLORS["teacher"],
                  annotation_text=f"teacher {teacher:,.1f}", annotation_position="top left")
    _log_axis(fig, [teacher, *(p for m in methods for p in models[m]["perplexities"]),
                    *(models[m]["perplexity_mean"] for m in methods)], "y")
    seeds = len(models[methods[0]]["perplexities"])
    return _layout(fig, f"Held-out perplexity of the tiny students (lower is better; {seeds} seed"
                        f"{'s' if seeds != 1 else ''})", "how the student learned", "perplexity (log scale)")
