"""Students side by side (kd_core.threads, LocalBackend with more than one worker): the one-thread numbers exactly,
live progress from both, one failure or a Stop ends them all."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from kd_core import distributed, store
from kd_core.data import load_dataset
from kd_core.experiment import get_teacher, run_experiment, student_checkpoint_path
from kd_core.threads import side_by_side
from kd_core.train import TrainingCancelled


@pytest.fixture()
def threads():
    """Set torch's thread count for a test; restored afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_side_by_side_gives_the_one_thread_numbers_exactly_with_live_progress_from_both(tiny_config, threads):
    cfg = tiny_config.replace(seeds=2)
    get_teacher(cfg, load_dataset(cfg.dataset))  # cached: both runs use the same teacher state
    threads(1)
    alone = run_experiment(cfg, use_cache=False, backend=distributed.LocalBackend())
    alone_weights = store.load_checkpoint(student_checkpoint_path(alone, "scratch"))[1]
    threads(2)
    events, names = [], set()

    def on_event(event) -> None:
        events.append(event)
        if event.phase in ("distilled", "scratch"):
            names.add(threading.current_thread().name)

    beside = run_experiment(cfg, use_cache=False, backend=distributed.LocalBackend(), on_event=on_event)
    assert torch.get_num_threads() == 2  # the job's threads are given back
    assert len(names) == 2 and all(n.startswith("kd-student") for n in names)  # two students trained at once
    for role in ("distilled", "scratch"):
        for a, b in zip(alone["models"][role]["runs"], beside["models"][role]["runs"], strict=True):
            assert a["seed"] == b["seed"] and a["accuracy"] == b["accuracy"] and a["confusion"] == b["confusion"]
            assert a["history"]["loss"] == b["history"]["loss"]
    weights = store.load_checkpoint(student_checkpoint_path(beside, "scratch"))[1]
    assert all(torch.equal(alone_weights[k], weights[k]) for k in weights)
    overall = [e.overall for e in events]
    assert overall[-1] == pytest.approx(1.0) and all(0 <= f <= 1 for f in overall)


def test_results_come_in_job_order_and_on_done_runs_in_the_callers_thread_as_each_ends():
    done, caller = [], threading.current_thread()

    def job(seconds: float, value: str):
        return lambda stopped: (time.sleep(seconds), value)[1]

    results = side_by_side([job(0.3, "slow"), job(0.0, "quick")], 2,
                           on_done=lambda i, r: done.append((i, r, threading.current_thread() is caller)))
    assert results == ["slow", "quick"] and done == [(1, "quick", True), (0, "slow", True)]


def test_one_failing_job_stops_the_others_and_its_error_is_raised():
    stopped_seen = threading.Event()

    def failing(stopped):
        raise RuntimeError("disk on fire")

    def patient(stopped):
        for _ in range(500):
            if stopped():
                stopped_seen.set()
                raise TrainingCancelled()
            time.sleep(0.01)
        return "ran to the end"

    with pytest.raises(RuntimeError, match="disk on fire"):
        side_by_side([patient, failing], 2)
    assert stopped_seen.is_set()


def test_a_failing_on_done_stops_the_others_and_a_stop_cancels_all():
    def patient(stopped):
        for _ in range(500):
            if stopped():
                raise TrainingCancelled()
            time.sleep(0.01)
        return "ran to the end"

    def full_disk(i, result):
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space"):
        side_by_side([lambda stopped: "quick", patient], 2, on_done=full_disk)
    with pytest.raises(TrainingCancelled):
        side_by_side([patient, patient], 2, should_stop=lambda: True)
