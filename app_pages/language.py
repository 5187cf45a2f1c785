"""Language models: a real LLM's next-token view and its distillation, forward vs reverse KL, and a
character-level transformer teacher and student trained here.

Longer than ~120 lines because it is seven views in one: a real pretrained LLM's next-token view, its
distillation into tiny students (ui.llm_distill_section), forward vs reverse KL on a toy (ui.divergence_section),
the text,
the settings with their formula, the comparison (one kd_core.lm task), and samples and next-character bars
from the trained models.
"""

import streamlit as st

import ui
from kd_core import charts, export
from kd_core import lm
from ui.widgets import wide_and_narrow

st.title("Language models: a real LLM's dark knowledge, and distilling a small transformer")
st.markdown(
    "The same idea as for images, in the setting everyone talks about: a **teacher** language model gives a "
    "probability to every possible next token, and a **student** learns from those probabilities at *every "
    "position of the text* instead of only from the token that actually came next. Four parts, top to bottom:\n\n"
    "1. **A real language model's dark knowledge**: the next-token distribution of SmolLM2-135M-Instruct, a "
    "pretrained LLM, for a prompt you type, at T = 1 and at a higher T. Nothing trains.\n"
    "2. **Distil it**: four tiny students from the same start, one trained from scratch and three distilled "
    "from SmolLM2 (token-level, sequence-level and on-policy KD), compared by held-out perplexity; one run in "
    "the background.\n"
    "3. **Forward vs reverse KL**: a toy that shows, at once, why the divergence decides whether a student "
    "covers all of its teacher's answers or settles on one.\n"
    "4. **Train your own**: a character-level transformer teacher and a much smaller student distilled from it, "
    "both trained here on this CPU, with their samples and next-character bars.")

# ------------------------------------------------------------------ a real pretrained LLM's dark knowledge
st.subheader("A real language model's dark knowledge")
st.markdown("**SmolLM2-135M-Instruct** (135 million parameters, Hugging Face, Apache-2.0) runs here, offline, as a "
            "teacher. Type a prompt: its next-token distribution at T = 1 and at the slider's T shows how it ranks "
            "the *wrong* continuations, which is what a student distilled from it would learn. Nothing trains here.")
if st.toggle("Show the pretrained teacher (loaded once per server: about 30 s the first time, 5 s after)",
             key="llm_on"):
    try:
        with st.spinner("Loading SmolLM2-135M (once per server)..."):
            lm.load_teacher()
        c1, c2 = st.columns([3, 1])
        ready = c1.selectbox("A ready prompt", list(lm.READY_PROMPTS), key="llm_ready")
        llm_t = c2.slider("T", 0.25, 3.0, 1.25, 0.25, key="llm_t",
                          help="Softens the teacher's next-token distribution; useful range about 0.25 to 3.")
        prompt = st.text_area("Prompt (edit it freely)", lm.READY_PROMPTS[ready], key=f"llm_prompt_{ready}",
                              max_chars=lm.MAX_PROMPT_CHARS, height=80)
        view = lm.next_tokens(prompt, llm_t, k=10)
        left, right = st.columns([3, 2])
        ui.chart(charts.next_token_bars(view), key="llm-next", where=left)
        left.caption(f"Notice: at T = 1 the top token takes {view['at_1']['probs'][0]:.0%}; the next ones are the "
                     f"teacher's near-misses. At T = {llm_t:g} the tokens outside its top 10 hold "
                     f"{view['at_T']['other']:.0%} of the probability (at T = 1: {view['at_1']['other']:.0%}).")
        ui.chart(charts.effective_choices_vs_t(view), key="llm-choices", where=right)
        right.caption(f"Notice: about {view['at_1']['effective_choices']:.1f} effective choices at T = 1 and "
                      f"{view['at_T']['effective_choices']:,.1f} at T = {llm_t:g}, of {view['vocab_size']:,} tokens: "
                      "too high a T spreads the target over nonsense.")
        if st.button(f"Sample 3 continuations at T = {llm_t:g}", key="llm-sample"):
            samples = lm.sample(prompt, llm_t, n=3, max_new_tokens=30, seed=0)
            for text in samples["samples"]:
                st.text(prompt + text)  # plain text: model output is never rendered as markdown
            st.caption(f"Seed 0, {samples['tokens_per_s']:.0f} tokens per second on this CPU. Higher T: more varied, "
                       "then less sensible continuations.")
    except lm.PretrainedError as exc:
        st.warning(f"The pretrained teacher is not available here: {ui.plain(exc)}")

