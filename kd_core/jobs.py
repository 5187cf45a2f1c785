"""A process-wide background job runner: equal configs share one job, Stop cancels cooperatively.

Fair between the sessions of one server: a session may have at most MAX_ACTIVE_PER_OWNER jobs of its own
queued or running (SessionBusy beyond that), and a job shared by several sessions is cancelled only when the
last session that asked for it lets it go (`release`); sessions that only look at a job cannot stop it.
A job also records why any of its cache writes failed (`unsaved`: a disk that filled up mid-run), so the pages of
the sessions that asked for it can say so; its results are still returned. With `isolated` (the app's runner) each
worker thread hands its jobs to a child process of its own (kd_core.worker), so training never holds the server's GIL.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from kd_core import store
from kd_core.worker import WorkerProcess, WorkFailed, cores_per_worker

# A job's work: fn(report, should_stop) -> result, where report(event) records progress.
Work = Callable[[Callable[[Any], None], Callable[[], bool]], Any]
KEEP_FINISHED = 50  # finished jobs remembered in memory (results also live in the disk cache)
MAX_ACTIVE_PER_OWNER = 2  # jobs one session may have queued or running at once
IN_PROCESS_ENV = "KD_LAB_JOBS_IN_PROCESS"  # "1": the app's jobs run on a thread of the server (fault-injection tests)
log = logging.getLogger("kd_core.jobs")  # one line per job start and end: what a server actually computed


@dataclass
class Job:
    """One unit of background work and everything a page needs to show it."""

    key: str
    label: str
    status: str = "queued"            # queued, running, done, failed, cancelled
    events: list[Any] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    unsaved: str | None = None        # why some of its cache writes failed (disk full, read-only), else None
    submitted_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    owners: set[str] = field(default_factory=set)  # the sessions that asked for this job and still want it
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def latest(self) -> Any:
        """The most recent progress event, or None."""
        return self.events[-1] if self.events else None

    @property
    def finished(self) -> bool:
        """Whether the job has ended, one way or another."""
        return self.status in ("done", "failed", "cancelled")

    def cancel(self) -> None:
        """Ask the job to stop at its next step."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends; False on timeout."""
        return self._done.wait(timeout)


class SessionBusy(Exception):
    """A session asked for more jobs than MAX_ACTIVE_PER_OWNER at once; the message says so in words."""


