"""Experiments: when and why distillation helps — data budget, the missing class, the T × alpha map, why T².

Each experiment is a kd_core.lab task run as a shared background job (ui.task_section): a finished one
comes from the lab's cache at once; a running one shows its progress and the parts finished so far.
Longer than ~120 lines because it holds four experiments, each with its own explanation, live view and
reading of the result; the work itself is one lab task per tab.
"""

import streamlit as st

import ui
from kd_core import charts, export, lab

st.title("Experiments: when and why distillation helps")
st.markdown(
    "Four experiments that go beyond one run. Each trains many students in the background; in every pair "
    "compared, the students share **architecture, starting weights, data order and optimizer** — only the "
    "loss differs. Results are stored: once an experiment has finished, it shows at once for everyone on "
    "this server. Where several seeds are run, the page says plainly which differences are **within noise**.")
dataset = ui.require_dataset()
classes = list(dataset.classes)
if ui.tiny():
    st.info("Tiny mode: every experiment is shrunk to seconds (few images, few budgets, a 2×2 grid), so the "
            "numbers below are not meaningful.")


mine = ui.current_config()


def own_settings(cfg, key: str, why: str):
    """Say which T and alpha the experiment runs with, and offer the user's own instead. Returns the config."""
    if (cfg.temperature, cfg.alpha) != (mine.temperature, mine.alpha) and st.toggle(f"Use my T = {mine.temperature:g} and alpha = {mine.alpha:g} instead",
                                        key=f"{key}-mine", help="Your settings from the Distill page / the sidebar "
                                        "preset. A different T or alpha is a different experiment: it runs anew."):
        cfg = cfg.replace(temperature=mine.temperature, alpha=mine.alpha)
    st.info(f"This experiment runs at **T = {cfg.temperature:g}, alpha = {cfg.alpha:g}** ({why})"
            + (f", not at your T = {mine.temperature:g}, alpha = {mine.alpha:g}." if (cfg.temperature, cfg.alpha)
               != (mine.temperature, mine.alpha) else ", the same as your settings."), icon=":material/tune:")
    return cfg


def run_note(result: dict, students: str | None = None) -> None:
    """Where the shown result came from, how long it took, and its settings (`students`: how the students
    trained, when the config's own epochs and image count are not what the experiment used)."""
    c = result["config"]
    how = ("From the cache: this exact experiment had finished before." if result.get("cached")
           else f"Finished in {result.get('total_seconds', 0):.0f} s.")
    if students is None:
        st.caption(f"{how} Settings: {ui.config_summary(c)}.")
        return
    epochs = f"{c['teacher_epochs']} epoch{'s' if c['teacher_epochs'] != 1 else ''}"
    st.caption(f"{how} Settings: {ui.plain(c['dataset'])}, teacher {ui.plain(c['teacher'])} ({epochs}), "
               f"students {ui.plain(c['student'])} ({students}), T = {c['temperature']:g}, alpha = "
               f"{c['alpha']:g}, {c['seeds']} seed{'s' if c['seeds'] != 1 else ''}.")


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


budget_tab, missing_tab, sweep_tab, t2_tab = st.tabs(
    ["Data budget", "The missing class", "T × alpha map", "Why T²"])

