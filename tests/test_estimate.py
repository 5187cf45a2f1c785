"""Time estimates: a comparison's cost by phase from throughput, and an ETA from progress events weighted by it.

Every check runs on injected throughput and a fake clock: no assertion depends on how fast this machine is.
"""

from __future__ import annotations

import pytest

from kd_core import estimate
from kd_core.data import load_dataset
from kd_core.estimate import OUTPUTS, Plan, about, comparison_plan, estimate_seconds, teacher_seconds
from kd_core.tasks import Tracker, steps_of
from kd_core.train import Progress

SPEEDS = {("classroom-teacher", "train"): 400.0, ("classroom-teacher", "infer"): 4000.0,  # images per second
          ("keras-student", "train"): 2000.0, ("keras-student", "distill"): 1600.0, ("keras-student", "infer"): 20000.0}


def fake_throughput(architecture: str, mode: str, batch_size: int, precision: str) -> float:
    """Made-up images per second: the teacher five times slower than the student, a distilled step slower than a
    step from labels, inference ten times faster; bf16 twice as fast."""
    return SPEEDS[architecture, mode] * (2 if precision == "bf16" else 1)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("mnist-sample")


def seconds(cfg, dataset, cached: bool = False) -> float:
    return estimate_seconds(cfg, dataset, teacher_cached=cached, throughput=fake_throughput)


def test_the_estimate_adds_up_the_phases_images_over_throughput(tiny_config, dataset):
    plan = comparison_plan(tiny_config.replace(seeds=2, precision="fp32"), dataset, teacher_cached=False,
                           throughput=fake_throughput)
    assert [(p.name, p.seed) for p in plan.phases] == [("teacher", 0), (OUTPUTS, None), ("distilled", 0),
                                                       ("scratch", 0), ("distilled", 1), ("scratch", 1)]
    n_test = len(dataset.test_y)   # 1,000 test images; 300 teacher and 100 student images, 1 and 2 epochs
    assert plan.units("teacher", 0) == pytest.approx(300 / 400 + n_test / 4000)
    assert plan.units(OUTPUTS, None) == pytest.approx((n_test + 100) / 4000)
    assert plan.units("scratch", 1) == pytest.approx(2 * 100 / 2000 + 3 * n_test / 20000)
    assert plan.units("distilled", 1) == pytest.approx(2 * 100 / 1600 + 3 * n_test / 20000)  # a distilled step's speed
    assert plan.units("scratch", 2) == 0 and plan.seconds == pytest.approx(sum(p.seconds for p in plan.phases))


def test_the_teacher_alone_costs_its_phase_and_its_outputs_cached_or_not(tiny_config, dataset):
    """The offer to train a teacher (Temperature and Teacher pages) says this, not a fixed "half a minute"."""
    cfg = tiny_config.replace(precision="fp32")
    n_test = len(dataset.test_y)
    expected = 300 / 400 + n_test / 4000 + (n_test + 100) / 4000
    assert teacher_seconds(cfg, dataset, throughput=fake_throughput) == pytest.approx(expected)
    assert teacher_seconds(cfg.replace(teacher_epochs=3), dataset, throughput=fake_throughput) > expected


def test_per_epoch_curves_cost_the_fixed_test_subset_and_only_the_end_the_whole_test_set(tiny_config):
    """On a 10,000-image test set the curves use curve_set's 1,000 after every epoch; the whole set once per student."""
    from types import SimpleNamespace

    from kd_core.experiment import CURVE_TEST_IMAGES

    big = SimpleNamespace(test_y=range(10_000), train_y=range(60_000))
    plan = comparison_plan(tiny_config.replace(precision="fp32"), big, teacher_cached=False, throughput=fake_throughput)
    assert plan.units("teacher", 0) == pytest.approx(300 / 400 + 1 * CURVE_TEST_IMAGES / 4000)
    assert plan.units("scratch", 0) == pytest.approx(2 * 100 / 2000 + (2 * CURVE_TEST_IMAGES + 10_000) / 20000)


def test_the_estimate_is_in_the_configs_precision(tiny_config, dataset):
    fp32, bf16 = (seconds(tiny_config.replace(precision=p), dataset) for p in ("fp32", "bf16"))
    assert fp32 == pytest.approx(2 * bf16)


