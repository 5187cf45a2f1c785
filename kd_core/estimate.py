"""Honest time estimates: measured images per second per architecture, a comparison's cost by phase, an ETA.

Throughput is measured once per process on a few small batches (per architecture, mode, batch size and
torch thread count: measure after the job runner has set the threads) and kept in memory. A comparison's
Plan lists its phases in the order kd_core.experiment.run_experiment runs them, each with its estimated
seconds, which the run's Tracker counts as its units of work: progress is weighted by what each phase costs
instead of counting every optimisation step alike, and eta_seconds (the pace so far applied to what is left)
is then right for any steady pace.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from kd_core.config import RunConfig
    from kd_core.data import Dataset

Throughput = Callable[[str, str, int], float]  # (architecture, "train" or "infer", batch size) -> images per second

EVAL_BATCH = 256          # kd_core.evaluate.predict_logits' batch size
MEASURE_BATCHES = 3       # timed batches per measurement, after one warm-up batch ...
MEASURE_SECONDS = 0.5     # ... or fewer, once this much time is spent (a big teacher)
OUTPUTS = "teacher outputs"  # the phase between teacher and students: its logits on the test and student images

_measured: dict[tuple[str, str, int, int], float] = {}
_measuring = threading.Lock()


def _measure(architecture: str, mode: str, batch_size: int) -> float:
    """Images per second of one fresh `architecture` in `mode` at `batch_size`: median over a few timed batches."""
    import torch
    import torch.nn.functional as F

    from kd_core.models import create_model, memory_format

    with torch.random.fork_rng(devices=[]):  # whoever seeds the global generator next sees it untouched
        model = create_model(architecture)
        layout = memory_format(model)
        model.to(memory_format=layout)
        x = torch.rand(batch_size, 1, 28, 28).contiguous(memory_format=layout)
        y = torch.randint(0, 10, (batch_size,))
    if mode == "train":  # forward, backward and an Adam step, as kd_core.train does per batch
        optimizer = torch.optim.Adam(model.parameters())
        model.train()

        def step() -> None:
            """One training step on the fixed batch."""
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    elif mode == "infer":
        model.eval()

        def step() -> None:
            """One inference pass over the fixed batch."""
            with torch.inference_mode():
                model(x)
    else:
        raise ValueError(f"unknown mode {mode!r}; choose 'train' or 'infer'")
    step()  # warm-up: the first call picks kernels and allocates
    timings: list[float] = []
    while len(timings) < MEASURE_BATCHES and sum(timings) < MEASURE_SECONDS:
        start = time.perf_counter()
        step()
        timings.append(time.perf_counter() - start)
    return batch_size / max(statistics.median(timings), 1e-9)


def measured_throughput(architecture: str, mode: str, batch_size: int) -> float:
    """Images per second of `architecture` ("train": forward, backward, Adam step; "infer": inference mode) at
    `batch_size` with this process's torch thread count: measured on first use, then from memory."""
    import torch

    key = (architecture, mode, batch_size, torch.get_num_threads())
    with _measuring:  # one measurement at a time: two at once would slow each other down
        if key not in _measured:
            _measured[key] = _measure(architecture, mode, batch_size)
        return _measured[key]


@dataclass(frozen=True)
class Phase:
    """One piece of a run in the order it runs: an Event's phase name and seed, and its estimated seconds."""

    name: str          # "teacher", "distilled", "scratch", or OUTPUTS (which sends no progress events)
    seed: int | None
    seconds: float


@dataclass(frozen=True)
class Plan:
    """A run's phases in order with their estimated seconds, and their total."""

    phases: tuple[Phase, ...]

    @property
    def seconds(self) -> float:
        """Estimated seconds of the whole run."""
        return sum(phase.seconds for phase in self.phases)

    def units(self, name: str, seed: int | None) -> float:
        """Estimated seconds of phase (`name`, `seed`) (0 when the run has none): its kd_core.tasks.Tracker units."""
        return sum(phase.seconds for phase in self.phases if (phase.name, phase.seed) == (name, seed))


ETA_AFTER = 0.005  # share of the work a run must be seen to do before its pace says anything


def eta_seconds(first: tuple[float, float], now: float, overall: float) -> float | None:
    """Seconds left of a run that is `overall` (0..1) done at clock time `now`, first seen at `first` = (clock time,
    overall then): the pace since then, applied to what is left; None until ETA_AFTER more has been done. With
    progress weighted by estimated cost (comparison_plan's units), a run that keeps any steady pace gets an
    exact ETA; the progress panel, the CLI and bench/eta.py all say this one."""
    done = overall - first[1]
    if done <= ETA_AFTER:
        return None
    return (now - first[0]) / done * max(0.0, 1.0 - overall)


def _images(limit: int | None, available: int) -> int:
    """Training images a train limit selects (kd_core.experiment.balanced_subset takes all when it is too big)."""
    return available if limit is None else min(limit, available)


def comparison_plan(cfg: RunConfig, dataset: Dataset, *, teacher_cached: bool | None = None,
                    throughput: Throughput = measured_throughput) -> Plan:
    """The phases of `cfg`'s teacher -> distilled -> scratch comparison with their estimated seconds.

    The teacher (left out when cached; None looks in the cache) trains and is evaluated after every epoch;
    its logits on the test and student images follow; then per seed a distilled and a scratch student, each
    evaluated after every epoch and once more at the end. Seconds are images over `throughput` (measured here
    by default); a layer-wise hint's extra work is not counted.
    """
    n_test = len(dataset.test_y)
    n_teacher = _images(cfg.teacher_train_limit, len(dataset.train_y))
    n_student = _images(cfg.student_train_limit, len(dataset.train_y))
    if teacher_cached is None:
        from kd_core.experiment import teacher_is_cached  # imports torch and the store: only when asked

        teacher_cached = teacher_is_cached(cfg, dataset)

    def run_seconds(architecture: str, images: int, epochs: int, evaluations: int) -> float:
        """Seconds to train on `images` for `epochs` and evaluate the test set `evaluations` times."""
        return (images * epochs / throughput(architecture, "train", cfg.batch_size)
                + evaluations * n_test / throughput(architecture, "infer", EVAL_BATCH))

    phases = [] if teacher_cached else [
        Phase("teacher", cfg.teacher_seed, run_seconds(cfg.teacher, n_teacher, cfg.teacher_epochs, cfg.teacher_epochs))]
    phases.append(Phase(OUTPUTS, None, (n_test + n_student) / throughput(cfg.teacher, "infer", EVAL_BATCH)))
    student = run_seconds(cfg.student, n_student, cfg.student_epochs, cfg.student_epochs + 1)
    phases += [Phase(role, seed, student) for seed in range(cfg.seeds) for role in ("distilled", "scratch")]
    return Plan(tuple(phases))


def estimate_seconds(cfg: RunConfig, dataset: Dataset, *, teacher_cached: bool | None = None,
                     throughput: Throughput = measured_throughput) -> float:
    """Estimated seconds of `cfg`'s whole comparison on `dataset` (see comparison_plan)."""
    return comparison_plan(cfg, dataset, teacher_cached=teacher_cached, throughput=throughput).seconds


def about(seconds: float) -> str:
    """A duration in words for a button or a progress line: "about 40 s", "about 2.5 min", "about 1.2 h"."""
    if seconds < 120:
        return f"about {max(1.0, seconds):.0f} s"
    if seconds < 7200:
        return f"about {seconds / 60:.1f} min"
    return f"about {seconds / 3600:.1f} h"
