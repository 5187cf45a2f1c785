"""Distil the pretrained LLM into tiny students: one kd_core.lm distill_task as a section of a page.

Four students from the same start (scratch, token-level KD from the teacher's cached top-k, sequence-level KD
on the teacher's own text, on-policy GKD), compared by held-out perplexity over seeds, with samples side by side.
"""

from __future__ import annotations

import streamlit as st

from ui.lifecycle import again_button, task_section
from ui.state import tiny
from ui.widgets import chart, plain

# measured by bench/llm_distill.py on this project's idle 2-core CPU (see README) with the students one at a time,
# as the app's job runner trains them (its other core draws the pages): 267 s cold, 138 s warm (the CLI, on both
# cores: 215 s and 85 s)
COLD_MINUTES, WARM_MINUTES = 4.5, 2.5


def llm_distill_section() -> None:
    """Settings, the run (or its cached result), the perplexity chart, the table, the verdict and the samples."""
    from kd_core import charts, lm

    st.subheader("Distil it: SmolLM2 into a tiny student")
    st.markdown(
        "A student of a few hundred thousand parameters (2 layers, the teacher's tokenizer, its vocabulary cut to "
        "the tokens of the text) learns the standard library's docstrings four ways, from the same starting "
        "weights and data order: **scratch** (the next token only), **token-level KD** (the teacher's top-k "
        "next-token probabilities at every position, computed once and cached), **sequence-level KD** (text the "
        "teacher wrote) and **on-policy KD** (GKD: part of the batches are the student's own samples, scored by "
        "the teacher). Lower held-out perplexity is better.")
    base = lm.DistillConfig().replace(**lm.DISTILL_TINY) if tiny() else lm.DistillConfig()
    c1, c2, c3 = st.columns(3)
    divergence = c1.radio("Divergence to the teacher", lm.DIVERGENCES, key="llmkd_div", horizontal=True,
                          index=lm.DIVERGENCES.index(base.divergence),
                          help="forward KL(teacher‖student): cover everything the teacher considers; reverse "
                               "KL(student‖teacher): pick the teacher's main choices; JSD(beta) in between.")
    beta = c2.slider("beta (JSD only)", 0.0, 1.0, base.beta, 0.1, key="llmkd_beta", disabled=divergence != "jsd",
                     help="beta = 0 is the forward KL and 1 the reverse KL by convention: the JSD itself vanishes "
                          "as beta approaches either end (see the toy above).")
    seeds = c3.slider("Seeds", 1, 3, base.seeds, key="llmkd_seeds")
    cfg = base.replace(divergence=divergence, beta=beta if divergence == "jsd" else base.beta, seeds=seeds)
    try:
        task = lm.distill_task(cfg)  # its key names the teacher's file
    except lm.PretrainedError as exc:
        st.warning(f"The pretrained teacher is not available here, so it cannot be distilled: {plain(exc)}")
        return
    result = task_section(task, None, f"Distil SmolLM2 ({seeds} seed{'s' if seeds != 1 else ''} × 4 students)",
                          "llmkd-run", offer="" if tiny() else
                          f"The first run takes about {COLD_MINUTES} minutes on a 2-core CPU: the teacher reads the "
                          f"text once and writes its own; after that (cached) about {WARM_MINUTES} minutes.")
    if result is None:
        return
    chart(charts.llm_perplexity_bars(result), key="llmkd-bars")
    top = result["topk"]
    st.caption(f"Notice: {plain(result['verdict'])}. The teacher's top {top['k']} tokens hold {top['coverage']:.0%} of "
               f"its probability on average ({top['coverage_in_vocab']:.0%} within the student's "
               f"{result['vocab_size']:,}-token vocabulary); the rest is one 'other' bucket in the target.")
    models = result["models"]
    rows = [{"student": charts.LLM_METHOD_NAMES.get(m, m), "how it learned": lm.DISTILL_METHODS[m],
             "perplexity": round(models[m]["perplexity_mean"], 1),
             "± (std over seeds)": f"{models[m]['perplexity_std']:.1f}" if len(models[m]["perplexities"]) > 1 else "—",
             "vs scratch": "1" if m == "scratch" else f"{result['ratios'][m]:.2f}×",
             "bits/token": round(models[m]["bits_mean"], 2), "parameters": models[m]["params"],
             "tokens/s": round(models[m]["tokens_per_s"])} for m in result["config"]["methods"]]
    teacher = models["teacher"]
    rows.append({"student": charts.LLM_METHOD_NAMES["teacher"], "how it learned": "pretrained (Hugging Face)",
                 "perplexity": round(teacher["perplexity_mean"], 1), "± (std over seeds)": "— (one teacher)",
                 "vs scratch": "", "bits/token": round(teacher["bits_mean"], 2), "parameters": teacher["params"],
                 "tokens/s": round(teacher["tokens_per_s"])})
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"parameters": st.column_config.NumberColumn(format="localized")})
    st.caption("The teacher's perplexity is over the same restricted vocabulary as the students' (renormalised), so "
               f"the numbers compare; over its whole vocabulary it is {teacher['perplexity_full_vocab']:,.1f}. "
               + ("Every distilled student beat every scratch student, seed by seed."
                  if result["every_distilled_below_every_scratch"] else
                  "Not every distilled student beat every scratch student, seed by seed."))
    st.markdown(f"**Samples from the same prompt and seed** ({plain(result['sample_prompt'])!s} …):")
    columns = st.columns(len(result["config"]["methods"]))
    for column, m in zip(columns, result["config"]["methods"]):
        column.caption(charts.LLM_METHOD_NAMES.get(m, m))
        column.text(models[m]["sample"])  # plain text: model output is never rendered as markdown
    again_button(task, "Train again, live", "llmkd-again",
                 help="Trains the students again with the same settings and shows it live; the stored result is "
                      "replaced by the newest.")
