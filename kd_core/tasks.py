"""Every long operation as a Task, and the one progress Event they all report.

A Task is built by the engine module that owns its cache (kd_core.experiment, kd_core.lab,
kd_core.compress, kd_core.lm): only that module knows the cache key. The app's job runner, the CLI
and the tests read the same Events (events_to_histories regroups them for live curves). A Tracker
turns the training loop's Progress snapshots (and finished parts, and stages named in words) into
Events with one overall fraction for the whole task. Light: no torch import, so pages paint first.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    from kd_core.train import Progress

Report = Callable[["Event"], None]   # where a task sends its Events
ShouldStop = Callable[[], bool]      # polled by the task; True makes it raise TrainingCancelled


@dataclass(frozen=True)
class Event:
    """Progress of a task: what runs now, its training snapshot or finished part, and the overall fraction."""

    phase: str                           # what trains: "teacher", "distilled", "scratch", "hinted", ...;
    #                                      "part" for a finished part of the result, "stage" for a step in words
    seed: int | None
    progress: Progress | None            # the training snapshot (None for a part or a stage)
    overall: float                       # 0..1 over the whole task
    step: str = ""                       # which part of the task: "40 images", "T=4, alpha=0.5", ...
    partial: dict[str, Any] | None = None  # a finished part (a budget row, a sweep cell), for live display
    text: str = ""                       # in words, what runs now (stages without a training snapshot)


def scaled(report: Report | None, start: float, share: float) -> Report | None:
    """A report that maps a sub-task's overall fraction 0..1 onto start..start + share of the outer task."""
    if report is None:
        return None
    return lambda event: report(dataclasses.replace(event, overall=min(1.0, start + share * event.overall)))


class Tracker:
    """Turns training snapshots into Events with one overall fraction over the task's units of work.

    A unit is whatever the task counts its work in: optimisation steps for the image tasks, an
    estimated cost for the language models. `watch` gives one training run's progress callback,
    `trained` counts its units when it ends, `part` announces a finished piece of the result and
    `stage` a step named in words. Runs may train at the same time (in threads): the fraction counts
    every watched run's share until `trained` names it.
    """

    def __init__(self, report: Report | None, total: float) -> None:
        self.report, self.total, self.done = report, max(float(total), 1e-12), 0.0
        self._live: dict[int, float] = {}   # units done so far by each watched run that has not ended
        self._lock = threading.Lock()
        self._runs = itertools.count()

    def fraction(self, extra: float = 0.0) -> float:
        """The overall fraction with `extra` units more than the ended and the live runs have done."""
        return min(1.0, (self.done + sum(self._live.values()) + extra) / self.total)

    def watch(self, phase: str, seed: int | None, step: str = "",
              units: float | None = None) -> Callable[[Progress], None]:
        """A progress callback for one training run worth `units` (default: its own step count)."""
        run = next(self._runs)

        def on_progress(p: Progress) -> None:
            with self._lock:
                self._live[run] = p.step / max(p.steps, 1) * (p.steps if units is None else units)
                event = Event(phase, seed, p, self.fraction(), step)
            if self.report is not None:
                self.report(event)
        on_progress.run = run  # type: ignore[attr-defined]  # what `trained` ends
        return on_progress

    def trained(self, units: float, run: Callable[[Progress], None] | None = None) -> None:
        """Count a finished training run's units; it ends the run `run` (a callback from watch), or every live
        run when None (runs one after another)."""
        with self._lock:
            if run is None:
                self._live.clear()
            else:
                self._live.pop(getattr(run, "run", -1), None)
            self.done += units

    def part(self, step: str, payload: dict[str, Any]) -> None:
        """Announce a finished part of the result."""
        if self.report is not None:
            self.report(Event("part", None, None, self.fraction(), step, payload))

    def stage(self, text: str, units_done: float = 0.0, progress: Progress | None = None) -> None:
        """Say in words what runs now (`units_done` of the current stage done so far)."""
        if self.report is not None:
            self.report(Event("stage", None, progress, self.fraction(units_done), text=text))


CURVE_FIELDS = ("step", "epoch", "loss", "hard", "soft", "train_acc", "test_acc")  # the Progress fields a live curve keeps


def events_to_histories(events: Iterable[Event], seed: int = 0) -> dict[str, dict[str, list]]:
    """Group the training snapshots of `seed` (the teacher's of any seed) into one History-like dict per phase."""
    histories: dict[str, dict[str, list]] = {}
    for event in events:
        if event.progress is None or (event.phase != "teacher" and event.seed != seed):
            continue  # a finished part or a stage in words, or another seed
        history = histories.setdefault(event.phase, {name: [] for name in CURVE_FIELDS})
        for name in CURVE_FIELDS:
            history[name].append(getattr(event.progress, name))
    return histories


def steps_of(images: int, epochs: int | float, batch_size: int) -> int:
    """Optimisation steps of one training run: `epochs` passes over `images` in batches of `batch_size`."""
    return int(epochs * -(-images // batch_size))


@dataclass(frozen=True)
class Task:
    """One long operation: its job key, a label in words, its stored result, and the work that computes it.

    `cached()` returns the stored result (marked "cached": True) or None and never trains;
    `work(report, should_stop, use_cache)` computes it, reusing whatever the cache holds when
    `use_cache` is True. Equal keys are equal work: the job runner runs them once.
    """

    key: str
    label: str
    cached: Callable[[], dict[str, Any] | None]
    work: Callable[[Report, ShouldStop, bool], Any]
    use_cache: bool = True

    def run(self, report: Report | None = None, should_stop: ShouldStop | None = None) -> Any:
        """Do the task here, now (the job runner calls this on a worker thread)."""
        return self.work(report or (lambda event: None), should_stop or (lambda: False), self.use_cache)

    def again(self) -> "Task":
        """The same task computed afresh (its cached result ignored and replaced), under a new job key."""
        return dataclasses.replace(self, key=f"{self.key}-again-{uuid.uuid4().hex[:8]}", cached=lambda: None,
                                   use_cache=False)