ui.llm_distill_section()  # SmolLM2 distilled four ways into tiny students (one background task)
ui.divergence_section()  # forward vs reverse KL on a two-mode toy: instant, nothing trains

st.subheader("Train your own: a character-level teacher and student")
base = lm.LMConfig().replace(**lm.TINY) if ui.tiny() else lm.LMConfig()
st.caption("The sidebar's dataset and preset belong to the image pages; this page has its own settings below.")

# ------------------------------------------------------------------ corpus
SOURCES = {"builtin": "Python standard library docstrings (built in)", "upload": "Upload my own .txt"}
source = st.radio("Text to learn", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="lm_source")
corpus_name = base.corpus
if source == "upload":
    upload = st.file_uploader(f"Your text file (.txt, UTF-8, at most {lm.MAX_UPLOAD_BYTES // 1_000_000} MB)",
                              type=["txt"], key="lm_upload")
    if upload is None:
        st.info("Upload a .txt file to continue, or choose the built-in standard library docstrings.")
        st.stop()
    try:
        # the file's name is the user's, and the message quoting it is markdown: named as plain text
        corpus_name = lm.register_text(lm.text_from_upload(upload.getvalue(), ui.plain(upload.name)))
    except lm.CorpusError as exc:
        st.error(f"This file cannot be used: {exc}")
        st.stop()


@st.cache_resource(show_spinner="Reading the standard library's docstrings (about 10 s the first time)...")
def corpus_of(name: str) -> lm.Corpus:
    return lm.load_corpus(name)


corpus = corpus_of(corpus_name)
st.caption(lm.corpus_title(corpus_name))
c1, c2, c3 = st.columns(3)
c1.metric("Characters", f"{len(corpus.train) + len(corpus.val):,}")
c2.metric("Vocabulary (distinct characters)", corpus.vocab_size)
c3.metric("Train / validation", f"{len(corpus.train):,} / {len(corpus.val):,}",
          help="The last 10% of the text is held out: validation loss is measured there.")
with st.expander("A piece of the text"):
    st.text(corpus.decode(corpus.train[:600].tolist()))  # plain text: user text is never rendered as HTML

# ------------------------------------------------------------------ settings
st.subheader("Distill")
c1, c2, c3, c4 = st.columns(4, vertical_alignment="bottom")  # the sliders in one row when a label wraps
temperature = c1.slider("Temperature T", 0.5, 8.0, base.temperature, 0.5, key="lm_temperature",
                        help="Softens teacher and student next-character distributions in the soft term.")
alpha = c2.slider("alpha (weight of the teacher's soft targets)", 0.0, 1.0, base.alpha, 0.05, key="lm_alpha",
                  help="0 = only the true next character (the scratch student); 1 = only the teacher.")
student_steps = c3.slider("Student steps", 10, 3000, base.student_steps, 10, key="lm_steps",
                          help="Optimisation steps for each student (windows of "
                               f"{base.context} characters, {base.batch_size} per step).")
seeds = c4.slider("Seeds", 1, 5, base.seeds, key="lm_seeds",
                  help="Each seed is a new pair of students (new starting weights and text order).")
method = st.radio("Distillation method", list(lm.METHODS), format_func=lm.METHODS.get, key="lm_method",
                  horizontal=True)
cfg = base.replace(corpus=corpus_name, temperature=temperature, alpha=alpha, student_steps=student_steps,
                   seeds=seeds, method=method)
if method == "sequence":
    st.latex(r"L = \mathrm{CE}(x_{t+1}, s)\ \text{on text } x \sim \text{teacher}")
    st.caption(f"Sequence-level KD: the teacher writes {cfg.sequence_chars:,} characters; the distilled student "
               "learns them with plain cross-entropy (alpha and T do not apply). The scratch student learns the real text.")
