"""Results to take away: one CSV row per model and seed, and the whole result as JSON, for slides and homework.

Numbers are written at full precision (a float's repr reads back as the same float), so a spreadsheet or a
script gets exactly the values the app draws. Accuracies are fractions (0.931, not 93.1). Pure: no streamlit.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Callable, Iterable

from kd_core.roles import ROLES

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run a text cell starting so as a formula


def plain(value: Any) -> Any:
    """`value` with numpy/torch scalars and arrays turned into Python numbers and lists, tuples into lists."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy arrays and scalars, torch tensors
        return value.tolist()
    return value


def safe_cell(value: Any) -> Any:
    """A CSV cell: text that a spreadsheet would run as a formula gets a leading apostrophe; the rest as is."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def to_csv(rows: Iterable[dict[str, Any]]) -> str:
    """CSV text of `rows`: columns in first-seen order, blanks for missing or None values, floats at full precision."""
    rows = [plain(row) for row in rows]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, restval="")
    writer.writeheader()
    writer.writerows({key: safe_cell(value) for key, value in row.items()} for row in rows)
    return out.getvalue()


def to_json(document: Any) -> str:
    """JSON text of a whole result: sorted keys, indented, numpy values as plain numbers, floats unrounded."""
    return json.dumps(plain(document), indent=2, sort_keys=True, ensure_ascii=False)


def _flat(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level, keys joined by dots ({"latency_ms": {"median_ms": 1}} -> "latency_ms.median_ms")."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def comparison_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model and seed of a comparison (kd_core.experiment.run_experiment), per-class accuracy included."""
    cfg, models = result["config"], result["models"]
    rows = []
    for role in ROLES:
        m = models[role]
        runs = ([{"seed": cfg["teacher_seed"], "accuracy": m["accuracies"][0], "seconds": m["seconds"],
                  "per_class": m.get("per_class", [])}] if role == "teacher" else m["runs"])
        for run in runs:
            rows.append({
                "run": result["key"], "dataset": result["dataset"], "role": role,
                "architecture": cfg["teacher" if role == "teacher" else "student"], "seed": run["seed"],
                "accuracy": run["accuracy"], "accuracy_mean": m["accuracy_mean"], "accuracy_std": m["accuracy_std"],
                "seeds": len(m["accuracies"]), "agreement_with_teacher": run.get("agreement_with_teacher"),
                "params": m["params"], "flops": m["flops"], "train_seconds": run["seconds"],
                "train_images": result["teacher_train_images" if role == "teacher" else "student_train_images"],
                "epochs": cfg["teacher_epochs" if role == "teacher" else "student_epochs"],
                "temperature": cfg["temperature"] if role == "distilled" else None,
                "alpha": {"teacher": None, "distilled": cfg["alpha"], "scratch": 0.0}[role],
                "t_squared": cfg["t_squared"] if role == "distilled" else None,
                **{f"accuracy_class_{name}": value for name, value in zip(result["classes"], run.get("per_class", []))},
            })
    return rows


def data_budget_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per label budget and seed: both students' accuracy, the paired gain and the budget's noise verdict."""
    return [{"images": r["images"], "fraction": r["fraction"], "images_per_class": r["per_class"],
             "epochs": r["epochs"], "steps": r["steps"], "seed": seed, "distilled_accuracy": r["distilled"][seed],
             "scratch_accuracy": r["scratch"][seed], "gain": r["gains"][seed], "distilled_mean": r["distilled_mean"],
             "distilled_std": r["distilled_std"], "scratch_mean": r["scratch_mean"], "scratch_std": r["scratch_std"],
             "gain_mean": r["gain"], "gain_std": r["gain_std"], "noise": r["noise"], "within_noise": r["within_noise"]}
            for r in result["rows"] for seed in range(len(r["distilled"]))]


def omitted_class_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model and seed: accuracy overall, on the omitted class and on the others; the bias it got."""
    metrics = {"accuracy": "accuracy", "label_accuracy": "omitted_class_accuracy",
               "other_accuracy": "other_classes_accuracy"}
    rows = []
    for role, m in result["models"].items():
        runs = m.get("runs") or [{"seed": None, **{k: m[f"{k}_mean"] for k in metrics}}]  # the teacher: one row
        for run in runs:
            row = {"omitted_class": result["class_name"], "label": result["label"], "model": role, "seed": run["seed"],
                   **{name: run[key] for key, name in metrics.items()},
                   "bias": result["bias"]["chosen"][run["seed"]] if role == "distilled_corrected" else None}
            for key, name in metrics.items():
                row[f"{name}_mean"], row[f"{name}_std"] = m.get(f"{key}_mean"), m.get(f"{key}_std")
            rows.append(row)
    return rows