# ----------------------------------------------------------------------------------------------------
with budget_tab:
    cfg, params = ui.lab_settings("data-budget")
    cfg = own_settings(cfg, "budget", "the classroom preset's")
    counts = lab.resolve_budgets(params["budgets"], len(dataset.train_y))
    students = 2 * cfg.seeds * len(counts)
    st.markdown(
        "**Are the teacher's soft targets worth more when labels are few?** Both students see only "
        f"**{', '.join(f'{n:,}' for n in counts)}** labelled training images (class-balanced, redrawn for each "
        f"of {cfg.seeds} seeds). Every budget gets the same number of training steps, so only the number of "
        "*different* images changes. The teacher learned from all the training images; the distilled student "
        "gets its soft outputs on the same few images.")

    def draw_budget(job):
        rows = ui.parts(job)
        if rows:
            ui.chart(charts.budget_accuracy(rows, cfg.seeds), key="budget-live")
            st.caption("Notice: each budget appears as soon as all its seeds have finished.")

    task = lab.task("data-budget", cfg, dataset, params,
                    label=f"data budget: {students} students on {len(counts)} budgets")
    result = ui.task_section(task, draw_budget, f"Run the data-budget experiment ({students} students)",
                             "budget-run")
    if result is not None:
        run_note(result, "each budget for the same number of training steps, whatever its image count: "
                         + ", ".join(f"{r['images']:,} images × {r['epochs']} epochs" for r in result["rows"]))
        rows, seeds = result["rows"], result["seeds"]
        left, right = st.columns(2)
        ui.chart(charts.budget_accuracy(rows, seeds), key="budget-accuracy", where=left)
        small, large = rows[0], rows[-1]
        left.caption(f"Notice: distillation changes test accuracy by {100 * small['gain']:+.1f} points with "
                     f"{small['images']:,} labelled images and by {100 * large['gain']:+.1f} with {large['images']:,}"
                     + (" — the teacher's soft targets are worth most when labels are few." if small["gain"] >
                        max(large["gain"], 0) else "."))
        ui.chart(charts.budget_gain(rows, seeds), key="budget-gain", where=right)
        right.caption("Notice: a gain inside the grey band is smaller than the noise (seed spread plus the "
                      "luck of the test set) and could be chance.")
        beyond = [r for r in rows if not r["within_noise"]]
        within = [r for r in rows if r["within_noise"]]

        def listed(rs):
            return ", ".join(f"{r['images']:,} images ({100 * r['gain']:+.1f} points; noise level "
                             f"{100 * r['noise']:.1f})" for r in rs)

        if seeds < 2:
            st.info("One seed only: the noise band is the test-set sampling alone. Run 3 seeds to see the spread.")
        if beyond:
            helped = all(r["gain"] > 0 for r in beyond)
            getattr(st, "success" if helped else "warning")(
                f"Beyond noise — distillation {'helped' if helped else 'changed the accuracy'} at: {listed(beyond)}.")
        if within:
            st.warning(f"Within noise — no evidence either way at: {listed(within)}. "
                       "There the gain is smaller than its noise level.")
        st.dataframe([{"labelled images": r["images"], "per class": round(r["per_class"], 1),
                       "epochs": r["epochs"], "distilled (%)": round(100 * r["distilled_mean"], 1),
                       "scratch (%)": round(100 * r["scratch_mean"], 1), "gain (points)": round(100 * r["gain"], 1),
                       "noise level (± points)": round(100 * r["noise"], 1),
                       "verdict": "within noise" if r["within_noise"] else "beyond noise"} for r in rows],
                     hide_index=True, width="stretch")
        st.caption(f"Noise rule: {ui.plain(result['noise_rule'])}.")
        ui.download_buttons(f"data-budget-{result['key']}", export.experiment_rows("data-budget", result), result)

