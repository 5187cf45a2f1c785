"""Distill: T, alpha, epochs and seeds; the formula; distilled and scratch students trained side by side."""

import streamlit as st

import ui
from kd_core import charts
from kd_core.experiment import comparison_task
from ui.widgets import wide_and_narrow

st.title("Distill: train a student with the teacher, and one without")
st.markdown("Two students with the **same architecture, the same starting weights, the same images in the same "
            "order and the same optimizer** are trained. Only the loss differs: the *distilled* student uses the "
            "formula below; the *scratch* student uses the labels alone (alpha = 0).")
c1, c2, c3, c4 = st.columns(4, vertical_alignment="bottom")  # the sliders in one row when a label wraps
ui.setting_widget(c1.slider, "Temperature T", "temperature",
                  help="Softens teacher and student outputs in the soft term. Explore it on the Temperature page.")
ui.setting_widget(c2.slider, "alpha (weight of the teacher's soft targets)", "alpha",
                  help="0 = labels only (the same as the scratch student); 1 = teacher only. The Keras example's "
                       "alpha weights the labels instead, so its alpha = 0.1 is our 0.9.")
ui.setting_widget(c3.slider, "Student epochs", "student_epochs")
ui.setting_widget(c4.slider, "Seeds", "seeds",
                  help="Each seed is a new pair of students (new starting weights and data order). Several seeds "
                       "show how much results vary by chance.")
ui.setting_widget(st.toggle, "Multiply the soft term by T²", "t_squared",
                  help="Without T², the soft term's gradient shrinks as 1/T², so at high T the teacher barely counts.")
cfg = ui.current_config()
wide, narrow = wide_and_narrow("distill-formula")  # on a phone the formula in four short lines
wide.latex(charts.loss_formula_latex(cfg.temperature, cfg.alpha, cfg.t_squared))
narrow.latex(charts.loss_formula_latex(cfg.temperature, cfg.alpha, cfg.t_squared, lines=True))
st.caption(f"Settings: {ui.config_summary(cfg)}.")
dataset = ui.require_dataset()


def draw(job):
    histories = charts.events_to_histories(job.events)
    students = {role: h for role, h in histories.items() if role != "teacher"}
    if not students:
        teacher = histories.get("teacher")
        if teacher:
            ui.chart(charts.training_curves({"teacher": teacher}, "loss",
                                            title="Training the teacher first"), key="distill-live-teacher")
        return
    left, right = st.columns(2)
    ui.chart(charts.training_curves(students, "test_acc"), key="distill-live-acc", where=left)
    if "distilled" in students:
        ui.chart(charts.loss_parts(students["distilled"], cfg.temperature, cfg.alpha, cfg.t_squared),
                 key="distill-live-parts", where=right)
    st.caption("Notice: the distilled student trains first, then the scratch one from the same weights "
               "(seed 0 shown).")


task = comparison_task(cfg, dataset)
result = ui.task_section(task, draw, ui.run_button_label(cfg, dataset), "distill-run", follow_other=True)
if result is None:
    st.stop()

runs = {role: result["models"][role]["runs"] for role in ("distilled", "scratch")}
norms = {role: runs[role][0]["initial_first_layer_norm"] for role in runs}
same = abs(norms["distilled"] - norms["scratch"]) < 1e-9
st.markdown(f"**Same start:** the first layer's weight norm before training was **{norms['distilled']:.6f}** for "
            f"the distilled student and **{norms['scratch']:.6f}** for the scratch student"
            f"{' — identical, so any difference comes from the loss alone.' if same else ' (they differ!).'}")
histories = {role: runs[role][0]["history"] for role in runs}
left, right = st.columns(2)
with left:
    ui.chart(ui.shared_figure(charts.training_curves, histories, "test_acc",
                              title="Test accuracy after each epoch (seed 0)"), key="distill-acc")
    helped = result["models"]["distilled"]["accuracy_mean"] > result["models"]["scratch"]["accuracy_mean"]
    st.caption(("Notice: with few labelled images the scratch student stalls; the teacher's soft targets keep the "
                "distilled one improving. " if helped else
                "Notice: here the distilled student does not end above the scratch one: soft targets help only when "
                "the teacher is good (a tiny-mode teacher is not) and T and alpha suit the data; the Experiments "
                "page explores when. ") + ui.curve_note(result))
with right:
    ui.chart(ui.shared_figure(charts.loss_parts, histories["distilled"], cfg.temperature, cfg.alpha, cfg.t_squared),
             key="distill-parts")
    st.caption("Notice: the soft term (T²·KL) is what the distilled student mostly optimises; the hard CE "
               "falls alongside it.")
m = result["models"]
c1, c2, c3 = st.columns(3)
for column, role in zip((c1, c2, c3), ("teacher", "distilled", "scratch")):
    seeds = len(m[role]["accuracies"])
    column.metric(f"{ui.ROLE_TITLES[role]} test accuracy ({seeds} seed{'s' if seeds > 1 else ''})",
                  f"{m[role]['accuracy_mean']:.1%}" + (f" ± {m[role]['accuracy_std']:.1%}" if seeds > 1 else ""))
ui.show_verdict(result, on_distill=True)
ui.again_button(task, "Train again, live", "distill-again", help=ui.AGAIN_HELP)
ui.script_download(result["config"], "distill-script")
st.page_link("app_pages/compare.py", label="Compare the three models in detail", icon=":material/bar_chart:")
