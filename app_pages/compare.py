"""Compare: accuracy with spread over seeds, per-class accuracy, agreement, confusion cells to click, efficiency."""

import numpy as np
import streamlit as st

import ui
from kd_core import charts, export
from kd_core.experiment import comparison_task

EXAMPLES = 4  # test images shown for a clicked confusion-matrix cell


@st.cache_resource(show_spinner="Running the three models on the test images...", max_entries=4)
def logits_on_test_images(result_key: str, _result: dict) -> dict[str, np.ndarray] | None:
    """The teacher's and the seed-0 students' test logits of a result (shared by all sessions); None if gone."""
    from kd_core.data import load_dataset
    from kd_core.evaluate import predict_logits

    models = ui.result_models(_result)
    if models is None:
        return None
    test_x = load_dataset(_result["config"]["dataset"]).test_x
    return {role: predict_logits(model, test_x).numpy() for role, model in models.items()}

st.title("Compare: teacher, distilled student, scratch student")
cfg = ui.current_config()
dataset = ui.require_dataset()
result, current = ui.current_or_latest_result(cfg, dataset)
if result is None:
    st.info("Nothing to compare yet: run the demo first.")
    if st.button(ui.run_button_label(cfg, dataset), type="primary", key="compare-run"):
        ui.submit(comparison_task(cfg, dataset))
        st.switch_page("app_pages/distill.py")
    st.stop()
if not current:
    st.info("No result for the current settings yet; showing the most recent run. Run the current settings on "
            "the Distill page.")
st.caption(f"Run: {ui.config_summary(result['config'])}.")

ui.chart(ui.shared_figure(charts.accuracy_comparison, result), key="compare-accuracy")
st.caption("Notice: error bars are ± one sample standard deviation over seeds; a gap smaller than them is not "
           "evidence that distillation helped.")
ui.show_verdict(result)
left, right = st.columns([3, 2])
with left:
    ui.chart(ui.shared_figure(charts.per_class_accuracy, result), key="compare-per-class")
    st.caption("Notice: where the two students differ most — often the classes that look alike.")
with right:
    ui.chart(ui.shared_figure(charts.agreement_with_teacher, result), key="compare-agreement")
    st.caption("Notice: the distilled student imitates the teacher, so it agrees with it more often.")

st.subheader("Where each model goes wrong: click a cell")
logits = logits_on_test_images(result["key"], result)
if logits is None:
    st.warning("The trained models of this run are not in the cache any more, so their mistakes cannot be shown.")
else:
    classes, labels = result["classes"], dataset.test_y.numpy()
    role = st.segmented_control("Confusion matrix of", list(logits), default="scratch", key="compare-confusion-role",
                                format_func=lambda r: ui.ROLE_TITLES[r]) or "scratch"
    predicted = logits[role].argmax(axis=1)
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(matrix, (labels, predicted), 1)
    event = ui.chart(ui.shared_figure(charts.confusion, matrix, classes, f"Confusion matrix: {ui.ROLE_TITLES[role]} (seed 0)"),
                     f"compare-confusion-{role}", on_select="rerun", selection_mode="points")
    points = event.selection.points
    if not points:
        st.caption("Notice: the off-diagonal cells are the mistakes. Click one to see those test images and what "
                   "the teacher and both students answered for each.")
    else:
        true, guess = points[0]["customdata"]
        shown = np.flatnonzero((labels == true) & (predicted == guess))
        T = result["config"]["temperature"]
        st.markdown(f"**Test images of true class {classes[true]} that the {ui.ROLE_TITLES[role]} calls "
                    f"{classes[guess]}: {len(shown)}**" + (f" (the first {EXAMPLES} below)" if len(shown) > EXAMPLES
                                                          else ""))
        if len(shown):
            shown = shown[:EXAMPLES]
            images = [dataset.test_x[i].numpy() for i in shown]
            probabilities = [{r: charts.softened(logits[r][i], T) for r in logits} for i in shown]
            ui.chart(charts.cell_examples(images, probabilities, classes, T,
                                          f"True {classes[true]}, called {classes[guess]}"), "compare-cell-examples")
            st.caption(f"Notice: at T = {T:g} the outputs show each model's second choices. Where a student "
                       "is wrong, does the teacher already hesitate between the same two classes?")

st.subheader("Efficiency: a smaller, faster model that keeps most of the accuracy")
rows = ui.efficiency_rows(result)
if rows is None:
    st.warning("The trained models of this run are not in the cache any more, so their speed cannot be measured.")
else:
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"parameters": st.column_config.NumberColumn(format="localized")})
    teacher, student = rows[0], rows[1]
    st.markdown(f"The student has **{teacher['parameters'] / max(student['parameters'], 1):.0f}× fewer parameters** and "
                f"needs **{teacher['MFLOPs/image'] / max(student['MFLOPs/image'], 1e-9):.0f}× fewer FLOPs**; "
                f"here it answers **{teacher['CPU latency (ms/image)'] / max(student['CPU latency (ms/image)'], 1e-9):.1f}×"
                f" faster** per image, and the distilled one keeps "
                f"**{student['accuracy (%)'] / max(teacher['accuracy (%)'], 1e-9):.0%}** of the teacher's accuracy.")
    st.caption("Latency is measured here, now, on this machine's CPU (median of 30 single-image calls"
               + (", while a training job was running: expect slower numbers)" if ui.get_runner().active() else ")")
               + ". Notice how many times fewer parameters and FLOPs the students need.")
    if st.button("Measure latency again"):
        ui.measure_latency.clear()
        st.rerun()

st.subheader("Take the results with you")
ui.download_buttons(f"comparison-{result['key']}", export.comparison_rows(result), result)
ui.script_download(result["config"], "compare-script")
st.caption("For slides and homework: the table has one row per model and seed (accuracy overall and per class, "
           "agreement with the teacher, size, training time); the JSON holds the whole run, curves included; the "
           "script is the whole run in one readable file of plain PyTorch, to run or change at home. "
           "Each chart downloads as a PNG from the camera button at its top right.")