else:
    kl = (r"\mathrm{KL}\!\left(p_T^{teacher} \,\|\, p_T^{student}\right)" if method == "forward"
          else r"\mathrm{KL}\!\left(p_T^{student} \,\|\, p_T^{teacher}\right)")
    ce, soft = r"\frac{1}{N}\sum_{t} (1-\alpha)\,\mathrm{CE}(x_{t+1}, s_t)", rf"\alpha\,T^2\,{kl}"
    filled = rf"{1 - alpha:.2f}\,\mathrm{{CE}} + {alpha:.2f}\cdot {temperature:g}^2\,\mathrm{{KL}}"
    wide, narrow = wide_and_narrow("lm-formula")  # on a phone the formula in three short lines
    wide.latex(rf"L = {ce} + {soft} = {filled}")
    narrow.latex(rf"\begin{{aligned}} L &= {ce} \\ &\quad + {soft} \\ &= {filled} \end{{aligned}}")
    st.caption("At every position t of every window, the student's logits s_t are compared with the true next "
               "character and with the teacher's softened distribution: kd_core.losses."
               + ("kd_loss (the image engine's function) on the (positions, vocabulary) logits. Forward KL is "
                  "mode-covering: the student must give probability to everything the teacher considers."
                  if method == "forward" else
                  "reverse_kd_loss. Reverse KL (MiniLLM) is mode-seeking: the student is punished for mass where "
                  "the teacher has none, so it may drop the teacher's rarer choices; samples tend to be more "
                  "conservative and repetitive."))
st.caption(f"Teacher: {base.teacher_layers} layers x {base.teacher_width} wide, {base.teacher_steps} steps (trained "
           f"once and cached). Students: {base.student_layers} layer x {base.student_width} wide, same starting "
           f"weights and the same text windows in the same order; only the loss differs.")


def draw(job) -> None:
    histories = charts.events_to_histories(job.events)
    ui.chart(charts.lm_training_curves(histories, "Training now: loss on the true next character (seed 0)"),
             key="lm-live")
    st.caption("Notice: the teacher trains first (once; then it is cached), then the two students.")


result = ui.task_section(lm.task(cfg), draw, f"Train teacher → distilled → scratch ({seeds} seed{'s' if seeds > 1 else ''})",
                         "lm-run")
if result is None:
    st.stop()

# ------------------------------------------------------------------ compare
st.subheader("Compare")
m = result["models"]
n = len(m["distilled"]["val_bpc"])
if n > 1 and result["every_distilled_below_every_scratch"]:
    st.success(f"Over {n} seeds every distilled student has a lower validation loss than every scratch student: "
               f"{result['gap_bpc']:.3f} bits per character better on average.")
elif n > 1:
    st.warning(f"Not every distilled seed beats every scratch seed (mean gap {result['gap_bpc']:+.3f} bits per "
               "character): at these settings the gain is within the seed-to-seed spread.")
else:
    st.info(f"Distilled minus scratch: {-result['gap_bpc']:+.3f} bits per character from one seed; run 3 seeds to "
            "see whether the gap is larger than the spread between seeds.")
left, right = st.columns(2)
with left:
    ui.chart(charts.lm_bpc_comparison(result), key="lm-bpc")
    st.caption("Notice: bits per character = average cross-entropy on the held-out text in bits; perplexity = "
               "2^bits, the number of characters the model is effectively choosing between.")
with right:
    histories = {"teacher": result["teacher_history"],
                 **{role: m[role]["runs"][0]["history"] for role in ("distilled", "scratch")}}
    ui.chart(charts.lm_training_curves(histories, "Training loss on the true next character (seed 0)"),
             key="lm-curves")
    st.caption("Notice: the distilled student is scored here on the true characters although it trains mostly "
               "on the teacher's distributions.")
rows = [{"model": charts.ROLE_NAMES[role], "parameters": m[role]["params"],
         "val bits/char": round(m[role]["bpc_mean"], 3),
         "± (sample std over seeds)": f"{m[role]['bpc_std']:.3f}" if role != "teacher" else "— (one teacher)",
         "perplexity": round(m[role]["perplexity_mean"], 2), "generation (chars/s)": round(m[role]["chars_per_s"])}
        for role in ("teacher", "distilled", "scratch")]
st.dataframe(rows, hide_index=True, width="stretch",
             column_config={"parameters": st.column_config.NumberColumn(format="localized")})
st.caption("± is the sample standard deviation over the seeds (n − 1 in the denominator), as on every page; the "
           "teacher is trained once, so it has none.")
ui.download_buttons(f"language-model-{result['key']}", export.lm_rows(result), result)
fewer = m["teacher"]["params"] / max(m["distilled"]["params"], 1)  # the schema refuses 0; guarded all the same
st.markdown(f"The student has **{fewer:.0f}× fewer parameters** and "
            f"generates **{result['speedup']:.1f}× more characters per second** than the teacher (measured when the "
            "run finished: one CPU thread, one stream, 150 characters).")
st.caption(f"Same start: the students' embedding weight norm before training was "
           f"{m['distilled']['runs'][0]['initial_norm']:.6f} (distilled) and "
           f"{m['scratch']['runs'][0]['initial_norm']:.6f} (scratch).")