def _scratch_rows(scratch: dict[str, Any], blank: tuple[str, ...]) -> list[dict[str, Any]]:
    """The scratch reference's rows (one per seed) of a lab table, its `blank` setting columns left empty."""
    return [{"model": "scratch", **dict.fromkeys(blank), "seed": seed, "accuracy": acc,
             "accuracy_mean": scratch["mean"], "accuracy_std": scratch["std"]}
            for seed, acc in enumerate(scratch["accuracies"])]


def sweep_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (T, alpha) cell and seed, after the scratch reference's rows; best and within-noise marked."""
    rows = _scratch_rows(result["scratch"], ("temperature", "alpha"))
    rows += [{"model": "distilled", "temperature": c["temperature"], "alpha": c["alpha"], "seed": seed, "accuracy": acc,
              "accuracy_mean": c["mean"], "accuracy_std": c["std"], "gain_vs_scratch": c["gain"], "best": c["best"],
              "within_noise_of_best": c["within_noise"]}
             for c in result["cells"] for seed, acc in enumerate(c["accuracies"])]
    return rows


def t_squared_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per temperature, with or without T², and seed: accuracy and the soft and hard gradient norms."""
    rows = _scratch_rows(result["scratch"], ("temperature", "t_squared"))
    for r in result["rows"]:
        for flag, part in ((True, r["with_t2"]), (False, r["without_t2"])):
            grads = {k: part[k] for k in ("soft_grad_logits", "soft_grad_params", "hard_grad_logits",
                                          "hard_grad_params", "soft_to_hard_params")}
            rows += [{"model": "distilled", "temperature": r["temperature"], "t_squared": flag, "seed": seed,
                      "accuracy": acc, "accuracy_mean": part["accuracy_mean"], "accuracy_std": part["accuracy_std"],
                      **grads} for seed, acc in enumerate(part["accuracies"])]
    return rows


def hints_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per hint weight (0 = plain KD) and seed, after the scratch reference's rows."""
    scratch = result["scratch"]
    rows = [{"model": "scratch", "hint_weight": None, "seed": seed, "accuracy": acc,
             "accuracy_mean": scratch["mean"], "accuracy_std": scratch["std"]}
            for seed, acc in enumerate(scratch["accuracies"])]
    for r in result["rows"]:
        summary = {k: v for k, v in r.items() if k not in ("weight", "accuracies")}
        rows += [{"model": "distilled" if r["weight"] == 0 else "hinted", "hint_weight": r["weight"], "seed": seed,
                  "accuracy": acc, "hint_loss": result["hint_loss"], **summary}
                 for seed, acc in enumerate(r["accuracies"])]
    return rows


EXPERIMENT_ROWS: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {
    "data-budget": data_budget_rows, "omitted-class": omitted_class_rows, "sweep": sweep_rows,
    "t-squared": t_squared_rows, "hints": hints_rows}


def experiment_rows(name: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    """The CSV rows of lab experiment `name`'s result (kd_core.lab); ValueError for an unknown name."""
    if name not in EXPERIMENT_ROWS:
        raise ValueError(f"unknown experiment {name!r}; choose from {list(EXPERIMENT_ROWS)}")
    return EXPERIMENT_ROWS[name](result)


def lm_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per language model and seed (kd_core.lm.run_lm): validation loss, size, speed; seed 0's sample."""
    cfg, rows = result["config"], []
    for role in ROLES:
        m = result["models"][role]
        runs = m["runs"] or [{"seed": cfg["teacher_seed"], "seconds": result["teacher_seconds"]}]
        for i, run in enumerate(runs):
            rows.append({
                "run": result["key"], "corpus": cfg["corpus"], "role": role, "seed": run["seed"],
                "method": cfg["method"] if role == "distilled" else None,
                "temperature": cfg["temperature"] if role == "distilled" else None,
                "alpha": {"teacher": None, "distilled": cfg["alpha"], "scratch": 0.0}[role],
                "params": m["params"], "steps": cfg["teacher_steps" if role == "teacher" else "student_steps"],
                "val_nats": m["val_nats"][i], "val_bits_per_char": m["val_bpc"][i],
                "bits_per_char_mean": m["bpc_mean"], "bits_per_char_std": m["bpc_std"],
                "perplexity_mean": m["perplexity_mean"], "chars_per_second": m["chars_per_s"],
                "train_seconds": run["seconds"], "sample": m["sample"] if i == 0 else None,
            })
    return rows


def compression_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model and compression stage (kd_core.compress.compress): accuracy, size, latency, memory."""
    return [{"run": result["key"], **_flat(row)} for row in result["rows"]]
