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
right = probs_1.argmax(axis=1) == labels  # ambiguous, yet classified correctly: the clearest dark knowledge


def most_ambiguous(c: int) -> int:
    members = np.flatnonzero((labels == c) & right) if np.any((labels == c) & right) else np.flatnonzero(labels == c)
    return int(members[np.argmax(top2[members])])


gallery = [most_ambiguous(c) for c in range(len(classes))]
state = st.session_state
state.setdefault("temp_image", gallery[0])

T = ui.setting_widget(st.slider, "Temperature T", "temperature",
                      help="Shared with the Distill page: the T you choose here is the T the distilled student trains with.")

st.markdown("**Pick a test image** (for each class, the one the teacher finds most ambiguous yet gets right), or a random one:")
columns = st.columns(len(classes))
for column, index in zip(columns, gallery):
    column.image(dataset.test_x[index].numpy(), width=48)
    if column.button(str(classes[labels[index]]), key=f"pick-{index}", help="Use this image"):
        state["temp_image"] = index
if st.button("Random test image", icon=":material/casino:", key="pick-random"):
    state["temp_image"] = int(np.random.default_rng().integers(len(labels)))
index = int(state["temp_image"])

left, right = st.columns([1, 3])
with left:
    st.image(dataset.test_x[index].numpy(), width=140)
    predicted = int(np.argmax(logits[index]))
    st.markdown(f"Test image #{index}  \nTrue class: **{classes[labels[index]]}**  \n"
                f"Teacher says: **{classes[predicted]}** ({probs_1[index, predicted]:.1%} at T = 1)")
with right:
    ui.chart(charts.softmax_at_t(logits[index], T, classes), key="temp-softmax")
    st.caption("Notice: at T = 1 nearly all the probability sits on one class; raise T and the runner-up "
               "classes appear — the teacher's opinion of what this image also looks like.")

left, right = st.columns(2)
with left:
    ui.chart(charts.effective_classes_vs_t(logits[index], T), key="temp-entropy")
    st.caption("Notice: the effective number of classes (e to the entropy) rises from 1 towards all "
               f"{len(classes)} as T grows; too high a T makes the targets nearly uniform and uninformative.")
with right:
    hide = st.checkbox("Hide the diagonal (the correct class) to see the dark knowledge", value=True)
    average = charts.average_soft_targets(logits, labels, T, len(classes))
    ui.chart(charts.class_similarity(average, classes, T, hide_diagonal=hide), key="temp-heatmap")
    st.caption("Notice: bright cells pair classes the teacher finds alike (for digits 4–9, 3–5, 7–1; for "
               "clothes shirt–T-shirt–coat); a label alone never tells the student that.")