with st.expander("Why these settings: a tiny student, few steps, T = 1"):
    st.markdown(
        "The default is the honest setting in which the gain is larger than the spread between seeds (measured "
        "with `bench/lm.py`, 3 seeds): a student about 20× smaller than the teacher that trains for only **300 "
        "steps**, with **T = 1** and alpha = 0.9. With so few steps, the teacher's whole next-character "
        "distribution at every position (which letters are plausible, which are not) is a less noisy target "
        "than the one character that happened to come next, so the distilled student learns faster.\n\n"
        "It is a small effect (a few hundredths of a bit per character) and it depends on the settings: at "
        "**T = 2** the same students did *worse* than from scratch (the tiny student spends its capacity copying "
        "the flattened tail of the teacher's distribution). Move *Student steps* and *T* and run again to see "
        "where the gain holds, shrinks or turns around.\n\n"
        "Measured on this machine (stdlib docstrings, 300 student steps, 3 seeds, mean validation bits per "
        "character; lower is better):\n\n"
        "| distilled student | bits/char | scratch student |\n|---|---|---|\n"
        "| forward KL, T = 1, alpha = 0.9 | **3.859** | 3.906 |\n"
        "| forward KL, T = 2, alpha = 0.9 | 3.938 | 3.906 |\n"
        "| reverse KL, T = 1, alpha = 0.9 | 4.073 | 3.906 |\n"
        "| sequence-level (60,000 teacher characters) | 3.930 | 3.906 |\n\n"
        "Reverse KL is mode-seeking: the student puts little probability on characters the teacher finds "
        "unlikely, and the validation loss (cross-entropy on real text) punishes exactly that. Sequence-level "
        "KD learns the teacher's own text, mistakes included: with a teacher this small (2.74 bits/char) that "
        "is no better than the real text.")


@st.cache_resource(show_spinner="Loading the trained models...", max_entries=2)
def models_of(key: str, _result: dict) -> dict | None:
    found = lm.cached_teacher(lm.LMConfig(**_result["config"]))
    students = {role: lm.load_student(_result, role) for role in ("distilled", "scratch")}
    if found is None or None in students.values():
        return None
    return {"teacher": found[0], **students}


models = models_of(result["key"], result)

st.subheader("Samples from the same prompt and seed")
c1, c2 = st.columns([3, 1])
prompt = c1.text_input("Prompt", lm.SAMPLE_PROMPT, key="lm_prompt", max_chars=200)
seed = c2.number_input("Seed", 0, 10_000, 0, key="lm_sample_seed")
if models is None:
    st.warning("The trained models of this run are no longer in the cache; run it again to sample from them.")
    st.stop()
columns = st.columns(3)
for column, role in zip(columns, ("teacher", "distilled", "scratch")):
    with column:
        st.markdown(f"**{charts.ROLE_NAMES[role]}**")
        st.text(prompt + lm.sample_text(models[role], corpus_of(result["config"]["corpus"]), prompt, 200, int(seed)))
st.caption("Notice: 200 characters each, sampled at T = 1 with the same random numbers. The teacher already "
           "spells many words; students this small, trained this briefly, still write mostly letter soup with "
           "word-like spacing: the gain from distillation is measured in the validation loss above, and is small.")

st.subheader("Next-character view: the dark knowledge of a language model")
c1, c2 = st.columns([3, 1])
view_prompt = c1.text_input("Prompt", "If the argument is not a str", key="lm_view_prompt", max_chars=200)
view_t = c2.slider("T for the bars", 0.5, 8.0, 3.0, 0.5, key="lm_view_t",
                   help="Only for this picture; the students were trained with the T set above.")
which = st.radio("Student beside the teacher", ["distilled", "scratch"], format_func=charts.ROLE_NAMES.get,
                 horizontal=True, key="lm_view_student")
vocab = corpus_of(result["config"]["corpus"])
ui.chart(charts.next_char_bars(vocab.chars, lm.next_char_logits(models["teacher"], vocab, view_prompt).numpy(),
                               lm.next_char_logits(models[which], vocab, view_prompt).numpy(), view_t,
                               student_name=charts.ROLE_NAMES[which]), key="lm-next")
st.caption("Notice: in the middle of a word the teacher is fairly sure at T = 1 (\"str\" -> \"i\" for \"string\"); "
           "at higher T the rest of its ranking (which other letters could follow) becomes visible: that is what "
           "the distilled student learns from. After a space, many letters are plausible even at T = 1.")
