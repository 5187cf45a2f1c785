"""Temperature: softmax(z / T) moving with T in the browser, for scores you type and for the teacher's outputs."""

import numpy as np
import pandas as pd
import streamlit as st

import ui
from kd_core import charts

OWN_SCORES = pd.DataFrame({"class": ["cat", "dog", "fox", "car", "tree"], "score": [6.0, 4.0, 3.0, -1.0, -2.0]})

st.title("Temperature: what the soft targets say")
st.markdown("A classifier's output for an image is a list of scores (logits) *z*, one per class. Dividing them by a "
            "temperature **T** before the softmax, **p = softmax(z / T)**, flattens the distribution: at T = 1 the "
            "top class takes almost everything; at a higher T the small probabilities of the *wrong* classes become "
            "visible. Those are the soft targets the student learns from. Each chart has its own **T slider under "
            "it, which redraws in your browser at once**; the charts start at the T setting, the T the Distill "
            "page trains with.")
cfg = ui.current_config()

st.subheader("Your own scores")
chart_column, table_column = st.columns([2, 1])
with table_column:
    st.markdown("Type scores for a few made-up classes (add or delete rows too); no model needed.")
    table = st.data_editor(OWN_SCORES, num_rows="dynamic", hide_index=True, key="own-scores",
                           column_config={"class": st.column_config.TextColumn("class", required=True),
                                          "score": st.column_config.NumberColumn("score (logit)", required=True,
                                                                                 min_value=-50.0, max_value=50.0)})
rows = table.dropna()
names, scores = [str(n) for n in rows["class"]], rows["score"].to_numpy(dtype=float)
with chart_column:
    if len(names) < 2 or len(set(names)) < len(names):
        st.info("Give at least two classes, each with its own name, a score.")
    else:
        ui.chart(ui.shared_figure(charts.softmax_slider, scores, names, cfg.temperature, "Your scores as probabilities"),
                 key="temp-own")
        p1, pt = charts.softened(scores, 1.0), charts.softened(scores, cfg.temperature)
        top = int(np.argmax(scores))
        st.caption(f"Notice: {names[top]} takes {p1[top]:.0%} at T = 1 and {pt[top]:.0%} at T = {cfg.temperature:g}. "
                   "Only the differences between scores count: adding the same number to every score changes "
                   "nothing, and doubling every score is the same as halving T.")

st.subheader("The teacher's soft targets for real test images")
dataset = ui.require_dataset()
outputs = ui.teacher_or_offer(
    cfg, dataset, "This part of the page needs a trained teacher: the soft targets come from the teacher.",
    "The teacher is training in the background ({label}); its soft targets for real test images appear here when it "
    "is done. Meanwhile, try your own scores above.")
if outputs is None:
    st.stop()

logits, labels, classes = outputs["logits"], outputs["labels"], dataset.classes
probs_1 = charts.softened(logits, 1.0)
top2 = np.sort(probs_1, axis=1)[:, -2]
right = probs_1.argmax(axis=1) == labels


def correct_of(c: int) -> np.ndarray:
    """Test images of class c that the teacher gets right (all of class c if it gets none right)."""
    members = np.flatnonzero((labels == c) & right)
    return members if len(members) else np.flatnonzero(labels == c)


def typical(c: int) -> int:
    """A typical image of class c: correct, with the median runner-up probability (neither sure nor torn)."""
    members = correct_of(c)
    return int(members[np.argsort(top2[members])[len(members) // 2]])


def pick(index: int) -> None:
    """Show test image `index` (a button callback, so the gallery marks the new choice in the same run)."""
    state["temp_image"] = index


state = st.session_state
gallery = [typical(c) for c in range(len(classes))]
ambiguous = [int(correct_of(c)[np.argmax(top2[correct_of(c)])]) for c in range(len(classes))]
state.setdefault("temp_image", gallery[0])

T = ui.setting_widget(st.slider, "Temperature T", "temperature",
                      help="Shared with the Distill page: the T you choose here is the T the distilled student trains "
                           "with, and where the charts' own (instant) T sliders start.")
st.caption("This is the setting: the Distill page trains with this T, and the charts' own sliders start at it. "
           "Their sliders are instant; moving this one redraws the page.")
index = int(state["temp_image"])
chart_column, image_column = st.columns([3, 1])
with image_column:
    predicted = int(np.argmax(logits[index]))
    ui.dataset_image(dataset, "test", index, width=112)
    st.markdown(f"Test image #{index}  \nTrue class: **{classes[labels[index]]}**  \n"
                f"Teacher says: **{classes[predicted]}** ({probs_1[index, predicted]:.1%} at T = 1)")
    st.caption("Pick another: a typical one of each class (which the teacher gets right), the most ambiguous of "
               "its class, or a random one.")
    with st.container(horizontal=True, gap="small"):
        for c, shown in enumerate(gallery):
            with st.container(width="content", border=shown == index, gap=None, horizontal_alignment="center"):
                ui.dataset_image(dataset, "test", shown, width=36)
                st.button(str(classes[c]), key=f"pick-{shown}", on_click=pick, args=(shown,),
                          type="primary" if shown == index else "secondary",
                          help="Showing this image" if shown == index else "Use this image")
    with st.container(horizontal=True, gap="small"):
        st.button("Random", icon=":material/casino:", key="pick-random", help="A random test image",
                  on_click=lambda: pick(int(np.random.default_rng().integers(len(labels)))))
        st.button("Most ambiguous", icon=":material/help:", key="most-ambiguous",
                  help="Of the images of this class the teacher gets right, the one whose runner-up is strongest.",
                  on_click=lambda: pick(ambiguous[int(labels[int(state["temp_image"])])]))
with chart_column:
    ui.chart(ui.shared_figure(charts.softmax_slider, logits[index], classes, T), key="temp-softmax")
    order = np.argsort(-probs_1[index])
    top, runner = int(order[0]), int(order[1])
    soft = charts.softened(logits[index], T)
    st.caption(f"Notice: at T = 1, {probs_1[index, top]:.0%} of the probability sits on {classes[top]} and "
               f"{probs_1[index, runner]:.1%} on the runner-up, {classes[runner]}; at T = {T:g} they are "
               f"{soft[top]:.0%} and {soft[runner]:.0%} — the teacher's opinion of what this image also looks like.")

entropy_column, heatmap_column = st.columns(2)
with entropy_column:
    ui.chart(ui.shared_figure(charts.effective_classes_slider, logits[index], T), key="temp-entropy")
    st.caption("Notice: the effective number of classes (e to the entropy) rises from 1 towards all "
               f"{len(classes)} as T grows; too high a T makes the targets nearly uniform and uninformative.")
with heatmap_column:
    hide = st.checkbox("Hide the diagonal (the correct class)", value=True,
                       help="The correct class takes most of each row; without it the dark knowledge shows.")
    ui.chart(ui.shared_figure(charts.similarity_slider, logits, labels, classes, T, hide_diagonal=hide), key="temp-heatmap")
    average = charts.average_soft_targets(logits, labels, T, len(classes))
    pairs = ", ".join(f"{a}–{b}" for a, b, _ in charts.most_similar_pairs(average, classes))
    st.caption(f"Notice: dark cells pair classes the teacher finds alike; at T = {T:g} most of all {pairs}. A label "
               "alone never tells the student that. The colour scale is the same at every T: drag its slider to 20 "
               "and every cell turns the same blue, the targets nearly uniform." if hide else
               f"Notice: the diagonal (the correct class) dominates; hide it to see the pairs the teacher finds "
               f"alike ({pairs}).")