def test_estimates_are_positive_and_grow_with_epochs_seeds_and_data(tiny_config, dataset):
    base = seconds(tiny_config, dataset)
    assert base > 0
    for change in ({"student_epochs": 3}, {"teacher_epochs": 2}, {"seeds": 2}, {"student_train_limit": 200},
                   {"teacher_train_limit": None}):
        assert seconds(tiny_config.replace(**change), dataset) > base, change
    assert seconds(tiny_config.replace(seeds=3), dataset) > seconds(tiny_config.replace(seeds=2), dataset)


def test_a_cached_teacher_is_not_counted(tiny_config, dataset):
    plan = comparison_plan(tiny_config, dataset, teacher_cached=True, throughput=fake_throughput)
    assert "teacher" not in [p.name for p in plan.phases]
    assert 0 < seconds(tiny_config, dataset, cached=True) < seconds(tiny_config, dataset)


@pytest.mark.parametrize("threads", [1, 2])
def test_the_buttons_estimate_counts_the_students_side_by_side_as_the_job_trains_them(tiny_config, dataset, threads):
    """A job with two cores trains a seed's two students at once (LocalBackend); the run button's estimate too."""
    from kd_core.threads import student_workers, torch_threads

    with torch_threads(threads):
        assert student_workers(2) == threads
        estimate = seconds(tiny_config, dataset)
    assert estimate == pytest.approx(comparison_plan(tiny_config, dataset, teacher_cached=False,
                                                     throughput=fake_throughput, side_by_side=threads).seconds)


def test_without_the_flag_the_cache_is_asked(tiny_config, dataset):
    """No teacher with this seed was ever trained in the test session's cache: it counts."""
    cfg = tiny_config.replace(teacher_seed=987)
    assert estimate_seconds(cfg, dataset, throughput=fake_throughput) == seconds(cfg, dataset)


def synthetic_run(plan: Plan, steps: int, speed: float = 1.0):
    """(clock time, overall) per training snapshot of a run whose every phase takes `speed` x its estimate, as a
    Tracker counting the plan's units reports it."""
    tracker, clock, seen = Tracker(None, plan.seconds), 0.0, []
    for phase in plan.phases:
        watch = tracker.watch(phase.name, phase.seed, units=phase.seconds)
        for step in range(1, steps + 1):
            if phase.name != OUTPUTS:  # computing the teacher's outputs sends no progress
                watch(Progress(step, steps, step / steps, 1, 0.0, 0.0, 0.0, None, None, 0.0))
                seen.append((clock + speed * phase.seconds * step / steps, tracker.fraction()))
        tracker.trained(phase.seconds, watch)
        clock += speed * phase.seconds
    return seen


@pytest.mark.parametrize("speed", [1.0, 2.5])
@pytest.mark.parametrize("join_at", [0, 7])
def test_the_eta_is_exact_when_the_run_keeps_its_pace(tiny_config, dataset, speed, join_at):
    """Phases take their estimated time (or all 2.5x it): the ETA is exact, also for a session joining mid-run."""
    plan = comparison_plan(tiny_config.replace(seeds=2), dataset, teacher_cached=False, throughput=fake_throughput)
    run = synthetic_run(plan, steps=10, speed=speed)
    first = (0.0, 0.0) if join_at == 0 else run[join_at]
    said = 0
    for now, overall in run[join_at:]:
        assert overall == pytest.approx(now / (speed * plan.seconds))   # progress weighted by cost
        left = estimate.eta_seconds(first, now, overall)
        if overall - first[1] > estimate.ETA_AFTER:
            assert left == pytest.approx(speed * plan.seconds - now, abs=1e-9)
            said += 1
        else:
            assert left is None   # too little seen yet: "estimating time left..."
    assert said == len(run) - join_at - (join_at > 0) and estimate.eta_seconds(first, run[-1][0], 1.0) == 0