class JobRunner:
    """Runs jobs on a small worker pool sized so torch threads x workers never exceed the cores."""

    def __init__(self, workers: int = 1, reserved_cores: int = 0, isolated: bool = False,
                 start_now: bool = False) -> None:
        """With `isolated` and `start_now`, the child processes start here, before this process imports torch (the
        two import it side by side), instead of at the first job: a served app's first teacher then trains at once."""
        self.isolated = isolated  # work runs in child processes (its closures must pickle), else on worker threads
        self._idle: queue.SimpleQueue[WorkerProcess] = queue.SimpleQueue()  # child processes between jobs
        # a child trains below this process's priority (worker.NICENESS): the pages get a core back whenever they
        # need one, so its jobs may use all of them
        child_threads = cores_per_worker(workers)
        if isolated and start_now:
            for _ in range(workers):
                self._idle.put(WorkerProcess(child_threads))
        from kd_core.train import configure_threads  # imports torch

        own_threads = configure_threads(workers, reserved_cores)  # this process's torch: pages, jobs on threads
        self.threads_per_job = child_threads if isolated else own_threads
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kd-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def submit(self, key: str, work: Work, label: str = "", owner: str | None = None) -> Job:
        """Start `work` under `key`, or return the queued, running or finished job already under that key.

        With `owner` (a session id) the job counts against that session's MAX_ACTIVE_PER_OWNER (joining a
        job already under way counts too: the session now wants it), and only its owners may stop it.
        """
        with self._lock:
            existing = self._jobs.get(key)
            if existing is not None and existing.status in ("queued", "running", "done"):
                if owner is not None and not existing.finished and owner not in existing.owners:
                    self._check_room(owner)
                    existing.owners.add(owner)
                return existing
            if owner is not None:
                self._check_room(owner)
            job = Job(key, label or key, owners={owner} if owner is not None else set())
            self._jobs[key] = job
            self._forget_old()
        self._pool.submit(self._run, job, work)
        return job

    def submit_task(self, task: Any, owner: str | None = None) -> Job:
        """Start (or join) a kd_core.tasks.Task for `owner`: its key, its work, its label."""
        return self.submit(task.key, task.run, task.label, owner)

    def release(self, key: str, owner: str) -> bool:
        """`owner` no longer wants the job under `key`; it is cancelled when no owner is left. True if cancelled."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None or job.finished or owner not in job.owners:
                return False
            job.owners.discard(owner)
            if job.owners:
                return False
        job.cancel()
        return True

    def position(self, key: str) -> int:
        """How many unfinished jobs were submitted before the one under `key` (0: it runs next, or now)."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None:
                return 0
            return sum(1 for j in self._jobs.values() if not j.finished and j.submitted_at < job.submitted_at)

    def _check_room(self, owner: str) -> None:
        """Raise SessionBusy when `owner` already has MAX_ACTIVE_PER_OWNER unfinished jobs (caller holds the lock)."""
        mine = [j for j in self._jobs.values() if not j.finished and owner in j.owners]
        if len(mine) >= MAX_ACTIVE_PER_OWNER:
            raise SessionBusy(f"You already have {len(mine)} runs waiting or running ("
                              + "; ".join(j.label for j in mine) + "). Stop one, or wait until one finishes: "
                              "everyone on this server shares its cores.")

    def get(self, key: str) -> Job | None:
        """The job under `key`, if this process has one."""
        with self._lock:
            return self._jobs.get(key)

    def forget(self, key: str) -> None:
        """Drop the finished job under `key` (its stored result was deleted), so a new submit runs it again."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.finished:
                del self._jobs[key]

    def active(self) -> list[Job]:
        """Jobs queued or running now."""
        with self._lock:
            return [j for j in self._jobs.values() if not j.finished]

    def jobs(self) -> dict[str, Job]:
        """Every job this process remembers, by key (a snapshot)."""
        with self._lock:
            return dict(self._jobs)

    def _run(self, job: Job, work: Work) -> None:
        """Execute one job on a worker thread and record how it ended."""
        from kd_core.train import TrainingCancelled

        if job._cancel.is_set():
            job.status = "cancelled"
        else:
            job.status = "running"
            log.info("job started: %s (%s)", job.key, job.label)
            status = "done"
            with store.recording_write_failures() as failures:
                try:
                    if self.isolated:
                        job.result = self._in_child(work, job, failures)
                    else:
                        job.result = work(job.events.append, job._cancel.is_set)
                except TrainingCancelled:
                    status = "cancelled"
                except WorkFailed as exc:  # the child printed its traceback
                    job.error, status = str(exc), "failed"
                except Exception as exc:  # reported to the page as a message, never raised into it
                    job.error = f"{type(exc).__name__}: {exc}"
                    status = "failed"
                    traceback.print_exc()
            job.unsaved = "; ".join(dict.fromkeys(failures)) or None  # each reason once, set before the status
            job.status = status
        job.finished_at = time.time()
        log.info("job %s: %s after %.1f s", job.status, job.key, job.finished_at - job.submitted_at)
        job._done.set()

    def _in_child(self, work: Work, job: Job, failures: list[str]) -> Any:
        """Run `work` for `job` in an idle child process (a new one if none is alive); a dead child is not reused."""
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                worker = WorkerProcess(self.threads_per_job)
            if worker.alive:
                break
            worker.close()  # killed while idle
        try:
            return worker.run(work, job.events.append, job._cancel.is_set, failures)
        finally:
            if worker.alive:
                self._idle.put(worker)

    def close(self) -> None:
        """Stop every job and end the child processes (a runner that is dropped: tests, a server shutting down)."""
        for job in self.active():
            job.cancel()
        self._pool.shutdown(wait=True)
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    def _forget_old(self) -> None:
        """Drop the oldest finished jobs beyond KEEP_FINISHED (caller holds the lock)."""
        finished = sorted((j for j in self._jobs.values() if j.finished), key=lambda j: j.submitted_at)
        for job in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.key]
