"""Accuracy reference for the `keras` preset: the keras.io example's teacher in Keras itself vs ours. Prints JSON.

Needs Keras 3 (not in requirements.txt): `pip install --target /tmp/kerasdeps keras`, then
`PYTHONPATH=/tmp/kerasdeps KERAS_BACKEND=torch .venv/bin/python bench/keras_reference.py [--seeds 2]`.
Both train the example's teacher for one epoch (Adam 1e-3, batch 32) on the same 6,000 class-balanced
Fashion-MNIST training images and report test accuracy on the 10,000 test images and training seconds.
Keras runs on its torch backend here (TensorFlow is not installed), so its seconds are not the
TensorFlow figure; the accuracy is the point of comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from kd_core.config import preset  # noqa: E402
from kd_core.data import load_dataset  # noqa: E402
from kd_core.evaluate import accuracy, predict_logits  # noqa: E402
from kd_core.experiment import balanced_subset  # noqa: E402
from kd_core.models import create_model  # noqa: E402
from kd_core.train import configure_threads, train  # noqa: E402


def keras_teacher_run(x_train, y_train, x_test, y_test, seed: int) -> dict:
    """The keras.io example's teacher, built and trained with Keras for one epoch."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    teacher = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(256, (3, 3), strides=(2, 2), padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
        layers.Conv2D(512, (3, 3), strides=(2, 2), padding="same"),
        layers.Flatten(),
        layers.Dense(10),
    ])
    teacher.compile(optimizer=keras.optimizers.Adam(),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=[keras.metrics.SparseCategoricalAccuracy()])
    start = time.perf_counter()
    teacher.fit(x_train, y_train, epochs=1, batch_size=32, verbose=0)
    seconds = time.perf_counter() - start
    _, acc = teacher.evaluate(x_test, y_test, verbose=0)
    return {"params": int(teacher.count_params()), "accuracy": float(acc), "train_seconds": seconds}


def ours_run(images, labels, dataset, seed: int) -> dict:
    """Our keras-teacher with the keras preset's settings, one epoch."""
    cfg = preset("keras")
    torch.manual_seed(seed)
    model = create_model("keras-teacher")
    history = train(model, images, labels, epochs=1, batch_size=cfg.batch_size, lr=cfg.lr,
                    adam_eps=cfg.adam_eps, seed=seed)
    acc = accuracy(predict_logits(model, dataset.test_x), dataset.test_y)
    return {"params": sum(p.numel() for p in model.parameters()), "accuracy": acc,
            "train_seconds": history.elapsed[-1]}


def main() -> None:
    """Run both for each seed and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    configure_threads()
    dataset = load_dataset("fashion-mnist")
    idx = balanced_subset(dataset.train_y, 6000)
    images, labels = dataset.train_x[idx], dataset.train_y[idx]
    as_keras = lambda x: (x.numpy().astype("float32") / 255.0)[..., None]  # noqa: E731
    runs = {"keras": [], "ours": []}
    for seed in range(args.seeds):
        runs["ours"].append(ours_run(images, labels, dataset, seed))
        runs["keras"].append(keras_teacher_run(as_keras(images), labels.numpy(), as_keras(dataset.test_x),
                                               dataset.test_y.numpy(), seed))
    report = {"cores": os.cpu_count(), "threads": torch.get_num_threads(), "images": len(idx), "runs": runs,
              "mean_accuracy": {k: float(np.mean([r["accuracy"] for r in v])) for k, v in runs.items()},
              "mean_train_seconds": {k: float(np.mean([r["train_seconds"] for r in v])) for k, v in runs.items()},
              "load_average": os.getloadavg()}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
