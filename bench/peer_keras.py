"""Peer benchmark: the seed's Keras program (TensorFlow CPU) and ours on the same data, one process after the other.
Prints JSON.

Both train the keras.io "Knowledge Distillation" example's teacher, then a distilled and a scratch student,
one epoch each at batch 32 on the same 6,000 class-balanced Fashion-MNIST training images (T = 10, Keras
alpha = 0.1 = our alpha 0.9), and evaluate on the 10,000 test images. Reported: the teacher's training
epoch, the whole run after data loading (training and evaluations), and the accuracies.

TensorFlow lives in its own virtual environment, never in the project's:
  .venv/bin/python bench/peer_keras.py --install   # python3 -m venv /tmp/tfvenv; pip install tensorflow-cpu==2.21.*
  .venv/bin/python bench/peer_keras.py [--tf-python /tmp/tfvenv/bin/python] [--precision fp32 bf16]
  .venv/bin/python bench/peer_keras.py --smoke     # seconds: the bundled MNIST sample, 300 images
Offline data: Fashion-MNIST as kd_core.data finds it (KD_LAB_DATA_DIR, Debian's /usr/share/datasets/fashion-mnist,
torchvision's download). Run it on a quiet machine: another busy process slows whichever side runs with it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kd_core.config import PRECISIONS  # noqa: E402

TF_VENV = Path("/tmp/tfvenv")
TF_REQUIREMENT = "tensorflow-cpu==2.21.*"

# The keras.io example (its Keras 3 form), one epoch per phase; reads the arrays this script writes.
KERAS_PROGRAM = r'''
import json, sys, time
import numpy as np
import keras
from keras import layers, ops

data, epochs, seed = np.load(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
x_train = (data["x_train"].astype("float32") / 255.0).reshape(-1, 28, 28, 1)
x_test = (data["x_test"].astype("float32") / 255.0).reshape(-1, 28, 28, 1)
y_train, y_test = data["y_train"], data["y_test"]
start = time.perf_counter()
keras.utils.set_random_seed(seed)


class Distiller(keras.Model):
    def __init__(self, student, teacher):
        super().__init__()
        self.teacher = teacher
        self.student = student

    def compile(self, optimizer, metrics, student_loss_fn, distillation_loss_fn, alpha=0.1, temperature=3):
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = distillation_loss_fn
        self.alpha = alpha
        self.temperature = temperature

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, **kwargs):
        teacher_pred = self.teacher(x, training=False)
        student_loss = self.student_loss_fn(y, y_pred)
        distillation_loss = self.distillation_loss_fn(
            ops.softmax(teacher_pred / self.temperature, axis=1),
            ops.softmax(y_pred / self.temperature, axis=1),
        ) * (self.temperature ** 2)
        return self.alpha * student_loss + (1 - self.alpha) * distillation_loss

    def call(self, x):
        return self.student(x)


def net(first, second, name):
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(first, (3, 3), strides=(2, 2), padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
        layers.Conv2D(second, (3, 3), strides=(2, 2), padding="same"),
        layers.Flatten(),
        layers.Dense(10),
    ], name=name)


teacher, student = net(256, 512, "teacher"), net(16, 32, "student")
student_scratch = keras.models.clone_model(student)
seconds, accuracy = {}, {}


def timed(name, call):
    begin = time.perf_counter()
    out = call()
    seconds[name] = time.perf_counter() - begin
    return out


teacher.compile(optimizer=keras.optimizers.Adam(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=[keras.metrics.SparseCategoricalAccuracy()])
timed("teacher_fit", lambda: teacher.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0))
accuracy["teacher"] = timed("teacher_evaluate", lambda: teacher.evaluate(x_test, y_test, verbose=0))[1]

distiller = Distiller(student=student, teacher=teacher)
distiller.compile(optimizer=keras.optimizers.Adam(), metrics=[keras.metrics.SparseCategoricalAccuracy()],
                  student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  distillation_loss_fn=keras.losses.KLDivergence(), alpha=0.1, temperature=10)
timed("distill_fit", lambda: distiller.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0))
accuracy["distilled"] = timed("distill_evaluate", lambda: distiller.evaluate(x_test, y_test, verbose=0))[1]

student_scratch.compile(optimizer=keras.optimizers.Adam(),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=[keras.metrics.SparseCategoricalAccuracy()])
timed("scratch_fit", lambda: student_scratch.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0))
accuracy["scratch"] = timed("scratch_evaluate", lambda: student_scratch.evaluate(x_test, y_test, verbose=0))[1]

import tensorflow as tf
print(json.dumps({"tensorflow": tf.__version__, "keras": keras.__version__, "seconds": seconds,
                  "after_data_seconds": time.perf_counter() - start, "accuracy": accuracy}))
'''


def install(venv: Path) -> None:
    """Create `venv` and install TensorFlow CPU into it (the project's own environment stays untouched)."""
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", TF_REQUIREMENT], check=True)


def write_data(path: Path, dataset_name: str, limit: int) -> dict[str, Any]:
    """Write the training subset ours uses (balanced_subset of `limit`) and the test split to `path` (.npz)."""
    import numpy as np

    from kd_core.data import load_dataset
    from kd_core.experiment import balanced_subset

    dataset = load_dataset(dataset_name)
    idx = balanced_subset(dataset.train_y, limit)
    np.savez(path, x_train=dataset.train_x[idx].numpy(), y_train=dataset.train_y[idx].numpy(),
             x_test=dataset.test_x.numpy(), y_test=dataset.test_y.numpy())
    return {"dataset": dataset_name, "train_images": len(idx), "test_images": len(dataset.test_y)}


def keras_run(tf_python: Path, data: Path, epochs: int) -> dict[str, Any]:
    """The Keras program in its own process with the TensorFlow interpreter; its JSON report and wall time."""
    if not tf_python.exists():
        return {"skipped": f"no TensorFlow interpreter at {tf_python}; run with --install first"}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    done = subprocess.run([str(tf_python), "-c", KERAS_PROGRAM, str(data), str(epochs), "0"], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        return {"failed": done.stderr[-2000:]}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall_seconds": time.perf_counter() - start}


def ours_run(dataset_name: str, limit: int, epochs: int, precision: str) -> dict[str, Any]:
    """`python -m kd_core run --preset keras --precision P` in its own process with a fresh cache; timings and
    accuracies."""
    with tempfile.TemporaryDirectory(prefix="kd-peer-") as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "KD_LAB_CACHE_DIR": tmp, "PYTHONPATH": str(ROOT)}
        loading = subprocess.run([sys.executable, "-c", "import time; from kd_core.data import load_dataset; "
                                  f"s = time.perf_counter(); load_dataset({dataset_name!r}); "
                                  "print(time.perf_counter() - s)"], env=env, cwd=ROOT, check=True,
                                 capture_output=True, text=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kd_core", "run", "--dataset", dataset_name, "--preset", "keras",
                        "--epochs", str(epochs), "--train-limit", str(limit), "--precision", precision,
                        "--json", str(out)], env=env,
                       cwd=ROOT, check=True, capture_output=True)
        wall = time.perf_counter() - start
        result = json.loads(out.read_text())
    data_seconds = float(loading.stdout)
    models = result["models"]
    return {"teacher_epoch_seconds": models["teacher"]["seconds"] / epochs,
            "seconds": {role: m["seconds"] for role, m in models.items()},
            "total_seconds": result["total_seconds"], "data_loading_seconds": data_seconds,
            "after_data_seconds": result["total_seconds"] - data_seconds, "wall_seconds": wall,
            "precision": result["config"].get("precision", "fp32"),
            "accuracy": {role: m["accuracy_mean"] for role, m in models.items()}}


