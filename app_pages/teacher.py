"""Teacher: train (or reuse the cached) teacher with live curves, then its accuracy, size and confusion matrix."""

import numpy as np
import streamlit as st

import ui
from kd_core import charts

st.title("Teacher")
st.markdown("The teacher is the big network whose softened outputs the student will learn from. It is trained "
            "once on the labelled training images and then frozen; every student reuses it from the cache.")
cfg = ui.current_config()
dataset = ui.require_dataset()
st.caption(f"Teacher **{cfg.teacher}**, {cfg.teacher_epochs} epoch{'s' if cfg.teacher_epochs != 1 else ''} on "
           f"{'all' if cfg.teacher_train_limit is None else cfg.teacher_train_limit} training images of "
           f"{dataset.info.title}, batch {cfg.batch_size}, Adam lr {cfg.lr:g}, seed {cfg.teacher_seed}.")


def draw(job):
    history = charts.events_to_histories(job.events).get("teacher")
    if history:
        left, right = st.columns(2)
        ui.chart(charts.training_curves({"teacher": history}, "loss"), key="teacher-live-loss", where=left)
        ui.chart(charts.training_curves({"teacher": history}, "test_acc"), key="teacher-live-acc", where=right)
        st.caption("Notice: the loss falls within the first epoch; test accuracy is measured after each epoch.")


outputs = ui.teacher_or_offer(cfg, dataset, "No trained teacher for these settings yet.",
                              "Training the teacher in the background ({label}). Switching pages does not stop it.",
                              draw, "teacher-train")
if outputs is None:
    st.stop()

meta = outputs["meta"]
accuracy = float(np.mean(outputs["logits"].argmax(1) == outputs["labels"]))
st.success("The teacher is trained and cached: every page and every student reuses it.")
c1, c2, c3, c4 = st.columns(4)
c1.metric("Test accuracy", f"{accuracy:.1%}")
c2.metric("Parameters", f"{outputs['params']:,}")
c3.metric("Weights size", f"{outputs['size_bytes'] / 1e6:.2f} MB")
c4.metric("Training time", f"{meta['seconds']:.0f} s")
left, right = st.columns(2)
with left:
    ui.chart(ui.shared_figure(charts.training_curves, {"teacher": meta["history"]}, "loss"), key="teacher-loss")
    st.caption("Notice: the training loss falls steeply at first, then flattens.")
    ui.chart(ui.shared_figure(charts.training_curves, {"teacher": meta["history"]}, "test_acc"), key="teacher-acc")
    st.caption("Notice: accuracy on images the teacher never trained on, after each epoch.")
with right:
    import torch
    from kd_core.evaluate import confusion_matrix

    matrix = confusion_matrix(torch.from_numpy(outputs["logits"]), torch.from_numpy(outputs["labels"]),
                              len(dataset.classes)).tolist()
    ui.chart(ui.shared_figure(charts.confusion, matrix, dataset.classes, "Teacher's confusion matrix on the test images"),
             key="teacher-confusion")
    st.caption("Notice: off-diagonal cells are the teacher's mistakes; they show which classes look alike.")
