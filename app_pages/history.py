"""Run history: every finished comparison in a table; tick runs to overlay their curves and accuracies; delete runs."""

import hashlib

import streamlit as st

import ui
from kd_core import charts, history
from kd_core.experiment import comparison_job_key

st.title("Run history: every comparison run on this server")
st.markdown("Each row is one finished **teacher → distilled student → scratch student** run, newest first, with "
            "its settings and test accuracies (mean over seeds, ± the spread between seeds). **Tick rows** (the "
            "boxes on the left) to draw those runs' curves and accuracies side by side.")
if message := st.session_state.pop("history-deleted", None):
    (st.warning if "refused" in message else st.success)(message)

runs = history.list_runs()
if not runs:
    st.info("No runs yet. Every run you finish (on Home, Distill or from the command line) is listed here.")
    st.page_link("app_pages/home.py", label="Home: run the classroom demo", icon=":material/home:")
    st.stop()

# the table's key changes whenever runs come or go, so a selection (row positions) never points at another run
table_key = "history-" + hashlib.sha1(" ".join(r["key"] for r in runs).encode()).hexdigest()[:12]
SHOWN = ["run", "dataset", "T", "alpha", "T²", "student epochs", "labelled images", "seeds", "teacher (%)",
         "distilled (%)", "± distilled", "scratch (%)", "± scratch", "gain (points)"]  # the rest: the eye icon
SPREAD = "Standard deviation over seeds, in points (0 with 1 seed)"
event = st.dataframe(  # short headers (the full names in each column's help), so every shown column fits at 1400 px
    history.table_rows(runs), key=table_key, on_select="rerun", selection_mode="multi-row", hide_index=True,
    selection_default={"selection": {"rows": list(range(min(2, len(runs))))}}, column_order=SHOWN,
    column_config={
        "run": st.column_config.TextColumn(help="Short name of the run: the legend of the charts below"),
        "alpha": st.column_config.NumberColumn(help="Weight of the teacher's soft targets (1 - alpha: the labels)"),
        "T²": st.column_config.CheckboxColumn(help="Soft term multiplied by T² (Hinton et al. 2015)"),
        "student epochs": st.column_config.NumberColumn("epochs", help="Epochs of each student"),
        "labelled images": st.column_config.NumberColumn("images", help="Labelled images each student trains on"),
        "teacher (%)": st.column_config.NumberColumn("teacher %", help="Teacher's test accuracy (%)"),
        "distilled (%)": st.column_config.NumberColumn("distilled %", help="Distilled student's test accuracy (%), "
                                                                           "mean over seeds"),
        "± distilled": st.column_config.NumberColumn("±", help=SPREAD),
        "scratch (%)": st.column_config.NumberColumn("scratch %", help="Scratch student's test accuracy (%), "
                                                                       "mean over seeds"),
        "± scratch": st.column_config.NumberColumn("±", help=SPREAD),
        "gain (points)": st.column_config.NumberColumn("gain", help="Distilled minus scratch, mean test accuracy, "
                                                                    "in points"),
        "training (s)": st.column_config.NumberColumn(help="Training seconds of teacher and every student, "
                                                           "without the per-epoch test evaluation"),
        "key": st.column_config.TextColumn(help="Cache key: results/<key>.json in the cache folder"),
    })
st.caption("More columns (when it finished, the teacher and student architectures, training seconds, the cache "
           "key) through the eye icon at the table's top right.")
chosen = [runs[i] for i in event.selection.rows if i < len(runs)]
if not chosen:
    st.info("Tick one or more rows in the table to compare those runs.")
    st.stop()

metric = st.segmented_control("Curves", list(charts.HISTORY_METRICS), default="test_acc", key="history-metric",
                              format_func={"test_acc": "test accuracy", "hard": "loss against the labels"}.get
                              ) or "test_acc"
left, right = st.columns(2)
ui.chart(ui.shared_figure(charts.history_curves, chosen, metric), "history-curves", left)
left.caption("Notice: the gap between a run's solid (distilled) and dashed (scratch) line is what the teacher "
             "added; see how it changes with the settings named in the legend."
             if metric == "test_acc" else
             "Notice: the scratch student usually drives its loss on the labels lower — it memorises the few "
             "labels — while the distilled one, also pulled towards the teacher, often tests better.")
ui.chart(ui.shared_figure(charts.history_accuracies, chosen), "history-accuracies", right)
right.caption("Notice: a difference smaller than the error bars (± one sample standard deviation over seeds) is within "
              "noise; a run with one seed has no error bar, so it cannot tell.")

st.subheader("Delete runs")
names = ui.plain(", ".join(r["label"] for r in chosen))
st.markdown(f"Deletes the **{len(chosen)} ticked run(s)** ({names}): their stored results and trained students, "
            "for everyone using this server. Teachers are kept: other runs and pages share them.")
chosen_id = hashlib.sha1(" ".join(r["key"] for r in chosen).encode()).hexdigest()[:12]  # new choice: confirm again
sure = st.checkbox(f"I understand: delete {len(chosen)} run(s)", key=f"history-sure-{chosen_id}")
if st.button("Delete the ticked runs", icon=":material/delete:", disabled=not sure, key="history-delete"):
    removed, gone, refused = 0, 0, 0
    for run in chosen:
        try:
            removed += len(history.delete_run(run["key"]))
            ui.get_runner().forget(comparison_job_key(run["key"]))  # or this server would still show it
        except history.RunRefusedError:  # a file links out of the cache folder: nothing of the run is touched
            refused += 1
        except history.RunKeyError:  # deleted meanwhile, e.g. from another browser
            gone += 1
    st.session_state["history-deleted"] = (
        f"Deleted {len(chosen) - gone - refused} run(s) ({removed} files)"
        + (f"; {gone} had been deleted already" if gone else "")
        + (f"; refused to delete {refused}: its files lead outside the cache folder (see the server log)"
           if refused else "") + ".")
    st.rerun()
