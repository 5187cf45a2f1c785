"""Tasks, the one progress Event, the Tracker, and the CLI's one printer and table layout."""

from __future__ import annotations

import io

from kd_core.cli.common import ProgressPrinter, table
from kd_core.jobs import JobRunner
from kd_core.tasks import Event, Task, Tracker, events_to_histories, scaled, steps_of
from kd_core.train import Progress


def snapshot(step: int, steps: int, test_acc: float | None = None) -> Progress:
    return Progress(step, steps, step / steps, 1, 0.5, 0.4, 0.1, 0.9, test_acc, 0.01 * step)


def test_tracker_weights_runs_by_their_units_and_says_parts_and_stages():
    events: list[Event] = []
    tracker = Tracker(events.append, total=10)
    watch = tracker.watch("teacher", 0)                 # a run worth its own 4 steps
    watch(snapshot(2, 4))
    assert events[-1].overall == 0.2 and events[-1].phase == "teacher" and events[-1].progress.step == 2
    tracker.trained(4)
    tracker.watch("distilled", 1, "40 images", units=6)(snapshot(1, 2))   # half of a run worth 6 units
    assert events[-1].overall == 0.7 and events[-1].step == "40 images" and events[-1].seed == 1
    tracker.trained(6)
    tracker.part("40 images", {"gain": 0.1})
    tracker.stage("measuring", units_done=0)
    assert [e.phase for e in events[-2:]] == ["part", "stage"]
    assert events[-2].partial == {"gain": 0.1} and events[-2].progress is None and events[-1].text == "measuring"
    assert all(e.overall <= 1.0 for e in events) and events[-1].overall == 1.0


def test_scaled_maps_a_sub_task_onto_its_share():
    seen: list[Event] = []
    inner = scaled(seen.append, 0.2, 0.5)
    inner(Event("scratch", 0, None, 0.5))
    assert seen[0].overall == 0.45 and seen[0].phase == "scratch"
    assert scaled(None, 0.0, 1.0) is None


def test_steps_of_is_a_ceiling_division_times_epochs():
    assert steps_of(100, 3, 32) == 12 and steps_of(96, 1, 32) == 3 and steps_of(1, 1, 32) == 1


def test_a_task_runs_through_the_job_runner_and_again_computes_afresh():
    calls: list[bool] = []

    def work(report, should_stop, use_cache):
        calls.append(use_cache)
        report(Event("stage", None, None, 1.0, text="done"))
        return {"value": len(calls)}

    task = Task("k", "a test task", cached=lambda: {"value": 0, "cached": True}, work=work)
    runner = JobRunner(workers=1)
    job = runner.submit_task(task)
    assert job.wait(10) and job.result == {"value": 1} and job.label == "a test task" and job.events[0].text == "done"
    again = task.again()
    assert again.key != task.key and again.key.startswith("k-again-") and again.cached() is None
    assert again.run() == {"value": 2} and calls == [True, False]
    assert runner.jobs() == {"k": job}


def test_live_curves_skip_parts_and_stages():
    events = [Event("teacher", 0, snapshot(1, 2), 0.1), Event("part", None, None, 0.2, "x", {}),
              Event("stage", None, None, 0.3, text="measuring"), Event("distilled", 0, snapshot(2, 2, 0.8), 0.4),
              Event("distilled", 1, snapshot(2, 2), 0.5)]
    histories = events_to_histories(events)
    assert set(histories) == {"teacher", "distilled"}
    assert histories["distilled"]["test_acc"] == [0.8]   # seed 0 only


def test_one_printer_reads_every_kind_of_event():
    stream = io.StringIO()
    printer = ProgressPrinter(stream)
    printer(Event("teacher", 0, snapshot(1, 2), 0.25))          # mid-run: not a line off a terminal
    printer(Event("teacher", 0, snapshot(2, 2, 0.9), 0.5))      # the run's end
    printer(Event("part", None, None, 0.6, "40 images", {"cached": True}))
    printer(Event("stage", None, None, 0.7, text="quantizing"))
    printer(Event("stage", None, None, 0.8, text="quantizing"))  # said once
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert "teacher" in lines[0] and "step 2/2" in lines[0] and "test acc 90.0%" in lines[0]
    assert "done: 40 images (cached)" in lines[1] and "quantizing" in lines[2]


def test_table_aligns_columns_and_appends_notes():
    text = table([("model", 8), ("acc", 6)], [("teacher", "97.0%"), ("scratch", "85.1%")], ["note"])
    assert text.splitlines() == ["model       acc", "teacher   97.0%", "scratch   85.1%", "note"]
