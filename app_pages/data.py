"""Data: the dataset in use, where it came from, sample images, class counts, and the other datasets."""

import numpy as np
import streamlit as st

import ui
from kd_core import charts
from kd_core.data import DATASETS

st.title("Data")
st.caption("Choose the dataset in the sidebar. Every page uses the dataset chosen there.")
rows = []
for name, info in DATASETS.items():
    ok, where = ui.dataset_status(name)
    rows.append({"dataset": info.title, "available here": "yes" if ok else "no", "source / how to get it": where})
st.table(rows, hide_index=True)  # a static table wraps its text: every "how to get it" is read in full

dataset = ui.require_dataset()
cfg = ui.current_config()
st.subheader(dataset.info.title)
st.markdown(f"**Source:** {dataset.source}.  \n**Split:** {len(dataset.train_y):,} training and "
            f"{len(dataset.test_y):,} test images, 28×28 grey levels, {len(dataset.classes)} classes.  \n"
            f"**Used by the current settings:** the teacher trains on "
            f"{'all' if cfg.teacher_train_limit is None else cfg.teacher_train_limit} training images; both "
            f"students on {'all' if cfg.student_train_limit is None else cfg.student_train_limit} "
            "(the same class-balanced subset for both). Accuracy is always measured on the test images.")

st.subheader("Sample training images")
rng = np.random.default_rng(st.session_state.get("data_sample_seed", 0))
if st.button("Show other images", icon=":material/casino:"):
    st.session_state["data_sample_seed"] = int(rng.integers(1_000_000))
    rng = np.random.default_rng(st.session_state["data_sample_seed"])
labels = dataset.train_y.numpy()
picks = [int(rng.choice(np.flatnonzero(labels == c))) for c in range(len(dataset.classes)) for _ in range(2)]
with st.container(horizontal=True, gap="small"):  # as many per row as the screen holds
    for index in picks:
        ui.dataset_image(dataset, "train", index, caption=dataset.classes[labels[index]], width=64)

train_counts = np.bincount(labels, minlength=len(dataset.classes))
test_counts = np.bincount(dataset.test_y.numpy(), minlength=len(dataset.classes))
ui.chart(ui.shared_figure(charts.class_counts, train_counts, test_counts, dataset.classes), key="data-counts")
st.caption("Notice: the classes are roughly balanced, so accuracy is a fair summary; a class the teacher "
           "rarely sees would be the one where its soft targets help the student most.")