def main() -> int:
    """Run Keras, then ours, and print both with the speed-ups."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tf-python", type=Path, default=TF_VENV / "bin" / "python")
    parser.add_argument("--install", action="store_true", help=f"create {TF_VENV} with {TF_REQUIREMENT}, then run")
    parser.add_argument("--smoke", action="store_true", help="the bundled MNIST sample, 300 images: checks it runs")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-limit", type=int, default=6000)
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["auto"],
                        help="ours in each of these, one after the other (default auto: bf16 where the CPU has it)")
    args = parser.parse_args()
    if args.install:
        install(TF_VENV)
    dataset_name, limit = ("mnist-sample", 300) if args.smoke else ("fashion-mnist", args.train_limit)
    with tempfile.TemporaryDirectory(prefix="kd-peer-data-") as tmp:
        data = Path(tmp) / "data.npz"
        report: dict[str, Any] = {"data": write_data(data, dataset_name, limit), "epochs": args.epochs,
                                  "cores": len(os.sched_getaffinity(0)), "load_average_before": os.getloadavg()}
        report["keras"] = keras_run(args.tf_python, data, args.epochs)
    report["ours"] = {precision: ours_run(dataset_name, limit, args.epochs, precision) for precision in args.precision}
    report["load_average_after"] = os.getloadavg()
    keras = report["keras"]
    if "seconds" in keras:
        keras_epoch = keras["seconds"]["teacher_fit"] / args.epochs
        report["speedup"] = {precision: {
            "teacher_epoch": keras_epoch / ours["teacher_epoch_seconds"],
            "whole_run_after_data": keras["after_data_seconds"] / ours["after_data_seconds"],
            "teacher_accuracy_points": 100 * (ours["accuracy"]["teacher"] - keras["accuracy"]["teacher"])}
            for precision, ours in report["ours"].items()}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
