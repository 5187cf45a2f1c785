"""The Ray backend: students trained as Ray tasks give exactly the numbers of the local runner on the same seeds.

Runs on a local single-node Ray (no cluster needed), 2 CPUs, one torch thread on both sides: this
project's determinism holds per thread count. CI installs requirements-ray.txt, so there a missing
Ray fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from kd_core import distributed, lab, store
from kd_core.data import load_dataset
from kd_core.experiment import get_teacher, run_experiment, student_checkpoint_path
from kd_core.train import TrainingCancelled

ray = __import__("ray") if os.environ.get("CI") else pytest.importorskip("ray")


def cache_teacher(cfg) -> None:
    """Train and cache `cfg`'s teacher now, so both runs compared load it from the cache.

    A teacher fresh from training keeps channels_last weights; loaded from the cache it is contiguous,
    and its logits differ in the 7th digit (2.4e-7 here): equal inputs need the same teacher state.
    """
    get_teacher(cfg, load_dataset(cfg.dataset))


@pytest.fixture(scope="module")
def on_ray(one_thread):
    """A RayBackend on a single-node Ray started for this file (started once: it takes seconds)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield distributed.RayBackend()  # threads per task: the driver's, which one_thread sets to 1
    ray.shutdown()


def test_backend_is_chosen_by_environment(monkeypatch):
    for name in (distributed.BACKEND_ENV, distributed.RAY_ADDRESS_ENV, distributed.RAY_THREADS_ENV):
        monkeypatch.delenv(name, raising=False)
    assert distributed.backend_from_env() == distributed.LocalBackend()
    monkeypatch.setenv(distributed.RAY_ADDRESS_ENV, "ray://head:10001")
    assert distributed.backend_from_env() == distributed.RayBackend("ray://head:10001")
    monkeypatch.setenv(distributed.BACKEND_ENV, "local")  # an explicit choice wins over the address
    assert distributed.backend_from_env() == distributed.LocalBackend()
    monkeypatch.setenv(distributed.BACKEND_ENV, "ray")
    monkeypatch.setenv(distributed.RAY_THREADS_ENV, "4")
    assert distributed.backend_from_env() == distributed.RayBackend("ray://head:10001", 4)
    monkeypatch.setenv(distributed.RAY_THREADS_ENV, "0")
    with pytest.raises(ValueError, match="whole number"):
        distributed.backend_from_env()
    monkeypatch.setenv(distributed.BACKEND_ENV, "spark")
    with pytest.raises(ValueError, match="choose local or ray"):
        distributed.backend_from_env()


def test_run_experiment_on_ray_equals_local(tiny_config, on_ray):
    cfg = tiny_config.replace(seeds=2)
    cache_teacher(cfg)
    local = run_experiment(cfg, use_cache=False, backend=distributed.LocalBackend())
    local_weights = store.load_checkpoint(student_checkpoint_path(local, "distilled"))[1]
    events = []
    remote = run_experiment(cfg, use_cache=False, backend=on_ray, on_event=events.append)
    remote_weights = store.load_checkpoint(student_checkpoint_path(remote, "distilled"))[1]
    for role in ("distilled", "scratch"):
        for a, b in zip(local["models"][role]["runs"], remote["models"][role]["runs"], strict=True):
            assert a["accuracy"] == b["accuracy"]  # exact: same seeds, same thread count
            for name in ("initial_first_layer_norm", "per_class", "agreement_with_teacher", "confusion"):
                assert a[name] == b[name]
            assert a["history"]["loss"] == b["history"]["loss"] and a["history"]["test_acc"] == b["history"]["test_acc"]
    assert local["models"]["distilled"]["accuracies"] != local["models"]["scratch"]["accuracies"]  # not trivially equal
    assert all(torch.equal(local_weights[k], remote_weights[k]) for k in local_weights)  # seed 0's saved weights
    # coarse progress: one event per finished student (its last snapshot), the last one at 100 %
    assert sorted((e.seed, e.phase) for e in events) == [(0, "distilled"), (0, "scratch"), (1, "distilled"),
                                                         (1, "scratch")]
    assert all(e.progress.step == e.progress.steps for e in events) and events[-1].overall == pytest.approx(1.0)


def test_sweep_on_ray_equals_local_and_stop_cancels(tiny_config, on_ray, monkeypatch, tmp_path):
    monkeypatch.setenv("KD_LAB_CACHE_DIR", str(tmp_path))
    grid = dict(temperatures=(1, 4), alphas=(0.5,))
    cache_teacher(tiny_config)
    local = lab.sweep(tiny_config, **grid, backend=distributed.LocalBackend())
    shutil.rmtree(store.cache_path("lab", "sweep-cells"))  # the teacher stays cached; every student trains again
    with pytest.raises(TrainingCancelled):
        lab.sweep(tiny_config, **grid, backend=on_ray, should_stop=lambda: True)
    assert not store.cache_path("lab", "sweep-cells").exists()  # cancelled before any student was collected
    events = []
    remote = lab.sweep(tiny_config, **grid, backend=on_ray, on_event=events.append)
    assert remote["trained_students"] == 3 and local["trained_students"] == 3
    assert remote["scratch"]["accuracies"] == local["scratch"]["accuracies"]
    assert [c["accuracies"] for c in remote["cells"]] == [c["accuracies"] for c in local["cells"]]
    assert remote["matrix"] == local["matrix"] and remote["best"] == local["best"]
    # cells are announced in grid order, whatever order the tasks finish in
    assert [e.step for e in events if e.phase == "part"] == ["scratch", "T=1, alpha=0.5", "T=4, alpha=0.5"]