# ----------------------------------------------------------------------------------------------------
with missing_tab:
    label = st.selectbox("Class the students never see", range(len(classes)), index=min(3, len(classes) - 1),
                         format_func=lambda i: classes[i], key="omit-label")
    name = classes[label]
    cfg, params = ui.lab_settings("omitted-class", label=label)
    cfg = own_settings(cfg, "omit", "a high T as in Hinton et al., whose MNIST experiment used T = 20: the student "
                       f"learns about {name} only from small probabilities, which a high T makes visible")
    st.markdown(
        f"**Can a student recognise a class it has never seen?** (Hinton et al. 2015, §3.) The students' "
        f"training images contain **no {name} at all**; the teacher saw every class. The distilled student "
        f"learns about {name} only from the teacher's soft outputs on *other* images — how much a 5 or an 8 "
        f"looks like a {name}. The scratch student never hears of {name}. Having never seen {name} as the "
        f"answer, the distilled student under-rates it, so (as in the paper) we **raise the bias of its {name} "
        f"output** after training. The amount is chosen on a held-out part of the **training** images, "
        "never on the test images, which are only used to report.")

    def draw_missing(job):
        parts = ui.parts(job)
        if parts:
            st.dataframe([{"seed": p["seed"], f"scratch on {name} (%)": round(100 * p["scratch"]["label_accuracy"], 1),
                           f"distilled on {name} (%)": round(100 * p["distilled"]["label_accuracy"], 1),
                           "chosen bias": p["bias"],
                           f"distilled + bias on {name} (%)":
                               round(100 * p["distilled_corrected"]["label_accuracy"], 1)} for p in parts],
                         hide_index=True)
            st.caption("Notice: each seed's students appear as soon as they are done.")

    task = lab.task("omitted-class", cfg, dataset, params, label=f"missing class {name}: 3 students per seed")
    result = ui.task_section(task, draw_missing,
                             f"Run the missing-class experiment (3 students per seed, without {name})",
                             "missing-run")
    if result is not None:
        c = result["config"]
        run_note(result, f"{c['student_epochs']} epochs on every training image that is not a {name}")
        m = result["models"]
        c1, c2, c3, c4 = st.columns(4)
        c1.metric(f"Scratch on test {name}s", pct(m["scratch"]["label_accuracy_mean"]))
        c2.metric(f"Distilled on test {name}s", pct(m["distilled"]["label_accuracy_mean"]))
        c3.metric(f"Distilled + bias on test {name}s", pct(m["distilled_corrected"]["label_accuracy_mean"]))
        c4.metric("Other classes, vs saw-all student",
                  f"{-100 * result['other_class_gap']['corrected']:+.1f} points",
                  help="Accuracy on the other classes of the bias-corrected student minus that of a distilled "
                       "student trained on every class (same images otherwise).")
        ui.chart(charts.omitted_class_accuracy(result), key="missing-accuracy")
        gap = 100 * result["other_class_gap"]["corrected"]
        st.caption(f"Notice: on the test {name}s the scratch student scores "
                   f"{pct(m['scratch']['label_accuracy_mean'])} (it cannot answer a class it never saw), the "
                   f"distilled one {pct(m['distilled']['label_accuracy_mean'])} from the teacher's soft targets "
                   f"alone, {pct(m['distilled_corrected']['label_accuracy_mean'])} after the bias correction; on "
                   f"the other classes it is {abs(gap):.1f} points {'below' if gap > 0 else 'above'} the "
                   "student that saw every class.")
        left, right = st.columns(2)
        with left:
            bias = result["bias"]
            ui.chart(charts.bias_curve(bias["curve"], bias["chosen"][0], name), key="missing-bias")
            st.caption(f"Notice: the chosen bias (+{bias['chosen'][0]:g}) is the one that maximises accuracy on "
                       f"{result['heldout_images']:,} held-out TRAINING images ({result['heldout_label_images']} of "
                       f"them {name}s), never on test data: the test images only report the result.")
        with right:
            roles = {"distilled": "distilled", "distilled_corrected": "distilled + bias",
                     "scratch": "scratch", "distilled_all": "saw every class"}
            role = st.radio("Confusion matrix of", list(roles), format_func=roles.get, horizontal=True,
                            key="missing-confusion-role")
            ui.chart(charts.confusion(result["confusion"][role], classes,
                                      f"Test confusion matrix: {roles[role]} student (seed 0)"),
                     key="missing-confusion")
            row = result["confusion"][role][label]
            mistakes = sorted(((n, classes[j]) for j, n in enumerate(row) if j != label), reverse=True)
            st.caption(f"Notice: row {name} — of {sum(row)} test {name}s, {row[label]} are called {name}"
                       + (f"; the most common mistake is {mistakes[0][1]} ({mistakes[0][0]})." if mistakes and
                          mistakes[0][0] else "."))
        st.markdown(f"**Test images of {name}** and the distilled student's output probabilities (seed 0, "
                    f"before the bias correction; the {name} bar in red):")
        examples = sorted(result["examples"], key=lambda ex: ex["distilled"]["predicted"] == label)  # misses first
        columns = st.columns(4)
        for i, ex in enumerate(examples):
            with columns[i % 4]:
                d, c = ex["distilled"]["predicted"], ex["distilled_corrected"]["predicted"]
                st.image(dataset.test_x[ex["test_index"]].numpy(), width=64)
                ui.chart(charts.soft_output_bars(
                    ex["distilled"]["probabilities"], classes, label,
                    f"says {classes[d]}" + ("" if c == d else f"; {classes[c]} with bias")), key=f"missing-ex-{i}")
        wrong = [ex for ex in examples if ex["distilled"]["predicted"] != label]
        second = sum(1 for ex in wrong if sorted(range(len(classes)), key=lambda k: -ex["distilled"]["probabilities"][k])[1]
                     == label)
        fixed = sum(1 for ex in wrong if ex["distilled_corrected"]["predicted"] == label)
        st.caption(f"Notice: a student that never saw a {name} calls {len(examples) - len(wrong)} of these "
                   f"{len(examples)} correctly, from the teacher's soft targets alone"
                   + (f"; of the {len(wrong)} it misses, {name} is the second choice in {second}, and the bias "
                      f"correction fixes {fixed}." if wrong else "."))
        ui.download_buttons(f"omitted-class-{result['key']}", export.experiment_rows("omitted-class", result), result)

