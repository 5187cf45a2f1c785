"""Home: what knowledge distillation is, the loss with the current T and alpha, and the one-button demo."""

import streamlit as st

import ui
from kd_core import charts
from kd_core.experiment import comparison_task
from ui.widgets import wide_and_narrow

cfg = ui.current_config()
st.title("Knowledge distillation: a small student learns from a big teacher")
st.markdown(
    "A big **teacher** network is trained first. A small **student** is then trained to match not only the "
    "true labels but the teacher's *whole* output: its probabilities for every class, softened by a "
    "**temperature T**. Those soft targets say how much a 7 looks like a 1, or a shirt like a T-shirt "
    "(\"dark knowledge\") — information a one-hot label does not carry. To see whether that helps, a second "
    "student with the same architecture, the same starting weights and the same data order is trained "
    "**from scratch** on the labels alone.")
wide, narrow = wide_and_narrow("home-flow")  # a phone gets the diagram top to bottom and the formula in lines
wide.graphviz_chart(charts.kd_flow_dot(cfg.temperature, cfg.alpha, cfg.t_squared))
narrow.graphviz_chart(charts.kd_flow_dot(cfg.temperature, cfg.alpha, cfg.t_squared, vertical=True))
st.caption("Notice: only the student learns; the teacher's softened outputs and the true labels pull on it "
           "through two losses, mixed by alpha.")
wide, narrow = wide_and_narrow("home-formula")
wide.latex(charts.loss_formula_latex(cfg.temperature, cfg.alpha, cfg.t_squared))
narrow.latex(charts.loss_formula_latex(cfg.temperature, cfg.alpha, cfg.t_squared, lines=True))
st.caption(f"alpha = {cfg.alpha:g} weights the soft (teacher) term, 1 − alpha = {1 - cfg.alpha:.2g} the labels. "
           "The T² factor keeps the soft term's gradient the same size as T changes (Hinton et al., 2015). "
           "Change T and alpha on the Distill page, or explore T on the Temperature page.")

st.subheader("Run the whole demo")
st.markdown(f"One click trains the teacher (or reuses it), then the distilled and the scratch student, and "
            f"compares them on the test images. Settings: {ui.config_summary(cfg)}.")
dataset = ui.require_dataset()


def draw(job):
    histories = charts.events_to_histories(job.events)
    left, right = st.columns(2)
    ui.chart(charts.training_curves(histories, "test_acc"), key="home-live-acc", where=left)
    ui.chart(charts.training_curves(histories, "hard"), key="home-live-loss", where=right)
    st.caption("Notice: the teacher trains first; then both students train on the same few images — "
               "watch whether the distilled one's test accuracy climbs higher. The loss chart shows the part "
               "both students share, the cross-entropy with the labels; the distilled student's soft term "
               "(T²·KL, on another scale) is drawn beside it on the Distill page.")


demo = "Run the classroom demo" if st.session_state["preset"] == "classroom" else "Run the Keras example"
task = comparison_task(cfg, dataset)
result = ui.task_section(task, draw, ui.run_button_label(cfg, dataset, demo), "home-run", follow_other=True)
if result is not None:
    st.success(f"Done: {ui.config_summary(result['config'])}."
               + (" (From the cache: this exact run had finished before.)" if result.get("cached") else ""))
    ui.chart(ui.shared_figure(charts.accuracy_comparison, result), key="home-comparison")
    st.caption("Notice: how close the small distilled student gets to the big teacher, compared with the "
               "same small network trained on labels alone.")
    ui.show_verdict(result)
    ui.again_button(task, "Train again, live", "home-again", help=ui.AGAIN_HELP)
    st.page_link("app_pages/compare.py", label="The full comparison, on Compare",
                 icon=":material/bar_chart:")
