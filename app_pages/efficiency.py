"""Efficiency: measure teacher and students on this CPU, then distil -> prune -> quantize, and download the model.

Longer than ~120 lines because it explains every measured number next to it (sizes, latency, pruning
recovery) and offers each exported file; the work itself is one kd_core.compress task.
"""

import streamlit as st

import ui
from kd_core import charts, export

st.title("Efficiency: smaller and faster, measured on this machine")
st.markdown("People distil to **deploy**: fewer parameters, less memory, lower latency. This page measures that "
            "here instead of quoting it, then compresses the distilled student further: **pruning** (zero the "
            "smallest weights, then one epoch of fine-tuning) and **int8 quantization** (8-bit integer weights "
            "and activations).")
c1, c2 = st.columns([3, 1])
sparsity = c1.slider("Pruning: share of the student's weights set to zero (%)", min_value=0, max_value=95, value=50,
                     step=5, key="eff_sparsity",
                     help="Magnitude pruning: the smallest weights of all conv and linear layers, ranked together, "
                          "become 0. Then the pruned student gets one epoch of fine-tuning, once with the KD loss "
                          "and once with labels alone, to compare.")
quantize = c2.toggle("Quantize to int8", value=True, key="eff_quantize",
                     help="Post-training static quantization: activation ranges calibrated on training images.")
cfg = ui.current_config()
st.caption(f"Models: {ui.config_summary(cfg)}. Change them on the Distill page.")
dataset = ui.require_dataset()

from kd_core.compress import CompressConfig, export_file, speed_note, task as compression_task  # noqa: E402

ccfg = CompressConfig(sparsity=sparsity / 100, quantize=quantize,
                      **({"throughput_batch": 32, "calibration_images": 128} if ui.tiny() else {}))
task = compression_task(cfg, ccfg, dataset)
out = ui.task_section(
    task, None, "Distil → prune → quantize, and measure", "efficiency-run",
    running="Running in the background ({label}): trains the teacher and students first if they are not cached, "
            "then prunes, fine-tunes, quantizes and measures every model. Moving the slider does not stop it.",
    offer=f"Press the button to prune the distilled student to {ccfg.sparsity:.0%} sparsity"
          f"{', quantize it to int8' if ccfg.quantize else ''} and measure every model on this CPU"
          f" ({'a few seconds in tiny mode' if ui.tiny() else 'about a minute, more if the students are not trained yet'}).")
if out is None:
    st.stop()

rows = out["rows"]
by_id = {r["id"]: r for r in rows}
busy = ui.get_runner().active()  # this page's own job has finished: any running job is another
st.caption(f"Measured {ui.plain(out['measured_at'])} in one process with {out['threads']} torch thread(s), "
           f"PyTorch {ui.plain(out['torch'])}"
           f"{' (from the cache)' if out.get('cached') else ''}. Latency: median of {ccfg.latency_runs} timed calls "
           f"after warm-up; the spread is min–max. Another program using the CPU at the same time slows every number"
           f"{' — a training job is running now' if busy else ''}.")

d = by_id["distilled"]
m1, m2, m3 = st.columns(3)
if "distilled-int8" in by_id:
    q = by_id["distilled-int8"]
    m1.metric("int8 distilled student: size on disk", f"{q['size_bytes'] / 1024:.1f} KB",
              f"{d['size_bytes'] / q['size_bytes']:.1f}× smaller than float32", delta_color="off")
    m2.metric("int8 accuracy change", f"{100 * (q['accuracy'] - d['accuracy']):+.1f} points",
              "within 1 point" if q["accuracy"] >= d["accuracy"] - 0.01 else "lost more than 1 point",
              delta_color="normal" if q["accuracy"] >= d["accuracy"] - 0.01 else "inverse")
else:
    m1.metric("Distilled student: size on disk", f"{d['size_bytes'] / 1024:.1f} KB")
    m2.metric("Distilled student: latency", f"{d['latency_ms']['median_ms']:.3f} ms/image")
if "distilled-int8" in by_id:
    st.markdown(speed_note(d, by_id["distilled-int8"]))
kd, ce = by_id["pruned-kd"], by_id["pruned-ce"]
m3.metric(f"Pruned {ccfg.sparsity:.0%} + one KD epoch vs unpruned", f"{100 * (kd['accuracy'] - d['accuracy']):+.1f} points",
          f"CE epoch instead: {100 * (ce['accuracy'] - d['accuracy']):+.1f} points", delta_color="off")

table = [{"model / stage": r["name"], "accuracy (%)": round(100 * r["accuracy"], 2), "weights": r["precision"],
          "parameters": r["params"], "non-zero": r["nonzero_params"], "MFLOPs": round(r["flops"] / 1e6, 2),
          "size (KB)": round(r["size_bytes"] / 1024, 1), "gzip (KB)": round(r["size_gzip_bytes"] / 1024, 1),
          "latency (ms)": round(r["latency_ms"]["median_ms"], 3),
          "spread (ms)": f"{r['latency_ms']['min_ms']:.3f}–{r['latency_ms']['max_ms']:.3f}",
          "images/s": round(r["throughput"]["median"]), "memory (KB)": round(r["peak_memory_bytes"] / 1024, 1)}
         for r in rows]
