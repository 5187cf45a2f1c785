"""Compare: accuracy with spread over seeds, per-class accuracy, agreement with the teacher, efficiency table."""

import streamlit as st

import ui
from kd_core import charts, export
from kd_core.experiment import comparison_task

st.title("Compare: teacher, distilled student, scratch student")
cfg = ui.current_config()
dataset = ui.require_dataset()
result, current = ui.current_or_latest_result(cfg, dataset)
if result is None:
    st.info("Nothing to compare yet: run the demo first.")
    if st.button(ui.run_button_label(cfg), type="primary", key="compare-run"):
        ui.submit(comparison_task(cfg, dataset))
        st.switch_page("app_pages/distill.py")
    st.stop()
if not current:
    st.info("No result for the current settings yet; showing the most recent run. Run the current settings on "
            "the Distill page.")
st.caption(f"Run: {ui.config_summary(result['config'])}.")

ui.chart(charts.accuracy_comparison(result), key="compare-accuracy")
st.caption("Notice: error bars are ± one sample standard deviation over seeds; a gap smaller than them is not "
           "evidence that distillation helped.")
ui.show_verdict(result)
left, right = st.columns([3, 2])
with left:
    ui.chart(charts.per_class_accuracy(result), key="compare-per-class")
    st.caption("Notice: where the two students differ most — often the classes that look alike.")
with right:
    ui.chart(charts.agreement_with_teacher(result), key="compare-agreement")
    st.caption("Notice: the distilled student imitates the teacher, so it agrees with it more often.")

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
st.caption("For slides and homework: the table has one row per model and seed (accuracy overall and per class, "
           "agreement with the teacher, size, training time); the JSON holds the whole run, curves included. "
           "Each chart downloads as a PNG from the camera button at its top right.")