# ----------------------------------------------------------------------------------------------------
with sweep_tab:
    cfg, params = ui.lab_settings("sweep")
    st.info("This experiment ignores your T and alpha on purpose: it tries every pair on the grid below.",
            icon=":material/tune:")
    temperatures, alphas = [float(t) for t in params["temperatures"]], [float(a) for a in params["alphas"]]
    cells_n = len(temperatures) * len(alphas)
    st.markdown(
        f"**Which T and alpha?** Every cell is a distilled student trained with that temperature T and alpha "
        f"(the weight of the teacher's soft term; 1 − alpha weights the labels), from the same starting weights on "
        f"the same {cfg.student_train_limit or 'all'} labelled images. A scratch student (labels only) is the "
        "reference. Cells whose accuracy is within noise of the best are ringed: among them the choice does not "
        "matter on this data. Each cell is stored as it finishes, so a stopped sweep resumes where it stopped.")

    def draw_sweep(job):
        parts = ui.parts(job)
        scratch = next((p["mean"] for p in parts if p.get("role") == "scratch"), None)
        cells = [p for p in parts if "temperature" in p]
        if not cells:
            return
        ui.chart(charts.sweep_heatmap(temperatures, alphas, cells, scratch), key="sweep-live")
        st.caption(f"Notice: cells fill in as they finish ({len(cells)} of {cells_n}).")

    task = lab.task("sweep", cfg, dataset, params, label=f"T × alpha sweep: {cells_n} cells")
    result = ui.task_section(task, draw_sweep,
                             f"Run the T × alpha sweep ({cells_n} distilled students + 1 scratch)", "sweep-run")
    if result is not None:
        run_note(result, f"{result['config']['student_epochs']} epochs on "
                         f"{result['config']['student_train_limit'] or 'all'} labelled images; T and alpha as in each cell")
        best, scratch = result["best"], result["scratch"]
        ui.chart(charts.sweep_heatmap(result["temperatures"], result["alphas"], result["cells"],
                                      scratch["mean"]), key="sweep-map")
        near = len(result["within_noise"])
        st.caption(f"Notice: the best cell (★, red ring) is T = {best['temperature']:g}, alpha = {best['alpha']:g} "
                   f"at {pct(best['mean'])}, {100 * best['gain']:+.1f} points vs scratch ({pct(scratch['mean'])}); "
                   f"{near - 1} other cell{'s are' if near != 2 else ' is'} within noise of it (ringed).")
        st.caption(f"Noise rule: {ui.plain(result['noise_rule'])}.")
        ui.download_buttons(f"sweep-{lab.key('sweep', cfg, dataset, params)}",
                            export.experiment_rows("sweep", result), result)

# ----------------------------------------------------------------------------------------------------
with t2_tab:
    cfg, params = ui.lab_settings("t-squared")
    st.info(f"This experiment runs at the temperatures on its x axes and **alpha = {cfg.alpha:g}**, not at your "
            f"T = {mine.temperature:g}: it is about how the loss behaves as T changes.", icon=":material/tune:")
    temps = sorted({float(t) for t in params["temperatures"]})
    students = cfg.seeds * (1 + sum(1 if t == 1.0 else 2 for t in temps))
    st.markdown(
        "**Why multiply the soft term by T²?** Softening both outputs by T makes the soft term's gradient "
        "shrink roughly as 1/T². Multiplied by T², it keeps the same size at every T, so alpha means the same "
        "thing at every temperature. Here the same distillation runs with and without the T² factor at "
        f"T = {', '.join(f'{t:g}' for t in temps)} (alpha = {cfg.alpha:g}): first the gradient size at the "
        "students' starting weights, then the accuracy after training.")

    def draw_t2(job):
        rows = ui.parts(job)
        if rows:
            left, right = st.columns(2)
            ui.chart(charts.t2_gradients(rows), key="t2-live-grad", where=left)
            ui.chart(charts.t2_accuracy(rows, None, cfg.seeds), key="t2-live-acc", where=right)
            st.caption("Notice: temperatures appear as they finish.")

    task = lab.task("t-squared", cfg, dataset, params, label=f"T² experiment: {students} students")
    result = ui.task_section(task, draw_t2, f"Run with and without T² ({students} students)", "t2-run")
    if result is not None:
        run_note(result, f"{result['config']['student_epochs']} epochs on "
                         f"{result['config']['student_train_limit'] or 'all'} labelled images; T as on the x axes")
        rows = result["rows"]
        left, right = st.columns(2)
        with left:
            ui.chart(charts.t2_gradients(rows), key="t2-grad")
            hi = rows[-1]
            ratio = hi["with_t2"]["soft_grad_params"] / max(hi["without_t2"]["soft_grad_params"], 1e-30)
            st.caption(f"Notice: without T² the soft gradient collapses as T grows — at T = {hi['temperature']:g} "
                       f"it is {ratio:,.0f}× smaller than with T², far below the hard term's.")
        with right:
            ui.chart(charts.t2_accuracy(rows, result["scratch"]["mean"], result["seeds"]), key="t2-acc")
            with_t2, without = hi["with_t2"]["accuracy_mean"], hi["without_t2"]["accuracy_mean"]
            scratch = result["scratch"]["mean"]
            st.caption(f"Notice: at T = {hi['temperature']:g} the student reaches {pct(with_t2)} with T² and "
                       f"{pct(without)} without (scratch: {pct(scratch)})"
                       + (" — without T² the teacher barely counts, and the student falls back towards learning "
                          "from the labels alone." if abs(without - scratch) < abs(with_t2 - scratch) else "."))
        note = result["gradient_note"]
        st.caption(f"How the gradient is measured: {ui.plain(note)}.")
        ui.download_buttons(f"t-squared-{result['key']}", export.experiment_rows("t-squared", result), result)