batch = rows[0]["throughput"]["batch"]
st.dataframe(table, hide_index=True, width="stretch",
             column_order=["model / stage", "accuracy (%)", "non-zero", "size (KB)", "gzip (KB)", "latency (ms)",
                           "spread (ms)", "images/s", "memory (KB)"],  # weights, parameters, MFLOPs: the eye icon
             column_config={
                 "parameters": st.column_config.NumberColumn(format="localized"),
                 "non-zero": st.column_config.NumberColumn(format="localized",
                                                           help="Parameters that are not zero (pruning zeroes some)"),
                 "MFLOPs": st.column_config.NumberColumn(help="Millions of multiply-adds per image"),
                 "size (KB)": st.column_config.NumberColumn(help="Size on disk of the saved weights"),
                 "gzip (KB)": st.column_config.NumberColumn(help="Size of the weights file once gzipped"),
                 "latency (ms)": st.column_config.NumberColumn(help="CPU latency per image at batch 1, median"),
                 "spread (ms)": st.column_config.TextColumn(help="Fastest and slowest of the timed calls"),
                 "images/s": st.column_config.NumberColumn(help=f"Throughput at batch {batch}, median"),
                 "memory (KB)": st.column_config.NumberColumn(help="Peak memory at batch 1")})
st.caption(f"Latency: per image at batch 1; images/s: throughput at batch {batch}; the weights' precision, "
           "parameters and MFLOPs per image through the eye icon at the table's top right. Size on disk: bytes of "
           "the saved weights file (torch.save of the state_dict). Pruned weights are "
           "still stored as zeros, so only the gzipped size and the non-zero count shrink; dense CPU kernels do "
           "not skip zeros either, so pruning alone does not make it faster. Peak memory: weights + input + the "
           "most the forward pass holds allocated at once, from torch's profiler. FLOPs of int8 rows are int8 "
           "multiply-adds.")
ui.download_buttons(f"compression-{out['key']}", export.compression_rows(out), out)

left, right = st.columns(2)
with left:
    ui.chart(charts.efficiency_pareto(rows, "latency"), key="eff-pareto-latency")
    st.caption("Notice: the students sit far to the left of the teacher at a modest accuracy cost; the arrows "
               "follow distil → prune → quantize.")
with right:
    ui.chart(charts.efficiency_pareto(rows, "size"), key="eff-pareto-size")
    st.caption("Notice: int8 (diamonds) moves a model about 3× to the left; pruning alone does not, because "
               "the zeros are still stored.")
ui.chart(charts.finetune_recovery(rows), key="eff-recovery")
gap = 100 * (kd["accuracy"] - ce["accuracy"])
lost = 100 * (d["accuracy"] - by_id["pruned"]["accuracy"])
st.caption(f"Notice: pruning alone {'cost' if lost > 0 else 'changed'} {abs(lost) if lost > 0 else -lost:+.1f} points"
           f"{' — little to recover, so both fine-tunings end about equal' if lost < 1 else ''}. With the same "
           f"{out['finetune_images']} images for one epoch, the KD epoch ended "
           + (f"{abs(gap):.1f} points {'above' if gap > 0 else 'below'} the CE epoch. " if abs(gap) >= 0.05
              else "level with the CE epoch. ")
           + ("It is not a law that KD recovers more: with T and alpha tuned for training from scratch, one short "
              "epoch of softened targets can move the pruned student less than the labels do; try a higher sparsity, "
              "or other T and alpha on the Distill page." if gap <= 0 and lost >= 1 else "" if gap <= 0 else
              "The teacher's soft targets tell the pruned student more per image than the labels alone."))
for note in out.get("notes", []):
    st.warning(ui.plain(note))

st.subheader("Take a model with you")
names = {row_id: ui.plain(by_id[row_id]["name"]) for row_id in out["exports"]}  # radio labels are markdown
choice = st.radio("Model to download", list(names), format_func=names.get, horizontal=True, key="eff_download")
files = out["exports"][choice]
try:  # plain names inside the cache folder only (export_file), read now: never a path the result could name
    data = {kind: export_file(out["key"], name).read_bytes() for kind, name in files.items()}
except (OSError, ValueError):
    st.warning("The exported files of this run are not in the cache any more: press Measure again below.")
    data = {}
cols = st.columns(3)
if "weights" in data:
    cols[0].download_button("Weights (.pt, state_dict)", data["weights"], file_name=files["weights"],
                            mime="application/octet-stream", key="dl-weights")
    cols[1].download_button("Config (.json)", data["config"], file_name=files["config"], mime="application/json",
                            key="dl-config")
if "onnx" in data:
    cols[2].download_button("ONNX (.onnx)", data["onnx"], file_name=files["onnx"],
                            mime="application/octet-stream", key="dl-onnx")
elif data:
    cols[2].caption("No ONNX file for int8: PyTorch's eager int8 layers do not export to ONNX; take the float model's "
                    "ONNX and quantize it with ONNX Runtime, or use these weights with PyTorch.")
st.code(f"""from kd_core.compress import load_export   # checks size and checksum, loads with weights_only=True
model = load_export("{files['config']}")   # with {files['weights']} in the same folder
# input: float32 (N, 1, 28, 28) = uint8 pixels / 255; output: logits (N, 10)""", language="python")
st.caption("The config names its weights file and checksum. A reloaded export gives the same predictions as the "
           "model measured above (the tests check it, and the ONNX file against ONNX Runtime).")
ui.again_button(task, "Measure again", "eff-again", help="Re-runs the measurements (trained models come from the cache).")
