"""Temperature: the teacher's softmax at T beside T = 1, effective classes vs T, and the class-similarity map."""

import numpy as np
import streamlit as st

import ui
from kd_core import charts

st.title("Temperature: what the soft targets say")
st.markdown("The teacher's output for an image is a list of scores (logits) *z*, one per class. Dividing them "
            "by a temperature **T** before the softmax, **p = softmax(z / T)**, flattens the distribution: at "
            "T = 1 the top class takes almost everything; at a higher T the small probabilities of the *wrong* "
            "classes become visible. Those are the soft targets the student learns from. Nothing trains on "
            "this page.")
cfg = ui.current_config()
dataset = ui.require_dataset()
outputs = ui.teacher_or_offer(
    cfg, dataset, "This page needs a trained teacher: the soft targets come from the teacher. Train it here (on this "
    f"machine it takes {'a few seconds' if ui.tiny() else 'about half a minute'}).",
    "The teacher is training now; the soft targets come from the teacher when it is done.")
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


gallery = [typical(c) for c in range(len(classes))]
ambiguous = [int(correct_of(c)[np.argmax(top2[correct_of(c)])]) for c in range(len(classes))]
state = st.session_state
state.setdefault("temp_image", gallery[0])

T = ui.setting_widget(st.slider, "Temperature T", "temperature",
                      help="Shared with the Distill page: the T you choose here is the T the distilled student trains with.")

st.markdown("**Pick a test image** (a typical one of each class, which the teacher gets right), the most ambiguous "
            "one of its class, or a random one:")
columns = st.columns(len(classes))
for column, index in zip(columns, gallery):
    column.image(dataset.test_x[index].numpy(), width=48)
    if column.button(str(classes[labels[index]]), key=f"pick-{index}", help="Use this image"):
        state["temp_image"] = index
with st.container(horizontal=True):
    if st.button("Random test image", icon=":material/casino:", key="pick-random"):
        state["temp_image"] = int(np.random.default_rng().integers(len(labels)))
    if st.button("The most ambiguous one of its class", icon=":material/help:", key="most-ambiguous",
                 help="Of the images of this class the teacher gets right, the one whose runner-up is strongest."):
        state["temp_image"] = ambiguous[int(labels[int(state["temp_image"])])]
index = int(state["temp_image"])

left, right = st.columns([1, 3])
with left:
    st.image(dataset.test_x[index].numpy(), width=140)
    predicted = int(np.argmax(logits[index]))
    st.markdown(f"Test image #{index}  \nTrue class: **{classes[labels[index]]}**  \n"
                f"Teacher says: **{classes[predicted]}** ({probs_1[index, predicted]:.1%} at T = 1)")
with right:
    ui.chart(charts.softmax_at_t(logits[index], T, classes), key="temp-softmax")
    order = np.argsort(-probs_1[index])
    top, runner = int(order[0]), int(order[1])
    soft = charts.softened(logits[index], T)
    st.caption(f"Notice: at T = 1, {probs_1[index, top]:.0%} of the probability sits on {classes[top]} and "
               f"{probs_1[index, runner]:.1%} on the runner-up, {classes[runner]}; at T = {T:g} they are "
               f"{soft[top]:.0%} and {soft[runner]:.0%} — the teacher's opinion of what this image also looks like.")

left, right = st.columns(2)
with left:
    ui.chart(charts.effective_classes_vs_t(logits[index], T), key="temp-entropy")
    st.caption("Notice: the effective number of classes (e to the entropy) rises from 1 towards all "
               f"{len(classes)} as T grows; too high a T makes the targets nearly uniform and uninformative.")
with right:
    hide = st.checkbox("Hide the diagonal (the correct class) to see the dark knowledge", value=True)
    average = charts.average_soft_targets(logits, labels, T, len(classes))
    ui.chart(charts.class_similarity(average, classes, T, hide_diagonal=hide), key="temp-heatmap")
    pairs = ", ".join(f"{a}–{b}" for a, b, _ in charts.most_similar_pairs(average, classes))
    st.caption(f"Notice: dark cells pair classes the teacher finds alike; for this teacher most of all {pairs}. "
               "A label alone never tells the student that. The colour scale is the same at every T: at a high T "
               "every cell turns the same blue, the targets nearly uniform." if hide else
               f"Notice: the diagonal (the correct class) dominates; hide it to see the pairs the teacher finds "
               f"alike ({pairs}).")