def test_counting_steps_alike_misjudges_what_the_plan_gets_right(tiny_config, dataset):
    """Tracker's step units call the slow teacher's steps as cheap as a student's; the plan's units do not."""
    cfg = tiny_config.replace(seeds=2)
    plan = comparison_plan(cfg, dataset, teacher_cached=False, throughput=fake_throughput)
    teacher_steps, student_steps = steps_of(300, 1, cfg.batch_size), steps_of(100, 2, cfg.batch_size)
    by_steps = Tracker(None, teacher_steps + 4 * student_steps)
    by_steps.trained(teacher_steps)            # the teacher is done, as run_experiment counts it
    by_plan = Tracker(None, plan.seconds)      # the same, with the plan's units
    by_plan.trained(plan.units("teacher", 0) + plan.units(OUTPUTS, None))
    elapsed = plan.units("teacher", 0) + plan.units(OUTPUTS, None)  # at the estimated pace
    truth = plan.seconds - elapsed
    uniform = elapsed / by_steps.fraction() * (1 - by_steps.fraction())   # the elapsed/overall ETA of today
    weighted = elapsed / by_plan.fraction() * (1 - by_plan.fraction())
    assert weighted == pytest.approx(truth) and abs(uniform - truth) > 0.2 * truth


def test_measured_throughput_is_positive_and_measured_once(monkeypatch, one_thread):
    first = estimate.measured_throughput("tiny-mlp", "train", 8)
    for mode, precision in (("distill", "fp32"), ("infer", "fp32"), ("train", "bf16")):
        assert estimate.measured_throughput("tiny-mlp", mode, 8, precision) > 0
    with pytest.raises(ValueError, match="unknown mode"):
        estimate.measured_throughput("tiny-mlp", "fly", 8)

    def measure_again(*args):
        raise AssertionError("measured twice")

    monkeypatch.setattr(estimate, "_measure", measure_again)
    assert estimate.measured_throughput("tiny-mlp", "train", 8) == first


def test_about_says_a_duration_in_words():
    assert about(0.2) == "about 1 s" and about(42.4) == "about 42 s"
    assert about(150) == "about 2.5 min" and about(3 * 3600) == "about 3.0 h"


def test_a_page_measuring_throughput_does_not_change_the_weights_a_job_seeds(tiny_config, one_thread):
    """The run estimate (a page's thread) builds and draws while a job's thread seeds its students: both students
    of a seed must still start from the same weights (seen in CI as the Distill page's "(they differ!)")."""
    import threading

    import torch

    from kd_core.experiment import initial_student_weights

    expected = initial_student_weights(tiny_config, 0)
    stop = threading.Event()

    def page() -> None:
        while not stop.is_set():
            estimate._measure("tiny-mlp", "infer", 8, "fp32")

    thread = threading.Thread(target=page)
    thread.start()
    try:
        for _ in range(40):
            got = initial_student_weights(tiny_config, 0)
            assert all(torch.equal(got[k], expected[k]) for k in expected)
    finally:
        stop.set()
        thread.join()


def test_students_side_by_side_are_costed_on_one_thread_as_their_share_of_the_wall_time(tiny_config, dataset):
    """Two at a time: each student's units are its one-thread seconds, slowed by SIDE_BY_SIDE_SLOWDOWN, halved
    (both advance together, so the units still pass at one per second); the teacher keeps the job's threads."""
    import torch

    threads_seen: dict[str, set[int]] = {}

    def recording(architecture: str, mode: str, batch_size: int, precision: str) -> float:
        threads_seen.setdefault(architecture, set()).add(torch.get_num_threads())
        return fake_throughput(architecture, mode, batch_size, precision)

    cfg = tiny_config.replace(seeds=2)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        alone = comparison_plan(cfg, dataset, teacher_cached=False, throughput=fake_throughput)
        beside = comparison_plan(cfg, dataset, teacher_cached=False, throughput=recording, side_by_side=2)
        assert torch.get_num_threads() == 2  # given back
    finally:
        torch.set_num_threads(before)
    assert threads_seen == {"classroom-teacher": {2}, "keras-student": {1}}
    for role in ("distilled", "scratch"):
        assert beside.units(role, 1) == pytest.approx(alone.units(role, 1) * estimate.SIDE_BY_SIDE_SLOWDOWN / 2)
    assert beside.units("teacher", 0) == alone.units("teacher", 0)
