"""Honest time estimates: measured images per second per architecture, a comparison's cost by phase, an ETA.

Throughput is measured once per process on a few small batches (per architecture, mode, batch size and
torch thread count: measure after the job runner has set the threads) and kept in memory. A comparison's
Plan lists its phases in the order kd_core.experiment.run_experiment runs them, each with its estimated
seconds, which the run's Tracker counts as its units of work: progress is weighted by what each phase costs
instead of counting every optimisation step alike, and eta_seconds (the pace so far applied to what is left)
is then right for any steady pace.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from kd_core.config import RunConfig
    from kd_core.data import Dataset

Throughput = Callable[[str, str, int, str], float]  # (architecture, mode, batch size, precision) -> images per second

MODES = ("train", "distill", "infer")  # a training step from labels, a distilled step, an inference pass
MEASURE_BATCHES = 8       # timed batches per measurement, after a warm-up call and a one-batch call ...
MEASURE_SECONDS = 0.5     # ... or fewer, when one batch already takes a good share of this (a big teacher)
MEASURE_IMAGES = 512      # ... and batches of no more images than this in all (at least one): inference batches
# are big (a small student's 256, a classroom teacher's 128), and 8 + 1 of them took 0.6 s of a cold classroom run
OUTPUTS = "teacher outputs"  # the phase between teacher and students: its logits on the test and student images
SIDE_BY_SIDE_SLOWDOWN = 1.1  # a one-thread student beside another vs alone (the GIL, shared caches): 1.09
# measured by bench/side_by_side.py on the project's 2-core AMD EPYC (Zen 4), 2026-12-02

_measured: dict[tuple[str, str, int, str, int], float] = {}  # (architecture, mode, batch, precision, threads)
_measuring = threading.Lock()


def _measure(architecture: str, mode: str, batch_size: int, precision: str) -> float:
    """Images per second of one fresh `architecture` in `mode` at `batch_size` and `precision`, timed on the code
    that runs: kd_core.train.train's loop ("train": labels only, "distill": with teacher logits, KD loss) or
    kd_core.evaluate.predict_logits ("infer", at the model's inference batch size); after one warm-up call."""
    import torch

    from kd_core.evaluate import inference_batch_size, predict_logits
    from kd_core.models import GLOBAL_RNG, create_model
    from kd_core.train import train

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {list(MODES)}")
    with GLOBAL_RNG, torch.random.fork_rng(devices=[]):  # the global generator borrowed and given back untouched
        model = create_model(architecture)
        batch = inference_batch_size(model) if mode == "infer" else batch_size
        images = torch.randint(0, 256, (batch * (MEASURE_BATCHES + 1), 28, 28), dtype=torch.uint8)
        labels = torch.randint(0, 10, (len(images),))
        teacher_logits = torch.randn(len(images), 10) if mode == "distill" else None

    def run(n: int) -> None:
        """`n` batches of the timed code."""
        if mode == "infer":
            predict_logits(model, images[:n * batch], batch_size=batch, precision=precision)
        else:
            train(model, images[:n * batch], labels[:n * batch], epochs=1, batch_size=batch, lr=1e-3, seed=0,
                  teacher_logits=None if teacher_logits is None else teacher_logits[:n * batch],
                  temperature=4.0, alpha=0.9, precision=precision)

    def timed(n: int) -> float:
        """Seconds of `run(n)`."""
        start = time.perf_counter()
        run(n)
        return time.perf_counter() - start

    run(1)  # warm-up: the first call picks kernels and allocates
    one = timed(1)
    n = max(1, min(MEASURE_BATCHES, MEASURE_IMAGES // batch, int(MEASURE_SECONDS / max(one, 1e-9))))
    # a call's fixed cost (a new optimizer, the data order) is paid once per run, not per batch: time 1 + n
    # batches against 1, and count the difference; when noise hides it, the whole call's share
    per_batch = (timed(1 + n) - one) / n if n > 1 else one
    return batch / max(per_batch if per_batch > 0 else one, 1e-9)


def measured_throughput(architecture: str, mode: str, batch_size: int, precision: str = "fp32") -> float:
    """Images per second of `architecture` in `mode` (MODES) at `batch_size` ("infer" uses the model's own inference
    batch) and `precision` with this process's torch thread count: measured on first use, then from memory."""
    import torch

    key = (architecture, mode, batch_size, precision, torch.get_num_threads())
    with _measuring:  # one measurement at a time: two at once would slow each other down
        if key not in _measured:
            _measured[key] = _measure(architecture, mode, batch_size, precision)
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
                    throughput: Throughput = measured_throughput, side_by_side: int = 1) -> Plan:
    """The phases of `cfg`'s teacher -> distilled -> scratch comparison with their estimated seconds.

    The teacher (left out when cached; None looks in the cache) trains and measures its curve on the fixed
    test subset (kd_core.experiment.curve_set) after every epoch; its logits on the test and student images
    follow; then per seed a distilled and a scratch student, each measured on the subset after every epoch and
    on the whole test set at the end. Seconds are images over `throughput` in `cfg`'s precision (measured here by
    default); a layer-wise hint's extra work is not counted. With `side_by_side` > 1 the students train that many
    at once on one torch thread each (kd_core.threads): their speed is measured on one thread, slowed by
    SIDE_BY_SIDE_SLOWDOWN, and each student's seconds are its share of the wall time (divided by `side_by_side`).
    """
    from kd_core.experiment import CURVE_TEST_IMAGES  # here: kd_core.experiment imports this module

    n_test = len(dataset.test_y)
    n_curve = min(CURVE_TEST_IMAGES, n_test)
    n_teacher = _images(cfg.teacher_train_limit, len(dataset.train_y))
    n_student = _images(cfg.student_train_limit, len(dataset.train_y))
    precision = cfg.compute_precision()
    if teacher_cached is None:
        from kd_core.experiment import teacher_is_cached  # imports torch and the store: only when asked

        teacher_cached = teacher_is_cached(cfg, dataset)

    def speed(architecture: str, mode: str) -> float:
        """Images per second of `architecture` in `mode` for this config."""
        return throughput(architecture, mode, cfg.batch_size, precision)

    def run_seconds(architecture: str, mode: str, images: int, epochs: int, final_test: bool) -> float:
        """Seconds to train on `images` for `epochs` with a curve point after each, and the whole test set once."""
        evaluated = epochs * n_curve + (n_test if final_test else 0)
        return images * epochs / speed(architecture, mode) + evaluated / speed(architecture, "infer")

    phases = [] if teacher_cached else [
        Phase("teacher", cfg.teacher_seed, run_seconds(cfg.teacher, "train", n_teacher, cfg.teacher_epochs, False))]
    phases.append(Phase(OUTPUTS, None, (n_test + n_student) / speed(cfg.teacher, "infer")))
    from kd_core.threads import STUDENT_THREADS, torch_threads  # imports torch: only when planning

    alone = side_by_side <= 1
    with contextlib.nullcontext() if alone else torch_threads(STUDENT_THREADS):
        student = {mode: run_seconds(cfg.student, mode, n_student, cfg.student_epochs, True)
                   * (1.0 if alone else SIDE_BY_SIDE_SLOWDOWN / side_by_side) for mode in ("distill", "train")}
    for seed in range(cfg.seeds):
        phases += [Phase(role, seed, student[mode]) for role, mode in (("distilled", "distill"), ("scratch", "train"))]
    return Plan(tuple(phases))


def estimate_seconds(cfg: RunConfig, dataset: Dataset, *, teacher_cached: bool | None = None,
                     throughput: Throughput = measured_throughput) -> float:
    """Estimated seconds of `cfg`'s whole comparison on `dataset` (see comparison_plan), its students side by side
    as the local backend trains them with this thread count (kd_core.threads.student_workers)."""
    from kd_core.threads import student_workers  # imports torch: only when estimating

    return comparison_plan(cfg, dataset, teacher_cached=teacher_cached, throughput=throughput,
                           side_by_side=student_workers(2 * cfg.seeds)).seconds


def teacher_seconds(cfg: RunConfig, dataset: Dataset, *, throughput: Throughput = measured_throughput) -> float:
    """Estimated seconds of training `cfg`'s teacher alone (the offer to train it on the Temperature and Teacher
    pages): its phase of an uncached comparison_plan and its logits after."""
    plan = comparison_plan(cfg, dataset, teacher_cached=False, throughput=throughput)
    return plan.units("teacher", cfg.teacher_seed) + plan.units(OUTPUTS, None)


def about(seconds: float) -> str:
    """A duration in words for a button or a progress line: "about 40 s", "about 2.5 min", "about 1.2 h"."""
    if seconds < 120:
        return f"about {max(1.0, seconds):.0f} s"
    if seconds < 7200:
        return f"about {seconds / 60:.1f} min"
    return f"about {seconds / 3600:.1f} h"
